//! Rendered pages and feeds kept in memory until the content changes, with the validators
//! conditional GET compares (ETag, Last-Modified) and their compressed variants, each made
//! once. Uses `store` for the content stamp.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::Document;
use super::encoding::{self, Effort, Encoding};
use crate::store::{self, Db, posts::ContentStamp};

/// Entries kept at most; past this the cache starts over (bounds memory whatever
/// addresses clients ask for).
const MAX_ENTRIES: usize = 4096;

/// A rendered document with its validators, and its compressed variants once asked for.
pub struct CachedDocument {
    pub body: Bytes,
    pub content_type: &'static str,
    /// Strong validator of the identity bytes: a hash of them.
    pub etag: String,
    pub last_modified: SystemTime,
    /// `last_modified` as an HTTP date, written once.
    pub last_modified_text: String,
    effort: Effort,
    /// Brotli and gzip (in [`Encoding::COMPRESSED`]'s order), or none when the document
    /// is not worth compressing.
    variants: Vec<Variant>,
}

/// A compressed representation: its own strong ETag, and its bytes, made on the first
/// request that asks for them (concurrent ones wait for that one).
struct Variant {
    encoding: Encoding,
    etag: String,
    body: OnceCell<Bytes>,
}

impl CachedDocument {
    /// A document kept in the cache: compressed at the encoders' best, once.
    pub fn new(doc: Document) -> Self {
        Self::with_effort(doc, Effort::Kept)
    }

    /// A document made for one response: compressed quickly if at all.
    pub fn fresh(doc: Document) -> Self {
        Self::with_effort(doc, Effort::Once)
    }

    fn with_effort(doc: Document, effort: Effort) -> Self {
        let digest = Sha256::digest(doc.body.as_bytes());
        let hash = hex::encode(&digest[..16]);
        let seconds = u64::try_from(doc.last_modified.timestamp()).unwrap_or(0);
        let last_modified = SystemTime::UNIX_EPOCH + Duration::from_secs(seconds);
        let variants = if encoding::compressible(doc.content_type, doc.body.len()) {
            Encoding::COMPRESSED
                .iter()
                .map(|&encoding| Variant {
                    encoding,
                    etag: format!("\"{hash}{}\"", encoding.etag_suffix()),
                    body: OnceCell::new(),
                })
                .collect()
        } else {
            Vec::new()
        };
        Self {
            etag: format!("\"{hash}\""),
            last_modified,
            last_modified_text: httpdate::fmt_http_date(last_modified),
            content_type: doc.content_type,
            body: Bytes::from(doc.body),
            effort,
            variants,
        }
    }

    /// Whether the document is offered compressed, so responses vary with Accept-Encoding.
    pub fn varies(&self) -> bool {
        !self.variants.is_empty()
    }

    /// The codings this document is offered in, most preferred first.
    pub fn encodings(&self) -> impl Iterator<Item = Encoding> + '_ {
        self.variants
            .iter()
            .map(|v| v.encoding)
            .chain(std::iter::once(Encoding::Identity))
    }

    fn variant(&self, encoding: Encoding) -> Option<&Variant> {
        self.variants.iter().find(|v| v.encoding == encoding)
    }

    /// The strong ETag of the representation in `encoding` (identity's if it is not offered).
    pub fn etag_of(&self, encoding: Encoding) -> &str {
        self.variant(encoding).map_or(&self.etag, |v| &v.etag)
    }

    /// The bytes of the representation in `encoding`, compressing them (off the async
    /// threads) the first time they are asked for. Identity's if it is not offered.
    pub async fn body_of(&self, encoding: Encoding) -> anyhow::Result<Bytes> {
        let Some(variant) = self.variant(encoding) else {
            return Ok(self.body.clone());
        };
        let body = variant
            .body
            .get_or_try_init(|| async {
                let (body, effort) = (self.body.clone(), self.effort);
                let compressed = tokio::task::spawn_blocking(move || encoding::compress(encoding, effort, &body))
                    .await
                    .context("The compression task stopped")?
                    .with_context(|| format!("Failed to compress a document with {}", encoding.token()))?;
                anyhow::Ok(Bytes::from(compressed))
            })
            .await?;
        Ok(body.clone())
    }

    /// Which of the representations the client accepts (most preferred first) it holds
    /// already, by its validators, so 304 is the answer. RFC 9110 §13.1: If-None-Match wins
    /// over If-Modified-Since; a client may hold any variant, each with its own ETag.
    pub fn held_by_client(
        &self,
        accepted: &[Encoding],
        if_none_match: Option<&str>,
        if_modified_since: Option<&str>,
    ) -> Option<Encoding> {
        match if_none_match {
            Some(value) => accepted
                .iter()
                .copied()
                .find(|&encoding| etag_matches(value, self.etag_of(encoding))),
            None => if_modified_since
                .and_then(|v| httpdate::parse_http_date(v).ok())
                .filter(|&since| self.last_modified <= since)
                .and(accepted.first().copied()),
        }
    }
}

/// Weak comparison, as If-None-Match requires: `W/"x"` matches `"x"`; `*` matches anything.
fn etag_matches(header_value: &str, etag: &str) -> bool {
    header_value
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == etag)
}

/// The cache of rendered documents, keyed by request path.
#[derive(Default)]
pub struct DocumentCache {
    entries: RwLock<HashMap<String, Arc<CachedDocument>>>,
    generation: AtomicU64,
    stamp: Mutex<Option<ContentStamp>>,
}

impl DocumentCache {
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn get(&self, key: &str) -> Option<Arc<CachedDocument>> {
        self.entries.read().ok()?.get(key).cloned()
    }

    /// Keeps a document rendered during `generation`, unless the content changed meanwhile.
    pub fn put(&self, key: String, generation: u64, doc: Arc<CachedDocument>) {
        let Ok(mut entries) = self.entries.write() else { return };
        if self.generation() != generation {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, doc);
    }

    /// Whether a scheduled post has become public since the stamp was read.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.stamp
            .lock()
            .map(|s| s.as_ref().is_none_or(|s| s.next_due.is_some_and(|due| due <= now)))
            .unwrap_or(true)
    }

    /// Re-reads the content stamp and empties the cache if the content changed.
    pub async fn refresh(&self, db: &Db) -> anyhow::Result<bool> {
        let fresh = store::posts::stamp(db, Utc::now()).await?;
        let mut stamp = self
            .stamp
            .lock()
            .map_err(|_| anyhow::anyhow!("cache stamp lock poisoned"))?;
        if stamp.as_ref() == Some(&fresh) {
            return Ok(false);
        }
        *stamp = Some(fresh);
        // Bump first so a render that started before this cannot store its stale result.
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc_of(body: String) -> CachedDocument {
        CachedDocument::new(Document {
            body,
            content_type: "application/atom+xml; charset=utf-8",
            last_modified: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        })
    }

    fn doc() -> CachedDocument {
        doc_of("hello".into())
    }

    const IDENTITY: &[Encoding] = &[Encoding::Identity];

    #[test]
    fn matching_etag_means_not_modified() {
        let d = doc();
        let held = |inm: &str, ims| d.held_by_client(IDENTITY, Some(inm), ims);
        assert_eq!(held(&format!("\"zzz\", W/{}", d.etag), None), Some(Encoding::Identity));
        assert_eq!(held("\"other\"", None), None);
        // If-None-Match wins over a matching If-Modified-Since.
        assert_eq!(held("\"other\"", Some(&d.last_modified_text)), None);
    }

    #[test]
    fn if_modified_since_compares_to_the_second() {
        let d = doc();
        assert!(d.held_by_client(IDENTITY, None, Some(&d.last_modified_text)).is_some());
        let before = httpdate::fmt_http_date(d.last_modified - Duration::from_secs(1));
        assert!(d.held_by_client(IDENTITY, None, Some(&before)).is_none());
    }

    #[test]
    fn each_variant_has_its_own_etag_and_a_client_holding_any_accepted_one_has_it() {
        let d = doc_of("<entry>Otters</entry>\n".repeat(100));
        assert!(d.varies());
        let all: Vec<Encoding> = d.encodings().collect();
        assert_eq!(all, [Encoding::Brotli, Encoding::Gzip, Encoding::Identity]);
        let tag = d.etag.trim_matches('"');
        assert_eq!(d.etag_of(Encoding::Gzip), format!("\"{tag}-gz\""));
        assert_eq!(d.etag_of(Encoding::Brotli), format!("\"{tag}-br\""));
        let gzip = d.etag_of(Encoding::Gzip).to_owned();
        assert_eq!(d.held_by_client(&all, Some(&gzip), None), Some(Encoding::Gzip));
        assert_eq!(
            d.held_by_client(&all, Some(&format!("W/{gzip}")), None),
            Some(Encoding::Gzip)
        );
        // A variant the client no longer accepts is not what it gets.
        assert_eq!(d.held_by_client(IDENTITY, Some(&gzip), None), None);
        // `*`: whatever would be sent.
        assert_eq!(d.held_by_client(&all, Some("*"), None), Some(Encoding::Brotli));
    }

    #[test]
    fn tiny_documents_are_offered_only_as_they_are() {
        let d = doc();
        assert!(!d.varies());
        assert_eq!(d.encodings().collect::<Vec<_>>(), [Encoding::Identity]);
        assert_eq!(d.etag_of(Encoding::Gzip), d.etag);
    }

    #[tokio::test]
    async fn variants_are_made_once() {
        let d = doc_of("<entry>Otters</entry>\n".repeat(100));
        let first = d.body_of(Encoding::Gzip).await.unwrap();
        let again = d.body_of(Encoding::Gzip).await.unwrap();
        assert_eq!(first.as_ptr(), again.as_ptr(), "the same bytes, not compressed twice");
        assert!(first.len() < d.body.len());
        assert_eq!(d.body_of(Encoding::Identity).await.unwrap(), d.body);
    }
}
