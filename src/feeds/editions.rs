//! The Atom feed of the email archive: one entry per edition sent, linking to its web
//! view and listing its posts. Uses `feeds` only.

use atom_syndication::{ContentBuilder, EntryBuilder, FeedBuilder, GeneratorBuilder, LinkBuilder, PersonBuilder, Text};
use chrono::{DateTime, Utc};

/// One edition as its feed entry shows it.
#[derive(Debug, Clone)]
pub struct EditionEntry {
    /// The web view's absolute URL, which is also the entry's id.
    pub url: String,
    pub subject: String,
    /// When it went out (or began to).
    pub sent_at: DateTime<Utc>,
    /// "Weekly digest, 3 posts" or the like.
    pub summary: String,
    /// Each post's title and absolute URL.
    pub posts: Vec<(String, String)>,
}

/// What the archive feed says about itself.
#[derive(Debug, Clone)]
pub struct ArchiveMeta {
    pub title: String,
    pub language: String,
    /// The archive page's URL, which is also the feed's id.
    pub archive_url: String,
    pub self_url: String,
    pub author: String,
}

/// An Atom 1.0 document of `entries` (newest first).
pub fn editions_atom(meta: &ArchiveMeta, entries: &[EditionEntry]) -> String {
    let updated = entries
        .iter()
        .map(|e| e.sent_at)
        .max()
        .unwrap_or(DateTime::UNIX_EPOCH)
        .fixed_offset();
    let items = entries
        .iter()
        .map(|e| {
            let mut html = String::from("<ul>");
            for (title, url) in &e.posts {
                html.push_str(&format!(
                    "<li><a href=\"{}\">{}</a></li>",
                    html_escape::encode_double_quoted_attribute(url),
                    html_escape::encode_text(title)
                ));
            }
            html.push_str("</ul>");
            EntryBuilder::default()
                .id(e.url.clone())
                .title(Text::plain(e.subject.clone()))
                .updated(e.sent_at.fixed_offset())
                .published(Some(e.sent_at.fixed_offset()))
                .links(vec![
                    LinkBuilder::default()
                        .href(e.url.clone())
                        .rel("alternate")
                        .mime_type(Some("text/html".into()))
                        .build(),
                ])
                .summary(Some(Text::plain(e.summary.clone())))
                .content(Some(
                    ContentBuilder::default()
                        .value(Some(html))
                        .content_type(Some("html".to_owned()))
                        .build(),
                ))
                .build()
        })
        .collect::<Vec<_>>();
    FeedBuilder::default()
        .id(meta.archive_url.clone())
        .title(Text::plain(meta.title.clone()))
        .updated(updated)
        .lang(Some(meta.language.clone()))
        .generator(Some(GeneratorBuilder::default().value("Herald").build()))
        .authors(vec![PersonBuilder::default().name(meta.author.clone()).build()])
        .links(vec![
            LinkBuilder::default()
                .href(meta.self_url.clone())
                .rel("self")
                .mime_type(Some("application/atom+xml".into()))
                .build(),
            LinkBuilder::default()
                .href(meta.archive_url.clone())
                .rel("alternate")
                .mime_type(Some("text/html".into()))
                .build(),
        ])
        .entries(items)
        .build()
        .to_string()
}
