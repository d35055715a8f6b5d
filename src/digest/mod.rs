//! Digests: which posts make an edition ([`Digests`]), the email each subscriber gets from
//! it (`render`), and sending it (`send`: claim, render, send, record). Uses `domain`,
//! `config`, `store`, `site` (templates, links) and `mail` (composing, transport).

mod links;
pub mod render;
pub mod send;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio::sync::Notify;

use crate::config::Settings;
use crate::domain::Frequency;
use crate::mail::Composer;
use crate::site::Site;
use crate::store::{self, Db, editions::Edition};
use render::{EditionContent, Renderer};

/// Makes editions and renders them; shared by the sender, the scheduler and the console.
pub struct Digests {
    db: Db,
    renderer: Renderer,
    /// Rung when an edition is created, so the delivery workers look at once.
    created: Arc<Notify>,
    editions: Mutex<HashMap<i64, Arc<EditionContent>>>,
}

impl Digests {
    pub fn new(db: Db, site: Arc<Site>, composer: Arc<Composer>) -> Self {
        Self {
            renderer: Renderer::new(db.clone(), site, composer),
            db,
            created: Arc::new(Notify::new()),
            editions: Mutex::new(HashMap::new()),
        }
    }

    fn settings(&self) -> &Settings {
        self.renderer.settings()
    }

    /// Renders editions, previews and tests.
    pub fn renderer(&self) -> &Renderer {
        &self.renderer
    }

    /// Rung whenever an edition is created.
    pub fn created(&self) -> Arc<Notify> {
        self.created.clone()
    }

    /// Asks the delivery workers to look for work now (after deliveries were put back).
    pub fn wake_senders(&self) {
        self.created.notify_one();
    }

    /// An edition's posts and rendered variants, loaded once per process.
    pub async fn edition_content(&self, id: i64) -> anyhow::Result<Arc<EditionContent>> {
        if let Some(c) = self.editions.lock().ok().and_then(|m| m.get(&id).cloned()) {
            return Ok(c);
        }
        let content = Arc::new(EditionContent::load(&self.renderer, id).await?);
        if let Ok(mut map) = self.editions.lock() {
            // Old editions are rarely sent again: keep the cache small.
            if map.len() >= 32 {
                map.clear();
            }
            map.insert(id, content.clone());
        }
        Ok(content)
    }
}

/// Who asked for an edition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// The scheduler, for the period whose time has come: at most one edition per period,
    /// however many instances fire.
    Scheduled(String),
    /// Every new post for `immediate`; for daily, weekly and monthly, an extra edition an admin forced
    /// (`2026-11-23#2`), which leaves the period's scheduled edition to come.
    Manual,
    /// A sync that found new posts, for `immediate` (`post-{id}`); like `Manual` otherwise.
    NewPosts,
}

/// The period an edition of `frequency` at `now` belongs to, in the schedule's time zone:
/// `2026-11-23` for daily, ISO week `2026-W48` for weekly, `2026-11` for monthly.
pub fn period_key(frequency: Frequency, now: DateTime<Utc>, tz: Tz) -> String {
    let local = now.with_timezone(&tz);
    match frequency {
        Frequency::Immediate | Frequency::Daily => local.format("%Y-%m-%d").to_string(),
        Frequency::Weekly => local.format("%G-W%V").to_string(),
        Frequency::Monthly => local.format("%Y-%m").to_string(),
    }
}

/// What composing would do, for `--dry-run`.
#[derive(Debug, Clone)]
pub struct Plan {
    pub frequency: Frequency,
    pub post_ids: Vec<i64>,
    pub recipients: i64,
}

impl Digests {
    /// New posts for a frequency, after noting posts that became public since the last look.
    /// Before Herald's first sync nothing is news.
    async fn news(
        &self,
        frequency: Frequency,
        since: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<i64>> {
        if store::meta_get(&self.db, crate::content::INITIAL_SYNC).await?.is_none() {
            return Ok(Vec::new());
        }
        store::posts::mark_public(&self.db, now, false).await?;
        store::editions::new_posts(&self.db, frequency, now, since).await
    }

    /// The editions `compose` would create, without creating them.
    pub async fn plan(&self, frequency: Frequency, since: Option<DateTime<Utc>>) -> anyhow::Result<Plan> {
        let now = Utc::now();
        let post_ids = self.news(frequency, since, now).await?;
        let recipients = store::subscribers::count_confirmed(&self.db, frequency).await?;
        Ok(Plan {
            frequency,
            post_ids,
            recipients,
        })
    }

    /// Creates the editions due for `frequency` (one per new post for `immediate`, one for the
    /// period otherwise), each with its deliveries queued. Returns the editions created now;
    /// none when there is no news or another process created them first.
    #[tracing::instrument(skip(self))]
    pub async fn compose(
        &self,
        frequency: Frequency,
        trigger: Trigger,
        since: Option<DateTime<Utc>>,
    ) -> anyhow::Result<Vec<Edition>> {
        let now = Utc::now();
        let post_ids = self.news(frequency, since, now).await?;
        if post_ids.is_empty() {
            return Ok(Vec::new());
        }
        let tz = self.settings().schedule.timezone;
        let groups: Vec<(String, Vec<i64>)> = match frequency {
            Frequency::Immediate => post_ids.iter().map(|id| (format!("post-{id}"), vec![*id])).collect(),
            Frequency::Daily | Frequency::Weekly | Frequency::Monthly => {
                let key = period_key(frequency, now, tz);
                let period = match trigger.clone() {
                    Trigger::Scheduled(period) => period,
                    // Never the period's own key: the scheduled edition keeps it free.
                    Trigger::Manual | Trigger::NewPosts => {
                        let n = store::editions::count_in_period(&self.db, frequency, &key).await?;
                        format!("{key}#{}", n + 1)
                    }
                };
                vec![(period, post_ids)]
            }
        };
        let canary = self.settings().digest.canary_percent;
        let mut created = Vec::new();
        for (period, ids) in groups {
            let posts = store::posts::find_by_ids(&self.db, &ids).await?;
            let subject = render::subject(&self.renderer, &posts)?;
            if let Some(edition) =
                store::editions::create(&self.db, frequency, &period, &subject, &ids, canary, now).await?
            {
                tracing::info!(edition = edition.id, %period, recipients = edition.recipients, posts = ids.len(), "edition created");
                created.push(edition);
            }
        }
        if !created.is_empty() {
            self.created.notify_one();
        }
        Ok(created)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn periods_follow_the_local_calendar() {
        let tz: Tz = "Europe/London".parse().unwrap();
        // 23:30 UTC on 31 May is 00:30 on 1 June in London (BST).
        let late = Utc.with_ymd_and_hms(2026, 5, 31, 23, 30, 0).unwrap();
        assert_eq!(period_key(Frequency::Daily, late, tz), "2026-06-01");
        // ISO weeks: 1 January 2027 is in week 53 of 2026.
        let new_year = Utc.with_ymd_and_hms(2027, 1, 1, 12, 0, 0).unwrap();
        assert_eq!(period_key(Frequency::Weekly, new_year, tz), "2026-W53");
        // Months too: 23:30 UTC on 31 May is already June in London.
        assert_eq!(period_key(Frequency::Monthly, late, tz), "2026-06");
        assert_eq!(period_key(Frequency::Monthly, new_year, tz), "2027-01");
    }
}
