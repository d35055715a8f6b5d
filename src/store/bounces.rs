//! Bounce events: every bounce, complaint and reactivation reported for an address. The
//! policy that decides what they do to a subscriber is `crate::bounces`; this only keeps
//! and reads them.

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::{Db, with_pool};
use crate::domain::{BounceEvent, BounceKind, BounceSource};

/// An event to keep.
#[derive(Debug, Clone)]
pub struct NewBounceEvent<'a> {
    pub subscriber_id: Option<i64>,
    /// Lowercased by the caller.
    pub address: &'a str,
    pub kind: BounceKind,
    /// Already cleaned ([`crate::domain::clean_diagnostic`]).
    pub diagnostic: Option<&'a str>,
    pub source: BounceSource,
    pub edition_id: Option<i64>,
    pub external_id: Option<&'a str>,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    subscriber_id: Option<i64>,
    address: String,
    kind: BounceKind,
    diagnostic: Option<String>,
    source: BounceSource,
    edition_id: Option<i64>,
    external_id: Option<String>,
    occurred_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
}

impl From<Row> for BounceEvent {
    fn from(r: Row) -> Self {
        BounceEvent {
            id: r.id,
            subscriber_id: r.subscriber_id,
            address: r.address,
            kind: r.kind,
            diagnostic: r.diagnostic,
            source: r.source,
            edition_id: r.edition_id,
            external_id: r.external_id,
            occurred_at: r.occurred_at,
            recorded_at: r.recorded_at,
        }
    }
}

const COLUMNS: &str =
    "id, subscriber_id, address, kind, diagnostic, source, edition_id, external_id, occurred_at, recorded_at";

/// Keeps an event; `None` if an event with the same `external_id` is already kept (a
/// provider retrying its webhook), in which case nothing is written.
#[tracing::instrument(skip_all, fields(kind = %event.kind, source = %event.source))]
pub async fn insert(db: &Db, event: &NewBounceEvent<'_>) -> anyhow::Result<Option<i64>> {
    with_pool!(db, pool => {
        sqlx::query_scalar(
            "insert into bounce_events (subscriber_id, address, kind, diagnostic, source, edition_id, \
             external_id, occurred_at, recorded_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             on conflict (external_id) do nothing returning id",
        )
        .bind(event.subscriber_id)
        .bind(event.address)
        .bind(event.kind)
        .bind(event.diagnostic)
        .bind(event.source)
        .bind(event.edition_id)
        .bind(event.external_id)
        .bind(event.occurred_at)
        .bind(event.recorded_at)
        .fetch_optional(pool)
        .await
    })
    .context("Failed to store a bounce event")
}

/// Whether an event with this provider id is already kept.
pub async fn external_id_known(db: &Db, external_id: &str) -> anyhow::Result<bool> {
    let found: Option<i64> = with_pool!(db, pool => {
        sqlx::query_scalar("select id from bounce_events where external_id = $1")
            .bind(external_id)
            .fetch_optional(pool)
            .await
    })
    .context("Failed to look up a bounce event")?;
    Ok(found.is_some())
}

/// How many soft bounces of a subscriber occurred at or after `since` and after their last
/// reactivation (a reactivated address starts counting afresh).
#[tracing::instrument(skip_all)]
pub async fn soft_count_since(db: &Db, subscriber_id: i64, since: DateTime<Utc>) -> anyhow::Result<i64> {
    with_pool!(db, pool => {
        sqlx::query_scalar(
            "select count(*) from bounce_events where subscriber_id = $1 and kind = 'soft' and occurred_at >= $2 \
             and not exists (select 1 from bounce_events r where r.subscriber_id = $1 and r.kind = 'reactivated' \
             and r.recorded_at > bounce_events.recorded_at)",
        )
        .bind(subscriber_id)
        .bind(since)
        .fetch_one(pool)
        .await
    })
    .context("Failed to count soft bounces")
}

/// A subscriber's events, newest first, at most `limit`.
#[tracing::instrument(skip_all)]
pub async fn for_subscriber(db: &Db, subscriber_id: i64, limit: u32) -> anyhow::Result<Vec<BounceEvent>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from bounce_events where subscriber_id = $1 order by occurred_at desc, id desc limit $2"
    ));
    let rows: Vec<Row> = with_pool!(db, pool => {
        sqlx::query_as(sql).bind(subscriber_id).bind(i64::from(limit)).fetch_all(pool).await
    })
    .context("Failed to list a subscriber's bounce events")?;
    Ok(rows.into_iter().map(BounceEvent::from).collect())
}

/// The events recorded for an address (lowercased), newest first, at most `limit`.
#[tracing::instrument(skip_all)]
pub async fn for_address(db: &Db, address: &str, limit: u32) -> anyhow::Result<Vec<BounceEvent>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from bounce_events where address = $1 order by occurred_at desc, id desc limit $2"
    ));
    let rows: Vec<Row> = with_pool!(db, pool => {
        sqlx::query_as(sql).bind(address).bind(i64::from(limit)).fetch_all(pool).await
    })
    .context("Failed to list an address's bounce events")?;
    Ok(rows.into_iter().map(BounceEvent::from).collect())
}

/// Whether an edition with this id exists (a Message-ID may name one since deleted).
pub async fn edition_exists(db: &Db, edition_id: i64) -> anyhow::Result<bool> {
    let found: Option<i64> = with_pool!(db, pool => {
        sqlx::query_scalar("select id from editions where id = $1").bind(edition_id).fetch_optional(pool).await
    })
    .context("Failed to look up an edition")?;
    Ok(found.is_some())
}

/// Keeps the hard bounce an SMTP server gave during a digest send (`$1` subscriber, `$2`
/// now, `$3` diagnostic, `$4` edition), in the transaction that records the delivery.
pub(crate) const INSERT_SMTP_HARD: &str = "insert into bounce_events (subscriber_id, address, kind, diagnostic, \
     source, edition_id, occurred_at, recorded_at) \
     select id, lower(email), 'hard', $3, 'smtp', $4, $2, $2 from subscribers where id = $1";
