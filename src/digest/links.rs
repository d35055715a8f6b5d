//! Tracked links (`[tracking] clicks`): which links of a post a digest carries, and the same
//! HTML with them sent through `/r/{token}`. Uses `domain` (the token's reader part).
//!
//! Post HTML reaches here as the sanitiser wrote it (html5ever's serialiser): tags and
//! attribute names in lower case, every attribute value in double quotes with `"` and `&`
//! escaped, no comments, scripts or raw-text elements, and `<` escaped in text. So an `<a`
//! followed by a space only ever starts a link, and its `href="..."` is read exactly
//! without a full parser.

use std::collections::HashMap;

/// Stand-in for the reader's part of a tracked link (`.{id}.{signature}`), filled per
/// message like the preferences and unsubscribe links; plain ASCII that escaping, CSS
/// inlining and text wrapping leave alone.
pub const READER: &str = "HERALD0READER0";

/// Links longer than this are left as they are (a database key has its limits, and no
/// tracked copy of such a link would be short).
const MAX_URL: usize = 2000;

/// Whether a link is one Herald tracks: http or https, and not too long.
fn trackable(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    (lower.starts_with("http://") || lower.starts_with("https://")) && url.len() <= MAX_URL
}

/// The byte ranges of the `href` values of the links in `html`.
fn href_ranges(html: &str) -> Vec<(usize, usize)> {
    let bytes = html.as_bytes();
    let mut ranges = Vec::new();
    let mut from = 0;
    while let Some(found) = html[from..].find("<a") {
        let mut i = from + found + 2;
        from = i;
        if !bytes.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            continue;
        }
        // Attributes up to the end of the tag.
        loop {
            while bytes.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
                i += 1;
            }
            match bytes.get(i) {
                None | Some(b'>') => break,
                Some(b'/') => {
                    i += 1;
                    continue;
                }
                _ => {}
            }
            let name_start = i;
            while bytes
                .get(i)
                .is_some_and(|b| !b.is_ascii_whitespace() && !matches!(b, b'=' | b'>' | b'/'))
            {
                i += 1;
            }
            let name = &html[name_start..i];
            if bytes.get(i) != Some(&b'=') {
                continue;
            }
            i += 1;
            let (start, end) = match bytes.get(i) {
                Some(&quote @ (b'"' | b'\'')) => {
                    let start = i + 1;
                    let Some(len) = html[start..].find(quote as char) else {
                        return ranges;
                    };
                    i = start + len + 1;
                    (start, start + len)
                }
                _ => {
                    let start = i;
                    while bytes.get(i).is_some_and(|b| !b.is_ascii_whitespace() && *b != b'>') {
                        i += 1;
                    }
                    (start, i)
                }
            };
            if name.eq_ignore_ascii_case("href") {
                ranges.push((start, end));
            }
        }
        from = i;
    }
    ranges
}

fn decode(value: &str) -> String {
    html_escape::decode_html_entities(value).into_owned()
}

/// The trackable links of post HTML, as URLs (entities decoded), in order, with repeats.
pub fn hrefs(html: &str) -> Vec<String> {
    href_ranges(html)
        .into_iter()
        .map(|(s, e)| decode(&html[s..e]))
        .filter(|url| trackable(url))
        .collect()
}

/// An edition's tracked links: the token of each of its links, and how a message's copy of
/// one is written.
#[derive(Debug, Clone)]
pub struct Tracker {
    /// `{base_url}r/`.
    prefix: String,
    /// URL -> its token in `edition_links`.
    tokens: HashMap<String, String>,
    /// The installation's key for readers' signatures.
    pub key: Vec<u8>,
    /// Whether messages name their reader (`[tracking] anonymous = false`).
    pub named: bool,
}

impl Tracker {
    pub fn new(prefix: String, tokens: HashMap<String, String>, key: Vec<u8>, named: bool) -> Self {
        Self {
            prefix,
            tokens,
            key,
            named,
        }
    }

    /// The tracked copy of `url`, with the reader's stand-in when messages name readers;
    /// `None` for a link that is not the edition's (it stays as it is).
    pub fn tracked(&self, url: &str) -> Option<String> {
        let token = self.tokens.get(url)?;
        let reader = if self.named { READER } else { "" };
        Some(format!("{}{token}{reader}", self.prefix))
    }

    /// `html` with every link of the edition made a tracked one.
    pub fn rewrite(&self, html: &str) -> String {
        let mut out = String::with_capacity(html.len() + html.len() / 8);
        let mut last = 0;
        for (start, end) in href_ranges(html) {
            if let Some(tracked) = self.tracked(&decode(&html[start..end])) {
                out.push_str(&html[last..start]);
                out.push_str(&tracked);
                last = end;
            }
        }
        out.push_str(&html[last..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POST: &str = "<p>See <a href=\"https://example.org/a?x=1&amp;y=2\" rel=\"noopener\">this</a>, \
        <a title=\"t\" href=\"mailto:someone@example.org\">mail</a>, <abbr title=\"<a href=x>\">A</abbr> and \
        <a href=\"http://example.net/\">that</a>. 1 &lt;a href=\"https://no.example/\"&gt;</p>\
        <a\nhref='https://example.org/b'>b</a><a>no href</a><area href=\"https://no.example/\">";

    #[test]
    fn links_are_read_from_anchors_only_and_decoded() {
        assert_eq!(
            hrefs(POST),
            [
                "https://example.org/a?x=1&y=2",
                "http://example.net/",
                "https://example.org/b"
            ]
        );
    }

    #[test]
    fn only_the_editions_links_are_rewritten() {
        let tokens = HashMap::from([
            ("https://example.org/a?x=1&y=2".to_owned(), "AAAAAAAAAAAA".to_owned()),
            ("https://example.org/b".to_owned(), "BBBBBBBBBBBB".to_owned()),
        ]);
        let named = Tracker::new("https://news.example/r/".into(), tokens.clone(), vec![1], true);
        let out = named.rewrite(POST);
        assert!(out.contains(&format!("href=\"https://news.example/r/AAAAAAAAAAAA{READER}\" rel")));
        assert!(out.contains(&format!("href='https://news.example/r/BBBBBBBBBBBB{READER}'")));
        assert!(out.contains("href=\"mailto:someone@example.org\""), "mailto stays");
        assert!(out.contains("href=\"http://example.net/\""), "not registered: stays");
        assert!(out.contains("&lt;a href=\"https://no.example/\"&gt;"), "text stays");
        let anonymous = Tracker::new("https://news.example/r/".into(), tokens, vec![1], false);
        assert!(
            anonymous
                .rewrite(POST)
                .contains("href=\"https://news.example/r/AAAAAAAAAAAA\" rel")
        );
        assert_eq!(anonymous.tracked("https://elsewhere.example/"), None);
    }
}
