//! Posts to feed documents: RSS 2.0, Atom 1.0 and JSON Feed 1.1. Pure functions
//! of their input; the builders of the `rss` and `atom_syndication` crates escape.
//! Uses `domain`.

mod atom;
mod editions;
mod json;
mod rss;

use chrono::{DateTime, Utc};

use crate::domain::Post;

pub use self::atom::atom;
pub use self::editions::{ArchiveMeta, EditionEntry, editions_atom};
pub use self::json::json;
pub use self::rss::rss;

/// The formats a feed is published in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedFormat {
    Rss,
    Atom,
    Json,
}

impl FeedFormat {
    pub const ALL: [FeedFormat; 3] = [FeedFormat::Rss, FeedFormat::Atom, FeedFormat::Json];

    /// The file name it is served under (`feed.rss`, ...).
    pub fn file_name(self) -> &'static str {
        match self {
            FeedFormat::Rss => "feed.rss",
            FeedFormat::Atom => "feed.atom",
            FeedFormat::Json => "feed.json",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            FeedFormat::Rss => "application/rss+xml; charset=utf-8",
            FeedFormat::Atom => "application/atom+xml; charset=utf-8",
            FeedFormat::Json => "application/feed+json; charset=utf-8",
        }
    }

    pub fn from_file_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.file_name() == name)
    }

    /// Renders `posts` (newest first) as this format.
    pub fn render(self, meta: &FeedMeta, posts: &[Post]) -> String {
        match self {
            FeedFormat::Rss => rss(meta, posts),
            FeedFormat::Atom => atom(meta, posts),
            FeedFormat::Json => json(meta, posts),
        }
    }
}

/// Media RSS: a post's lead image is a `media:content` (`medium="image"`) of its item in
/// RSS and of its entry in Atom, which is where feed readers look for an item's picture.
pub const MEDIA_NS: &str = "http://search.yahoo.com/mrss/";

/// The attributes of a post's `media:content`: its lead image's URL, `medium="image"` and,
/// when the file's name tells, its `type`.
fn media_content_attrs(post: &Post) -> Option<std::collections::BTreeMap<String, String>> {
    let url = post.image.as_deref()?;
    let mut attrs = std::collections::BTreeMap::new();
    attrs.insert("url".to_owned(), url.to_owned());
    attrs.insert("medium".to_owned(), "image".to_owned());
    let path = url::Url::parse(url).map(|u| u.path().to_owned()).unwrap_or_default();
    if let Some(mime) = mime_guess::from_path(path).first().filter(|m| m.type_() == "image") {
        attrs.insert("type".to_owned(), mime.essence_str().to_owned());
    }
    Some(attrs)
}

/// What a feed says about itself.
#[derive(Debug, Clone)]
pub struct FeedMeta {
    pub title: String,
    pub description: String,
    pub language: String,
    /// The site's base URL, ending with `/`; post links are built on it.
    pub site_url: String,
    /// The page the feed belongs to (the home page or a tag's page).
    pub home_url: String,
    /// Where each format of this feed is served, for `rel="self"` and alternates.
    pub rss_url: String,
    pub atom_url: String,
    pub json_url: String,
    /// A permanent id (`urn:uuid:...`) that does not change if the site moves.
    pub id: String,
    /// Named as the author of posts that name none.
    pub default_author: String,
    /// When the feed has no posts, what to call its last update.
    pub empty_updated: DateTime<Utc>,
    /// WebSub hubs that carry the feed's updates: each format names them beside its `self`
    /// link, as WebSub §4 asks (a subscriber needs both).
    pub hubs: Vec<String>,
}

impl FeedMeta {
    fn self_url(&self, format: FeedFormat) -> &str {
        match format {
            FeedFormat::Rss => &self.rss_url,
            FeedFormat::Atom => &self.atom_url,
            FeedFormat::Json => &self.json_url,
        }
    }

    /// `updated` of the feed: the newest entry's, so it changes only when content does.
    fn updated(&self, posts: &[Post]) -> DateTime<Utc> {
        posts
            .iter()
            .map(|p| p.updated_at.max(p.published_at))
            .max()
            .unwrap_or(self.empty_updated)
    }

    fn authors_of(&self, post: &Post) -> Vec<String> {
        if post.authors.is_empty() && !self.default_author.is_empty() {
            vec![self.default_author.clone()]
        } else {
            post.authors.clone()
        }
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::{Slug, Tag};

    pub fn meta() -> FeedMeta {
        FeedMeta {
            title: "Riverside & Friends".into(),
            description: "News <from> the river".into(),
            language: "en-gb".into(),
            site_url: "https://example.org/".into(),
            home_url: "https://example.org/".into(),
            rss_url: "https://example.org/feed.rss".into(),
            atom_url: "https://example.org/feed.atom".into(),
            json_url: "https://example.org/feed.json".into(),
            id: "urn:uuid:6f1c1c55-0000-4000-8000-000000000000".into(),
            default_author: "The Trust".into(),
            empty_updated: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            hubs: Vec::new(),
        }
    }

    pub fn post(id: i64, slug: &str, day: u32) -> Post {
        Post {
            id,
            uid: format!("urn:uuid:00000000-0000-4000-8000-{id:012}"),
            slug: Slug::parse(slug).unwrap(),
            title: format!("Post <{slug}> & more"),
            published_at: Utc.with_ymd_and_hms(2026, 9, day, 9, 30, 0).unwrap(),
            updated_at: Utc.with_ymd_and_hms(2026, 9, day, 10, 0, 0).unwrap(),
            authors: if id % 2 == 0 { vec!["Ana".into()] } else { vec![] },
            tags: vec![Tag::parse("Wildlife").unwrap()],
            summary: Some("A summary".into()),
            content_html: "<p>Body with <a href=\"https://example.org/x\">link</a></p>".into(),
            image: Some("https://example.org/i.jpg".into()),
            image_alt: Some("alt".into()),
            draft: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{meta, post};
    use super::*;

    /// A strict parser (well-formedness, namespaces, one declaration at the very start)
    /// accepts every format, with posts and without.
    #[test]
    fn every_format_is_one_well_formed_document() {
        for posts in [vec![post(2, "b", 2), post(1, "a", 1)], vec![]] {
            for format in FeedFormat::ALL {
                let out = format.render(&meta(), &posts);
                match format {
                    FeedFormat::Json => {
                        serde_json::from_str::<serde_json::Value>(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
                    }
                    FeedFormat::Rss | FeedFormat::Atom => {
                        assert!(out.starts_with("<?xml "), "{out}");
                        roxmltree::Document::parse(&out).unwrap_or_else(|e| panic!("{format:?}: {e}\n{out}"));
                    }
                }
            }
        }
    }

    /// WebSub §4: the hub and the feed's own URL, in each format's way.
    #[test]
    fn every_format_names_its_hubs_beside_its_self_link() {
        let meta = FeedMeta {
            hubs: vec![
                "https://hub.example/".into(),
                "https://other.example/hub?a=1&b=2".into(),
            ],
            ..meta()
        };
        for format in FeedFormat::ALL {
            let out = format.render(&meta, &[post(1, "a", 1)]);
            let links: Vec<(String, String)> = match format {
                FeedFormat::Json => {
                    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
                    let mut links = vec![("self".to_owned(), doc["feed_url"].as_str().unwrap().to_owned())];
                    for hub in doc["hubs"].as_array().unwrap() {
                        assert_eq!(hub["type"], "WebSub");
                        links.push(("hub".to_owned(), hub["url"].as_str().unwrap().to_owned()));
                    }
                    links
                }
                FeedFormat::Rss | FeedFormat::Atom => {
                    let doc = roxmltree::Document::parse(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
                    doc.descendants()
                        .filter(|n| {
                            n.tag_name().name() == "link"
                                && n.tag_name().namespace() == Some("http://www.w3.org/2005/Atom")
                                && n.parent_element()
                                    .is_some_and(|p| matches!(p.tag_name().name(), "channel" | "feed"))
                        })
                        .filter(|n| matches!(n.attribute("rel"), Some("hub" | "self")))
                        .map(|n| {
                            (
                                n.attribute("rel").unwrap().to_owned(),
                                n.attribute("href").unwrap().to_owned(),
                            )
                        })
                        .collect()
                }
            };
            assert_eq!(
                links,
                [
                    ("self".to_owned(), meta.self_url(format).to_owned()),
                    ("hub".to_owned(), "https://hub.example/".to_owned()),
                    ("hub".to_owned(), "https://other.example/hub?a=1&b=2".to_owned()),
                ],
                "{format:?}: {out}"
            );
        }
        // No hub configured, none named.
        for format in FeedFormat::ALL {
            let out = format.render(&super::fixtures::meta(), &[]);
            assert!(!out.contains("hub"), "{format:?}: {out}");
        }
    }
}
