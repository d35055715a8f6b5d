//! Digests: which posts make an edition, and the email each subscriber gets from it.

pub mod render;
pub mod send;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::domain::Frequency;
use crate::startup::App;
use crate::store::{self, editions::Edition};

/// Who asked for an edition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// The scheduler, for the period whose time has come: at most one edition per period,
    /// however many instances fire.
    Scheduled(String),
    /// Every new post for `immediate`; for daily and weekly, an extra edition an admin forced
    /// (`2026-11-23#2`), which leaves the period's scheduled edition to come.
    Manual,
}

/// The period an edition of `frequency` at `now` belongs to, in the schedule's time zone:
/// `2026-11-23` for daily, ISO week `2026-W48` for weekly.
pub fn period_key(frequency: Frequency, now: DateTime<Utc>, tz: Tz) -> String {
    let local = now.with_timezone(&tz);
    match frequency {
        Frequency::Immediate | Frequency::Daily => local.format("%Y-%m-%d").to_string(),
        Frequency::Weekly => local.format("%G-W%V").to_string(),
    }
}

/// What composing would do, for `--dry-run`.
#[derive(Debug, Clone)]
pub struct Plan {
    pub frequency: Frequency,
    pub post_ids: Vec<i64>,
    pub recipients: i64,
}

/// New posts for a frequency, after noting posts that became public since the last look.
/// Before Herald's first sync nothing is news.
async fn news(
    app: &App,
    frequency: Frequency,
    since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<i64>> {
    if store::meta_get(&app.db, crate::content::INITIAL_SYNC).await?.is_none() {
        return Ok(Vec::new());
    }
    store::posts::mark_public(&app.db, now, false).await?;
    store::editions::new_posts(&app.db, frequency, now, since).await
}

/// The editions `compose` would create, without creating them.
pub async fn plan(app: &App, frequency: Frequency, since: Option<DateTime<Utc>>) -> anyhow::Result<Plan> {
    let now = Utc::now();
    let post_ids = news(app, frequency, since, now).await?;
    let recipients = store::subscribers::count_confirmed(&app.db, frequency).await?;
    Ok(Plan {
        frequency,
        post_ids,
        recipients,
    })
}

/// Creates the editions due for `frequency` (one per new post for `immediate`, one for the
/// period otherwise), each with its deliveries queued. Returns the editions created now;
/// none when there is no news or another process created them first.
#[tracing::instrument(skip(app))]
pub async fn compose(
    app: &App,
    frequency: Frequency,
    trigger: Trigger,
    since: Option<DateTime<Utc>>,
) -> anyhow::Result<Vec<Edition>> {
    let now = Utc::now();
    let post_ids = news(app, frequency, since, now).await?;
    if post_ids.is_empty() {
        return Ok(Vec::new());
    }
    let tz = app.settings.schedule.timezone;
    let groups: Vec<(String, Vec<i64>)> = match frequency {
        Frequency::Immediate => post_ids.iter().map(|id| (format!("post-{id}"), vec![*id])).collect(),
        Frequency::Daily | Frequency::Weekly => {
            let key = period_key(frequency, now, tz);
            let period = match trigger.clone() {
                Trigger::Scheduled(period) => period,
                // Never the period's own key: the scheduled edition keeps it free.
                Trigger::Manual => {
                    let n = store::editions::count_in_period(&app.db, frequency, &key).await?;
                    format!("{key}#{}", n + 1)
                }
            };
            vec![(period, post_ids)]
        }
    };
    let mut created = Vec::new();
    for (period, ids) in groups {
        let posts = store::posts::find_by_ids(&app.db, &ids).await?;
        let subject = render::subject(app, &posts)?;
        if let Some(edition) = store::editions::create(&app.db, frequency, &period, &subject, &ids, now).await? {
            tracing::info!(edition = edition.id, %period, recipients = edition.recipients, posts = ids.len(), "edition created");
            created.push(edition);
        }
    }
    if !created.is_empty() {
        app.wake_delivery();
    }
    Ok(created)
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
    }
}
