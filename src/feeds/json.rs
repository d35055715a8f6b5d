//! JSON Feed 1.1 documents (serde). Uses `feeds` and `domain`.

use serde::Serialize;

use super::{FeedFormat, FeedMeta, Post};

#[derive(Serialize)]
struct JsonFeed<'a> {
    version: &'static str,
    title: &'a str,
    home_page_url: &'a str,
    feed_url: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    language: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authors: Vec<Author>,
    /// JSON Feed 1.1 `hubs`: where to subscribe for real-time updates.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hubs: Vec<Hub<'a>>,
    items: Vec<Item<'a>>,
}

#[derive(Serialize)]
struct Hub<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    url: &'a str,
}

#[derive(Serialize)]
struct Author {
    name: String,
}

#[derive(Serialize)]
struct Item<'a> {
    id: &'a str,
    url: String,
    title: &'a str,
    content_html: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
    date_published: String,
    date_modified: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authors: Vec<Author>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<&'a str>,
}

/// A JSON Feed 1.1 document.
pub fn json(meta: &FeedMeta, posts: &[Post]) -> String {
    let items = posts
        .iter()
        .map(|post| Item {
            id: &post.uid,
            url: format!("{}posts/{}/", meta.site_url, post.slug),
            title: &post.title,
            content_html: &post.content_html,
            summary: post.summary.as_deref(),
            image: post.image.as_deref(),
            date_published: post.published_at.to_rfc3339(),
            date_modified: post.updated_at.max(post.published_at).to_rfc3339(),
            authors: meta.authors_of(post).into_iter().map(|name| Author { name }).collect(),
            tags: post.tags.iter().map(|t| t.name()).collect(),
        })
        .collect();
    let feed = JsonFeed {
        version: "https://jsonfeed.org/version/1.1",
        title: &meta.title,
        home_page_url: &meta.home_url,
        feed_url: meta.self_url(FeedFormat::Json),
        description: &meta.description,
        language: &meta.language,
        authors: if meta.default_author.is_empty() {
            vec![]
        } else {
            vec![Author {
                name: meta.default_author.clone(),
            }]
        },
        hubs: meta.hubs.iter().map(|url| Hub { kind: "WebSub", url }).collect(),
        items,
    };
    serde_json::to_string_pretty(&feed).expect("a feed always serialises")
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{meta, post};
    use super::*;

    #[test]
    fn is_json_feed_1_1() {
        let out: serde_json::Value = serde_json::from_str(&json(&meta(), &[post(1, "a", 1)])).unwrap();
        assert_eq!(out["version"], "https://jsonfeed.org/version/1.1");
        assert_eq!(out["items"][0]["url"], "https://example.org/posts/a/");
        assert_eq!(out["items"][0]["authors"][0]["name"], "The Trust");
        assert_eq!(out["items"][0]["date_published"], "2026-09-01T09:30:00+00:00");
    }
}
