//! The published site as documents: pages (tera templates) and feeds, rendered
//! from the store. The web server and the static export both call these.
//! Uses `domain`, `config`, `store` and `feeds`.

mod archive;
pub mod build;
pub mod cache;
mod design;
pub mod encoding;
pub mod files;
mod templates;

use std::borrow::Borrow;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

pub use cache::{CachedDocument, DocumentCache};
pub use design::{Design, FAVICON_PATH};
pub use encoding::Encoding;
pub use templates::{InlineHashes, Templates};

use crate::config::Settings;
use crate::domain::{ConsentText, Post, Slug, Subscriber, Tag};
use crate::feeds::{FeedFormat, FeedMeta};
use crate::store::{self, Db, posts::PostLink};

/// A rendered page or feed, with what conditional GET needs.
#[derive(Debug, Clone)]
pub struct Document {
    pub body: String,
    pub content_type: &'static str,
    /// The newest change among the posts it shows.
    pub last_modified: DateTime<Utc>,
}

const HTML: &str = "text/html; charset=utf-8";

/// Renders the site's pages and feeds.
pub struct Site {
    settings: Settings,
    templates: Arc<Templates>,
    site_uuid: uuid::Uuid,
    design: Design,
    /// The templates' inline hashes and the theme's.
    inline: InlineHashes,
    /// The consent wording the subscribe form shows (`web/_consent.html`), with its version.
    consent: ConsentText,
}

/// What the subscribe and preferences forms show as filled in.
#[derive(Debug, Clone, Serialize)]
pub struct SubscribeForm {
    pub email: String,
    pub name: String,
    pub frequency: String,
    pub topics: Vec<String>,
}

impl SubscribeForm {
    pub fn default_for(settings: &Settings) -> Self {
        Self {
            email: String::new(),
            name: String::new(),
            frequency: settings.subscribers.default_frequency.as_str().to_owned(),
            topics: Vec::new(),
        }
    }
}

#[derive(Serialize)]
struct Choice {
    value: &'static str,
    label: &'static str,
}

/// What templates know of the site as `site`.
#[derive(Serialize)]
pub struct SiteView<'a> {
    title: &'a str,
    description: &'a str,
    language: &'a str,
    author: &'a str,
    base_url: &'a str,
    /// What is recorded of clicks in digests (`[tracking]`): `off`, `anonymous` or `named`,
    /// for the privacy note of the subscribe form.
    clicks: &'static str,
    #[serde(flatten)]
    design: &'a Design,
}

#[derive(Serialize)]
struct FeedLinks {
    title: String,
    rss: String,
    atom: String,
    json: String,
}

#[derive(Serialize)]
struct TagView {
    name: String,
    slug: String,
    url: String,
    feed_url: String,
}

#[derive(Serialize)]
struct PostView<'a> {
    title: &'a str,
    slug: &'a str,
    url: String,
    published: String,
    published_human: String,
    updated: String,
    updated_human: String,
    was_updated: bool,
    authors: &'a [String],
    tags: Vec<TagView>,
    summary: Option<&'a str>,
    image: Option<&'a str>,
    image_alt: Option<&'a str>,
    content_html: &'a str,
}

#[derive(Serialize)]
struct NeighbourView {
    title: String,
    url: String,
}

#[derive(Serialize)]
struct Pagination {
    page: u32,
    total_pages: u32,
    total_posts: i64,
    newer_url: Option<String>,
    older_url: Option<String>,
}

/// The words of an HTML fragment: tags dropped, the entities tera escapes with turned back.
fn text_of(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&#x2F;", "/")
        .replace("&amp;", "&")
}

fn human_date(d: DateTime<Utc>) -> String {
    d.format("%-d %B %Y").to_string()
}

impl Site {
    pub async fn new(settings: Settings, templates: Arc<Templates>, db: &Db) -> anyhow::Result<Self> {
        let site_uuid = store::site_uuid(db).await?;
        let design = Design::new(&settings);
        let mut inline = templates.inline_hashes().clone();
        inline.styles.push(design.theme_hash());
        let mut site = Self {
            settings,
            templates,
            site_uuid,
            design,
            inline,
            consent: ConsentText::new(""),
        };
        site.consent = site.consent_wording()?;
        // Every wording a form of this site shows is kept, so the version a subscriber's
        // request carries can always be shown as words. Templates and settings are read once
        // at start, so this is the one wording this process shows.
        if let Err(e) = store::history::keep_consent_text(db, &site.consent, Utc::now()).await {
            tracing::warn!(error = format!("{e:#}"), "the consent wording could not be kept");
        }
        Ok(site)
    }

    /// The text of `web/_consent.html` as rendered for this site: what a subscriber agrees to.
    fn consent_wording(&self) -> anyhow::Result<ConsentText> {
        let mut ctx = tera::Context::new();
        ctx.insert("site", &self.site_view());
        let html = self
            .templates
            .render("web/_consent.html", &ctx)
            .context("Failed to render the consent wording (web/_consent.html)")?;
        Ok(ConsentText::new(&text_of(&html)))
    }

    /// The consent wording the subscribe form shows, with its version.
    pub fn consent(&self) -> &ConsentText {
        &self.consent
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Hashes of the pages' inline styles and scripts, for the Content-Security-Policy.
    pub fn inline_hashes(&self) -> &InlineHashes {
        &self.inline
    }

    /// The generated icon served at `/favicon.svg`.
    pub fn favicon_svg(&self) -> &str {
        &self.design.favicon_svg
    }

    fn base(&self) -> &str {
        self.settings.site.base_url.as_str()
    }

    /// URL of page `n` of the home page (`None`) or of a tag's page.
    pub fn listing_url(&self, tag: Option<&str>, page: u32) -> String {
        let mut url = self.base().to_owned();
        if let Some(tag) = tag {
            url.push_str(&format!("tags/{tag}/"));
        }
        if page > 1 {
            url.push_str(&format!("page/{page}/"));
        }
        url
    }

    /// Where a subscriber manages their choices (the link in every mail they get).
    pub fn preferences_url(&self, subscriber: &Subscriber) -> String {
        self.settings
            .url_for(&format!("preferences/{}", subscriber.manage_token))
    }

    /// Where a subscriber leaves the list in one click.
    pub fn unsubscribe_url(&self, subscriber: &Subscriber) -> String {
        self.settings
            .url_for(&format!("unsubscribe/{}", subscriber.manage_token))
    }

    /// A reader's private feed, for the token that opens it.
    pub fn reader_feed_url(&self, token: &str) -> String {
        format!("{}feeds/{token}.atom", self.base())
    }

    pub fn post_url(&self, slug: &str) -> String {
        format!("{}posts/{slug}/", self.base())
    }

    pub fn feed_url(&self, tag: Option<&str>, format: FeedFormat) -> String {
        match tag {
            Some(tag) => format!("{}tags/{tag}/{}", self.base(), format.file_name()),
            None => format!("{}{}", self.base(), format.file_name()),
        }
    }

    fn feed_links(&self, tag: Option<&Tag>) -> FeedLinks {
        let slug = tag.map(Tag::slug);
        FeedLinks {
            title: match tag {
                Some(t) => format!("{}: {}", self.settings.site.title, t.name()),
                None => self.settings.site.title.clone(),
            },
            rss: self.feed_url(slug, FeedFormat::Rss),
            atom: self.feed_url(slug, FeedFormat::Atom),
            json: self.feed_url(slug, FeedFormat::Json),
        }
    }

    fn tag_view(&self, tag: &Tag) -> TagView {
        TagView {
            name: tag.name().to_owned(),
            slug: tag.slug().to_owned(),
            url: self.listing_url(Some(tag.slug()), 1),
            feed_url: self.feed_url(Some(tag.slug()), FeedFormat::Atom),
        }
    }

    fn post_view<'a>(&self, post: &'a Post) -> PostView<'a> {
        let updated = post.updated_at.max(post.published_at);
        PostView {
            title: &post.title,
            slug: post.slug.as_str(),
            url: self.post_url(post.slug.as_str()),
            published: post.published_at.to_rfc3339(),
            published_human: human_date(post.published_at),
            updated: updated.to_rfc3339(),
            updated_human: human_date(updated),
            was_updated: updated.date_naive() != post.published_at.date_naive(),
            authors: &post.authors,
            tags: post.tags.iter().map(|t| self.tag_view(t)).collect(),
            summary: post.summary.as_deref(),
            image: post.image.as_deref(),
            image_alt: post.image_alt.as_deref(),
            content_html: &post.content_html,
        }
    }

    /// The `site` every template sees.
    pub fn site_view(&self) -> SiteView<'_> {
        let s = &self.settings.site;
        SiteView {
            title: &s.title,
            description: &s.description,
            language: &s.language,
            author: &s.author,
            base_url: self.base(),
            clicks: match self.settings.tracking {
                t if !t.clicks => "off",
                t if t.anonymous => "anonymous",
                _ => "named",
            },
            design: &self.design,
        }
    }

    /// A template context with `site`, `canonical_url` and the feeds to advertise.
    fn context(&self, canonical_url: &str, feeds: Vec<FeedLinks>) -> tera::Context {
        let mut ctx = tera::Context::new();
        ctx.insert("site", &self.site_view());
        ctx.insert("canonical_url", canonical_url);
        ctx.insert("feeds", &feeds);
        ctx
    }

    fn newest_change<P: Borrow<Post>>(&self, posts: &[P]) -> DateTime<Utc> {
        posts
            .iter()
            .map(|p| p.borrow())
            .map(|p| p.updated_at.max(p.published_at))
            .max()
            .unwrap_or(DateTime::UNIX_EPOCH)
    }

    /// `Some(None)` for the whole site, `Some(Some(tag))` for a tag with public posts, `None` for
    /// a tag without: there is no such page.
    async fn public_tag(&self, db: &Db, tag: Option<&str>, now: DateTime<Utc>) -> anyhow::Result<Option<Option<Tag>>> {
        match tag {
            None => Ok(Some(None)),
            Some(slug) => Ok(store::posts::find_public_tag(db, slug, now).await?.map(Some)),
        }
    }

    /// Page `page` (from 1) of the home page, or of a tag's page; `None` past the last page
    /// or for a tag no public post carries.
    pub async fn listing(
        &self,
        db: &Db,
        tag: Option<&str>,
        page: u32,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<Document>> {
        let Some(tag) = self.public_tag(db, tag, now).await? else {
            return Ok(None);
        };
        let slug = tag.as_ref().map(Tag::slug);
        let per_page = self.settings.site.page_size.get();
        let total = store::posts::count_public(db, now, slug).await?;
        if page == 0 || page > self.page_count(total) {
            return Ok(None);
        }
        let posts = store::posts::list_public(db, now, slug, per_page, (page - 1).saturating_mul(per_page)).await?;
        let topics: Vec<Tag> = store::posts::public_tags(db, now)
            .await?
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        self.listing_document(tag.as_ref(), page, total, &posts, &topics)
            .map(Some)
    }

    /// How many listing pages `total` posts fill (at least one, which may be empty).
    pub fn page_count(&self, total: i64) -> u32 {
        let per_page = u64::from(self.settings.site.page_size.get());
        u32::try_from((total.max(0) as u64).div_ceil(per_page))
            .unwrap_or(u32::MAX)
            .max(1)
    }

    /// Renders page `page` of a listing from its posts, already read.
    pub fn listing_document<P: Borrow<Post>>(
        &self,
        tag: Option<&Tag>,
        page: u32,
        total: i64,
        posts: &[P],
        topics: &[Tag],
    ) -> anyhow::Result<Document> {
        let slug = tag.map(Tag::slug);
        let total_pages = self.page_count(total);
        let canonical = self.listing_url(slug, page);
        let mut feeds = vec![self.feed_links(None)];
        if let Some(t) = tag {
            feeds.insert(0, self.feed_links(Some(t)));
        }
        let mut ctx = self.context(&canonical, feeds);
        ctx.extend(self.subscribe_form(topics, &SubscribeForm::default_for(&self.settings), None));
        ctx.insert(
            "posts",
            &posts.iter().map(|p| self.post_view(p.borrow())).collect::<Vec<_>>(),
        );
        ctx.insert("tag", &tag.map(|t| self.tag_view(t)));
        ctx.insert(
            "pagination",
            &Pagination {
                page,
                total_pages,
                total_posts: total,
                newer_url: (page > 1).then(|| self.listing_url(slug, page - 1)),
                older_url: (page < total_pages).then(|| self.listing_url(slug, page + 1)),
            },
        );
        Ok(Document {
            body: self.templates.render("web/index.html", &ctx)?,
            content_type: HTML,
            last_modified: self.newest_change(posts),
        })
    }

    /// A post's page, if the slug names a public post.
    pub async fn post(&self, db: &Db, slug: &str, now: DateTime<Utc>) -> anyhow::Result<Option<Document>> {
        let Ok(slug) = Slug::parse(slug) else {
            return Ok(None);
        };
        let Some(post) = store::posts::find_public(db, &slug, now).await? else {
            return Ok(None);
        };
        let (older, newer) = store::posts::neighbours(db, &post, now).await?;
        self.post_document(&post, older.as_ref(), newer.as_ref()).map(Some)
    }

    /// Renders a post's page from a post already read, with links to the posts before
    /// (`older`) and after it (`newer`).
    pub fn post_document(
        &self,
        post: &Post,
        older: Option<&PostLink>,
        newer: Option<&PostLink>,
    ) -> anyhow::Result<Document> {
        let slug = &post.slug;
        let mut ctx = self.context(&self.post_url(slug.as_str()), vec![self.feed_links(None)]);
        ctx.insert("post", &self.post_view(post));
        let link = |p: &PostLink| NeighbourView {
            title: p.title.clone(),
            url: self.post_url(&p.slug),
        };
        ctx.insert("older", &older.map(link));
        ctx.insert("newer", &newer.map(link));
        // A newer post appearing changes this page too.
        let last_modified = self
            .newest_change(std::slice::from_ref(post))
            .max(newer.map_or(DateTime::UNIX_EPOCH, |p| p.published_at));
        Ok(Document {
            body: self.templates.render("web/post.html", &ctx)?,
            content_type: HTML,
            last_modified,
        })
    }

    /// The site-wide feed or a tag's, newest `[feeds] limit` posts first.
    pub async fn feed(
        &self,
        db: &Db,
        format: FeedFormat,
        tag: Option<&str>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<Document>> {
        let Some(tag) = self.public_tag(db, tag, now).await? else {
            return Ok(None);
        };
        let slug = tag.as_ref().map(Tag::slug);
        let posts = store::posts::list_public(db, now, slug, self.settings.feeds.limit.get(), 0).await?;
        Ok(Some(self.feed_document(format, tag.as_ref(), &posts)))
    }

    /// Every public post, newest first, read a page at a time.
    pub async fn all_public_posts(db: &Db, now: DateTime<Utc>) -> anyhow::Result<Vec<Post>> {
        // Each page walks the rows before it again (OFFSET), and the tags of a page are read
        // with one bind per post: big pages, but within both backends' bind limits.
        const PER_QUERY: u32 = 5_000;
        let mut posts = Vec::new();
        loop {
            let batch = store::posts::list_public(db, now, None, PER_QUERY, posts.len() as u32).await?;
            let done = batch.len() < PER_QUERY as usize;
            posts.extend(batch);
            if done {
                return Ok(posts);
            }
        }
    }

    /// `sitemap.xml` (sitemaps.org 0.9): the home page, every public post with the time it
    /// last changed, and every tag's page.
    pub async fn sitemap(&self, db: &Db, now: DateTime<Utc>) -> anyhow::Result<Document> {
        let posts = Self::all_public_posts(db, now).await?;
        let tags = store::posts::public_tags(db, now).await?;
        Ok(self.sitemap_document(&posts, &tags.iter().map(|(t, _)| t.clone()).collect::<Vec<_>>()))
    }

    pub fn sitemap_document(&self, posts: &[Post], tags: &[Tag]) -> Document {
        let last_modified = posts.iter().map(|p| p.updated_at).max().unwrap_or(DateTime::UNIX_EPOCH);
        let mut body = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n",
        );
        let mut entry = |url: &str, changed: Option<DateTime<Utc>>| {
            body.push_str("<url><loc>");
            body.push_str(&html_escape::encode_text(url));
            body.push_str("</loc>");
            if let Some(changed) = changed {
                body.push_str(&format!("<lastmod>{}</lastmod>", changed.format("%Y-%m-%dT%H:%M:%SZ")));
            }
            body.push_str("</url>\n");
        };
        entry(&self.listing_url(None, 1), posts.first().map(|_| last_modified));
        if !tags.is_empty() {
            entry(&self.settings.url_for("tags/"), None);
        }
        for post in posts {
            entry(&self.post_url(post.slug.as_str()), Some(post.updated_at));
        }
        for tag in tags {
            entry(&self.listing_url(Some(tag.slug()), 1), None);
        }
        body.push_str("</urlset>\n");
        Document {
            body,
            content_type: "application/xml; charset=utf-8",
            last_modified,
        }
    }

    /// `/tags/`: every topic with a public post, how many, and its page and feed.
    pub async fn tags_index(&self, db: &Db, now: DateTime<Utc>) -> anyhow::Result<Document> {
        let tags = store::posts::public_tags(db, now).await?;
        let last_modified = store::posts::stamp(db, now)
            .await?
            .last_change
            .unwrap_or(DateTime::UNIX_EPOCH);
        self.tags_document(&tags, last_modified)
    }

    pub fn tags_document(&self, tags: &[(Tag, i64)], last_modified: DateTime<Utc>) -> anyhow::Result<Document> {
        #[derive(Serialize)]
        struct TopicView {
            name: String,
            url: String,
            feed_url: String,
            posts: i64,
        }
        let topics: Vec<TopicView> = tags
            .iter()
            .map(|(tag, posts)| TopicView {
                name: tag.name().to_owned(),
                url: self.listing_url(Some(tag.slug()), 1),
                feed_url: self.feed_url(Some(tag.slug()), FeedFormat::Atom),
                posts: *posts,
            })
            .collect();
        let mut ctx = tera::Context::new();
        ctx.insert("topics", &topics);
        Ok(Document {
            body: self.page("web/tags.html", "tags/", ctx)?,
            content_type: HTML,
            last_modified,
        })
    }

    /// `robots.txt`: everything but the console may be crawled; it names the sitemap.
    pub fn robots(&self) -> String {
        format!(
            "User-agent: *\nDisallow: /admin/\nSitemap: {}\n",
            self.settings.url_for("sitemap.xml")
        )
    }

    /// Renders a feed from its posts (newest first); only the first `[feeds] limit` are used.
    pub fn feed_document(&self, format: FeedFormat, tag: Option<&Tag>, posts: &[Post]) -> Document {
        let posts = &posts[..posts.len().min(self.settings.feeds.limit.get() as usize)];
        let meta = self.feed_meta(tag);
        Document {
            body: format.render(&meta, posts),
            content_type: format.content_type(),
            last_modified: self.newest_change(posts),
        }
    }

    /// A reader's private feed (Atom), served at `url`: `posts` are those of their `topics`
    /// (all posts when they chose none), newest first.
    pub fn reader_feed(&self, subscriber_id: i64, topics: &[Tag], url: &str, posts: &[Post]) -> Document {
        let posts = &posts[..posts.len().min(self.settings.feeds.limit.get() as usize)];
        let mut meta = self.feed_meta(None);
        if !topics.is_empty() {
            let names: Vec<&str> = topics.iter().map(Tag::name).collect();
            meta.title = format!("{}: {}", self.settings.site.title, names.join(", "));
        }
        // The feed stays the same feed when its address is renewed.
        let id = uuid::Uuid::new_v5(&self.site_uuid, format!("reader-feed/{subscriber_id}").as_bytes());
        meta.id = format!("urn:uuid:{id}");
        meta.rss_url = url.to_owned();
        meta.atom_url = url.to_owned();
        meta.json_url = url.to_owned();
        Document {
            body: FeedFormat::Atom.render(&meta, posts),
            content_type: FeedFormat::Atom.content_type(),
            last_modified: self.newest_change(posts),
        }
    }

    fn feed_meta(&self, tag: Option<&Tag>) -> FeedMeta {
        let s = &self.settings.site;
        let slug = tag.map(Tag::slug);
        let id = match tag {
            None => self.site_uuid,
            Some(t) => uuid::Uuid::new_v5(&self.site_uuid, t.slug().as_bytes()),
        };
        FeedMeta {
            title: self.feed_links(tag).title,
            description: match tag {
                Some(t) => format!("Posts about {} from {}", t.name(), s.title),
                None => s.description.clone(),
            },
            language: s.language.clone(),
            site_url: self.base().to_owned(),
            home_url: self.listing_url(slug, 1),
            rss_url: self.feed_url(slug, FeedFormat::Rss),
            atom_url: self.feed_url(slug, FeedFormat::Atom),
            json_url: self.feed_url(slug, FeedFormat::Json),
            id: format!("urn:uuid:{id}"),
            default_author: s.author.clone(),
            empty_updated: DateTime::UNIX_EPOCH,
            hubs: self.settings.feeds.websub_hubs.iter().map(|u| u.to_string()).collect(),
        }
    }

    /// A page outside the posts (subscription pages): `template` with `extra` added to the context.
    pub fn page(&self, template: &str, canonical_path: &str, extra: tera::Context) -> anyhow::Result<String> {
        let mut ctx = self.context(
            &format!("{}{}", self.base(), canonical_path.trim_start_matches('/')),
            vec![self.feed_links(None)],
        );
        ctx.extend(extra);
        self.templates.render(template, &ctx)
    }

    /// The context the subscribe and preferences forms need: choices, topics, what is filled in.
    pub fn subscribe_form(&self, topics: &[Tag], form: &SubscribeForm, error: Option<&str>) -> tera::Context {
        let mut ctx = tera::Context::new();
        ctx.insert(
            "frequencies",
            &[
                Choice {
                    value: "immediate",
                    label: "Every new post",
                },
                Choice {
                    value: "daily",
                    label: "Daily digest",
                },
                Choice {
                    value: "weekly",
                    label: "Weekly digest",
                },
                Choice {
                    value: "monthly",
                    label: "Monthly digest",
                },
            ],
        );
        ctx.insert("topics", &topics.iter().map(|t| self.tag_view(t)).collect::<Vec<_>>());
        ctx.insert("form", form);
        ctx.insert("form_error", &error);
        ctx.insert("consent_version", &self.consent.version);
        ctx
    }

    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    /// The page shown for an unknown address.
    pub fn not_found(&self) -> anyhow::Result<String> {
        let ctx = self.context(self.base(), vec![self.feed_links(None)]);
        self.templates
            .render("web/404.html", &ctx)
            .context("Failed to render the not-found page")
    }
}
