//! Posts imported from remote feeds (RSS or Atom): for a site whose posts live in another
//! system, Herald follows its feed and mails what appears there.
//!
//! Each source is fetched with conditional GET, within a time limit and a size limit; items
//! are deduplicated by their id (or link), sanitised and made absolute like local posts.
//! One id is one post: should a feed repeat an id, the first item wins and the others are
//! reported. An item with no date keeps the time Herald first saw it.
//! A source that is down, slow, broken or huge is reported and tried again next time; it
//! never holds up other sources and never removes posts already imported.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{SubsecRound, Utc};
use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use sha2::{Digest, Sha256};
use url::Url;

use super::{RENDER_VERSION, markdown, sanitize_remote_html};
use crate::config::SourceSettings;
use crate::domain::{PollOutcome, PostDraft, PostSource, Slug, Tag};
use crate::store::{self, Db, sources::SourceState};

/// Largest feed accepted.
pub const MAX_BYTES: usize = 10 * 1024 * 1024;

/// What polling one source did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceOutcome {
    /// New or changed items were imported (counts).
    Changed {
        added: usize,
        updated: usize,
    },
    /// 304, or nothing new in the feed.
    Unchanged,
    Failed(String),
}

impl SourceOutcome {
    /// The outcome without its details, as stored.
    pub fn kind(&self) -> PollOutcome {
        match self {
            SourceOutcome::Changed { .. } => PollOutcome::Changed,
            SourceOutcome::Unchanged => PollOutcome::Unchanged,
            SourceOutcome::Failed(_) => PollOutcome::Failed,
        }
    }

    /// The outcome's word, for metrics.
    pub fn label(&self) -> &'static str {
        self.kind().as_str()
    }
}

/// One source's poll: its outcome, and the ids it repeated (only their first item is imported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePoll {
    pub url: String,
    pub outcome: SourceOutcome,
    pub duplicate_ids: Vec<String>,
}

impl fmt::Display for SourcePoll {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "source {}: ", self.url)?;
        match &self.outcome {
            SourceOutcome::Changed { added, updated } => write!(f, "{added} added, {updated} updated")?,
            SourceOutcome::Unchanged => write!(f, "unchanged")?,
            SourceOutcome::Failed(e) => write!(f, "failed: {e}")?,
        }
        if !self.duplicate_ids.is_empty() {
            write!(
                f,
                "; {} item(s) repeat an id already in the feed and were skipped: {}",
                self.duplicate_ids.len(),
                self.duplicate_ids
                    .iter()
                    .map(|id| format!("{id:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
        }
        Ok(())
    }
}

/// The HTTP client for sources: its own time limit, no cookies, a user agent that names Herald.
pub fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("Herald/", env!("CARGO_PKG_VERSION"), " (feed importer)"))
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .context("Failed to build the HTTP client for sources")
}

/// Polls every source at once; one's trouble does not delay the others.
pub async fn poll_all(db: &Db, client: &reqwest::Client, sources: &[SourceSettings]) -> Vec<SourcePoll> {
    let polls = sources.iter().map(|source| async move {
        let (outcome, duplicate_ids) = match poll(db, client, source).await {
            Ok(polled) => polled,
            Err(e) => (SourceOutcome::Failed(format!("{e:#}")), Vec::new()),
        };
        let error = match &outcome {
            SourceOutcome::Failed(e) => Some(e.as_str()),
            _ => None,
        };
        if let Err(e) = store::sources::record(db, source.url.as_str(), outcome.kind(), None, error, Utc::now()).await {
            tracing::error!(error = format!("{e:#}"), "cannot record a source poll");
        }
        SourcePoll {
            url: source.url.to_string(),
            outcome,
            duplicate_ids,
        }
    });
    futures_util::future::join_all(polls).await
}

async fn fetch(
    db: &Db,
    client: &reqwest::Client,
    source: &SourceSettings,
) -> anyhow::Result<Option<(Vec<u8>, SourceState)>> {
    let url = &source.url;
    let known = store::sources::state(db, url.as_str()).await?;
    let mut request = client
        .get(url.clone())
        .timeout(Duration::from_secs(source.timeout_seconds.max(1)));
    if let Some(etag) = &known.etag {
        request = request.header(IF_NONE_MATCH, etag);
    }
    if let Some(modified) = &known.last_modified {
        request = request.header(IF_MODIFIED_SINCE, modified);
    }
    let mut response = request.send().await.context("no answer")?;
    if response.status() == StatusCode::NOT_MODIFIED {
        return Ok(None);
    }
    if !response.status().is_success() {
        bail!("answered {}", response.status());
    }
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let validators = SourceState {
        etag: header(ETAG),
        last_modified: header(LAST_MODIFIED),
    };
    if response.content_length().is_some_and(|n| n as usize > MAX_BYTES) {
        bail!("the feed is larger than {MAX_BYTES} bytes");
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.context("the feed was cut off")? {
        if body.len() + chunk.len() > MAX_BYTES {
            bail!("the feed is larger than {MAX_BYTES} bytes");
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some((body, validators)))
}

/// Polls one source and imports what is new or changed; also returns the ids the feed
/// repeated.
#[tracing::instrument(skip_all, fields(source = %source.url))]
pub async fn poll(
    db: &Db,
    client: &reqwest::Client,
    source: &SourceSettings,
) -> anyhow::Result<(SourceOutcome, Vec<String>)> {
    let Some((body, validators)) = fetch(db, client, source).await? else {
        return Ok((SourceOutcome::Unchanged, Vec::new()));
    };
    let feed = feed_rs::parser::parse(&body[..]).map_err(|e| anyhow::anyhow!("not a feed: {e}"))?;
    let now = Utc::now();
    let mut drafts: Vec<PostDraft> = Vec::new();
    // Two items with one id would be two posts taking turns with that id's content at each
    // poll: the first item in the feed is the post; the others are reported.
    let mut seen: HashSet<String> = HashSet::new();
    let mut duplicate_ids: Vec<String> = Vec::new();
    for entry in &feed.entries {
        let key = item_key(entry);
        if !key.is_empty() && !seen.insert(key.clone()) {
            tracing::warn!(source = %source.url, id = %key, "an item repeats an id already in the feed; skipped");
            if !duplicate_ids.contains(&key) {
                duplicate_ids.push(key);
            }
            continue;
        }
        if let Some(draft) = draft_from(db, source, entry, key, now, &drafts).await? {
            drafts.push(draft);
        }
    }
    let (mut added, mut updated) = (0, 0);
    for saved in store::posts::save_all(db, &drafts, now, super::sync::first_sync(db).await?).await? {
        match saved {
            store::posts::Saved::Added => added += 1,
            store::posts::Saved::Updated => updated += 1,
        }
    }
    super::note_public(db, now).await?;
    let outcome = if added + updated == 0 {
        SourceOutcome::Unchanged
    } else {
        SourceOutcome::Changed { added, updated }
    };
    store::sources::record(db, source.url.as_str(), outcome.kind(), Some(&validators), None, now).await?;
    Ok((outcome, duplicate_ids))
}

/// The link an item points at, if any.
fn item_link(entry: &feed_rs::model::Entry) -> Option<String> {
    entry
        .links
        .iter()
        .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
        .map(|l| l.href.clone())
}

/// What identifies an item across polls: its id, or else its link ("" when it has neither).
fn item_key(entry: &feed_rs::model::Entry) -> String {
    if entry.id.trim().is_empty() {
        item_link(entry).unwrap_or_default()
    } else {
        entry.id.trim().to_owned()
    }
}

/// Plain text of a bit of HTML (feeds' titles and summaries may carry markup): tags dropped,
/// character references (`&amp;`, `&#8217;`, `&eacute;`, `&nbsp;`) decoded, whitespace collapsed.
fn plain(html: &str) -> String {
    let text = ammonia::Builder::empty().clean(html).to_string();
    let text = html_escape::decode_html_entities(&text);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn draft_from(
    db: &Db,
    source: &SourceSettings,
    entry: &feed_rs::model::Entry,
    key: String,
    now: chrono::DateTime<Utc>,
    pending: &[PostDraft],
) -> anyhow::Result<Option<PostDraft>> {
    let link = item_link(entry);
    let title = entry.title.as_ref().map(|t| plain(&t.content)).unwrap_or_default();
    if key.is_empty() || title.is_empty() {
        tracing::warn!(source = %source.url, "an item without id, link or title was skipped");
        return Ok(None);
    }
    let source_key = PostSource::feed_item(&source.url, &key);
    let base = link
        .as_deref()
        .and_then(|l| source.url.join(l).ok())
        .unwrap_or_else(|| source.url.clone());
    let html = entry
        .content
        .as_ref()
        .and_then(|c| c.body.clone())
        .or_else(|| entry.summary.as_ref().map(|s| s.content.clone()))
        .unwrap_or_default();
    let content_html = sanitize_remote_html(&html, &base);
    let summary = entry
        .summary
        .as_ref()
        .map(|s| plain(&s.content))
        .filter(|s| !s.is_empty())
        .or_else(|| markdown::plain_summary(&plain(&html), 280));
    let mut tags: Vec<Tag> = Vec::new();
    for name in source
        .tags
        .iter()
        .map(String::as_str)
        .chain(entry.categories.iter().map(|c| c.label.as_deref().unwrap_or(&c.term)))
    {
        if let Ok(tag) = Tag::parse(name)
            && !tags.iter().any(|t| t.slug() == tag.slug())
        {
            tags.push(tag);
        }
    }
    let stored = store::posts::by_source(db, &source_key).await?;
    // An item that states no publication date keeps the date it was first given (its first
    // `updated`, or when Herald first saw it): a fresh date at every poll would send it back
    // to the top of every feed, and an edit is not news.
    // Microseconds at most, as PostgreSQL keeps them: the date read back on the next poll
    // must hash as the one stored, or the item would count as changed once more.
    let published_at = entry
        .published
        .or(stored.as_ref().map(|s| s.published_at))
        .or(entry.updated)
        .unwrap_or_else(|| now.trunc_subsecs(0))
        .trunc_subsecs(6);
    let mut hasher = Sha256::new();
    for part in [
        RENDER_VERSION,
        &title,
        &published_at.to_rfc3339(),
        &content_html,
        summary.as_deref().unwrap_or(""),
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    for tag in &tags {
        hasher.update(tag.slug().as_bytes());
    }
    let content_hash = hex::encode(hasher.finalize());
    let slug = match stored {
        Some(s) if s.content_hash == content_hash => return Ok(None),
        Some(s) => Slug::parse(&s.slug)?,
        None => unique_slug(db, &title, pending).await?,
    };
    Ok(Some(PostDraft {
        slug,
        title,
        published_at,
        updated_at: entry.updated.filter(|u| *u > published_at),
        authors: entry
            .authors
            .iter()
            .filter_map(|a| a.name.as_deref())
            .map(plain)
            .filter(|a| !a.is_empty())
            .collect(),
        tags,
        summary,
        content_html,
        image: entry
            .media
            .iter()
            .flat_map(|m| {
                m.thumbnails
                    .iter()
                    .map(|t| t.image.uri.clone())
                    .chain(m.content.iter().filter_map(|c| c.url.as_ref().map(Url::to_string)))
            })
            .find(|u| u.starts_with("https://") || u.starts_with("http://")),
        image_alt: None,
        draft: false,
        source: source_key,
        content_hash,
    }))
}

/// A slug made from the title that no other post (stored or about to be) has.
async fn unique_slug(db: &Db, title: &str, pending: &[PostDraft]) -> anyhow::Result<Slug> {
    let stem = Slug::slugify(title).map_or_else(|| "post".to_owned(), |s| s.as_str().chars().take(80).collect());
    let stem = stem.trim_end_matches('-').to_owned();
    for n in 1..1000 {
        let candidate = if n == 1 { stem.clone() } else { format!("{stem}-{n}") };
        if !pending.iter().any(|d| d.slug.as_str() == candidate) && !store::posts::slug_taken(db, &candidate).await? {
            return Ok(Slug::parse(&candidate)?);
        }
    }
    bail!("no free slug for {title:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_decodes_character_references() {
        assert_eq!(plain("Fish &amp; Chips"), "Fish & Chips");
        assert_eq!(plain("It&#8217;s back"), "It\u{2019}s back");
        assert_eq!(plain("Caf&eacute; r&#xE9;opens"), "Caf\u{e9} r\u{e9}opens");
        assert_eq!(plain("a&nbsp;b &quot;c&quot; &#39;d&#39;"), "a b \"c\" 'd'");
        assert_eq!(plain("<b>Bold</b> &lt;tag&gt;\n  and  more"), "Bold <tag> and more");
        // Decoded once: an escaped reference stays a reference in the text.
        assert_eq!(plain("&amp;eacute; &amp;amp;"), "&eacute; &amp;");
    }
}
