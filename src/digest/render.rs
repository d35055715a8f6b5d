//! Rendering digests. The shared parts are rendered once per edition and topic choice
//! (tera, then CSS inlined); each message only swaps in its subscriber's links.
//! Uses `site` (templates, links) and `mail` (composing).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use lettre::address::Envelope;
use lettre::message::Mailbox;
use serde::Serialize;

use super::links::{self, READER, Tracker};
use crate::config::{DigestContent, Settings};
use crate::domain::{EditionStatus, Frequency, Post, Subscriber};
use crate::mail::{Composer, Outgoing, compose};
use crate::site::Site;
use crate::store::{self, Db, editions::Edition};

/// What rendering needs: the posts, the site's templates and links, the message composer.
pub struct Renderer {
    db: Db,
    site: Arc<Site>,
    composer: Arc<Composer>,
}

impl Renderer {
    pub fn new(db: Db, site: Arc<Site>, composer: Arc<Composer>) -> Self {
        Self { db, site, composer }
    }

    pub fn settings(&self) -> &Settings {
        self.site.settings()
    }
}

/// Stand-ins for per-subscriber values; plain ASCII that escaping and CSS inlining leave alone.
const PREFERENCES: &str = "HERALD0PREFERENCES0URL";
const UNSUBSCRIBE: &str = "HERALD0UNSUBSCRIBE0URL";

#[derive(Serialize)]
struct PostView<'a> {
    title: &'a str,
    url: String,
    date_human: String,
    authors: &'a [String],
    summary: Option<&'a str>,
    image: Option<&'a str>,
    image_alt: Option<&'a str>,
    /// The whole post, for `[digest] content = "full"`.
    content_html: Option<String>,
    /// The whole post as wrapped plain text, for the text part.
    content_text: Option<String>,
}

/// A post's HTML as plain text for the text part of a full digest.
fn post_text(html: &str) -> anyhow::Result<String> {
    html2text::from_read(html.as_bytes(), compose::TEXT_WIDTH).context("the post's HTML cannot be read as text")
}

/// A digest as one group of subscribers (same topics) sees it, links still to fill in.
pub struct Variant {
    pub subject: String,
    pub html: String,
    pub text: String,
    pub posts: usize,
    html_parts: Filled,
    text_parts: Filled,
}

/// A document cut at its stand-ins and encoded once (quoted-printable pieces), so each
/// message only encodes its two links (and, for tracked links, its reader's part) and
/// copies the rest.
struct Filled(Vec<(Vec<u8>, Option<Link>)>);

#[derive(Clone, Copy)]
enum Link {
    Preferences,
    Unsubscribe,
    Reader,
}

fn encoded(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    compose::qp_piece(text, &mut out);
    out
}

impl Filled {
    fn cut(doc: &str) -> Self {
        let mut parts = Vec::new();
        let mut rest = doc;
        loop {
            let next = [
                (PREFERENCES, Link::Preferences),
                (UNSUBSCRIBE, Link::Unsubscribe),
                (READER, Link::Reader),
            ]
            .into_iter()
            .filter_map(|(marker, link)| rest.find(marker).map(|i| (i, marker.len(), link)))
            .min_by_key(|(i, _, _)| *i);
            match next {
                Some((i, len, link)) => {
                    parts.push((encoded(&rest[..i]), Some(link)));
                    rest = &rest[i + len..];
                }
                None => {
                    parts.push((encoded(rest), None));
                    return Self(parts);
                }
            }
        }
    }

    /// Each value is encoded once per message, however often its stand-in occurs (a
    /// tracked link's reader part occurs at every link).
    fn fill(&self, preferences: &str, unsubscribe: &str, reader: &str) -> Vec<u8> {
        // Without tracked links (or with anonymous ones) there is no reader part to encode.
        let reader = if reader.is_empty() { Vec::new() } else { encoded(reader) };
        let values = [encoded(preferences), encoded(unsubscribe), reader];
        let extra = self.0.len() * values.iter().map(Vec::len).max().unwrap_or(0);
        let mut out = Vec::with_capacity(self.0.iter().map(|(p, _)| p.len()).sum::<usize>() + extra);
        for (piece, link) in &self.0 {
            out.extend_from_slice(piece);
            match link {
                Some(Link::Preferences) => out.extend_from_slice(&values[0]),
                Some(Link::Unsubscribe) => out.extend_from_slice(&values[1]),
                Some(Link::Reader) => out.extend_from_slice(&values[2]),
                None => {}
            }
        }
        out
    }
}

/// How big a digest's HTML part is in one subscriber's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HtmlPartSize {
    /// The part's body as it travels: quoted-printable, lines of at most 76 characters.
    pub encoded: usize,
    /// The HTML itself, once decoded.
    pub decoded: usize,
}

/// Links as `href` values: what [`message`] puts in the HTML.
fn escape_link(link: &str) -> String {
    link.replace('&', "&amp;").replace('"', "&quot;")
}

impl Variant {
    /// The HTML part of a message of this variant whose reader's links are `preferences` and
    /// `unsubscribe`, measured as [`message`] builds it.
    /// Tracked links count with a reader's part of a typical length.
    pub fn html_part_size(&self, preferences: &str, unsubscribe: &str) -> HtmlPartSize {
        let (preferences, unsubscribe) = (escape_link(preferences), escape_link(unsubscribe));
        let reader = ".100000.AAAAAAAAAAA";
        let (p, u, r) = (
            self.html.matches(PREFERENCES).count(),
            self.html.matches(UNSUBSCRIBE).count(),
            self.html.matches(READER).count(),
        );
        HtmlPartSize {
            encoded: self.html_parts.fill(&preferences, &unsubscribe, reader).len(),
            decoded: self.html.len() - p * PREFERENCES.len() - u * UNSUBSCRIBE.len() - r * READER.len()
                + p * preferences.len()
                + u * unsubscribe.len()
                + r * reader.len(),
        }
    }
}

/// A variant's topics (sorted) and whether its links are tracked.
type VariantKey = (Vec<String>, bool);

/// An edition's posts and its rendered variants, shared by every message of the edition.
pub struct EditionContent {
    pub edition: Edition,
    pub frequency: Frequency,
    pub posts: Vec<Post>,
    /// The edition's tracked links, when `[tracking] clicks` is on and the edition is stored.
    tracker: Option<Tracker>,
    /// By topic choice and whether links are tracked (the web view never is).
    variants: Mutex<HashMap<VariantKey, Option<Arc<Variant>>>>,
}

/// The subject line: `[digest] subject` (a tera template with `site`, `posts`, `count`) or
/// the post's title for one post, "Site: N new posts" for several.
pub fn subject(app: &Renderer, posts: &[Post]) -> anyhow::Result<String> {
    let template = app.settings().digest.subject.trim();
    if template.is_empty() {
        return Ok(match posts {
            [one] => one.title.clone(),
            _ => format!("{}: {} new posts", app.settings().site.title, posts.len()),
        });
    }
    let mut ctx = tera::Context::new();
    ctx.insert("site", &app.site.site_view());
    ctx.insert("count", &posts.len());
    ctx.insert("posts", &posts.iter().map(|p| &p.title).collect::<Vec<_>>());
    let rendered = tera::Tera::one_off(template, &ctx, false).context("digest.subject is not a valid template")?;
    Ok(rendered.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn topics_text(topics: &[String], posts: &[Post]) -> String {
    topics
        .iter()
        .map(|slug| {
            posts
                .iter()
                .flat_map(|p| p.tags.iter())
                .find(|t| t.slug() == slug)
                .map_or_else(|| slug.clone(), |t| t.name().to_owned())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl EditionContent {
    pub async fn load(app: &Renderer, edition_id: i64) -> anyhow::Result<Self> {
        let edition = store::editions::find(&app.db, edition_id)
            .await?
            .context("No such edition")?;
        let ids = store::editions::post_ids(&app.db, edition_id).await?;
        let posts = store::posts::find_by_ids(&app.db, &ids).await?;
        let tracker = if app.settings().tracking.clicks {
            Some(Self::tracker(app, edition_id, &posts).await?)
        } else {
            None
        };
        Ok(Self {
            frequency: edition.frequency,
            edition,
            posts,
            tracker,
            variants: Mutex::new(HashMap::new()),
        })
    }

    /// Every link the edition's messages carry (each post's address and, for full posts, the
    /// links inside them), stored as the edition's links with their tokens.
    async fn tracker(app: &Renderer, edition_id: i64, posts: &[Post]) -> anyhow::Result<Tracker> {
        let full = app.settings().digest.content == DigestContent::Full;
        let mut urls = Vec::new();
        for post in posts {
            urls.push(app.site.post_url(post.slug.as_str()));
            if full {
                urls.extend(links::hrefs(&post.content_html));
            }
        }
        urls.sort();
        urls.dedup();
        let tokens = store::clicks::register_links(&app.db, edition_id, &urls, chrono::Utc::now()).await?;
        let key = store::clicks::signing_key(&app.db).await?;
        Ok(Tracker::new(
            app.settings().url_for("r/"),
            tokens,
            key,
            app.settings().tracking.names_readers(),
        ))
    }

    /// Whether this edition's messages carry tracked links.
    pub fn tracked(&self) -> bool {
        self.tracker.is_some()
    }

    /// The digest for subscribers who chose `topics` (empty: everything); `None` when none of
    /// the edition's posts carries one of their topics.
    pub fn variant(&self, app: &Renderer, topics: &[String]) -> anyhow::Result<Option<Arc<Variant>>> {
        self.variant_as(app, topics, self.tracker.as_ref())
    }

    fn variant_as(
        &self,
        app: &Renderer,
        topics: &[String],
        tracker: Option<&Tracker>,
    ) -> anyhow::Result<Option<Arc<Variant>>> {
        let mut topics_key = topics.to_vec();
        topics_key.sort();
        let key = (topics_key, tracker.is_some());
        if let Some(v) = self
            .variants
            .lock()
            .map_err(|_| anyhow::anyhow!("variant cache poisoned"))?
            .get(&key)
        {
            return Ok(v.clone());
        }
        let posts: Vec<&Post> = self
            .posts
            .iter()
            .filter(|p| topics.is_empty() || p.tags.iter().any(|t| topics.iter().any(|s| s == t.slug())))
            .collect();
        let variant = if posts.is_empty() {
            None
        } else {
            let owned: Vec<Post> = posts.iter().map(|p| (*p).clone()).collect();
            Some(Arc::new(self.render(app, &owned, topics, false, tracker)?))
        };
        if let Ok(mut cache) = self.variants.lock() {
            cache.insert(key, variant.clone());
        }
        Ok(variant)
    }

    /// A variant for subscribers who chose `topics`; `test` for a test send, whose copy has
    /// no reader's links (it says where they go instead) and no web view unless stored.
    /// With a `tracker`, the links to posts and inside them go through `/r/{token}`.
    fn render(
        &self,
        app: &Renderer,
        posts: &[Post],
        topics: &[String],
        test: bool,
        tracker: Option<&Tracker>,
    ) -> anyhow::Result<Variant> {
        let subject = if posts.len() == self.posts.len() {
            self.edition.subject.clone()
        } else {
            subject(app, posts)?
        };
        let full = app.settings().digest.content == DigestContent::Full;
        let views = posts
            .iter()
            .map(|p| {
                let url = app.site.post_url(p.slug.as_str());
                let content_html = full.then(|| match tracker {
                    Some(tracker) => tracker.rewrite(&p.content_html),
                    None => p.content_html.clone(),
                });
                Ok(PostView {
                    title: &p.title,
                    url: tracker.and_then(|t| t.tracked(&url)).unwrap_or(url),
                    date_human: p.published_at.format("%-d %B %Y").to_string(),
                    authors: &p.authors,
                    summary: p.summary.as_deref(),
                    image: p.image.as_deref(),
                    image_alt: p.image_alt.as_deref(),
                    content_text: content_html.as_deref().map(post_text).transpose()?,
                    content_html,
                })
            })
            .collect::<anyhow::Result<Vec<PostView>>>()?;
        let mut ctx = tera::Context::new();
        ctx.insert("site", &app.site.site_view());
        ctx.insert("subject", &subject);
        ctx.insert("posts", &views);
        ctx.insert(
            "preheader",
            &posts.iter().map(|p| p.title.as_str()).collect::<Vec<_>>().join(" · "),
        );
        // A preview is not stored, so it has no page of its own.
        if self.edition.id > 0 {
            ctx.insert(
                "web_url",
                &app.settings().url_for(&format!("editions/{}", self.edition.id)),
            );
        }
        ctx.insert("test", &test);
        ctx.insert("full", &full);
        ctx.insert("frequency_text", self.frequency.sentence());
        ctx.insert("topics_text", &topics_text(topics, posts));
        ctx.insert("preferences_url", PREFERENCES);
        ctx.insert("unsubscribe_url", UNSUBSCRIBE);
        let templates = app.site.templates();
        let html = Composer::inline_css(&templates.render("email/digest.html", &ctx)?)?;
        let text = compose::plain_text(&templates.render("email/digest.txt", &ctx)?);
        Ok(Variant {
            subject,
            html_parts: Filled::cut(&html),
            text_parts: Filled::cut(&text),
            html,
            text,
            posts: posts.len(),
        })
    }

    /// An edition that is not stored: for previews and tests to an address.
    pub async fn preview(app: &Renderer, frequency: Frequency, post_ids: &[i64]) -> anyhow::Result<Self> {
        let posts = store::posts::find_by_ids(&app.db, post_ids).await?;
        let now = chrono::Utc::now();
        Ok(Self {
            edition: Edition {
                id: 0,
                frequency,
                period: "preview".into(),
                subject: subject(app, &posts)?,
                // Never stored nor sent: as an edition is before its deliveries are done.
                status: EditionStatus::Sending,
                recipients: 0,
                created_at: now,
                completed_at: None,
                paused_cause: None,
                paused_reason: None,
                paused_at: None,
                canary_until: None,
            },
            frequency,
            posts,
            tracker: None,
            variants: Mutex::new(HashMap::new()),
        })
    }

    /// The whole edition as a test message to `to` (links go to the subscribe page).
    pub fn test_message(
        &self,
        app: &Renderer,
        to: &crate::domain::EmailAddress,
    ) -> anyhow::Result<(Envelope, Vec<u8>)> {
        if self.posts.is_empty() {
            anyhow::bail!("the edition has no posts");
        }
        let variant = self.render(app, &self.posts, &[], true, None)?;
        app.composer.build(Outgoing {
            to: Mailbox::new(None, to.into()),
            subject: format!("[Test] {}", variant.subject),
            html: compose::body(variant.html),
            text: compose::body(variant.text),
            message_key: format!("test.{}.{}", self.edition.id, uuid::Uuid::new_v4().simple()),
            return_token: None,
            headers: vec![],
        })
    }

    /// The web view of the edition (`/editions/{id}`): everything, with links for a visitor.
    /// Its links are never tracked: a visitor is nobody's reader.
    pub fn web_html(&self, app: &Renderer) -> anyhow::Result<Option<String>> {
        Ok(self.variant_as(app, &[], None)?.map(|v| {
            v.html
                .replace(PREFERENCES, &app.settings().url_for("subscribe"))
                .replace(UNSUBSCRIBE, &app.settings().url_for("subscribe"))
        }))
    }
}

/// The finished message for one subscriber: their links filled in, list headers set, a
/// Message-ID derived from (edition, subscriber) so a re-send is recognisably the same.
pub fn message(
    app: &Renderer,
    content: &EditionContent,
    variant: &Variant,
    subscriber: &Subscriber,
) -> anyhow::Result<(Envelope, Vec<u8>)> {
    let preferences = app.site.preferences_url(subscriber);
    let unsubscribe = app.site.unsubscribe_url(subscriber);
    // One signature per message, the same for each of its tracked links.
    let reader = match &content.tracker {
        Some(tracker) if tracker.named => {
            crate::domain::click::reader_suffix(&tracker.key, content.edition.id, subscriber.id)
        }
        _ => String::new(),
    };
    let html = compose::qp_body(variant.html_parts.fill(
        &escape_link(&preferences),
        &escape_link(&unsubscribe),
        &reader,
    ));
    let text = compose::qp_body(variant.text_parts.fill(&preferences, &unsubscribe, &reader));
    let to = Mailbox::new(subscriber.name.clone(), (&subscriber.email).into());
    let mut list_unsubscribe = format!("<{unsubscribe}>");
    if !app.settings().mail.unsubscribe_mailto.is_empty() {
        list_unsubscribe.push_str(&format!(
            ", <mailto:{}?subject=unsubscribe>",
            app.settings().mail.unsubscribe_mailto
        ));
    }
    let message_key = format!("edition.{}.{}", content.edition.id, subscriber.id);
    let check = crate::domain::return_path_check(&subscriber.manage_token, &message_key);
    app.composer.build(Outgoing {
        to,
        subject: variant.subject.clone(),
        html,
        text,
        return_token: Some(format!("{message_key}.{check}")),
        message_key,
        headers: vec![
            ("List-Unsubscribe", list_unsubscribe),
            // RFC 8058: the POST to the List-Unsubscribe URL needs nothing else.
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click".into()),
            ("List-Id", app.composer.list_id(&app.settings().site.title)),
            ("Precedence", "bulk".into()),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(encoded: &[u8]) -> String {
        String::from_utf8(quoted_printable::decode(encoded, quoted_printable::ParseMode::Robust).unwrap()).unwrap()
    }

    #[test]
    fn stand_ins_are_filled_per_message() {
        let doc = format!("a {PREFERENCES} b {UNSUBSCRIBE} c {PREFERENCES}");
        assert_eq!(decode(&Filled::cut(&doc).fill("P", "U", "R")), "a P b U c P");
        assert_eq!(decode(&Filled::cut("none").fill("P", "U", "R")), "none");
        let tracked = format!("<a href=\"https://x/r/AAAA{READER}\">{UNSUBSCRIBE}");
        assert_eq!(
            decode(&Filled::cut(&tracked).fill("P", "U", ".7.sig")),
            "<a href=\"https://x/r/AAAA.7.sig\">U"
        );
    }

    #[test]
    fn filled_pieces_decode_to_the_whole_document() {
        let long = format!(
            "<p>caf\u{e9} = {}</p>\n{PREFERENCES}\n{} end ",
            "x".repeat(300),
            "y ".repeat(100)
        );
        let link = "https://news.example.org/preferences/abc_DEF-123";
        let encoded = Filled::cut(&long).fill(link, "unused", "unused");
        assert!(
            encoded.split(|b| *b == b'\n').all(|line| line.len() <= 78),
            "lines stay short"
        );
        assert_eq!(decode(&encoded), long.replace(PREFERENCES, link).replace('\n', "\r\n"));
    }
}
