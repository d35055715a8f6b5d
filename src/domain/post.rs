//! A post as Herald keeps it, and where it came from (a file or a feed). Uses `domain` only.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::{Slug, Tag, UnknownValue};

/// Where a post comes from. Stored as one text, `file:<path>` or `feed:<item>`, which the
/// database checks starts with one of [`PostSource::PREFIXES`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PostSource {
    /// A Markdown file, by its path relative to the posts folder, with `/` between folders.
    File(String),
    /// An item of a remote feed: the feed's URL, `#`, and the item's id (or its link).
    Feed(String),
}

impl PostSource {
    /// How the stored text of each kind of source begins: a file's, then a feed item's.
    pub const PREFIXES: [&'static str; 2] = ["file:", "feed:"];

    /// The item of the feed at `url` whose id (or link) is `key`.
    pub fn feed_item(url: &url::Url, key: &str) -> Self {
        PostSource::Feed(format!("{url}#{key}"))
    }

    pub fn is_file(&self) -> bool {
        matches!(self, PostSource::File(_))
    }

    /// The folder of a page bundle, relative to the posts folder: a post file named
    /// `index.md` in a folder of its own (`otters/index.md`), whose other files (images,
    /// attachments) belong to the post. `None` for every other post.
    pub fn bundle_dir(&self) -> Option<&str> {
        match self {
            PostSource::File(path) => path.strip_suffix("/index.md").filter(|dir| !dir.is_empty()),
            PostSource::Feed(_) => None,
        }
    }
}

impl fmt::Display for PostSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PostSource::File(path) => write!(f, "{}{path}", Self::PREFIXES[0]),
            PostSource::Feed(item) => write!(f, "{}{item}", Self::PREFIXES[1]),
        }
    }
}

impl FromStr for PostSource {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix(Self::PREFIXES[0]) {
            Ok(PostSource::File(path.to_owned()))
        } else if let Some(item) = s.strip_prefix(Self::PREFIXES[1]) {
            Ok(PostSource::Feed(item.to_owned()))
        } else {
            Err(UnknownValue {
                what: "post source",
                value: s.to_owned(),
                choices: "file:<path> feed:<url>#<id>",
            })
        }
    }
}

impl serde::Serialize for PostSource {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<DB: sqlx::Database> sqlx::Type<DB> for PostSource
where
    str: sqlx::Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <str as sqlx::Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <str as sqlx::Type<DB>>::compatible(ty)
    }
}

impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for PostSource
where
    String: sqlx::Encode<'q, DB>,
{
    fn encode_by_ref(
        &self,
        buf: &mut <DB as sqlx::Database>::ArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <String as sqlx::Encode<'q, DB>>::encode(self.to_string(), buf)
    }
}

impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for PostSource
where
    &'r str: sqlx::Decode<'r, DB>,
{
    fn decode(value: <DB as sqlx::Database>::ValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(<&'r str as sqlx::Decode<'r, DB>>::decode(value)?.parse()?)
    }
}

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
    /// Where the post came from.
    pub source: PostSource,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_round_trip_through_their_stored_text() {
        let file: PostSource = "file:2026/otters.md".parse().unwrap();
        assert_eq!(file, PostSource::File("2026/otters.md".into()));
        assert!(file.is_file());
        let url = url::Url::parse("https://example.org/feed.xml").unwrap();
        let item = PostSource::feed_item(&url, "tag:example.org,2026:1");
        assert_eq!(
            item.to_string(),
            "feed:https://example.org/feed.xml#tag:example.org,2026:1"
        );
        assert_eq!(item.to_string().parse::<PostSource>().unwrap(), item);
        assert!(!item.is_file());
        assert!("otters.md".parse::<PostSource>().is_err());
    }

    #[test]
    fn a_bundle_is_an_index_md_in_a_folder() {
        let dir = |path: &str| PostSource::File(path.into()).bundle_dir().map(str::to_owned);
        assert_eq!(dir("otters/index.md").as_deref(), Some("otters"));
        assert_eq!(dir("2026/otters/index.md").as_deref(), Some("2026/otters"));
        assert_eq!(dir("index.md"), None);
        assert_eq!(dir("otters.md"), None);
        assert_eq!(dir("otters/notes.md"), None);
        let url = url::Url::parse("https://example.org/feed.xml").unwrap();
        assert_eq!(PostSource::feed_item(&url, "a/index.md").bundle_dir(), None);
    }
}
