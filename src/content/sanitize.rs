//! Post HTML made safe and absolute (ammonia): allowed tags and attributes only, links and
//! images resolved against the post's URL. Uses nothing else in Herald.

use std::borrow::Cow;

use ammonia::{Builder, UrlRelative};
use url::Url;

/// Prefix of element ids inside post content, so a post cannot clobber the page's own ids.
const ID_PREFIX: &str = "post-";

/// How a post's relative URLs are read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Relative {
    /// A post file: paths are relative to the site's folder (`/img/x.png` and `img/x.png`
    /// both mean base_url's folder, which may be below the host's root).
    Site,
    /// A page bundle (`<slug>/index.md` beside its files): a relative path (`photo.jpg`,
    /// `images/x.png`) is the post's own file, at the post's URL; `/img/x.png` is still
    /// the site's.
    Bundle,
    /// An item imported from another site: resolved the browser's way against its page.
    Page,
}

struct Absolutise {
    base: Url,
    post: Url,
    relative: Relative,
}

impl ammonia::UrlRelativeEvaluate<'_> for Absolutise {
    fn evaluate<'a>(&self, url: &'a str) -> Option<Cow<'a, str>> {
        if let Some(fragment) = url.strip_prefix('#') {
            let mut absolute = self.post.clone();
            absolute.set_fragment(Some(&format!("{ID_PREFIX}{fragment}")));
            return Some(Cow::Owned(absolute.into()));
        }
        let joined = resolve(url, &self.base, &self.post, self.relative).ok()?;
        Some(Cow::Owned(joined.into()))
    }
}

/// An URL written in a post (`src`, `href`, the front matter's `image`) made absolute, the
/// way `relative` says: against the site's folder or the post's own URL.
pub fn resolve(url: &str, base_url: &Url, post_url: &Url, relative: Relative) -> Result<Url, url::ParseError> {
    match relative {
        Relative::Site => base_url.join(url.trim_start_matches('/')),
        Relative::Bundle if url.starts_with('/') => base_url.join(url.trim_start_matches('/')),
        Relative::Bundle => post_url.join(url),
        Relative::Page => base_url.join(url),
    }
}

/// Makes post HTML safe for feeds, pages and emails: an allow-list of tags and
/// attributes (no scripts, event handlers, iframes, `javascript:` URLs) and every
/// URL made absolute — paths against `base_url` (or, in a page bundle, relative paths
/// against `post_url`), `#fragments` against `post_url`.
pub fn sanitize_html(html: &str, base_url: &Url, post_url: &Url, relative: Relative) -> String {
    clean(
        html,
        Absolutise {
            base: base_url.clone(),
            post: post_url.clone(),
            relative,
        },
    )
}

/// Like [`sanitize_html`] for an item imported from another site: URLs resolve against the
/// item's own address, as a browser on that page would resolve them.
pub fn sanitize_remote_html(html: &str, page_url: &Url) -> String {
    clean(
        html,
        Absolutise {
            base: page_url.clone(),
            post: page_url.clone(),
            relative: Relative::Page,
        },
    )
}

fn clean(html: &str, rewrite: Absolutise) -> String {
    Builder::default()
        .url_relative(UrlRelative::Custom(Box::new(rewrite)))
        .add_tag_attributes("div", &["id"])
        .add_tag_attributes("sup", &["id"])
        .add_tag_attributes("li", &["id"])
        .id_prefix(Some(ID_PREFIX))
        .add_allowed_classes("div", &["footnote-definition", "table-wrap"])
        .add_allowed_classes("th", &["align-left", "align-center", "align-right"])
        .add_allowed_classes("td", &["align-left", "align-center", "align-right"])
        .add_allowed_classes("sup", &["footnote-reference", "footnote-definition-label"])
        .clean(html)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(html: &str) -> String {
        let base = Url::parse("https://example.org/news/").unwrap();
        let post = base.join("posts/a/").unwrap();
        sanitize_html(html, &base, &post, Relative::Site)
    }

    #[test]
    fn table_alignment_classes_survive_and_no_other_class_does() {
        let base = Url::parse("https://news.example.org/").unwrap();
        let post = base.join("posts/t/").unwrap();
        let html = crate::content::render_markdown("| a | b |\n|--:|---|\n| 1 | 2 |\n");
        let clean = sanitize_html(&format!("{html}<p class=\"evil\">x</p>"), &base, &post, Relative::Site);
        assert!(clean.contains("<div class=\"table-wrap\">"), "{clean}");
        assert!(clean.contains("<td class=\"align-right\">1</td>"), "{clean}");
        assert!(!clean.contains("evil"), "{clean}");
    }

    #[test]
    fn strips_scripts_handlers_frames_and_javascript_urls() {
        let out = clean(
            r#"<p onclick="x()">Hi<script>alert(1)</script></p><img src="a.png" onerror="alert(1)">
               <a href="javascript:alert(1)">x</a><iframe src="https://evil.example/"></iframe>
               <a href="JaVaScRiPt:alert(1)">y</a><svg onload="alert(1)"></svg><style>p{}</style>"#,
        );
        for bad in [
            "<script",
            "onclick",
            "onerror",
            "javascript:",
            "JaVaScRiPt",
            "<iframe",
            "onload",
            "<style",
        ] {
            assert!(!out.contains(bad), "{bad} survived in {out}");
        }
        assert!(out.contains("<p>Hi</p>"), "{out}");
    }

    #[test]
    fn makes_links_and_images_absolute() {
        let out = clean(
            r#"<a href="/volunteer">v</a><img src="images/map.png" alt="m"><a href="https://other.example/x">o</a>"#,
        );
        assert!(out.contains(r#"href="https://example.org/news/volunteer""#), "{out}");
        assert!(
            out.contains(r#"src="https://example.org/news/images/map.png""#),
            "{out}"
        );
        assert!(out.contains(r#"href="https://other.example/x""#), "{out}");
    }

    #[test]
    fn in_a_bundle_relative_paths_are_the_posts_own_files() {
        let base = Url::parse("https://example.org/news/").unwrap();
        let post = base.join("posts/otters/").unwrap();
        let out = sanitize_html(
            r##"<img src="photo.jpg"><img src="images/x.png"><img src="/images/map.png"><a href="../other/">o</a><a href="#n">n</a><a href="https://other.example/y">y</a>"##,
            &base,
            &post,
            Relative::Bundle,
        );
        for expected in [
            r#"src="https://example.org/news/posts/otters/photo.jpg""#,
            r#"src="https://example.org/news/posts/otters/images/x.png""#,
            r#"src="https://example.org/news/images/map.png""#,
            r#"href="https://example.org/news/posts/other/""#,
            r#"href="https://example.org/news/posts/otters/#post-n""#,
            r#"href="https://other.example/y""#,
        ] {
            assert!(out.contains(expected), "{expected} missing from {out}");
        }
    }

    #[test]
    fn footnote_links_point_into_the_post_page() {
        let out = clean(
            r##"<sup class="footnote-reference"><a href="#1">1</a></sup><div class="footnote-definition" id="1">n</div>"##,
        );
        assert!(
            out.contains(r#"href="https://example.org/news/posts/a/#post-1""#),
            "{out}"
        );
        assert!(out.contains(r#"id="post-1""#), "{out}");
    }
}
