use chrono::{DateTime, Utc};

use super::{Slug, Tag};

/// A post as read from its source, before the store has seen it.
#[derive(Debug, Clone, PartialEq)]
pub struct PostDraft {
    pub slug: Slug,
    pub title: String,
    pub published_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    pub authors: Vec<String>,
    pub tags: Vec<Tag>,
    pub summary: Option<String>,
    /// Sanitised HTML with absolute URLs.
    pub content_html: String,
    pub image: Option<String>,
    pub image_alt: Option<String>,
    pub draft: bool,
    /// Where the post came from (a file path relative to the posts folder, or a feed URL).
    pub source: String,
    /// A hash of the raw source, so an unchanged file is skipped cheaply.
    pub content_hash: String,
}

/// A post as stored: a draft plus the identity the store gave it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Post {
    pub id: i64,
    /// A stable `urn:uuid:` identifier; it never changes when the post is edited.
    pub uid: String,
    pub slug: Slug,
    pub title: String,
    pub published_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub authors: Vec<String>,
    pub tags: Vec<Tag>,
    pub summary: Option<String>,
    pub content_html: String,
    pub image: Option<String>,
    pub image_alt: Option<String>,
    pub draft: bool,
}

impl Post {
    pub fn has_tag(&self, slug: &str) -> bool {
        self.tags.iter().any(|t| t.slug() == slug)
    }
}
