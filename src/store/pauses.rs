//! Editions that stop part-way: paused by the circuit breaker or a canary sample's verdict,
//! resumed or cancelled by an admin, and the canary wait itself. The pause is a row in the
//! database, so every instance sending the edition respects it.

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::editions::far_future;
use super::{BeginWrite, Db, with_pool};
use crate::domain::PauseCause;

/// What a pause did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Paused {
    /// The edition was sending (or sending its sample) and is paused now; false when it was
    /// paused, finished or cancelled already.
    pub now: bool,
    /// Failed deliveries put back in the queue.
    pub put_back: u64,
    /// Readers whose bounce by those failures was undone.
    pub unbounced: u64,
}

/// Pauses an edition that is sending, saying why. With `put_back_since`, its deliveries that
/// failed from then on go back to the queue (to be tried again on resume), and the readers
/// those failures bounced are confirmed again: a refusal of everything (a dead relay account,
/// a blocked IP, a broken template) says nothing about the readers. Put back even when the
/// edition was paused already (by another instance), so no instance's window is lost.
#[tracing::instrument(skip(db, reason))]
pub async fn pause(
    db: &Db,
    id: i64,
    cause: PauseCause,
    reason: &str,
    put_back_since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> anyhow::Result<Paused> {
    with_pool!(db, pool => {
        let mut tx = pool.begin_write().await?;
        let paused = sqlx::query(
            "update editions set status = 'paused', paused_cause = $2, paused_reason = $3, paused_at = $4 \
             where id = $1 and status in ('sending', 'canary')",
        )
        .bind(id)
        .bind(cause)
        .bind(reason)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let mut done = Paused { now: paused > 0, ..Default::default() };
        // What waits is due never, until the edition is resumed: the claim's walk along the
        // due index then never wades through a paused edition's readers.
        sqlx::query("update deliveries set next_attempt_at = $2 where edition_id = $1 and status = 'pending'")
            .bind(id)
            .bind(far_future())
            .execute(&mut *tx)
            .await?;
        if let Some(since) = put_back_since {
            // A failure that bounced its reader wrote the same instant as `bounced_at` (one
            // transaction): only that bounce is undone, never a later one or another's.
            done.unbounced = sqlx::query(
                "update subscribers set status = 'confirmed', bounced_at = null, updated_at = $3 \
                 where status = 'bounced' and exists (select 1 from deliveries d where d.subscriber_id = subscribers.id \
                 and d.edition_id = $1 and d.status = 'failed' and d.failed_at >= $2 and d.failed_at = subscribers.bounced_at)",
            )
            .bind(id)
            .bind(since)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            // The refusals' bounce events go too: they said nothing about the readers (and
            // would count against a canary sample of this edition).
            sqlx::query(
                "delete from bounce_events where source = 'smtp' and kind = 'hard' and edition_id = $1 \
                 and occurred_at >= $2 and exists (select 1 from deliveries d where d.edition_id = $1 \
                 and d.subscriber_id = bounce_events.subscriber_id and d.status = 'failed' \
                 and d.failed_at = bounce_events.occurred_at)",
            )
            .bind(id)
            .bind(since)
            .execute(&mut *tx)
            .await?;
            done.put_back = sqlx::query(
                "update deliveries set status = 'pending', attempts = 0, next_attempt_at = $3, failed_at = null \
                 where edition_id = $1 and status = 'failed' and failed_at >= $2",
            )
            .bind(id)
            .bind(since)
            .bind(far_future())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(done)
    })
    .with_context(|| format!("Failed to pause edition {id}"))
}

/// Lets a paused edition go on: its waiting deliveries (all of them, a canary sample's
/// rest too) are due now. False when it was not paused.
pub async fn resume(db: &Db, id: i64, now: DateTime<Utc>) -> anyhow::Result<bool> {
    with_pool!(db, pool => {
        let mut tx = pool.begin_write().await?;
        let resumed = sqlx::query(
            "update editions set status = 'sending', paused_cause = null, paused_reason = null, paused_at = null \
             where id = $1 and status = 'paused'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if resumed {
            sqlx::query("update deliveries set next_attempt_at = $2 where edition_id = $1 and status = 'pending'")
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(resumed)
    })
    .with_context(|| format!("Failed to resume edition {id}"))
}

/// Stops an edition that is not finished, for good: its deliveries not sent are skipped
/// (those a worker is sending at this moment are recorded as they end). Returns how many were
/// skipped, or `None` when the edition was finished already.
pub async fn cancel(db: &Db, id: i64, now: DateTime<Utc>) -> anyhow::Result<Option<u64>> {
    with_pool!(db, pool => {
        let mut tx = pool.begin_write().await?;
        let cancelled = sqlx::query(
            "update editions set status = 'cancelled', completed_at = $2 \
             where id = $1 and status in ('sending', 'canary', 'paused')",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if cancelled == 0 {
            return Ok(None);
        }
        // Rows still `sending` whose lease ran out belong to no live worker.
        let skipped = sqlx::query(
            "update deliveries set status = 'skipped', last_error = 'the edition was cancelled' \
             where edition_id = $1 and (status = 'pending' or (status = 'sending' and next_attempt_at <= $2))",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok::<_, sqlx::Error>(Some(skipped))
    })
    .with_context(|| format!("Failed to cancel edition {id}"))
}

/// Editions whose deliveries must not be sent now: paused or cancelled.
pub async fn stopped(db: &Db) -> anyhow::Result<Vec<i64>> {
    with_pool!(db, pool => {
        sqlx::query_scalar("select id from editions where status in ('paused', 'cancelled')")
            .fetch_all(pool)
            .await
    })
    .context("Failed to read the paused editions")
}

/// Paused editions, newest first: (id, cause).
pub async fn paused(db: &Db) -> anyhow::Result<Vec<(i64, Option<PauseCause>)>> {
    with_pool!(db, pool => {
        sqlx::query_as("select id, paused_cause from editions where status = 'paused' order by id desc")
            .fetch_all(pool)
            .await
    })
    .context("Failed to read the paused editions")
}

/// What a canary sample is allowed: rates of the sample that was sent (0.02 = 2 %).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CanaryLimits {
    /// How long the sample has, once sent, to bounce or draw complaints.
    pub wait: chrono::Duration,
    pub max_bounce_rate: f64,
    pub max_complaint_rate: f64,
}

/// The verdict on one edition's canary sample.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryVerdict {
    pub edition_id: i64,
    /// Readers in the sample the edition was sent to, or that failed.
    pub sample: i64,
    pub bounced: i64,
    pub complained: i64,
    /// `None`: the rest goes out; otherwise the edition paused, for this reason.
    pub paused: Option<String>,
}

/// Moves canary editions on: once every delivery of an edition's sample is final its wait
/// starts (`canary_until`), and once the wait is over the sample is judged: the rest goes out
/// when its bounce and complaint rates are within `limits`, and the edition pauses otherwise.
/// Every step is a conditional update of the edition's row, so instances (and `herald send`
/// run again from cron) may call this at any time, any number of times.
#[tracing::instrument(skip_all)]
pub async fn judge_canaries(db: &Db, limits: CanaryLimits, now: DateTime<Utc>) -> anyhow::Result<Vec<CanaryVerdict>> {
    #[derive(sqlx::FromRow)]
    struct Waiting {
        id: i64,
        canary_until: Option<DateTime<Utc>>,
        unfinished: i64,
    }
    let waiting: Vec<Waiting> = with_pool!(db, pool => {
        sqlx::query_as(
            "select e.id, e.canary_until, (select count(*) from deliveries d where d.edition_id = e.id and d.canary \
             and d.status in ('pending', 'sending')) as unfinished from editions e where e.status = 'canary'",
        )
        .fetch_all(pool)
        .await
    })
    .context("Failed to read the canary editions")?;
    let mut verdicts = Vec::new();
    for edition in waiting {
        if edition.unfinished > 0 {
            continue;
        }
        let until = match edition.canary_until {
            Some(until) => until,
            None => {
                let until = now + limits.wait;
                with_pool!(db, pool => {
                    sqlx::query("update editions set canary_until = $2 where id = $1 and canary_until is null")
                        .bind(edition.id)
                        .bind(until)
                        .execute(pool)
                        .await
                        .map(|_| ())
                })
                .context("Failed to start a canary wait")?;
                until
            }
        };
        if until > now {
            continue;
        }
        let verdict = judge(db, edition.id, limits).await?;
        match &verdict.paused {
            None => {
                with_pool!(db, pool => {
                    let mut tx = pool.begin_write().await?;
                    let passed = sqlx::query("update editions set status = 'sending' where id = $1 and status = 'canary'")
                        .bind(edition.id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if passed > 0 {
                        sqlx::query(
                            "update deliveries set next_attempt_at = $2 where edition_id = $1 and status = 'pending' \
                             and not canary",
                        )
                        .bind(edition.id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                    tx.commit().await
                })
                .context("Failed to let an edition past its canary")?;
            }
            Some(reason) => {
                pause(db, edition.id, PauseCause::Canary, reason, None, now).await?;
            }
        }
        verdicts.push(verdict);
    }
    Ok(verdicts)
}

/// Counts what the sample of edition `id` drew and weighs it against `limits`.
async fn judge(db: &Db, id: i64, limits: CanaryLimits) -> anyhow::Result<CanaryVerdict> {
    let (sample, bounced, complained): (i64, i64, i64) = with_pool!(db, pool => {
        sqlx::query_as(CANARY_COUNTS).bind(id).fetch_one(pool).await
    })
    .with_context(|| format!("Failed to count the canary sample of edition {id}"))?;
    let rate = |n: i64| if sample == 0 { 0.0 } else { n as f64 / sample as f64 };
    let percent = |r: f64| format!("{:.1} %", r * 100.0);
    let paused = if rate(bounced) > limits.max_bounce_rate {
        Some(format!(
            "canary: {bounced} of {sample} sample readers bounced ({}, more than the {} allowed)",
            percent(rate(bounced)),
            percent(limits.max_bounce_rate)
        ))
    } else if rate(complained) > limits.max_complaint_rate {
        Some(format!(
            "canary: {complained} of {sample} sample readers complained ({}, more than the {} allowed)",
            percent(rate(complained)),
            percent(limits.max_complaint_rate)
        ))
    } else {
        None
    };
    Ok(CanaryVerdict {
        edition_id: id,
        sample,
        bounced,
        complained,
        paused,
    })
}

/// The sample that was sent (or failed), the readers in it who bounced, and those who
/// complained.
///
/// Bounced: a delivery that failed for good, or a hard bounce reported later (a delivery
/// status notification, a provider's webhook) for this edition. Complained: a complaint
/// reported for this edition. Each reader once, and only readers in the sample.
const CANARY_COUNTS: &str = "select \
     (select count(*) from deliveries where edition_id = $1 and canary and status in ('sent', 'failed')), \
     (select count(*) from deliveries d where d.edition_id = $1 and d.canary and (d.status = 'failed' \
        or exists (select 1 from bounce_events b where b.edition_id = $1 and b.subscriber_id = d.subscriber_id \
        and b.kind = 'hard'))), \
     (select count(*) from deliveries d where d.edition_id = $1 and d.canary and d.status = 'sent' \
        and exists (select 1 from bounce_events b where b.edition_id = $1 and b.subscriber_id = d.subscriber_id \
        and b.kind = 'complaint'))";
