//! The tera templates built into the binary, overridable from a folder, and the hashes of
//! their inline styles and scripts for the Content-Security-Policy. Uses nothing else in Herald.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use include_dir::{Dir, include_dir};
use sha2::{Digest, Sha256};

static BUILT_IN: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// The tera templates, loaded once: the ones built into the binary, each replaced by a
/// file of the same name under `templates_dir` if one is configured.
pub struct Templates {
    tera: tera::Tera,
    inline: InlineHashes,
    /// A hash of every template's name and text, built-in or overridden.
    fingerprint: String,
}

/// CSP source expressions (`'sha256-…'`) for the inline `<style>` and `<script>` blocks of
/// the web page templates: the Content-Security-Policy allows these and nothing else inline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InlineHashes {
    pub styles: Vec<String>,
    pub scripts: Vec<String>,
}

impl InlineHashes {
    /// Hashes every inline block of the `web/` templates. A block with template tags in it
    /// differs from page to page, so no hash can allow it: it is left out, and named in a
    /// warning, since browsers will refuse to apply it.
    fn of(sources: &[(String, String)]) -> Self {
        let mut hashes = Self::default();
        for (name, text) in sources.iter().filter(|(name, _)| name.starts_with("web/")) {
            for (tag, out) in [("style", &mut hashes.styles), ("script", &mut hashes.scripts)] {
                for block in inline_blocks(text, tag) {
                    if block.trim() == super::design::THEME_BLOCK {
                        // The site's theme: hashed when the site is built from the settings.
                        continue;
                    }
                    if block.contains("{{") || block.contains("{%") {
                        tracing::warn!(
                            template = %name,
                            "an inline <{tag}> holds template tags, so the Content-Security-Policy cannot allow it by hash; browsers will ignore it (put the values in data- attributes)"
                        );
                        continue;
                    }
                    let hash = format!("'sha256-{}'", STANDARD.encode(Sha256::digest(block.as_bytes())));
                    if !out.contains(&hash) {
                        out.push(hash);
                    }
                }
            }
        }
        hashes
    }
}

/// The text inside each `<tag ...>...</tag>` in `html` (ASCII case-insensitive).
fn inline_blocks<'a>(html: &'a str, tag: &str) -> Vec<&'a str> {
    let lower = html.to_ascii_lowercase();
    let (open, close) = (format!("<{tag}"), format!("</{tag}"));
    let mut blocks = Vec::new();
    let mut at = 0;
    while let Some(found) = lower[at..].find(&open) {
        let start = at + found;
        let after_name = start + open.len();
        // `<scripts>` or `<styled-thing>` are other elements.
        if !lower[after_name..].starts_with(|c: char| c == '>' || c.is_ascii_whitespace()) {
            at = after_name;
            continue;
        }
        let Some(gt) = lower[after_name..].find('>') else { break };
        let body_start = after_name + gt + 1;
        let Some(end) = lower[body_start..].find(&close) else {
            break;
        };
        blocks.push(&html[body_start..body_start + end]);
        at = body_start + end + close.len();
    }
    blocks
}

fn collect(dir: &'static Dir<'static>, out: &mut Vec<(String, String)>) -> anyhow::Result<()> {
    for file in dir.files() {
        let name = file.path().to_string_lossy().replace('\\', "/");
        let text = file
            .contents_utf8()
            .with_context(|| format!("Built-in template {name} is not UTF-8"))?;
        out.push((name, text.to_owned()));
    }
    for sub in dir.dirs() {
        collect(sub, out)?;
    }
    Ok(())
}

impl Templates {
    /// Loads and compiles every template; a syntax error names the template.
    pub fn load(override_dir: Option<&Path>) -> anyhow::Result<Self> {
        let mut sources = Vec::new();
        collect(&BUILT_IN, &mut sources)?;
        // Where each overridden template came from, for errors.
        let mut files = HashMap::new();
        if let Some(dir) = override_dir {
            for (name, text) in &mut sources {
                let candidate = dir.join(&*name);
                if candidate.is_file() {
                    *text = std::fs::read_to_string(&candidate)
                        .with_context(|| format!("Failed to read template {}", candidate.display()))?;
                    files.insert(name.clone(), candidate);
                }
            }
        }
        let inline = InlineHashes::of(&sources);
        let fingerprint = {
            use sha2::Digest;
            let mut sorted: Vec<&(String, String)> = sources.iter().collect();
            sorted.sort();
            let mut hasher = sha2::Sha256::new();
            for (name, text) in sorted {
                hasher.update(name);
                hasher.update([0]);
                hasher.update(text);
                hasher.update([0]);
            }
            hex::encode(hasher.finalize())
        };
        let texts: HashMap<String, String> = sources.iter().cloned().collect();
        let mut tera = tera::Tera::default();
        tera.set_escape_fn(escape_html);
        tera.register_filter("local_time", LocalTime(chrono_tz::UTC));
        tera.add_raw_templates(sources).map_err(|e| {
            let overrides = files.iter().map(|(name, path)| format!("{name} is {}", path.display()));
            let overrides: Vec<_> = overrides.collect();
            let described = anyhow::anyhow!(describe(&e));
            if overrides.is_empty() {
                described.context("Failed to compile the templates")
            } else {
                described.context(format!(
                    "Failed to compile the templates (overrides: {})",
                    overrides.join(", ")
                ))
            }
        })?;
        for (name, template) in &tera.templates {
            let mut problems = Vec::new();
            check_nodes(&tera, &template.ast, &mut problems);
            if let Some((what, word)) = problems.into_iter().next() {
                let text = texts.get(name).map(String::as_str).unwrap_or("");
                let line = text.lines().position(|l| l.contains(&word)).map_or(0, |i| i + 1);
                let file = files
                    .get(name)
                    .map_or_else(|| name.clone(), |p| p.display().to_string());
                anyhow::bail!("Template {file}, line {line}: {what}");
            }
        }
        Ok(Self {
            tera,
            inline,
            fingerprint,
        })
    }

    /// Changes whenever a template does: what a page rendered from them may be cached by.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Dates shown by the `local_time` filter are in `zone` (the site's `[schedule]
    /// timezone`); UTC until this is called.
    pub fn in_zone(mut self, zone: chrono_tz::Tz) -> Self {
        self.tera.register_filter("local_time", LocalTime(zone));
        self
    }

    /// Hashes of the pages' inline styles and scripts, for the Content-Security-Policy.
    pub fn inline_hashes(&self) -> &InlineHashes {
        &self.inline
    }

    /// Renders a template; errors carry the template's name and the tera chain.
    pub fn render(&self, name: &str, context: &tera::Context) -> anyhow::Result<String> {
        self.tera
            .render(name, context)
            .map_err(|e| anyhow::anyhow!(describe(&e)))
            .with_context(|| format!("Failed to render template {name}"))
    }
}

/// Finds what only rendering would reveal: filters, tests and functions that do not exist,
/// templates included that are not there. Each problem with the word to look for in the text.
fn check_nodes(tera: &tera::Tera, nodes: &[tera::ast::Node], problems: &mut Vec<(String, String)>) {
    use tera::ast::Node;
    for node in nodes {
        match node {
            Node::VariableBlock(_, expr) => check_expr(tera, expr, problems),
            Node::MacroDefinition(_, definition, _) => {
                definition
                    .args
                    .values()
                    .flatten()
                    .for_each(|e| check_expr(tera, e, problems));
                check_nodes(tera, &definition.body, problems);
            }
            Node::Include(_, names, false) if !names.iter().any(|n| tera.templates.contains_key(n)) => {
                let name = names.join(", ");
                problems.push((format!("includes {name}, which is no template"), name));
            }
            Node::Set(_, set) => check_expr(tera, &set.value, problems),
            Node::FilterSection(_, section, _) => {
                check_call(tera, &section.filter, Kind::Filter, problems);
                check_nodes(tera, &section.body, problems);
            }
            Node::Block(_, block, _) => check_nodes(tera, &block.body, problems),
            Node::Forloop(_, forloop, _) => {
                check_expr(tera, &forloop.container, problems);
                check_nodes(tera, &forloop.body, problems);
                if let Some(empty) = &forloop.empty_body {
                    check_nodes(tera, empty, problems);
                }
            }
            Node::If(branches, _) => {
                for (_, condition, body) in &branches.conditions {
                    check_expr(tera, condition, problems);
                    check_nodes(tera, body, problems);
                }
                if let Some((_, body)) = &branches.otherwise {
                    check_nodes(tera, body, problems);
                }
            }
            _ => {}
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Filter,
    Function,
}

fn check_call(tera: &tera::Tera, call: &tera::ast::FunctionCall, kind: Kind, problems: &mut Vec<(String, String)>) {
    let (missing, word) = match kind {
        // `safe` and `default` are the renderer's own, never registered.
        Kind::Filter => (
            !matches!(call.name.as_str(), "safe" | "default") && tera.get_filter(&call.name).is_err(),
            "filter",
        ),
        Kind::Function => (tera.get_function(&call.name).is_err(), "function"),
    };
    if missing {
        problems.push((format!("there is no {word} named {:?}", call.name), call.name.clone()));
    }
    call.args.values().for_each(|e| check_expr(tera, e, problems));
}

fn check_expr(tera: &tera::Tera, expr: &tera::ast::Expr, problems: &mut Vec<(String, String)>) {
    for filter in &expr.filters {
        check_call(tera, filter, Kind::Filter, problems);
    }
    check_value(tera, &expr.val, problems);
}

fn check_value(tera: &tera::Tera, value: &tera::ast::ExprVal, problems: &mut Vec<(String, String)>) {
    use tera::ast::ExprVal;
    match value {
        ExprVal::Math(math) => {
            check_expr(tera, &math.lhs, problems);
            check_expr(tera, &math.rhs, problems);
        }
        ExprVal::Logic(logic) => {
            check_expr(tera, &logic.lhs, problems);
            check_expr(tera, &logic.rhs, problems);
        }
        ExprVal::Test(test) => {
            if tera.get_tester(&test.name).is_err() {
                problems.push((format!("there is no test named {:?}", test.name), test.name.clone()));
            }
            test.args.iter().for_each(|e| check_expr(tera, e, problems));
        }
        ExprVal::MacroCall(call) => call.args.values().for_each(|e| check_expr(tera, e, problems)),
        ExprVal::FunctionCall(call) => check_call(tera, call, Kind::Function, problems),
        ExprVal::Array(items) => items.iter().for_each(|e| check_expr(tera, e, problems)),
        ExprVal::StringConcat(concat) => concat.values.iter().for_each(|v| check_value(tera, v, problems)),
        ExprVal::In(within) => {
            check_expr(tera, &within.lhs, problems);
            check_expr(tera, &within.rhs, problems);
        }
        _ => {}
    }
}

/// The `local_time` filter: an RFC 3339 time as people read it, in the site's zone
/// (`2026-11-25T16:40:46.06Z` in Europe/Paris is `25 Nov 2026, 17:40`). Nothing (null, an
/// empty string) is nothing; anything that is not a time is shown as it is.
struct LocalTime(chrono_tz::Tz);

impl tera::Filter for LocalTime {
    fn filter(&self, value: &tera::Value, _: &HashMap<String, tera::Value>) -> tera::Result<tera::Value> {
        let Some(text) = value.as_str() else {
            return Ok(if value.is_null() {
                tera::Value::from("")
            } else {
                value.clone()
            });
        };
        Ok(match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(t) => tera::Value::from(t.with_timezone(&self.0).format("%-d %b %Y, %H:%M").to_string()),
            Err(_) => tera::Value::from(text),
        })
    }
}

/// Escapes the five characters that matter in HTML text and quoted attributes.
/// (Tera's default also escapes `/`, which garbles every URL in the page source.)
fn escape_html(input: &str) -> String {
    let mut out = String::with_capacity(input.len() + input.len() / 8);
    for c in input.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn describe(error: &tera::Error) -> String {
    let mut out = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> serde_json::Value {
        serde_json::json!({"title": "Riverside & Co", "base_url": "https://news.example.org/", "language": "en-GB",
            "description": "River news", "author": "The Trust", "accent": "#0b6e4f", "accent_dark": "#5fd3a6",
            "favicon": "https://news.example.org/favicon.svg", "favicon_type": "image/svg+xml",
            "footer": "Charity no. 1", "postal_address": ["1 Mill Lane", "Bristol"], "theme_css": "",
            "clicks": "off"})
    }

    fn post() -> serde_json::Value {
        serde_json::json!({"title": "Otters <return>", "url": "https://news.example.org/posts/otters/",
            "date_human": "14 September 2026", "authors": ["Ana"], "summary": "They are back.",
            "image": "https://img.example.org/o.jpg", "image_alt": "An otter"})
    }

    fn render(name: &str, ctx: serde_json::Value) -> String {
        let templates = Templates::load(None).unwrap();
        templates
            .render(name, &tera::Context::from_value(ctx).unwrap())
            .unwrap()
    }

    #[test]
    fn local_time_shows_a_time_as_people_read_it_in_the_sites_zone() {
        let templates = Templates::load(None).unwrap().in_zone(chrono_tz::Asia::Kolkata);
        let mut tera = templates.tera.clone();
        let mut ctx = tera::Context::new();
        ctx.insert("t", "2026-11-25T16:40:46.061056955Z");
        ctx.insert("none", &None::<String>);
        ctx.insert("word", "soon");
        let out = tera
            .render_str(
                "{{ t | local_time }}|{{ none | local_time }}|{{ word | local_time }}",
                &ctx,
            )
            .unwrap();
        assert_eq!(out, "25 Nov 2026, 22:10||soon");
        let utc = Templates::load(None).unwrap();
        let mut tera = utc.tera.clone();
        assert_eq!(
            tera.render_str("{{ t | local_time }}", &ctx).unwrap(),
            "25 Nov 2026, 16:40"
        );
    }

    #[test]
    fn the_confirmation_email_renders_in_html_and_text() {
        let ctx = serde_json::json!({"site": site(), "name": "Ana <b>", "email": "ana@example.org",
            "confirm_url": "https://news.example.org/confirm/abc", "expires_days": 7, "frequency_text": "weekly"});
        let html = render("email/confirm.html", ctx.clone());
        assert!(html.contains("href=\"https://news.example.org/confirm/abc\""));
        assert!(html.contains("Hello Ana &lt;b&gt;"), "escaped");
        assert!(html.contains("color-scheme"), "dark-mode aware");
        let text = render("email/confirm.txt", ctx);
        assert!(text.contains("https://news.example.org/confirm/abc") && text.contains("7 days"));
        assert!(!text.contains("<p>"));
    }

    #[test]
    fn the_digest_email_renders_in_html_and_text() {
        let ctx = serde_json::json!({"site": site(), "subject": "Riverside: 2 new posts", "posts": [post(), post()],
            "preheader": "Otters", "web_url": "https://news.example.org/editions/1", "frequency_text": "once a week",
            "topics_text": "Wildlife", "preferences_url": "PREFS", "unsubscribe_url": "UNSUB"});
        let html = render("email/digest.html", ctx.clone());
        assert!(html.contains("Otters &lt;return&gt;"), "titles escaped");
        assert!(
            html.contains("alt=\"An otter\"") && html.contains("width=\"536\""),
            "images carry alt and width"
        );
        assert!(html.contains("class=\"preheader\""));
        assert!(html.contains("href=\"PREFS\"") && html.contains("href=\"UNSUB\""));
        assert!(html.contains("https://news.example.org/editions/1"));
        let text = render("email/digest.txt", ctx);
        assert!(text.contains("Otters <return>"), "plain text is not HTML-escaped");
        assert!(
            text.contains("Unsubscribe:\nUNSUB") && text.contains("Read it: https://news.example.org/posts/otters/")
        );
        assert!(text.contains("Charity no. 1\n") && text.contains("1 Mill Lane\nBristol"));
        assert!(html.contains("Charity no. 1") && html.contains("1 Mill Lane<br>Bristol"));
    }

    #[test]
    fn the_web_pages_render() {
        let base = serde_json::json!({"site": site(), "canonical_url": "https://news.example.org/", "feeds": [],
            "frequencies": [{"value": "weekly", "label": "Weekly"}], "topics": [],
            "form": {"email": "", "name": "", "frequency": "weekly", "topics": []}, "form_error": null});
        let mut message = base.clone();
        message["heading"] = "Done".into();
        message["lines"] = serde_json::json!(["One line"]);
        assert!(render("web/message.html", message).contains("<h1>Done</h1>"));
        assert!(render("web/subscribe.html", base.clone()).contains("name=\"email\""));
        // The privacy note says what is recorded of clicks, as configured.
        for (clicks, says) in [
            ("off", "We do not record which links you click."),
            (
                "anonymous",
                "We count clicks on their links without recording who clicked.",
            ),
            ("named", "We record which links in them you click."),
        ] {
            let mut page = base.clone();
            page["site"]["clicks"] = clicks.into();
            let html = render("web/subscribe.html", page);
            assert!(
                html.contains(&format!("We never record whether you open our emails. {says}</p>")),
                "{clicks}: {html}"
            );
        }
        let mut preferences = base.clone();
        preferences["email"] = "ana@example.org".into();
        preferences["status"] = "confirmed".into();
        preferences["action_url"] = "https://news.example.org/preferences/t".into();
        preferences["unsubscribe_url"] = "https://news.example.org/unsubscribe/t".into();
        preferences["feed_offered"] = true.into();
        preferences["feed_action"] = "https://news.example.org/preferences/t/feed".into();
        preferences["feed_url"] = "https://news.example.org/feeds/abc.atom".into();
        let html = render("web/preferences.html", preferences);
        assert!(html.contains("value=\"https://news.example.org/feeds/abc.atom\"") && html.contains("value=\"new\""));
        assert!(render("web/404.html", base).contains("Page not found"));
    }

    #[test]
    fn inline_styles_and_scripts_are_found_and_hashed_unless_they_hold_template_tags() {
        let html = "<STYLE media=\"x\">a{}</style><scripts></scripts><script>go()</script><script>{{ x }}</script>";
        assert_eq!(inline_blocks(html, "style"), ["a{}"]);
        assert_eq!(inline_blocks(html, "script"), ["go()", "{{ x }}"]);
        let hashes = InlineHashes::of(&[
            ("web/a.html".into(), html.into()),
            ("email/b.html".into(), "<style>b{}</style>".into()),
        ]);
        // printf 'go()' | openssl dgst -sha256 -binary | base64
        assert_eq!(
            hashes.scripts,
            ["'sha256-5KYv+PUboo5h+0+YAtGRPbwv5d/QxzHslP4YGnUaxRw='"]
        );
        assert_eq!(hashes.styles.len(), 1, "email templates are not pages");
        let built_in = Templates::load(None).unwrap();
        assert_eq!(built_in.inline_hashes().scripts.len(), 1, "the edition page's script");
        assert_eq!(built_in.inline_hashes().styles.len(), 3, "site, console, login");
    }

    #[test]
    fn an_override_folder_replaces_a_template_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("web")).unwrap();
        std::fs::write(dir.path().join("web/404.html"), "custom {{ site.title }}").unwrap();
        let templates = Templates::load(Some(dir.path())).unwrap();
        let mut ctx = tera::Context::new();
        ctx.insert("site", &site());
        assert_eq!(
            templates.render("web/404.html", &ctx).unwrap(),
            "custom Riverside &amp; Co"
        );
    }

    #[test]
    fn a_broken_override_is_refused_naming_its_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("web")).unwrap();
        let file = dir.path().join("web/404.html");
        std::fs::write(&file, "<p>\n{{ site.title | no_such_filter }}\n").unwrap();
        let error = format!("{:#}", Templates::load(Some(dir.path())).err().unwrap());
        assert!(error.contains(&file.display().to_string()), "{error}");
        assert!(error.contains("line 2") && error.contains("no_such_filter"), "{error}");

        std::fs::write(&file, "{% include \"web/nowhere.html\" %}").unwrap();
        let error = format!("{:#}", Templates::load(Some(dir.path())).err().unwrap());
        assert!(
            error.contains("web/nowhere.html") && error.contains("line 1"),
            "{error}"
        );

        std::fs::write(&file, "<p>\n{{ oops \n").unwrap();
        let error = format!("{:#}", Templates::load(Some(dir.path())).err().unwrap());
        assert!(error.contains(&file.display().to_string()), "{error}");
        assert!(error.contains("3:1"), "the parser's line and column: {error}");
    }
}
