//! Posts from their sources: Markdown files with front matter, read, rendered,
//! sanitised and made absolute, then synced into the store.

mod frontmatter;
mod markdown;
pub mod remote;
mod sanitize;
mod sync;

use std::fmt;
use std::path::PathBuf;

pub use frontmatter::parse_date;
pub use markdown::{plain_summary, render_markdown};
pub use sanitize::{sanitize_html, sanitize_remote_html};
pub use sync::{SyncFailure, SyncReport, note_public, sync_posts};

use crate::domain::PostDraft;

/// `site_meta` key recording when Herald first synced: posts public then are its archive.
pub const INITIAL_SYNC: &str = "initial_sync_at";

/// Bumped whenever rendering changes, so a re-sync re-renders every post once.
pub const RENDER_VERSION: &str = "herald-render-1";

/// Why a post file could not be read, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostError {
    pub path: PathBuf,
    /// 1-based line in the file the problem was found on.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
    }
}

impl std::error::Error for PostError {}

/// Reads one post file's text into a draft ready for the store.
///
/// `source` names it in the store (e.g. the file `otters.md`), `file_stem` gives the default
/// slug and `content_hash` lets an unchanged file be skipped on the next sync.
pub fn parse_post_file(
    path: &std::path::Path,
    text: &str,
    base_url: &url::Url,
    source: crate::domain::PostSource,
    content_hash: String,
) -> Result<PostDraft, PostError> {
    frontmatter::parse(path, text, base_url, source, content_hash)
}
