//! A subscriber's history (`subscriber_events`, with the bounce reports of `bounce_events`),
//! the consent wordings forms have shown (`consent_texts`), and the suppression list of
//! erased addresses (`suppressions`, keyed hashes only). The events are written by the
//! functions that change a subscriber (`store::subscribers`), in the same transaction.

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::{Db, with_pool};
use crate::domain::{Actor, BounceKind, ConsentText, EventKind, HistoryEvent};

/// An event to keep.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub subscriber_id: i64,
    pub kind: EventKind,
    pub actor: &'a Actor,
    pub detail: Option<String>,
    pub wording_version: Option<String>,
    pub ip: Option<String>,
    pub at: DateTime<Utc>,
}

impl<'a> NewEvent<'a> {
    /// An event with no detail, wording or address.
    pub fn new(subscriber_id: i64, kind: EventKind, actor: &'a Actor, at: DateTime<Utc>) -> Self {
        Self {
            subscriber_id,
            kind,
            actor,
            detail: None,
            wording_version: None,
            ip: None,
            at,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// Writes a [`NewEvent`] on `$executor` (a pool or a transaction).
macro_rules! record_event {
    ($executor:expr, $event:expr) => {{
        let event: &$crate::store::history::NewEvent<'_> = $event;
        sqlx::query(
            "insert into subscriber_events (subscriber_id, kind, source, actor, detail, wording_version, ip, at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(event.subscriber_id)
        .bind(event.kind)
        .bind(event.actor.source)
        .bind(&event.actor.by)
        .bind(&event.detail)
        .bind(&event.wording_version)
        .bind(&event.ip)
        .bind(event.at)
        .execute($executor)
        .await
        .map(|_| ())
    }};
}
pub(crate) use record_event;

/// Keeps an event.
#[tracing::instrument(skip_all, fields(kind = %event.kind))]
pub async fn record(db: &Db, event: &NewEvent<'_>) -> anyhow::Result<()> {
    with_pool!(db, pool => record_event!(pool, event)).context("Failed to record a subscriber event")
}

#[derive(sqlx::FromRow)]
struct EventRow {
    kind: String,
    source: String,
    actor: Option<String>,
    detail: Option<String>,
    wording_version: Option<String>,
    ip: Option<String>,
    at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct BounceRow {
    kind: BounceKind,
    source: String,
    diagnostic: Option<String>,
    occurred_at: DateTime<Utc>,
}

/// Everything that happened to a subscriber, oldest first: their events, and the bounce and
/// complaint reports about them (a reactivation is among the events, with its reason).
#[tracing::instrument(skip_all)]
pub async fn for_subscriber(db: &Db, subscriber_id: i64) -> anyhow::Result<Vec<HistoryEvent>> {
    let (events, bounces): (Vec<EventRow>, Vec<BounceRow>) = with_pool!(db, pool => {
        let events = sqlx::query_as(
            "select kind, source, actor, detail, wording_version, ip, at from subscriber_events \
             where subscriber_id = $1 order by at, id",
        )
        .bind(subscriber_id)
        .fetch_all(pool)
        .await?;
        let bounces = sqlx::query_as(
            "select kind, source, diagnostic, occurred_at from bounce_events \
             where subscriber_id = $1 and kind <> 'reactivated' order by occurred_at, id",
        )
        .bind(subscriber_id)
        .fetch_all(pool)
        .await?;
        Ok::<_, sqlx::Error>((events, bounces))
    })
    .context("Failed to read a subscriber's history")?;
    let mut history: Vec<HistoryEvent> = events
        .into_iter()
        .map(|e| HistoryEvent {
            kind: e.kind,
            at: e.at,
            source: e.source,
            by: e.actor,
            detail: e.detail,
            wording_version: e.wording_version,
            ip: e.ip,
        })
        .collect();
    history.extend(bounces.into_iter().map(|b| {
        HistoryEvent {
            kind: match b.kind {
                BounceKind::Hard => "hard_bounce",
                BounceKind::Soft => "soft_bounce",
                BounceKind::Complaint | BounceKind::Reactivated => "complaint_report",
            }
            .to_owned(),
            at: b.occurred_at,
            source: b.source,
            by: None,
            detail: b.diagnostic,
            wording_version: None,
            ip: None,
        }
    }));
    // Stable: events of the same moment keep the order they were written in.
    history.sort_by_key(|e| e.at);
    Ok(history)
}

/// Keeps a consent wording (once per version).
pub async fn keep_consent_text(db: &Db, text: &ConsentText, now: DateTime<Utc>) -> anyhow::Result<()> {
    with_pool!(db, pool => {
        sqlx::query(
            "insert into consent_texts (version, text, created_at) values ($1, $2, $3) on conflict (version) do nothing",
        )
        .bind(&text.version)
        .bind(&text.text)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
    })
    .context("Failed to keep the consent wording")
}

/// The wording of a version, if it was kept.
pub async fn consent_text(db: &Db, version: &str) -> anyhow::Result<Option<ConsentText>> {
    let text: Option<String> = with_pool!(db, pool => {
        sqlx::query_scalar("select text from consent_texts where version = $1")
            .bind(version)
            .fetch_optional(pool)
            .await
    })
    .context("Failed to read a consent wording")?;
    Ok(text.map(|text| ConsentText {
        version: version.to_owned(),
        text,
    }))
}

/// When each of these hashed addresses was erased, for those on the suppression list.
#[tracing::instrument(skip_all, fields(hashes = hashes.len()))]
pub async fn suppressed(db: &Db, hashes: &[String]) -> anyhow::Result<Vec<(String, DateTime<Utc>)>> {
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    with_pool!(db, pool => {
        let mut query = sqlx::QueryBuilder::new("select email_hash, created_at from suppressions where email_hash in (");
        let mut list = query.separated(", ");
        for hash in hashes {
            list.push_bind(hash.clone());
        }
        query.push(")");
        query.build_query_as().fetch_all(pool).await
    })
    .context("Failed to read the suppression list")
}

/// Takes a hashed address off the suppression list (its owner subscribed again themselves).
/// Returns whether it was there.
pub async fn lift(db: &Db, hash: &str) -> anyhow::Result<bool> {
    with_pool!(db, pool => {
        sqlx::query("delete from suppressions where email_hash = $1")
            .bind(hash)
            .execute(pool)
            .await
            .map(|r| r.rows_affected() > 0)
    })
    .context("Failed to lift a suppression")
}
