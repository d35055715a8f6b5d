//! RSS 2.0 documents (rss), with Atom self and hub links. Uses `feeds` and `domain`.

use std::collections::BTreeMap;

use ::rss::extension::atom::{AtomExtension, Link};
use ::rss::extension::dublincore::DublinCoreExtension;
use ::rss::extension::{Extension, ExtensionMap};
use ::rss::{CategoryBuilder, ChannelBuilder, GuidBuilder, ItemBuilder};

use super::{FeedFormat, FeedMeta, MEDIA_NS, Post, media_content_attrs};

/// The item's `media:content`, for a post with a lead image.
fn media(post: &Post) -> ExtensionMap {
    let mut map = ExtensionMap::new();
    if let Some(attrs) = media_content_attrs(post) {
        let content = Extension {
            name: "media:content".to_owned(),
            attrs,
            ..Default::default()
        };
        map.insert(
            "media".to_owned(),
            BTreeMap::from([("content".to_owned(), vec![content])]),
        );
    }
    map
}

/// An RSS 2.0 document with `atom:link rel="self"`, full content in `content:encoded`
/// and authors as `dc:creator` (RSS's own `author` must be an email address).
pub fn rss(meta: &FeedMeta, posts: &[Post]) -> String {
    let items = posts
        .iter()
        .map(|post| {
            let link = format!("{}posts/{}/", meta.site_url, post.slug);
            let dc = DublinCoreExtension {
                creators: meta.authors_of(post),
                ..Default::default()
            };
            ItemBuilder::default()
                .title(Some(post.title.clone()))
                .link(Some(link))
                .guid(Some(
                    GuidBuilder::default().value(post.uid.clone()).permalink(false).build(),
                ))
                .pub_date(Some(post.published_at.to_rfc2822()))
                .description(post.summary.clone())
                .content(Some(post.content_html.clone()))
                .categories(
                    post.tags
                        .iter()
                        .map(|t| CategoryBuilder::default().name(t.name().to_owned()).build())
                        .collect::<Vec<_>>(),
                )
                .dublin_core_ext(Some(dc))
                .extensions(media(post))
                .build()
        })
        .collect::<Vec<_>>();
    let self_link = Link {
        href: meta.self_url(FeedFormat::Rss).to_owned(),
        rel: "self".into(),
        mime_type: Some("application/rss+xml".into()),
        ..Default::default()
    };
    let mut links = vec![self_link];
    links.extend(meta.hubs.iter().map(|hub| Link {
        href: hub.clone(),
        rel: "hub".into(),
        ..Default::default()
    }));
    let updated = meta.updated(posts).to_rfc2822();
    let channel = ChannelBuilder::default()
        .title(meta.title.clone())
        .link(meta.home_url.clone())
        .description(if meta.description.is_empty() {
            meta.title.clone()
        } else {
            meta.description.clone()
        })
        .language(Some(meta.language.clone()))
        .last_build_date(Some(updated.clone()))
        .pub_date(Some(updated))
        .generator(Some("Herald".to_owned()))
        .atom_ext(Some(AtomExtension { links }))
        .namespaces(if posts.iter().any(|p| p.image.is_some()) {
            BTreeMap::from([("media".to_owned(), MEDIA_NS.to_owned())])
        } else {
            BTreeMap::new()
        })
        .items(items)
        .build();
    // `Channel`'s writer opens with the XML declaration itself; a second one would make
    // the document ill-formed (XML 1.0 §2.8 allows one, only at the very start).
    channel.to_string()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{meta, post};
    use super::*;

    #[test]
    fn escapes_titles_and_marks_itself() {
        let out = rss(&meta(), &[post(2, "b", 2), post(1, "a", 1)]);
        assert!(out.starts_with("<?xml"));
        assert_eq!(out.matches("<?xml").count(), 1, "one XML declaration: {out}");
        assert!(out.contains("Post &lt;b&gt; &amp; more"), "{out}");
        assert!(out.contains(r#"rel="self""#), "{out}");
        assert!(out.contains("isPermaLink=\"false\""), "{out}");
        assert!(out.contains("<dc:creator>The Trust</dc:creator>"), "{out}");
    }

    #[test]
    fn a_lead_image_is_media_content() {
        let mut with_query = post(1, "a", 1);
        with_query.image = Some("https://example.org/i.png?w=1&h=2".into());
        let out = rss(&meta(), &[post(2, "b", 2), with_query]);
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
                    Some("https://example.org/i.png?w=1&h=2"),
                    Some("image/png"),
                    Some("image")
                ),
            ],
            "{out}"
        );
        let mut plain = post(3, "c", 3);
        plain.image = None;
        let out = rss(&meta(), &[plain]);
        assert!(!out.contains("media"), "no namespace without images: {out}");
    }
}
