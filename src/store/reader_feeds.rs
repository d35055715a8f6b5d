//! Readers' private feeds: the hash of each one's feed token. The token itself is shown once,
//! when it is made, and never stored.

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::subscribers::{new_token, token_hash};
use super::{Db, with_pool};
use crate::domain::Subscriber;

/// Makes a new feed token for the subscriber, replacing any earlier one (whose address stops
/// working), and returns it.
#[tracing::instrument(skip_all)]
pub async fn renew(db: &Db, subscriber_id: i64, now: DateTime<Utc>) -> anyhow::Result<String> {
    let token = new_token();
    with_pool!(db, pool => {
        sqlx::query(
            "insert into reader_feeds (subscriber_id, token_hash, created_at) values ($1, $2, $3) \
             on conflict (subscriber_id) do update set token_hash = excluded.token_hash, created_at = excluded.created_at",
        )
        .bind(subscriber_id)
        .bind(token_hash(&token))
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
    })
    .context("Failed to store a reader's feed token")?;
    Ok(token)
}

/// Revokes the subscriber's feed; returns whether there was one.
#[tracing::instrument(skip_all)]
pub async fn revoke(db: &Db, subscriber_id: i64) -> anyhow::Result<bool> {
    let deleted = with_pool!(db, pool => {
        sqlx::query("delete from reader_feeds where subscriber_id = $1")
            .bind(subscriber_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })
    .context("Failed to revoke a reader's feed")?;
    Ok(deleted > 0)
}

/// When the subscriber's current feed was made, if they have one.
#[tracing::instrument(skip_all)]
pub async fn made_at(db: &Db, subscriber_id: i64) -> anyhow::Result<Option<DateTime<Utc>>> {
    with_pool!(db, pool => {
        sqlx::query_scalar("select created_at from reader_feeds where subscriber_id = $1")
            .bind(subscriber_id)
            .fetch_optional(pool)
            .await
    })
    .context("Failed to read a reader's feed")
}

/// The subscriber whose feed address carries `token`, whatever their status.
#[tracing::instrument(skip_all)]
pub async fn subscriber(db: &Db, token: &str) -> anyhow::Result<Option<Subscriber>> {
    if token.len() > 100 {
        return Ok(None);
    }
    let id: Option<i64> = with_pool!(db, pool => {
        sqlx::query_scalar("select subscriber_id from reader_feeds where token_hash = $1")
            .bind(token_hash(token))
            .fetch_optional(pool)
            .await
    })
    .context("Failed to look up a reader's feed")?;
    match id {
        Some(id) => super::subscribers::find(db, id).await,
        None => Ok(None),
    }
}
