//! Rendered pages and feeds kept in memory until the content changes, with the validators
//! conditional GET compares (ETag, Last-Modified). Uses `store` for the content stamp.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::Document;
use crate::store::{self, Db, posts::ContentStamp};

/// Entries kept at most; past this the cache starts over (bounds memory whatever
/// addresses clients ask for).
const MAX_ENTRIES: usize = 4096;

/// A rendered document with its validators.
pub struct CachedDocument {
    pub body: Bytes,
    pub content_type: &'static str,
    /// Strong validator: a hash of the exact bytes.
    pub etag: String,
    pub last_modified: SystemTime,
}

impl CachedDocument {
    pub fn new(doc: Document) -> Self {
        let digest = Sha256::digest(doc.body.as_bytes());
        let seconds = u64::try_from(doc.last_modified.timestamp()).unwrap_or(0);
        Self {
            etag: format!("\"{}\"", hex::encode(&digest[..16])),
            last_modified: SystemTime::UNIX_EPOCH + Duration::from_secs(seconds),
            content_type: doc.content_type,
            body: Bytes::from(doc.body),
        }
    }

    /// Whether a client holding the given validators has this very document (RFC 9110
    /// §13.1: If-None-Match wins over If-Modified-Since), so 304 is the answer.
    pub fn not_modified(&self, if_none_match: Option<&str>, if_modified_since: Option<&str>) -> bool {
        match if_none_match {
            Some(value) => etag_matches(value, &self.etag),
            None => if_modified_since
                .and_then(|v| httpdate::parse_http_date(v).ok())
                .is_some_and(|since| self.last_modified <= since),
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

    fn doc() -> CachedDocument {
        CachedDocument::new(Document {
            body: "hello".into(),
            content_type: "text/plain",
            last_modified: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        })
    }

    #[test]
    fn matching_etag_means_not_modified() {
        let d = doc();
        assert!(d.not_modified(Some(&format!("\"zzz\", W/{}", d.etag)), None));
        assert!(!d.not_modified(Some("\"other\""), None));
        // If-None-Match wins over a matching If-Modified-Since.
        let at = httpdate::fmt_http_date(d.last_modified);
        assert!(!d.not_modified(Some("\"other\""), Some(&at)));
    }

    #[test]
    fn if_modified_since_compares_to_the_second() {
        let d = doc();
        let at = httpdate::fmt_http_date(d.last_modified);
        assert!(d.not_modified(None, Some(&at)));
        let before = httpdate::fmt_http_date(d.last_modified - Duration::from_secs(1));
        assert!(!d.not_modified(None, Some(&before)));
    }
}
