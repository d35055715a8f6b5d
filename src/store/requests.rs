//! Subscription requests waiting to be worked on: the form stores one and answers; a
//! background worker claims it under a lease, acts on it and deletes it.

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::{Db, with_pool};
use crate::domain::{Choices, EmailAddress, SubscriberSource};

/// A request as the form took it.
#[derive(Debug, Clone)]
pub struct NewRequest<'a> {
    pub email: &'a EmailAddress,
    pub choices: &'a Choices,
    pub source: SubscriberSource,
    /// The version of the consent wording the form showed.
    pub wording_version: Option<&'a str>,
}

/// A request a worker has claimed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedRequest {
    pub id: i64,
    pub email: String,
    pub name: Option<String>,
    pub frequency: String,
    /// JSON array of tag slugs.
    pub topics: String,
    pub source: String,
    pub attempts: i32,
    pub wording_version: Option<String>,
    /// When the form took it: when consent was given.
    pub created_at: DateTime<Utc>,
}

/// Stores a request. The same single insert whatever the address is or was: the caller's
/// answer must not take longer for one kind of address than for another.
#[tracing::instrument(skip_all)]
pub async fn insert(db: &Db, request: &NewRequest<'_>, now: DateTime<Utc>) -> anyhow::Result<()> {
    let topics = serde_json::to_string(&request.choices.topics)?;
    with_pool!(db, pool => {
        sqlx::query(
            "insert into subscription_requests (email, name, frequency, topics, source, status, next_attempt_at, \
             created_at, wording_version) values ($1, $2, $3, $4, $5, 'pending', $6, $6, $7)",
        )
        .bind(request.email.as_str())
        .bind(&request.choices.name)
        .bind(request.choices.frequency.as_str())
        .bind(&topics)
        .bind(request.source.as_str())
        .bind(now)
        .bind(request.wording_version)
        .execute(pool)
        .await
        .map(|_| ())
    })
    .context("Failed to store a subscription request")
}

/// Claims up to `limit` due requests (new, or claimed by a worker whose lease ran out).
#[tracing::instrument(skip_all)]
pub async fn claim_due(
    db: &Db,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> anyhow::Result<Vec<ClaimedRequest>> {
    const SQLITE: &str = super::claim_sql!(
        "subscription_requests",
        "id, email, name, frequency, topics, source, attempts, wording_version, created_at",
        ""
    );
    const POSTGRES: &str = super::claim_sql!(
        "subscription_requests",
        "id, email, name, frequency, topics, source, attempts, wording_version, created_at",
        " for update skip locked"
    );
    super::claim_rows(db, SQLITE, POSTGRES, now, lease_until, limit)
        .await
        .context("Failed to claim subscription requests")
}

/// Done with a request (acted on, or given up): it leaves no trace of the address here.
pub async fn delete(db: &Db, id: i64) -> anyhow::Result<()> {
    with_pool!(db, pool => {
        sqlx::query("delete from subscription_requests where id = $1")
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ())
    })
    .context("Failed to delete a subscription request")
}

/// Requests not yet acted on.
pub async fn pending(db: &Db) -> anyhow::Result<i64> {
    with_pool!(db, pool => {
        sqlx::query_scalar("select count(*) from subscription_requests").fetch_one(pool).await
    })
    .context("Failed to count subscription requests")
}
