//! The delivery queue: claimed in batches under a lease and a token, outcomes written as
//! they complete (grouped into one transaction when several complete together).

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::subscribers::{status_in, void_confirmations};
use super::{BeginWrite, Db, DbConn, with_pool};
use crate::domain::SubscriberEvent;

/// A delivery a worker holds until its lease runs out.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: i64,
    pub edition_id: i64,
    pub subscriber_id: i64,
    pub attempts: i32,
}

/// What became of a delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Sent,
    /// Nothing to send this subscriber (their topics match none of the posts).
    Skipped,
    Retry {
        at: DateTime<Utc>,
        error: String,
    },
    /// Given up; `bounce` suppresses the subscriber from every later edition. Written as
    /// [`Outcome::Released`] instead when the edition is paused by then: a refusal that came
    /// while the edition was pausing itself is tried again on resume.
    Failed {
        error: String,
        bounce: bool,
    },
    /// Not sent, and not counted as an attempt: the edition paused (or was cancelled) after
    /// the delivery was claimed. Back to the queue, due now.
    Released,
}

/// Whether a row of `deliveries` may be claimed as far as its edition goes: the edition is
/// sending, or it is sending its canary sample and the row is in it. Never a paused,
/// cancelled or finished edition's. (A subquery, not a join: PostgreSQL's `for update` then
/// locks the deliveries alone, never the edition's row that a pause updates.)
macro_rules! claimable {
    () => {
        "exists (select 1 from editions e where e.id = deliveries.edition_id \
         and (e.status = 'sending' or (e.status = 'canary' and deliveries.canary)))"
    };
}

/// Claims up to `limit` due deliveries: pending ones whose time has come, and sending ones
/// whose worker's lease ran out (it died, or stalled past its lease). They are leased until
/// `lease_until` under `token`: only the holder of the token can record or extend them.
/// PostgreSQL skips rows another instance is claiming at the same moment.
#[tracing::instrument(skip_all)]
pub async fn claim(
    db: &Db,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
    token: i64,
) -> anyhow::Result<Vec<Claimed>> {
    macro_rules! claim_sql {
        ($lock:literal) => {
            concat!(
                "update deliveries set status = 'sending', attempts = attempts + 1, next_attempt_at = $2, ",
                "lease_token = $4 where id in (select id from deliveries where status in ('pending', 'sending') ",
                "and next_attempt_at <= $1 and ",
                claimable!(),
                " order by next_attempt_at, id limit $3",
                $lock,
                ") returning id, edition_id, subscriber_id, attempts"
            )
        };
    }
    let limit = i64::from(limit);
    let claimed: sqlx::Result<Vec<Claimed>> = match db {
        Db::Sqlite(pool) => {
            let mut tx = pool.begin_write().await?;
            let rows = sqlx::query_as(claim_sql!(""))
                .bind(now)
                .bind(lease_until)
                .bind(limit)
                .bind(token)
                .fetch_all(&mut *tx)
                .await;
            tx.commit().await?;
            rows
        }
        Db::Postgres(pool) => {
            sqlx::query_as(claim_sql!(" for update skip locked"))
                .bind(now)
                .bind(lease_until)
                .bind(limit)
                .bind(token)
                .fetch_all(pool)
                .await
        }
    };
    claimed.context("Failed to claim deliveries")
}

/// Extends the lease on the rows still held under `token` that are not yet recorded.
/// Returns how many it extended.
pub async fn extend_lease(db: &Db, token: i64, lease_until: DateTime<Utc>) -> anyhow::Result<u64> {
    with_pool!(db, pool => {
        sqlx::query("update deliveries set next_attempt_at = $2 where lease_token = $1 and status = 'sending'")
            .bind(token)
            .bind(lease_until)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })
    .context("Failed to extend a delivery lease")
}

/// One outcome to write: the delivery, the claim it was made under, and what became of it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub delivery: Claimed,
    pub token: i64,
    pub outcome: Outcome,
}

/// Writes outcomes, and applies a bounce to the subscriber as the state machine decides. A row is written only while it is
/// still held under the claim's token; returns the ids of the deliveries whose claim was lost
/// (another worker has them now), which were not written.
#[tracing::instrument(skip_all, fields(count = outcomes.len()))]
pub async fn record(db: &Db, outcomes: &[Recorded], now: DateTime<Utc>) -> anyhow::Result<Vec<i64>> {
    record_on(&mut db.acquire().await?, outcomes, now).await
}

/// A connection for [`record_on`], held by the outcome writer so a write costs no pool round
/// trip. On PostgreSQL its commits do not wait for the WAL to reach the disk
/// (`synchronous_commit = off`, on this connection only, which is closed rather than returned
/// to the pool): a crash of the database server itself may forget the outcomes of its last
/// fraction of a second, whose messages are then sent again, never lost. A crash of Herald
/// loses nothing that was committed.
pub async fn outcome_connection(db: &Db) -> anyhow::Result<DbConn> {
    let mut conn = db.acquire().await?;
    match &mut conn {
        DbConn::Sqlite(c) => c.close_on_drop(),
        DbConn::Postgres(c) => {
            c.close_on_drop();
            sqlx::query("set synchronous_commit = off")
                .execute(&mut **c)
                .await
                .context("Failed to prepare the outcome connection")?;
        }
    }
    Ok(conn)
}

/// [`record`] on a connection the caller holds. The outcomes of one claim that were sent,
/// nearly all of them, are written by one statement (its own transaction: each outcome stands
/// alone); the others, with their bounces, in one transaction.
pub async fn record_on(conn: &mut DbConn, outcomes: &[Recorded], now: DateTime<Utc>) -> anyhow::Result<Vec<i64>> {
    // Only while the row is still ours: claimed under this token and not recorded yet.
    macro_rules! held {
        ($set:literal) => {
            concat!(
                "update deliveries set ",
                $set,
                " where id = $1 and lease_token = $2 and status = 'sending'"
            )
        };
    }
    let mut sent: std::collections::BTreeMap<i64, Vec<i64>> = std::collections::BTreeMap::new();
    for r in outcomes {
        if r.outcome == Outcome::Sent {
            sent.entry(r.token).or_default().push(r.delivery.id);
        }
    }
    let others: Vec<&Recorded> = outcomes.iter().filter(|r| r.outcome != Outcome::Sent).collect();
    // A bounce suppresses the subscriber from the statuses the state machine moves on one
    // (whatever the status is at the moment of the write), and voids their links.
    let bounce = SubscriberEvent::Bounced;
    let bounce_sql = format!(
        "update subscribers set status = '{}', bounced_at = $2, updated_at = $2 where id = $1 and {}",
        bounce.target(),
        status_in(&bounce.moves_from())
    );
    let smtp = crate::domain::Actor::new(crate::domain::EventSource::Smtp, None);
    let mut lost = Vec::new();
    macro_rules! write_sent {
        ($conn:expr, $sql:literal, $ids:expr) => {{
            for (token, ids) in &sent {
                let written: Vec<i64> = sqlx::query_scalar($sql)
                    .bind(($ids)(ids))
                    .bind(*token)
                    .bind(now)
                    .fetch_all(&mut **$conn)
                    .await?;
                if written.len() < ids.len() {
                    let written: std::collections::HashSet<i64> = written.into_iter().collect();
                    lost.extend(ids.iter().filter(|id| !written.contains(id)));
                }
            }
        }};
    }
    macro_rules! write_others {
        ($tx:expr, $edition_sql:literal) => {{
            for r in &others {
                // Read under a lock that a pause waits for (PostgreSQL; SQLite writes one at
                // a time): a failure is either written before the pause, which then puts it
                // back, or sees the pause and goes back to the queue itself, bouncing nobody.
                // A row released unsent learns the same way where it goes back to.
                let mut edition = None;
                if let Outcome::Failed { .. } | Outcome::Released = r.outcome {
                    let status: Option<String> = sqlx::query_scalar($edition_sql)
                        .bind(r.delivery.edition_id)
                        .fetch_optional(&mut *$tx)
                        .await?;
                    edition = status;
                }
                let paused = edition.as_deref() == Some("paused");
                let cancelled = edition.as_deref() == Some("cancelled");
                // What waits for a paused edition is due never, until it is resumed: the
                // claim's walk along the due index then never wades through it.
                let requeue_at = if paused { super::editions::far_future() } else { now };
                let query = match &r.outcome {
                    Outcome::Sent => continue,
                    Outcome::Skipped => sqlx::query(held!("status = 'skipped'"))
                        .bind(r.delivery.id)
                        .bind(r.token),
                    Outcome::Retry { at, error } => {
                        sqlx::query(held!("status = 'pending', next_attempt_at = $3, last_error = $4"))
                            .bind(r.delivery.id)
                            .bind(r.token)
                            .bind(*at)
                            .bind(error.as_str())
                    }
                    Outcome::Released if cancelled => {
                        sqlx::query(held!("status = 'skipped', last_error = 'the edition was cancelled'"))
                            .bind(r.delivery.id)
                            .bind(r.token)
                    }
                    Outcome::Released => sqlx::query(held!(
                        "status = 'pending', attempts = case when attempts > 0 then attempts - 1 else 0 end, \
                         next_attempt_at = $3"
                    ))
                    .bind(r.delivery.id)
                    .bind(r.token)
                    .bind(requeue_at),
                    Outcome::Failed { error, .. } if paused => sqlx::query(held!(
                        "status = 'pending', attempts = 0, next_attempt_at = $3, last_error = $4"
                    ))
                    .bind(r.delivery.id)
                    .bind(r.token)
                    .bind(requeue_at)
                    .bind(error.as_str()),
                    Outcome::Failed { error, .. } => {
                        sqlx::query(held!("status = 'failed', last_error = $3, failed_at = $4"))
                            .bind(r.delivery.id)
                            .bind(r.token)
                            .bind(error.as_str())
                            .bind(now)
                    }
                };
                if query.execute(&mut *$tx).await?.rows_affected() == 0 {
                    lost.push(r.delivery.id);
                    continue;
                }
                if let (Outcome::Failed { bounce: true, error }, false) = (&r.outcome, paused) {
                    // Every bounce is kept, whatever it does to the status.
                    sqlx::query(super::bounces::INSERT_SMTP_HARD)
                        .bind(r.delivery.subscriber_id)
                        .bind(now)
                        .bind(crate::domain::clean_diagnostic(error))
                        .bind(r.delivery.edition_id)
                        .execute(&mut *$tx)
                        .await?;
                    let bounced = sqlx::query(sqlx::AssertSqlSafe(bounce_sql.clone()))
                        .bind(r.delivery.subscriber_id)
                        .bind(now)
                        .execute(&mut *$tx)
                        .await?
                        .rows_affected()
                        > 0;
                    if bounced {
                        void_confirmations!(&mut *$tx, r.delivery.subscriber_id, now)?;
                        let record = super::history::NewEvent::new(
                            r.delivery.subscriber_id,
                            crate::domain::EventKind::Bounced,
                            &smtp,
                            now,
                        )
                        .detail(format!("edition {}", r.delivery.edition_id));
                        super::history::record_event!(&mut *$tx, &record)?;
                    }
                }
            }
        }};
    }
    match conn {
        DbConn::Sqlite(conn) => {
            // `+status`: look the rows up by id, not through the index on status, which would
            // visit every row being sent.
            write_sent!(
                conn,
                "update deliveries set status = 'sent', sent_at = $3, last_error = null \
                 where id in (select value from json_each($1)) and lease_token = $2 and +status = 'sending' \
                 returning id",
                |ids: &Vec<i64>| serde_json::to_string(ids).unwrap_or_else(|_| "[]".to_owned())
            );
            if !others.is_empty() {
                let mut tx = sqlx::Connection::begin_with(&mut **conn, "BEGIN IMMEDIATE").await?;
                write_others!(tx, "select status from editions where id = $1");
                tx.commit().await?;
            }
        }
        DbConn::Postgres(conn) => {
            write_sent!(
                conn,
                "update deliveries set status = 'sent', sent_at = $3, last_error = null \
                 where id = any($1) and lease_token = $2 and status = 'sending' returning id",
                |ids: &Vec<i64>| ids.clone()
            );
            if !others.is_empty() {
                let mut tx = sqlx::Connection::begin(&mut **conn).await?;
                write_others!(tx, "select status from editions where id = $1 for share");
                tx.commit().await?;
            }
        }
    }
    Ok(lost)
}

/// When the next not-yet-due delivery that may be claimed comes due, if any is waiting; or
/// when a canary wait ends, if that is sooner.
pub async fn next_due(db: &Db) -> anyhow::Result<Option<DateTime<Utc>>> {
    let (due, canary): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = with_pool!(db, pool => {
        sqlx::query_as(concat!(
            "select (select min(next_attempt_at) from deliveries where status in ('pending', 'sending') and ",
            claimable!(),
            "), (select min(canary_until) from editions where status = 'canary')"
        ))
        .fetch_one(pool)
        .await
    })
    .context("Failed to read the queue")?;
    Ok(match (due, canary) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// Deliveries not yet final that a worker may claim now or later: those of paused editions,
/// and of canary editions outside their sample, wait for a decision instead.
pub async fn claimable_left(db: &Db) -> anyhow::Result<i64> {
    with_pool!(db, pool => {
        sqlx::query_scalar(concat!(
            "select count(*) from deliveries where status in ('pending', 'sending') and ",
            claimable!()
        ))
        .fetch_one(pool)
        .await
    })
    .context("Failed to read the queue")
}
