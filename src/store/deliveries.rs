//! The delivery queue: claimed in batches under a lease, outcomes written in batches.

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::{BeginWrite, Db};

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
    /// Given up; `bounce` suppresses the subscriber from every later edition.
    Failed {
        error: String,
        bounce: bool,
    },
}

/// Claims up to `limit` due deliveries: pending ones whose time has come, and sending ones
/// whose worker's lease ran out (it died mid-batch). They are leased until `lease_until`.
/// PostgreSQL skips rows another instance is claiming at the same moment.
#[tracing::instrument(skip_all)]
pub async fn claim(
    db: &Db,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> anyhow::Result<Vec<Claimed>> {
    const SQLITE: &str = super::claim_sql!("deliveries", "id, edition_id, subscriber_id, attempts", "");
    const POSTGRES: &str = super::claim_sql!(
        "deliveries",
        "id, edition_id, subscriber_id, attempts",
        " for update skip locked"
    );
    super::claim_rows(db, SQLITE, POSTGRES, now, lease_until, limit)
        .await
        .context("Failed to claim deliveries")
}

/// Writes a batch of outcomes in one transaction, and suppresses bounced subscribers.
#[tracing::instrument(skip_all, fields(count = outcomes.len()))]
pub async fn record(db: &Db, outcomes: &[(Claimed, Outcome)], now: DateTime<Utc>) -> anyhow::Result<()> {
    macro_rules! write_all {
        ($tx:expr) => {{
            for (d, outcome) in outcomes {
                let query = match outcome {
                    Outcome::Sent => sqlx::query(
                        "update deliveries set status = 'sent', sent_at = $2, last_error = null where id = $1",
                    )
                    .bind(d.id)
                    .bind(now),
                    Outcome::Skipped => {
                        sqlx::query("update deliveries set status = 'skipped' where id = $1").bind(d.id)
                    }
                    Outcome::Retry { at, error } => sqlx::query(
                        "update deliveries set status = 'pending', next_attempt_at = $2, last_error = $3 where id = $1",
                    )
                    .bind(d.id)
                    .bind(*at)
                    .bind(error.as_str()),
                    Outcome::Failed { error, .. } => {
                        sqlx::query("update deliveries set status = 'failed', last_error = $2 where id = $1")
                            .bind(d.id)
                            .bind(error.as_str())
                    }
                };
                query.execute(&mut *$tx).await?;
                if let Outcome::Failed { bounce: true, .. } = outcome {
                    sqlx::query(
                        "update subscribers set status = 'bounced', bounced_at = $2, updated_at = $2 \
                         where id = $1 and status = 'confirmed'",
                    )
                    .bind(d.subscriber_id)
                    .bind(now)
                    .execute(&mut *$tx)
                    .await?;
                }
            }
        }};
    }
    match db {
        Db::Sqlite(pool) => {
            let mut tx = pool.begin_write().await?;
            write_all!(tx);
            tx.commit().await?;
        }
        Db::Postgres(pool) => {
            let mut tx = pool.begin_write().await?;
            write_all!(tx);
            tx.commit().await?;
        }
    }
    Ok(())
}

/// When the next not-yet-due delivery comes due, if any is waiting.
pub async fn next_due(db: &Db) -> anyhow::Result<Option<DateTime<Utc>>> {
    super::with_pool!(db, pool => {
        sqlx::query_scalar("select min(next_attempt_at) from deliveries where status in ('pending', 'sending')")
            .fetch_one(pool)
            .await
    })
    .context("Failed to read the queue")
}
