//! Transactional mail (confirmations, tests): stored before it is sent, claimed by a
//! worker under a lease, retried until it is sent or given up.

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::{BeginWrite, Db, with_pool};
use crate::domain::{Choices, OutboxStatus};

/// A message ready to store.
#[derive(Debug, Clone)]
pub struct NewMail {
    pub kind: &'static str,
    pub subscriber_id: Option<i64>,
    pub recipient: String,
    pub message_id: String,
    /// The whole RFC 5322 message, so every attempt sends the same bytes.
    pub message: Vec<u8>,
}

/// A message a worker has claimed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedMail {
    pub id: i64,
    pub subscriber_id: Option<i64>,
    pub recipient: String,
    pub message_id: String,
    pub message: Vec<u8>,
    pub attempts: i32,
}

/// The insert of one message, expanded per backend (a generic function over executors
/// makes futures that are not `Send`).
macro_rules! insert_mail {
    ($executor:expr, $mail:expr, $now:expr) => {
        sqlx::query_scalar::<_, i64>(
            "insert into outbox (kind, subscriber_id, recipient, message_id, message, status, next_attempt_at, \
             created_at) values ($1, $2, $3, $4, $5, 'pending', $6, $6) returning id",
        )
        .bind($mail.kind)
        .bind($mail.subscriber_id)
        .bind(&$mail.recipient)
        .bind(&$mail.message_id)
        .bind(&$mail.message)
        .bind($now)
        .fetch_one($executor)
        .await
    };
}

/// Stores a message for the outbox worker.
#[tracing::instrument(skip_all)]
pub async fn queue(db: &Db, mail: &NewMail, now: DateTime<Utc>) -> anyhow::Result<i64> {
    with_pool!(db, pool => insert_mail!(pool, mail, now)).context("Failed to queue a message")
}

/// A confirmation link to store: the hash of its token and the choices it was mailed with.
#[derive(Debug, Clone)]
pub struct NewConfirmation<'a> {
    pub subscriber_id: i64,
    pub token_hash: &'a str,
    pub expires_at: DateTime<Utc>,
    pub choices: &'a Choices,
}

/// Stores a confirmation token and its mail in one transaction, voiding the address's
/// earlier unused links (only the newest link works), and notes when it was sent.
#[tracing::instrument(skip_all)]
pub async fn queue_confirmation(
    db: &Db,
    confirmation: &NewConfirmation<'_>,
    mail: &NewMail,
    now: DateTime<Utc>,
) -> anyhow::Result<i64> {
    let topics = serde_json::to_string(&confirmation.choices.topics)?;
    with_pool!(db, pool => {
        let mut tx = pool.begin_write().await?;
        super::subscribers::void_confirmations!(&mut *tx, confirmation.subscriber_id, now)?;
        sqlx::query(
            "insert into confirmations (token_hash, subscriber_id, expires_at, created_at, name, frequency, topics) \
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(confirmation.token_hash)
        .bind(confirmation.subscriber_id)
        .bind(confirmation.expires_at)
        .bind(now)
        .bind(&confirmation.choices.name)
        .bind(confirmation.choices.frequency.as_str())
        .bind(&topics)
        .execute(&mut *tx)
        .await?;
        sqlx::query("update subscribers set confirmation_sent_at = $2 where id = $1")
            .bind(confirmation.subscriber_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let id = insert_mail!(&mut *tx, mail, now)?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(id)
    })
    .context("Failed to queue a confirmation")
}

/// Claims up to `limit` due messages (pending, or sending with an expired lease: its worker
/// died) and leases them until `lease_until`.
#[tracing::instrument(skip_all)]
pub async fn claim_due(
    db: &Db,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> anyhow::Result<Vec<ClaimedMail>> {
    const SQLITE: &str = super::claim_sql!(
        "outbox",
        "id, subscriber_id, recipient, message_id, message, attempts",
        ""
    );
    const POSTGRES: &str = super::claim_sql!(
        "outbox",
        "id, subscriber_id, recipient, message_id, message, attempts",
        " for update skip locked"
    );
    super::claim_rows(db, SQLITE, POSTGRES, now, lease_until, limit)
        .await
        .context("Failed to claim queued mail")
}

/// Sent: the body is dropped (it may hold a confirmation token), the row stays as a record.
pub async fn mark_sent(db: &Db, id: i64, now: DateTime<Utc>) -> anyhow::Result<()> {
    with_pool!(db, pool => {
        sqlx::query("update outbox set status = 'sent', sent_at = $2, message = $3, last_error = null where id = $1")
            .bind(id)
            .bind(now)
            .bind(Vec::<u8>::new())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })
    .context("Failed to record a sent message")?;
    Ok(())
}

/// A temporary failure: try again at `at`.
pub async fn retry_at(db: &Db, id: i64, at: DateTime<Utc>, error: &str) -> anyhow::Result<()> {
    with_pool!(db, pool => {
        sqlx::query("update outbox set status = 'pending', next_attempt_at = $2, last_error = $3 where id = $1")
            .bind(id)
            .bind(at)
            .bind(error)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })
    .context("Failed to reschedule a message")?;
    Ok(())
}

/// Given up for good.
pub async fn mark_failed(db: &Db, id: i64, error: &str) -> anyhow::Result<()> {
    with_pool!(db, pool => {
        sqlx::query("update outbox set status = 'failed', last_error = $2 where id = $1")
            .bind(id)
            .bind(error)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })
    .context("Failed to record a failed message")?;
    Ok(())
}

/// Messages by status.
pub async fn counts(db: &Db) -> anyhow::Result<Vec<(OutboxStatus, i64)>> {
    with_pool!(db, pool => {
        sqlx::query_as("select status, count(*) from outbox group by status order by status").fetch_all(pool).await
    })
    .context("Failed to count queued mail")
}

/// Whether anything is waiting (pending or being sent).
pub async fn pending(db: &Db) -> anyhow::Result<i64> {
    with_pool!(db, pool => {
        sqlx::query_scalar("select count(*) from outbox where status in ('pending', 'sending')").fetch_one(pool).await
    })
    .context("Failed to count queued mail")
}
