//! Atom 1.0 documents (atom_syndication). Uses `feeds` and `domain`.

use atom_syndication::{
    CategoryBuilder, ContentBuilder, EntryBuilder, FeedBuilder, FixedDateTime, GeneratorBuilder, LinkBuilder,
    PersonBuilder, Text,
};
use std::collections::BTreeMap;

use atom_syndication::extension::{Extension, ExtensionMap};
use chrono::{DateTime, Utc};

use super::{FeedFormat, FeedMeta, MEDIA_NS, Post, media_content_attrs};

/// The entry's `media:content`, for a post with a lead image. atom_syndication writes an
/// extension's attributes as they are, so they are escaped here.
fn media(post: &Post) -> ExtensionMap {
    let mut map = ExtensionMap::new();
    if let Some(attrs) = media_content_attrs(post) {
        let content = Extension {
            name: "media:content".to_owned(),
            attrs: attrs.into_iter().map(|(k, v)| (k, escape_attr(&v))).collect(),
            ..Default::default()
        };
        map.insert(
            "media".to_owned(),
            BTreeMap::from([("content".to_owned(), vec![content])]),
        );
    }
    map
}

fn escape_attr(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn fixed(d: DateTime<Utc>) -> FixedDateTime {
    d.fixed_offset()
}

/// An Atom 1.0 (RFC 4287) document.
pub fn atom(meta: &FeedMeta, posts: &[Post]) -> String {
    let entries = posts
        .iter()
        .map(|post| {
            let link = format!("{}posts/{}/", meta.site_url, post.slug);
            EntryBuilder::default()
                .id(post.uid.clone())
                .title(Text::plain(post.title.clone()))
                .updated(fixed(post.updated_at.max(post.published_at)))
                .published(Some(fixed(post.published_at)))
                .authors(
                    meta.authors_of(post)
                        .into_iter()
                        .map(|name| PersonBuilder::default().name(name).build())
                        .collect::<Vec<_>>(),
                )
                .links(vec![
                    LinkBuilder::default()
                        .href(link)
                        .rel("alternate")
                        .mime_type(Some("text/html".into()))
                        .build(),
                ])
                .categories(
                    post.tags
                        .iter()
                        .map(|t| {
                            CategoryBuilder::default()
                                .term(t.slug().to_owned())
                                .label(Some(t.name().to_owned()))
                                .build()
                        })
                        .collect::<Vec<_>>(),
                )
                .summary(post.summary.clone().map(Text::plain))
                .content(Some(
                    ContentBuilder::default()
                        .value(Some(post.content_html.clone()))
                        .content_type(Some("html".to_owned()))
                        .build(),
                ))
                .extensions(media(post))
                .build()
        })
        .collect::<Vec<_>>();
    let mut links = vec![
        LinkBuilder::default()
            .href(meta.self_url(FeedFormat::Atom))
            .rel("self")
            .mime_type(Some("application/atom+xml".into()))
            .build(),
        LinkBuilder::default()
            .href(meta.home_url.clone())
            .rel("alternate")
            .mime_type(Some("text/html".into()))
            .build(),
    ];
    links.extend(
        meta.hubs
            .iter()
            .map(|hub| LinkBuilder::default().href(hub.clone()).rel("hub").build()),
    );
    let mut feed = FeedBuilder::default();
    feed.id(meta.id.clone())
        .title(Text::plain(meta.title.clone()))
        .updated(fixed(meta.updated(posts)))
        .lang(Some(meta.language.clone()))
        .generator(Some(GeneratorBuilder::default().value("Herald").build()))
        .links(links)
        .entries(entries);
    if posts.iter().any(|p| p.image.is_some()) {
        feed.namespaces(BTreeMap::from([("media".to_owned(), MEDIA_NS.to_owned())]));
    }
    if !meta.description.is_empty() {
        feed.subtitle(Some(Text::plain(meta.description.clone())));
    }
    // RFC 4287 §4.1.1: a feed names an author unless every entry does; with no site author
    // configured, the site itself (its title) is the author.
    let feed_author = if meta.default_author.is_empty() {
        &meta.title
    } else {
        &meta.default_author
    };
    feed.authors(vec![PersonBuilder::default().name(feed_author.clone()).build()]);
    // `Feed`'s writer opens with the XML declaration itself (only one is allowed).
    feed.build().to_string()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{meta, post};
    use super::*;

    #[test]
    fn escapes_and_carries_ids() {
        let out = atom(&meta(), &[post(1, "a", 1)]);
        assert!(out.contains("Post &lt;a&gt; &amp; more"), "{out}");
        assert!(out.contains("urn:uuid:00000000-0000-4000-8000-000000000001"), "{out}");
        assert!(out.contains(r#"rel="self""#), "{out}");
    }

    #[test]
    fn a_lead_image_is_media_content() {
        let mut with_query = post(1, "a", 1);
        with_query.image = Some("https://example.org/i.webp?w=1&h=2".into());
        let out = atom(&meta(), &[post(2, "b", 2), with_query]);
        let doc = roxmltree::Document::parse(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        let media: Vec<_> = doc
            .descendants()
            .filter(|n| n.tag_name().namespace() == Some(MEDIA_NS) && n.tag_name().name() == "content")
            .map(|n| (n.attribute("url"), n.attribute("type"), n.attribute("medium")))
            .collect();
        assert_eq!(
            media,
            [
                (Some("https://example.org/i.jpg"), Some("image/jpeg"), Some("image")),
                (
                    Some("https://example.org/i.webp?w=1&h=2"),
                    Some("image/webp"),
                    Some("image")
                ),
            ],
            "{out}"
        );
    }

    #[test]
    fn a_feed_names_an_author_when_its_entries_do_not() {
        let meta = FeedMeta {
            default_author: String::new(),
            ..meta()
        };
        // Odd ids name no author.
        let out = atom(&meta, &[post(1, "a", 1)]);
        let doc = roxmltree::Document::parse(&out).unwrap();
        let author = doc
            .root_element()
            .children()
            .find(|n| n.has_tag_name("author"))
            .unwrap_or_else(|| panic!("no feed-level author: {out}"));
        assert_eq!(
            author.children().find(|n| n.has_tag_name("name")).unwrap().text(),
            Some(meta.title.as_str())
        );
    }
}
