//! The one way a test reads a feed: a strict XML parser (or serde_json for JSON Feed)
//! first, then feed-rs, the parser a feed reader would use. Whatever the site serves or
//! `herald build` writes goes through [`parse_feed`].

use chrono::DateTime;
use feed_rs::model::{Feed, FeedType};
use serde::Deserialize;

const ATOM_NS: &str = "http://www.w3.org/2005/Atom";

/// Checks `body` as the feed named by `what` (a URL path or file name ending in
/// `feed.rss`, `feed.atom` or `feed.json`) and returns it as feed-rs reads it.
/// Panics, naming `what`, on anything a strict client would refuse.
pub fn parse_feed(what: &str, body: &[u8]) -> Feed {
    let text = std::str::from_utf8(body).unwrap_or_else(|e| panic!("{what} is not UTF-8: {e}"));
    let expected = if what.ends_with(".rss") {
        check_rss(what, text);
        FeedType::RSS2
    } else if what.ends_with(".atom") {
        check_atom(what, text);
        FeedType::Atom
    } else if what.ends_with(".json") {
        check_json_feed(what, text);
        FeedType::JSON
    } else {
        panic!("{what} is not a feed's name (feed.rss, feed.atom or feed.json)")
    };
    let feed = feed_rs::parser::parse(body).unwrap_or_else(|e| panic!("{what}: feed-rs refuses it: {e}\n{text}"));
    assert_eq!(feed.feed_type, expected, "{what}");
    feed
}

/// XML 1.0 well-formedness and namespaces, with no DTD (roxmltree is strict: one
/// declaration and only at the very start, declared entities only, no duplicate
/// attributes, one root element).
fn strict_xml<'a>(what: &str, text: &'a str) -> roxmltree::Document<'a> {
    assert!(
        text.starts_with("<?xml version=\"1.0\""),
        "{what}: the document must open with its XML declaration:\n{text}"
    );
    roxmltree::Document::parse(text).unwrap_or_else(|e| panic!("{what} is not well-formed XML: {e}\n{text}"))
}

fn absolute(what: &str, field: &str, url: &str) {
    let parsed = url::Url::parse(url).unwrap_or_else(|e| panic!("{what}: {field} {url:?} is not an absolute URL: {e}"));
    assert!(
        matches!(parsed.scheme(), "http" | "https"),
        "{what}: {field} {url:?} is not a web address"
    );
}

fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, ns: Option<&str>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children()
        .find(|n| n.is_element() && n.tag_name().name() == name && n.tag_name().namespace() == ns)
}

fn text_of(what: &str, node: roxmltree::Node, ns: Option<&str>, name: &str) -> String {
    child(node, ns, name)
        .and_then(|n| n.text().map(str::to_owned))
        .unwrap_or_else(|| panic!("{what}: <{}> has no <{name}>", node.tag_name().name()))
}

/// RSS 2.0: the required channel elements, `atom:link rel="self"`, RFC 822 dates,
/// absolute links and a guid on every item.
fn check_rss(what: &str, text: &str) {
    let doc = strict_xml(what, text);
    let rss = doc.root_element();
    assert_eq!(rss.tag_name().name(), "rss", "{what}: root element");
    assert_eq!(rss.attribute("version"), Some("2.0"), "{what}: RSS version");
    let channel = child(rss, None, "channel").unwrap_or_else(|| panic!("{what}: no <channel>"));
    for required in ["title", "link", "description"] {
        text_of(what, channel, None, required);
    }
    absolute(what, "channel link", &text_of(what, channel, None, "link"));
    let self_link = channel
        .children()
        .find(|n| {
            n.tag_name().namespace() == Some(ATOM_NS)
                && n.tag_name().name() == "link"
                && n.attribute("rel") == Some("self")
        })
        .unwrap_or_else(|| panic!("{what}: no atom:link rel=\"self\""));
    absolute(what, "atom:link", self_link.attribute("href").unwrap_or_default());
    for date in ["pubDate", "lastBuildDate"] {
        if let Some(d) = child(channel, None, date).and_then(|n| n.text()) {
            DateTime::parse_from_rfc2822(d).unwrap_or_else(|e| panic!("{what}: {date} {d:?} is not RFC 822: {e}"));
        }
    }
    for item in channel.children().filter(|n| n.has_tag_name("item")) {
        assert!(
            child(item, None, "title").is_some() || child(item, None, "description").is_some(),
            "{what}: an item needs a title or a description"
        );
        absolute(what, "item link", &text_of(what, item, None, "link"));
        assert!(
            !text_of(what, item, None, "guid").trim().is_empty(),
            "{what}: empty guid"
        );
        let date = text_of(what, item, None, "pubDate");
        DateTime::parse_from_rfc2822(&date).unwrap_or_else(|e| panic!("{what}: pubDate {date:?} is not RFC 822: {e}"));
    }
}

/// Atom (RFC 4287): the feed's and every entry's id, title and updated, RFC 3339 dates,
/// `rel="self"`, an author for every entry, absolute links.
fn check_atom(what: &str, text: &str) {
    let doc = strict_xml(what, text);
    let feed = doc.root_element();
    assert!(
        feed.tag_name().name() == "feed" && feed.tag_name().namespace() == Some(ATOM_NS),
        "{what}: the root must be an Atom <feed>"
    );
    let atom = Some(ATOM_NS);
    for required in ["id", "title", "updated"] {
        text_of(what, feed, atom, required);
    }
    let date = |node, name: &str| {
        let d = text_of(what, node, atom, name);
        DateTime::parse_from_rfc3339(&d).unwrap_or_else(|e| panic!("{what}: {name} {d:?} is not RFC 3339: {e}"));
    };
    date(feed, "updated");
    let links = |node: roxmltree::Node| {
        for link in node.children().filter(|n| n.has_tag_name((ATOM_NS, "link"))) {
            absolute(what, "link", link.attribute("href").unwrap_or_default());
        }
    };
    links(feed);
    assert!(
        feed.children()
            .any(|n| n.has_tag_name((ATOM_NS, "link")) && n.attribute("rel") == Some("self")),
        "{what}: no link rel=\"self\""
    );
    let feed_author = child(feed, atom, "author").is_some();
    for entry in feed.children().filter(|n| n.has_tag_name((ATOM_NS, "entry"))) {
        for required in ["id", "title", "updated"] {
            text_of(what, entry, atom, required);
        }
        date(entry, "updated");
        if child(entry, atom, "published").is_some() {
            date(entry, "published");
        }
        assert!(
            feed_author || child(entry, atom, "author").is_some(),
            "{what}: an entry without an author in a feed without one (RFC 4287 §4.1.1)"
        );
        links(entry);
    }
}

/// The parts of JSON Feed 1.1 the spec requires, typed, so a wrong type or a repeated
/// key is an error.
#[derive(Deserialize)]
struct JsonFeed {
    version: String,
    title: String,
    home_page_url: Option<String>,
    feed_url: Option<String>,
    items: Vec<JsonItem>,
}

#[derive(Deserialize)]
struct JsonItem {
    id: String,
    url: Option<String>,
    content_html: Option<String>,
    content_text: Option<String>,
    date_published: Option<String>,
    date_modified: Option<String>,
}

fn check_json_feed(what: &str, text: &str) {
    let feed: JsonFeed =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{what} is not a JSON Feed document: {e}\n{text}"));
    assert_eq!(feed.version, "https://jsonfeed.org/version/1.1", "{what}: version");
    assert!(!feed.title.is_empty(), "{what}: title");
    for (field, url) in [("home_page_url", &feed.home_page_url), ("feed_url", &feed.feed_url)] {
        let url = url.as_deref().unwrap_or_else(|| panic!("{what}: no {field}"));
        absolute(what, field, url);
    }
    for item in &feed.items {
        assert!(!item.id.is_empty(), "{what}: an item with an empty id");
        assert!(
            item.content_html.is_some() || item.content_text.is_some(),
            "{what}: item {} has neither content_html nor content_text",
            item.id
        );
        if let Some(url) = &item.url {
            absolute(what, "item url", url);
        }
        for d in [&item.date_published, &item.date_modified].into_iter().flatten() {
            DateTime::parse_from_rfc3339(d).unwrap_or_else(|e| panic!("{what}: date {d:?} is not RFC 3339: {e}"));
        }
    }
}

/// Reads and checks a feed that `herald build` wrote.
pub fn read_feed_file(path: &std::path::Path) -> Feed {
    let body = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_feed(&path.display().to_string(), &body)
}

/// Checks every feed file (`feed.rss`, `feed.atom`, `feed.json`) under `dir`, at any
/// depth; returns the paths checked, relative to `dir`, sorted.
pub fn check_every_feed_in(dir: &std::path::Path) -> Vec<String> {
    let mut checked = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("feed."))
            {
                read_feed_file(&path);
                checked.push(path.strip_prefix(dir).unwrap().to_string_lossy().replace('\\', "/"));
            }
        }
    }
    checked.sort();
    checked
}
