//! The public archive of the emails sent: `/editions/` (a page per 20 editions, newest
//! first) and its Atom feed, `/editions/feed.atom`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Document, HTML, Site, human_date};
use crate::domain::Frequency;
use crate::feeds::{ArchiveMeta, EditionEntry, editions_atom};
use crate::store::{self, Db, editions::Edition, posts::PostLink};

/// Editions per archive page, and in the feed.
pub const ARCHIVE_PAGE: u32 = 20;

#[derive(Serialize)]
struct EditionView {
    url: String,
    subject: String,
    kind: &'static str,
    sent: String,
    sent_human: String,
    posts: Vec<LinkView>,
}

#[derive(Serialize)]
struct LinkView {
    title: String,
    url: String,
}

/// What an edition is, as a reader would name it.
fn kind(frequency: Frequency) -> &'static str {
    match frequency {
        Frequency::Immediate => "New post",
        Frequency::Daily => "Daily digest",
        Frequency::Weekly => "Weekly digest",
        Frequency::Monthly => "Monthly digest",
    }
}

fn sent_at(edition: &Edition) -> DateTime<Utc> {
    edition.created_at
}

impl Site {
    /// The editions of archive page `page` (from 1) with their posts, and the number of pages.
    async fn archive_entries(&self, db: &Db, page: u32) -> anyhow::Result<(Vec<(Edition, Vec<PostLink>)>, u32)> {
        let total = store::editions::count_archive(db).await?;
        let pages = u32::try_from((total.max(0) as u64).div_ceil(u64::from(ARCHIVE_PAGE))).unwrap_or(u32::MAX);
        let offset = (page - 1).saturating_mul(ARCHIVE_PAGE);
        let editions = store::editions::list_archive(db, ARCHIVE_PAGE, offset).await?;
        let ids: Vec<i64> = editions.iter().map(|e| e.id).collect();
        let mut posts: HashMap<i64, Vec<PostLink>> = HashMap::new();
        for (edition, post) in store::editions::posts_of(db, &ids).await? {
            posts.entry(edition).or_default().push(post);
        }
        let entries = editions
            .into_iter()
            .map(|e| {
                let posts = posts.remove(&e.id).unwrap_or_default();
                (e, posts)
            })
            .collect();
        Ok((entries, pages))
    }

    fn archive_page_url(&self, page: u32) -> String {
        if page <= 1 {
            self.settings.url_for("editions/")
        } else {
            self.settings.url_for(&format!("editions/page/{page}/"))
        }
    }

    /// Page `page` of `/editions/`; `None` past the last page (the first always exists).
    pub async fn edition_archive(&self, db: &Db, page: u32) -> anyhow::Result<Option<Document>> {
        let (entries, pages) = self.archive_entries(db, page.max(1)).await?;
        if page == 0 || (page > 1 && page > pages) {
            return Ok(None);
        }
        let views: Vec<EditionView> = entries
            .iter()
            .map(|(e, posts)| EditionView {
                url: self.settings.url_for(&format!("editions/{}", e.id)),
                subject: e.subject.clone(),
                kind: kind(e.frequency),
                sent: sent_at(e).to_rfc3339(),
                sent_human: human_date(sent_at(e)),
                posts: posts
                    .iter()
                    .map(|p| LinkView {
                        title: p.title.clone(),
                        url: self.post_url(&p.slug),
                    })
                    .collect(),
            })
            .collect();
        let mut ctx = self.context(&self.archive_page_url(page), vec![self.feed_links(None)]);
        ctx.insert("editions", &views);
        ctx.insert("archive_feed", &self.settings.url_for("editions/feed.atom"));
        ctx.insert("newer_url", &(page > 1).then(|| self.archive_page_url(page - 1)));
        ctx.insert("older_url", &(page < pages).then(|| self.archive_page_url(page + 1)));
        Ok(Some(Document {
            body: self.templates.render("web/editions.html", &ctx)?,
            content_type: HTML,
            last_modified: entries
                .iter()
                .map(|(e, _)| sent_at(e))
                .max()
                .unwrap_or(DateTime::UNIX_EPOCH),
        }))
    }

    /// `/editions/feed.atom`: the newest editions sent.
    pub async fn edition_feed(&self, db: &Db) -> anyhow::Result<Document> {
        let (entries, _) = self.archive_entries(db, 1).await?;
        let items: Vec<EditionEntry> = entries
            .iter()
            .map(|(e, posts)| EditionEntry {
                url: self.settings.url_for(&format!("editions/{}", e.id)),
                subject: e.subject.clone(),
                sent_at: sent_at(e),
                summary: format!(
                    "{}, {} post{}",
                    kind(e.frequency),
                    posts.len(),
                    if posts.len() == 1 { "" } else { "s" }
                ),
                posts: posts
                    .iter()
                    .map(|p| (p.title.clone(), self.post_url(&p.slug)))
                    .collect(),
            })
            .collect();
        let s = &self.settings.site;
        let meta = ArchiveMeta {
            title: format!("{}: email archive", s.title),
            language: s.language.clone(),
            archive_url: self.settings.url_for("editions/"),
            self_url: self.settings.url_for("editions/feed.atom"),
            author: if s.author.is_empty() {
                s.title.clone()
            } else {
                s.author.clone()
            },
        };
        Ok(Document {
            body: editions_atom(&meta, &items),
            content_type: crate::feeds::FeedFormat::Atom.content_type(),
            last_modified: items.iter().map(|e| e.sent_at).max().unwrap_or(DateTime::UNIX_EPOCH),
        })
    }
}
