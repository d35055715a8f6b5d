//! Atom 1.0 documents (atom_syndication). Uses `feeds` and `domain`.

use atom_syndication::{
    CategoryBuilder, ContentBuilder, EntryBuilder, FeedBuilder, FixedDateTime, GeneratorBuilder, LinkBuilder,
    PersonBuilder, Text,
};
use chrono::{DateTime, Utc};

use super::{FeedFormat, FeedMeta, Post};

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
                .build()
        })
        .collect::<Vec<_>>();
    let mut feed = FeedBuilder::default();
    feed.id(meta.id.clone())
        .title(Text::plain(meta.title.clone()))
        .updated(fixed(meta.updated(posts)))
        .lang(Some(meta.language.clone()))
        .generator(Some(GeneratorBuilder::default().value("Herald").build()))
        .links(vec![
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
        ])
        .entries(entries);
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
