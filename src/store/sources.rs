//! Remote sources' polling state.

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::{Db, with_pool};
use crate::domain::PollOutcome;

/// What the last poll of a source left behind.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct SourceState {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

pub async fn state(db: &Db, url: &str) -> anyhow::Result<SourceState> {
    let row: Option<SourceState> = with_pool!(db, pool => {
        sqlx::query_as("select etag, last_modified from sources where url = $1").bind(url).fetch_optional(pool).await
    })
    .context("Failed to read a source's state")?;
    Ok(row.unwrap_or_default())
}

/// Records a poll. Validators are kept only from a successful fetch; a failure keeps the old ones.
pub async fn record(
    db: &Db,
    url: &str,
    outcome: PollOutcome,
    validators: Option<&SourceState>,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let failed = i32::from(outcome == PollOutcome::Failed);
    with_pool!(db, pool => {
        sqlx::query(
            "insert into sources (url, etag, last_modified, last_polled_at, last_outcome, last_error, failures) \
             values ($1, $2, $3, $4, $5, $6, $7) on conflict (url) do update set \
             etag = case when $8 then excluded.etag else sources.etag end, \
             last_modified = case when $8 then excluded.last_modified else sources.last_modified end, \
             last_polled_at = excluded.last_polled_at, last_outcome = excluded.last_outcome, \
             last_error = excluded.last_error, \
             failures = case when $7 = 1 then sources.failures + 1 else 0 end",
        )
        .bind(url)
        .bind(validators.and_then(|v| v.etag.clone()))
        .bind(validators.and_then(|v| v.last_modified.clone()))
        .bind(now)
        .bind(outcome)
        .bind(error)
        .bind(failed)
        .bind(validators.is_some())
        .execute(pool)
        .await
        .map(|_| ())
    })
    .context("Failed to record a source poll")
}

/// A source's last outcome (none if unknown) and error, and how many polls in a row failed.
pub async fn last_outcome(db: &Db, url: &str) -> anyhow::Result<Option<(Option<PollOutcome>, Option<String>, i32)>> {
    with_pool!(db, pool => {
        sqlx::query_as("select last_outcome, last_error, failures from sources where url = $1")
            .bind(url)
            .fetch_optional(pool)
            .await
    })
    .context("Failed to read a source")
}
