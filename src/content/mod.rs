//! Posts from their sources: Markdown files with front matter and remote feeds, read,
//! rendered, sanitised and made absolute, then synced into the store by [`ContentSync`].
//! Uses `domain`, `config` and `store`.

mod frontmatter;
mod markdown;
pub mod remote;
mod sanitize;
mod sync;

use std::path::PathBuf;

use url::Url;

pub use frontmatter::{PostError, parse_date, parse_post_file};
pub use markdown::{plain_summary, render_markdown};
pub use sanitize::{sanitize_html, sanitize_remote_html};
pub use sync::{INITIAL_SYNC, RENDER_VERSION, SyncFailure, SyncReport, note_public, sync_posts};

use crate::config::{Settings, SourceSettings};
use crate::store::{self, Db};

/// Brings posts in: the posts folder and the remote sources (`[[sources]]`), into the store.
/// Instances sharing a database take turns (an advisory lock on PostgreSQL): one that finds
/// another at the same work skips this round and reports nothing.
pub struct ContentSync {
    db: Db,
    posts_dir: PathBuf,
    base_url: Url,
    sources: Vec<SourceSettings>,
    http: reqwest::Client,
}

impl ContentSync {
    pub fn new(settings: &Settings, db: Db) -> anyhow::Result<Self> {
        Ok(Self {
            db,
            posts_dir: settings.posts_dir(),
            base_url: settings.site.base_url.clone(),
            sources: settings.sources.clone(),
            http: remote::client()?,
        })
    }

    /// Reads the posts folder into the store.
    pub async fn sync(&self) -> anyhow::Result<SyncReport> {
        let work = sync_posts(&self.db, &self.posts_dir, &self.base_url);
        Ok(
            match store::exclusively(&self.db, store::locks::CONTENT_SYNC, work).await? {
                Some(report) => report,
                None => {
                    tracing::info!("another instance is syncing the posts; skipped");
                    SyncReport::default()
                }
            },
        )
    }

    /// Polls every remote source and imports what is new.
    pub async fn poll_sources(&self) -> anyhow::Result<Vec<remote::SourcePoll>> {
        if self.sources.is_empty() {
            return Ok(Vec::new());
        }
        let work = async { Ok(remote::poll_all(&self.db, &self.http, &self.sources).await) };
        Ok(
            match store::exclusively(&self.db, store::locks::SOURCE_POLL, work).await? {
                Some(polled) => polled,
                None => {
                    tracing::info!("another instance is polling the sources; skipped");
                    Vec::new()
                }
            },
        )
    }

    /// Whether any remote source is configured.
    pub fn has_sources(&self) -> bool {
        !self.sources.is_empty()
    }
}
