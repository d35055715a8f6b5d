//! Admin users, their sessions and API tokens (hashes only).

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::{Db, with_pool};
use crate::domain::{Frequency, PostSource, SubscriberStatus};

/// An admin as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AdminUser {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
}

/// Creates or replaces (new password) an admin.
pub async fn upsert_user(db: &Db, email: &str, password_hash: &str, now: DateTime<Utc>) -> anyhow::Result<()> {
    with_pool!(db, pool => {
        sqlx::query(
            "insert into admin_users (email, password_hash, created_at) values ($1, $2, $3) \
             on conflict (email) do update set password_hash = excluded.password_hash",
        )
        .bind(email)
        .bind(password_hash)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
    })
    .context("Failed to store an admin")
}

pub async fn find_user(db: &Db, email: &str) -> anyhow::Result<Option<AdminUser>> {
    with_pool!(db, pool => {
        sqlx::query_as("select id, email, password_hash from admin_users where email = $1")
            .bind(email)
            .fetch_optional(pool)
            .await
    })
    .context("Failed to look up an admin")
}

pub async fn create_session(
    db: &Db,
    token_hash: &str,
    user_id: i64,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> anyhow::Result<()> {
    with_pool!(db, pool => {
        sqlx::query("insert into admin_sessions (token_hash, user_id, created_at, expires_at) values ($1, $2, $3, $4)")
            .bind(token_hash)
            .bind(user_id)
            .bind(now)
            .bind(expires_at)
            .execute(pool)
            .await?;
        sqlx::query("update admin_users set last_login_at = $2 where id = $1").bind(user_id).bind(now).execute(pool).await?;
        // Expired sessions are swept whenever someone logs in.
        sqlx::query("delete from admin_sessions where expires_at < $1").bind(now).execute(pool).await.map(|_| ())
    })
    .context("Failed to start a session")
}

/// The admin a live session belongs to.
pub async fn session_user(db: &Db, token_hash: &str, now: DateTime<Utc>) -> anyhow::Result<Option<String>> {
    with_pool!(db, pool => {
        sqlx::query_scalar(
            "select u.email from admin_sessions s join admin_users u on u.id = s.user_id \
             where s.token_hash = $1 and s.expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(pool)
        .await
    })
    .context("Failed to read a session")
}

pub async fn delete_session(db: &Db, token_hash: &str) -> anyhow::Result<()> {
    with_pool!(db, pool => {
        sqlx::query("delete from admin_sessions where token_hash = $1").bind(token_hash).execute(pool).await.map(|_| ())
    })
    .context("Failed to end a session")
}

pub async fn create_token(db: &Db, name: &str, token_hash: &str, now: DateTime<Utc>) -> anyhow::Result<()> {
    with_pool!(db, pool => {
        sqlx::query("insert into api_tokens (name, token_hash, created_at) values ($1, $2, $3)")
            .bind(name)
            .bind(token_hash)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ())
    })
    .context("Failed to store an API token")
}

/// The name of the API token with this hash, noting its use; `None` if there is none.
pub async fn token_name(db: &Db, token_hash: &str, now: DateTime<Utc>) -> anyhow::Result<Option<String>> {
    with_pool!(db, pool => {
        sqlx::query_scalar("update api_tokens set last_used_at = $2 where token_hash = $1 returning name")
            .bind(token_hash)
            .bind(now)
            .fetch_optional(pool)
            .await
    })
    .context("Failed to check an API token")
}

/// A post as the console lists it.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct PostLine {
    pub id: i64,
    pub slug: String,
    pub title: String,
    pub published_at: DateTime<Utc>,
    pub draft: bool,
    pub removed: bool,
    pub source: PostSource,
}

/// Every post, newest first, with its state.
pub async fn posts(db: &Db, limit: u32) -> anyhow::Result<Vec<PostLine>> {
    with_pool!(db, pool => {
        sqlx::query_as(
            "select id, slug, title, published_at, draft, removed_at is not null as removed, source from posts \
             order by published_at desc, id desc limit $1",
        )
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await
    })
    .context("Failed to list posts")
}

/// Subscribers counted by status and frequency.
pub async fn subscriber_counts(db: &Db) -> anyhow::Result<Vec<(SubscriberStatus, Frequency, i64)>> {
    with_pool!(db, pool => {
        sqlx::query_as("select status, frequency, count(*) from subscribers group by status, frequency order by status, frequency")
            .fetch_all(pool)
            .await
    })
    .context("Failed to count subscribers")
}

/// A delivery that failed for good.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct Failure {
    pub edition_id: i64,
    pub email: String,
    pub attempts: i32,
    pub last_error: Option<String>,
}

pub async fn recent_failures(db: &Db, limit: u32) -> anyhow::Result<Vec<Failure>> {
    with_pool!(db, pool => {
        sqlx::query_as(
            "select d.edition_id, s.email, d.attempts, d.last_error from deliveries d \
             join subscribers s on s.id = d.subscriber_id where d.status = 'failed' order by d.id desc limit $1",
        )
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await
    })
    .context("Failed to list failed deliveries")
}

/// Puts an edition's failed deliveries back in the queue; returns how many.
pub async fn retry_failed(db: &Db, edition_id: i64, now: DateTime<Utc>) -> anyhow::Result<u64> {
    with_pool!(db, pool => {
        sqlx::query(
            "update deliveries set status = 'pending', attempts = 0, next_attempt_at = $2, last_error = null, \
             failed_at = null where edition_id = $1 and status = 'failed'",
        )
        .bind(edition_id)
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
    })
    .context("Failed to queue failed deliveries again")
}
