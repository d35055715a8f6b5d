//! A post file's front matter (YAML or TOML) and body into a `PostDraft`, with errors that
//! name the file and line. Uses `domain`.

use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Deserialize;
use url::Url;

use super::{markdown, sanitize};
use crate::domain::{PostDraft, PostSource, Slug, Tag};

/// Why a post file could not be read, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostError {
    pub path: PathBuf,
    /// 1-based line in the file the problem was found on.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
    }
}

impl std::error::Error for PostError {}

const SUMMARY_CHARS: usize = 280;

/// The keys a post may set. Other keys (a theme's `layout`, `weight`, ...) are ignored
/// so files written for other static-site tools load as they are.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FrontMatter {
    title: Option<String>,
    date: Option<String>,
    updated: Option<String>,
    author: Option<String>,
    authors: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    summary: Option<String>,
    description: Option<String>,
    slug: Option<String>,
    draft: Option<bool>,
    image: Option<String>,
    image_alt: Option<String>,
}

enum Format {
    Yaml,
    Toml,
}

/// The front matter and body of a file, and the line the front matter starts on.
struct Split<'a> {
    format: Format,
    front: &'a str,
    body: &'a str,
    /// 1-based line of the first front-matter line (after the opening fence).
    front_line: usize,
}

fn split(text: &str) -> Result<Split<'_>, (usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (fence, format) = if text.starts_with("---") {
        ("---", Format::Yaml)
    } else if text.starts_with("+++") {
        ("+++", Format::Toml)
    } else {
        return Err((
            1,
            "the file must start with front matter between `---` (YAML) or `+++` (TOML) lines".into(),
        ));
    };
    let first_newline = text
        .find('\n')
        .ok_or((1, format!("front matter opened by `{fence}` is never closed")))?;
    if text[..first_newline].trim_end() != fence {
        return Err((1, format!("the first line must be `{fence}` alone")));
    }
    let rest = &text[first_newline + 1..];
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == fence {
            return Ok(Split {
                format,
                front: &rest[..offset],
                body: &rest[offset + line.len()..],
                front_line: 2,
            });
        }
        offset += line.len();
    }
    Err((1, format!("front matter opened by `{fence}` on line 1 is never closed")))
}

/// The 1-based file line that sets `key` in the front matter, or the opening fence's.
fn line_of_key(split: &Split<'_>, key: &str) -> usize {
    split
        .front
        .lines()
        .position(|line| {
            let line = line.trim_start();
            line.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with([':', '=']))
        })
        .map_or(1, |i| split.front_line + i)
}

/// A YAML error's message with each `line N` counted from the top of the file, not of
/// the front matter (which starts `offset` lines down), so every number in it is one an
/// editor shows.
fn file_lines(message: &str, offset: usize) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("line ") {
        let (before, after) = rest.split_at(at + "line ".len());
        out.push_str(before);
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        match after[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + offset).to_string()),
            Err(_) => out.push_str(&after[..digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

fn read_front_matter(split: &Split<'_>) -> Result<FrontMatter, (usize, String)> {
    match split.format {
        Format::Yaml => {
            if split.front.trim().is_empty() {
                return Ok(FrontMatter::default());
            }
            serde_yaml_ng::from_str::<FrontMatter>(split.front).map_err(|e| {
                let line = e.location().map_or(1, |l| split.front_line + l.line() - 1);
                (
                    line,
                    format!(
                        "invalid YAML front matter: {}",
                        file_lines(&e.to_string(), split.front_line - 1)
                    ),
                )
            })
        }
        Format::Toml => {
            // TOML dates are their own type; read them as text like YAML's.
            let value: toml::Table = toml::from_str(split.front).map_err(|e| {
                let line = e
                    .span()
                    .map_or(1, |s| split.front_line + split.front[..s.start].matches('\n').count());
                (line, format!("invalid TOML front matter: {}", e.message()))
            })?;
            let value = toml::Value::Table(
                value
                    .into_iter()
                    .map(|(k, v)| match v {
                        toml::Value::Datetime(d) => (k, toml::Value::String(d.to_string())),
                        other => (k, other),
                    })
                    .collect(),
            );
            FrontMatter::deserialize(value).map_err(|e| (1, format!("invalid TOML front matter: {}", e.message())))
        }
    }
}

/// Reads a date as RFC 3339, `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DD HH:MM[:SS]` (UTC).
pub fn parse_date(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Ok(d.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(s, format) {
            return Ok(d.and_utc());
        }
    }
    Err(format!(
        "{s:?} is not a date: use RFC 3339 (2026-09-14T09:30:00Z) or YYYY-MM-DD"
    ))
}

/// One line of plain text: no control characters, whitespace folded.
fn plain_line(s: &str) -> String {
    s.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn parse(
    path: &Path,
    text: &str,
    base_url: &Url,
    source: PostSource,
    content_hash: String,
) -> Result<PostDraft, PostError> {
    let fail = |line: usize, message: String| PostError {
        path: path.to_path_buf(),
        line,
        message,
    };
    let split = split(text).map_err(|(line, m)| fail(line, m))?;
    let fm = read_front_matter(&split).map_err(|(line, m)| fail(line, m))?;

    let title = fm.title.as_deref().map(plain_line).unwrap_or_default();
    if title.is_empty() {
        return Err(fail(
            line_of_key(&split, "title"),
            "missing `title`: every post needs one".into(),
        ));
    }
    let date = fm
        .date
        .as_deref()
        .ok_or_else(|| fail(1, "missing `date`: every post needs one (e.g. 2026-09-14)".into()))?;
    let published_at = parse_date(date).map_err(|m| fail(line_of_key(&split, "date"), format!("date: {m}")))?;
    let updated_at = fm
        .updated
        .as_deref()
        .map(parse_date)
        .transpose()
        .map_err(|m| fail(line_of_key(&split, "updated"), format!("updated: {m}")))?
        .filter(|u| *u > published_at);

    // A page bundle (`otters/index.md`) is named by its folder; other posts by their file.
    let bundle = source.bundle_dir();
    let slug = match &fm.slug {
        Some(s) => Slug::parse(s).map_err(|e| fail(line_of_key(&split, "slug"), format!("slug {s:?}: {e}")))?,
        None => {
            let (what, stem) = match bundle {
                Some(dir) => ("folder", dir.rsplit('/').next().unwrap_or(dir)),
                None => ("file", path.file_stem().and_then(|s| s.to_str()).unwrap_or_default()),
            };
            Slug::parse(stem)
                .ok()
                .or_else(|| Slug::slugify(stem))
                .ok_or_else(|| fail(1, format!("cannot make a slug of the {what} name {stem:?}: set `slug`")))?
        }
    };
    let relative = if bundle.is_some() {
        sanitize::Relative::Bundle
    } else {
        sanitize::Relative::Site
    };

    let mut authors: Vec<String> = fm.authors.unwrap_or_default();
    authors.extend(fm.author);
    let authors: Vec<String> = authors
        .iter()
        .map(|a| plain_line(a))
        .filter(|a| !a.is_empty())
        .collect();

    let mut tags: Vec<Tag> = Vec::new();
    for raw in fm.tags.unwrap_or_default() {
        let tag = Tag::parse(&raw).map_err(|e| fail(line_of_key(&split, "tags"), format!("tag {raw:?}: {e}")))?;
        if !tags.iter().any(|t| t.slug() == tag.slug()) {
            tags.push(tag);
        }
    }

    let post_url = base_url
        .join(&format!("posts/{slug}/"))
        .map_err(|e| fail(1, format!("cannot build the post's URL: {e}")))?;
    let image = match fm.image.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => {
            let url = sanitize::resolve(raw, base_url, &post_url, relative)
                .map_err(|e| fail(line_of_key(&split, "image"), format!("image {raw:?}: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(fail(
                    line_of_key(&split, "image"),
                    format!("image {raw:?}: only http and https images"),
                ));
            }
            Some(url.to_string())
        }
    };

    let summary = fm
        .summary
        .or(fm.description)
        .map(|s| markdown::smart_punctuation(&plain_line(&s)))
        .filter(|s| !s.is_empty())
        .or_else(|| markdown::plain_summary(split.body, SUMMARY_CHARS));
    let content_html = sanitize::sanitize_html(&markdown::render_markdown(split.body), base_url, &post_url, relative);

    Ok(PostDraft {
        slug,
        title,
        published_at,
        updated_at,
        authors,
        tags,
        summary,
        content_html,
        image,
        image_alt: fm.image_alt.map(|s| plain_line(&s)).filter(|s| !s.is_empty()),
        draft: fm.draft.unwrap_or(false),
        source,
        content_hash,
    })
}

/// Reads one post file's text into a draft ready for the store.
///
/// `source` names it in the store (e.g. the file `otters.md`), `file_stem` gives the default
/// slug and `content_hash` lets an unchanged file be skipped on the next sync.
pub fn parse_post_file(
    path: &std::path::Path,
    text: &str,
    base_url: &url::Url,
    source: PostSource,
    content_hash: String,
) -> Result<PostDraft, PostError> {
    parse(path, text, base_url, source, content_hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str, text: &str) -> Result<PostDraft, PostError> {
        let base = Url::parse("https://example.org/").unwrap();
        parse(Path::new(name), text, &base, PostSource::File(name.into()), "h".into())
    }

    #[test]
    fn reads_yaml_front_matter() {
        let post = load(
            "otters-return.md",
            "---\ntitle: \"Otters <b>return</b>\"\ndate: 2026-09-14T09:30:00+01:00\nauthors: [Ana, Ben]\ntags: [Wildlife, volunteering]\nimage: /img/o.jpg\nimage_alt: An otter\n---\nThe *first* paragraph.\n",
        )
        .unwrap();
        assert_eq!(post.slug.as_str(), "otters-return");
        assert_eq!(post.title, "Otters <b>return</b>");
        assert_eq!(post.published_at.to_rfc3339(), "2026-09-14T08:30:00+00:00");
        assert_eq!(post.authors, ["Ana", "Ben"]);
        assert_eq!(
            post.tags.iter().map(|t| t.slug()).collect::<Vec<_>>(),
            ["wildlife", "volunteering"]
        );
        assert_eq!(post.image.as_deref(), Some("https://example.org/img/o.jpg"));
        assert_eq!(post.summary.as_deref(), Some("The first paragraph."));
        assert!(post.content_html.contains("<em>first</em>"));
        assert!(!post.draft);
    }

    #[test]
    fn reads_toml_front_matter_with_native_dates() {
        let post = load(
            "x.md",
            "+++\ntitle = \"T\"\ndate = 2026-10-02\nslug = \"custom-slug\"\nauthor = \"Cy\"\ndraft = true\nsummary = \"S\"\n+++\nBody\n",
        )
        .unwrap();
        assert_eq!(post.slug.as_str(), "custom-slug");
        assert_eq!(post.published_at.to_rfc3339(), "2026-10-02T00:00:00+00:00");
        assert_eq!(post.authors, ["Cy"]);
        assert!(post.draft);
        assert_eq!(post.summary.as_deref(), Some("S"));
    }

    #[test]
    fn broken_files_name_their_line_and_reason() {
        let cases = [
            ("---\ntitle: T\ndate: [unclosed\n---\n", 3, "invalid YAML"),
            // The numbers inside the parser's message are the file's lines too.
            (
                "---\ntitle: T\ndate: 2026-01-01\ntags: [a, b\nsummary: x\n---\n",
                5,
                "at line 5 column 8, while parsing a flow sequence at line 4 column 7",
            ),
            ("---\ndate: 2026-01-01\n---\nx", 1, "missing `title`"),
            ("---\ntitle: T\n---\nx", 1, "missing `date`"),
            ("---\ntitle: T\ntags: [a]\ndate: next tuesday\n---\n", 4, "not a date"),
            ("---\ntitle: T\ndate: 2026-01-01\nslug: Bad Slug\n---\n", 4, "slug"),
            ("no front matter\n", 1, "must start with front matter"),
            ("---\ntitle: T\ndate: 2026-01-01\n", 1, "never closed"),
            ("+++\ntitle = \"T\"\ndate = \n+++\n", 3, "invalid TOML"),
            (
                "---\ntitle: T\ndate: 2026-01-01\nimage: \"javascript:alert(1)\"\n---\n",
                4,
                "only http",
            ),
        ];
        for (text, line, reason) in cases {
            let err = load("broken.md", text).unwrap_err();
            assert_eq!(err.line, line, "{text:?} -> {err}");
            assert!(err.message.contains(reason), "{text:?} -> {err}");
            assert!(err.to_string().starts_with(&format!("broken.md:{line}: ")), "{err}");
        }
    }

    #[test]
    fn a_bundle_is_named_by_its_folder_and_its_relative_urls_are_its_own() {
        let base = Url::parse("https://example.org/").unwrap();
        let text =
            "---\ntitle: T\ndate: 2026-01-01\nimage: photo.jpg\n---\n![m](images/map.png) ![s](/images/site.png)\n";
        let source = PostSource::File("2026/Otters Return/index.md".into());
        let post = parse(
            Path::new("posts/2026/Otters Return/index.md"),
            text,
            &base,
            source,
            "h".into(),
        )
        .unwrap();
        assert_eq!(post.slug.as_str(), "otters-return");
        assert_eq!(
            post.image.as_deref(),
            Some("https://example.org/posts/otters-return/photo.jpg")
        );
        assert!(
            post.content_html
                .contains(r#"src="https://example.org/posts/otters-return/images/map.png""#),
            "{}",
            post.content_html
        );
        assert!(
            post.content_html
                .contains(r#"src="https://example.org/images/site.png""#),
            "{}",
            post.content_html
        );
        // A post file that is not a bundle keeps site-relative paths, and `index.md` at the
        // top of the posts folder is no bundle.
        let flat = load("index.md", text).unwrap();
        assert_eq!(flat.slug.as_str(), "index");
        assert_eq!(flat.image.as_deref(), Some("https://example.org/photo.jpg"));
    }

    #[test]
    fn dates_accept_the_common_forms() {
        assert!(parse_date("2026-09-14").is_ok());
        assert!(parse_date("2026-09-14T09:30:00Z").is_ok());
        assert!(parse_date("2026-09-14 09:30").is_ok());
        assert!(parse_date("14/09/2026").is_err());
        assert!(parse_date("2026-02-30").is_err());
    }
}
