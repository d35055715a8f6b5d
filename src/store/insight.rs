//! The figures behind the console's charts: subscribers joining and leaving by day, where
//! they came from, and what happened after each edition. Everything here is counted from
//! what Herald keeps anyway (subscriber timestamps, deliveries, bounce reports); nothing
//! tracks a reader.

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};

use super::{Db, with_pool};
use crate::domain::{SubscriberSource, SubscriberStatus};

/// Every column or expression spliced into SQL here is a constant of this module.
///
/// The UTC day of a timestamp column, as `YYYY-MM-DD` text, on each backend. SQLite keeps
/// timestamps as RFC 3339 text in UTC, so the day is its first ten characters.
fn day_of(db: &Db, column: &str) -> String {
    match db {
        Db::Sqlite(_) => format!("substr({column}, 1, 10)"),
        Db::Postgres(_) => format!("to_char({column} at time zone 'UTC', 'YYYY-MM-DD')"),
    }
}

/// When a subscriber who is no longer confirmed left: the timestamp of their status.
const LEFT_AT: &str = "case status when 'unsubscribed' then unsubscribed_at \
     when 'bounced' then bounced_at when 'complained' then complained_at end";

/// Subscribers who confirmed on one day, by how they reached the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub day: NaiveDate,
    pub source: SubscriberSource,
    pub count: i64,
}

/// Subscribers who left on one day with one status. `were_confirmed` says whether they had
/// been confirmed (a pending request that is unsubscribed never counted as a subscriber).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Left {
    pub day: NaiveDate,
    pub status: SubscriberStatus,
    pub were_confirmed: bool,
    pub count: i64,
}

fn parse_day(day: &str) -> anyhow::Result<NaiveDate> {
    NaiveDate::parse_from_str(day, "%Y-%m-%d").with_context(|| format!("{day:?} is not a day"))
}

/// Confirmations per UTC day since `since`, by source.
pub async fn joined_since(db: &Db, since: DateTime<Utc>) -> anyhow::Result<Vec<Joined>> {
    let day = day_of(db, "confirmed_at");
    let sql = format!(
        "select {day} as day, source, count(*) from subscribers where confirmed_at >= $1 \
         group by day, source order by day"
    );
    let rows: Vec<(String, SubscriberSource, i64)> =
        with_pool!(db, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(since).fetch_all(pool).await)
            .context("Failed to count confirmations by day")?;
    rows.into_iter()
        .map(|(day, source, count)| {
            Ok(Joined {
                day: parse_day(&day)?,
                source,
                count,
            })
        })
        .collect()
}

/// Unsubscribes, bounces and complaints per UTC day since `since`.
pub async fn left_since(db: &Db, since: DateTime<Utc>) -> anyhow::Result<Vec<Left>> {
    let day = day_of(db, LEFT_AT);
    let sql = format!(
        "select {day} as day, status, confirmed_at is not null as were_confirmed, count(*) \
         from subscribers where status in ('unsubscribed', 'bounced', 'complained') \
         and {LEFT_AT} >= $1 group by day, status, were_confirmed order by day"
    );
    let rows: Vec<(String, SubscriberStatus, bool, i64)> =
        with_pool!(db, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(since).fetch_all(pool).await)
            .context("Failed to count departures by day")?;
    rows.into_iter()
        .map(|(day, status, were_confirmed, count)| {
            Ok(Left {
                day: parse_day(&day)?,
                status,
                were_confirmed,
                count,
            })
        })
        .collect()
}

/// How many subscribers were confirmed at `at`: confirmed before it and not left by then.
pub async fn confirmed_at(db: &Db, at: DateTime<Utc>) -> anyhow::Result<i64> {
    let sql = format!(
        "select count(*) from subscribers where confirmed_at < $1 \
         and (status = 'confirmed' or {LEFT_AT} >= $1)"
    );
    with_pool!(db, pool => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone())).bind(at).fetch_one(pool).await)
        .context("Failed to count the subscribers confirmed at a time")
}

/// Everyone on the list now, by source and status.
pub async fn by_source(db: &Db) -> anyhow::Result<Vec<(SubscriberSource, SubscriberStatus, i64)>> {
    with_pool!(db, pool => {
        sqlx::query_as("select source, status, count(*) from subscribers group by source, status")
            .fetch_all(pool)
            .await
    })
    .context("Failed to count subscribers by source")
}

/// What happened to one edition's mail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub sent: i64,
    pub failed: i64,
    /// Addresses reported bouncing (hard or soft) for this edition.
    pub bounced: i64,
    pub complained: i64,
    /// Recipients whose last edition before they unsubscribed was this one.
    pub unsubscribed_after: i64,
}

/// What came of each of `editions` (their ids, and when the first of them was created).
/// Deliveries are counted one edition at a time so each count reads its own part of the
/// edition index; only unsubscribers' deliveries are read to find the edition they left after.
pub async fn outcomes(db: &Db, editions: &[i64], since: DateTime<Utc>) -> anyhow::Result<BTreeMap<i64, Outcome>> {
    let mut out: BTreeMap<i64, Outcome> = BTreeMap::new();
    let (Some(&first), Some(&last)) = (editions.iter().min(), editions.iter().max()) else {
        return Ok(out);
    };
    for &edition in editions {
        let counts = super::editions::counts(db, Some(edition)).await?;
        let o = out.entry(edition).or_default();
        o.sent = counts.sent;
        o.failed = counts.failed;
    }
    let reports: Vec<(i64, bool, i64)> = with_pool!(db, pool => {
        sqlx::query_as(
            "select edition_id, kind = 'complaint' as complaint, count(distinct address) \
             from bounce_events where edition_id between $1 and $2 \
             and kind in ('hard', 'soft', 'complaint') group by edition_id, complaint",
        )
        .bind(first)
        .bind(last)
        .fetch_all(pool)
        .await
    })
    .context("Failed to count bounce reports by edition")?;
    for (edition, complaint, n) in reports {
        let o = out.entry(edition).or_default();
        if complaint {
            o.complained = n;
        } else {
            o.bounced = n;
        }
    }
    // Each unsubscriber is put down to the last of these editions they were sent before
    // they left. `edition_id in (...)` with the subscriber's id seeks the (edition, subscriber) index
    // once per edition and unsubscriber.
    let list = (0..editions.len())
        .map(|i| format!("${}", i + 2))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "select s.id, d.edition_id, d.sent_at from subscribers s \
         join deliveries d on d.subscriber_id = s.id \
         where s.status = 'unsubscribed' and s.unsubscribed_at >= $1 \
         and d.edition_id in ({list}) and d.status = 'sent' and s.unsubscribed_at >= d.sent_at"
    );
    let sent: Vec<(i64, i64, DateTime<Utc>)> = with_pool!(db, pool => {
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(since);
        for id in editions {
            query = query.bind(*id);
        }
        query.fetch_all(pool).await
    })
    .context("Failed to read the editions unsubscribers last received")?;
    let mut last_sent: BTreeMap<i64, (DateTime<Utc>, i64)> = BTreeMap::new();
    for (subscriber, edition, at) in sent {
        let entry = last_sent.entry(subscriber).or_insert((at, edition));
        if (at, edition) > *entry {
            *entry = (at, edition);
        }
    }
    for (_, edition) in last_sent.into_values() {
        out.entry(edition).or_default().unsubscribed_after += 1;
    }
    Ok(out)
}
