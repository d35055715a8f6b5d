//! Digest editions: one per (frequency, period), with the posts they carry and one
//! delivery row per recipient, all created in one transaction.

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{BeginWrite, Db, with_pool};
use crate::domain::{DeliveryStatus, EditionStatus, Frequency, PauseCause};

/// The columns of [`Edition`], in a `select`.
macro_rules! columns {
    () => {
        "id, frequency, period, subject, status, recipients, created_at, completed_at, paused_cause, \
         paused_reason, paused_at, canary_until"
    };
}

/// An edition as stored.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Edition {
    pub id: i64,
    pub frequency: Frequency,
    pub period: String,
    pub subject: String,
    pub status: EditionStatus,
    pub recipients: i64,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Why it paused itself, while it is paused.
    pub paused_cause: Option<PauseCause>,
    /// What tripped the pause, in words for the admin.
    pub paused_reason: Option<String>,
    pub paused_at: Option<DateTime<Utc>>,
    /// When the canary wait ends: set once the sample is out.
    pub canary_until: Option<DateTime<Utc>>,
}

/// Deliveries of an edition by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryCounts {
    pub pending: i64,
    pub sending: i64,
    pub sent: i64,
    pub failed: i64,
    pub skipped: i64,
}

impl DeliveryCounts {
    /// Rows not yet final.
    pub fn remaining(&self) -> i64 {
        self.pending + self.sending
    }

    pub fn total(&self) -> i64 {
        self.pending + self.sending + self.sent + self.failed + self.skipped
    }
}

/// Posts that are news for `frequency`: public, seen by Herald after its first sync (or, with
/// `since`, archive posts dated from then), and in no edition of this frequency yet. Oldest first.
#[tracing::instrument(skip_all)]
pub async fn new_posts(
    db: &Db,
    frequency: Frequency,
    now: DateTime<Utc>,
    since: Option<DateTime<Utc>>,
) -> anyhow::Result<Vec<i64>> {
    const SQL: &str = "select p.id from posts p \
         where p.public_at is not null and p.public_at <= $1 and not p.draft and p.removed_at is null \
         and p.published_at <= $1 and (not p.archived or p.published_at >= $3) \
         and not exists (select 1 from edition_posts ep where ep.post_id = p.id and ep.frequency = $2) \
         order by p.published_at, p.id";
    // Without `since`, no archive post qualifies: compare with a date after every post.
    let since = since.unwrap_or_else(far_future);
    with_pool!(db, pool => {
        sqlx::query_scalar(SQL).bind(now).bind(frequency.as_str()).bind(since).fetch_all(pool).await
    })
    .context("Failed to find new posts")
}

/// A date after every post's (and one both backends store and compare alike); also when
/// deliveries that wait for a decision (a paused edition, a canary's verdict) are due.
pub(super) fn far_future() -> DateTime<Utc> {
    chrono::NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// How many editions of `frequency` exist for `period` (the first, then `period#2`, ...).
pub async fn count_in_period(db: &Db, frequency: Frequency, period: &str) -> anyhow::Result<i64> {
    with_pool!(db, pool => {
        sqlx::query_scalar("select count(*) from editions where frequency = $1 and (period = $2 or period like $3)")
            .bind(frequency.as_str())
            .bind(period)
            .bind(format!("{period}#%"))
            .fetch_one(pool)
            .await
    })
    .context("Failed to count editions")
}

/// Creates an edition with its posts and a pending delivery for every confirmed subscriber of
/// its frequency, in one transaction. `None` when (frequency, period) exists already or every
/// post was taken by another edition meanwhile: nothing is created twice, even by two
/// processes at once.
///
/// With `canary_percent` above 0, that share of the recipients (rounded up, at least one),
/// drawn at random, is the edition's canary sample: the edition starts in `canary` status,
/// and only the sample is sent until [`judge_canaries`] lets the rest go. A list too small
/// to leave anyone out of the sample has no canary.
#[tracing::instrument(skip_all, fields(frequency = %frequency, period))]
pub async fn create(
    db: &Db,
    frequency: Frequency,
    period: &str,
    subject: &str,
    post_ids: &[i64],
    canary_percent: f64,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<Edition>> {
    let created: Option<i64> = with_pool!(db, pool => {
        let mut tx = pool.begin_write().await.context("Failed to start creating an edition")?;
        let id: Option<i64> = sqlx::query_scalar(
            "insert into editions (frequency, period, subject, status, created_at) values ($1, $2, $3, 'sending', $4) \
             on conflict (frequency, period) do nothing returning id",
        )
        .bind(frequency.as_str())
        .bind(period)
        .bind(subject)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else {
            return Ok(None);
        };
        let mut taken = 0;
        for (position, post_id) in post_ids.iter().enumerate() {
            taken += sqlx::query(
                "insert into edition_posts (edition_id, frequency, post_id, position) values ($1, $2, $3, $4) \
                 on conflict do nothing",
            )
            .bind(id)
            .bind(frequency.as_str())
            .bind(post_id)
            .bind(position as i32)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        if taken == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let recipients = sqlx::query(
            "insert into deliveries (edition_id, subscriber_id, status, next_attempt_at) \
             select $1, id, 'pending', $2 from subscribers where status = 'confirmed' and frequency = $3",
        )
        .bind(id)
        .bind(now)
        .bind(frequency.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let sample = canary_sample(recipients as i64, canary_percent);
        if sample > 0 {
            sqlx::query(
                "update deliveries set canary = true where id in \
                 (select id from deliveries where edition_id = $1 order by random() limit $2)",
            )
            .bind(id)
            .bind(sample)
            .execute(&mut *tx)
            .await?;
            // The rest waits for the sample's verdict, due never until then: the claim's walk
            // along the due index meets only the sample.
            sqlx::query("update deliveries set next_attempt_at = $2 where edition_id = $1 and not canary")
                .bind(id)
                .bind(far_future())
                .execute(&mut *tx)
                .await?;
        }
        // An edition nobody is to receive is finished as soon as it exists.
        sqlx::query(
            "update editions set recipients = $2, \
             status = case when $2 = 0 then 'sent' when $4 then 'canary' else status end, \
             completed_at = case when $2 = 0 then $3 else null end where id = $1",
        )
        .bind(id)
        .bind(recipients as i64)
        .bind(now)
        .bind(sample > 0)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok::<_, anyhow::Error>(Some(id))
    })?;
    match created {
        Some(id) => find(db, id).await,
        None => Ok(None),
    }
}

pub async fn find(db: &Db, id: i64) -> anyhow::Result<Option<Edition>> {
    with_pool!(db, pool => {
        sqlx::query_as(
            concat!("select ", columns!(), " from editions where id = $1"),
        )
        .bind(id)
        .fetch_optional(pool)
        .await
    })
    .context("Failed to read an edition")
}

/// The newest editions first.
pub async fn list(db: &Db, limit: u32) -> anyhow::Result<Vec<Edition>> {
    with_pool!(db, pool => {
        sqlx::query_as(
            concat!("select ", columns!(), " from editions order by id desc limit $1"),
        )
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await
    })
    .context("Failed to list editions")
}

/// The ids of an edition's posts, in order.
pub async fn post_ids(db: &Db, edition_id: i64) -> anyhow::Result<Vec<i64>> {
    with_pool!(db, pool => {
        sqlx::query_scalar("select post_id from edition_posts where edition_id = $1 order by position")
            .bind(edition_id)
            .fetch_all(pool)
            .await
    })
    .context("Failed to read an edition's posts")
}

/// Deliveries by status, for one edition or (None) for all.
pub async fn counts(db: &Db, edition_id: Option<i64>) -> anyhow::Result<DeliveryCounts> {
    // Two statements, not `($1 = 0 or edition_id = $1)`: that one cannot use the edition
    // index and reads every delivery ever made to count one edition's.
    let rows: Vec<(DeliveryStatus, i64)> = with_pool!(db, pool => match edition_id {
        Some(id) => {
            sqlx::query_as("select status, count(*) from deliveries where edition_id = $1 group by status")
                .bind(id)
                .fetch_all(pool)
                .await
        }
        None => sqlx::query_as("select status, count(*) from deliveries group by status").fetch_all(pool).await,
    })
    .context("Failed to count deliveries")?;
    let mut counts = DeliveryCounts::default();
    for (status, n) in rows {
        match status {
            DeliveryStatus::Pending => counts.pending = n,
            DeliveryStatus::Sending => counts.sending = n,
            DeliveryStatus::Sent => counts.sent = n,
            DeliveryStatus::Failed => counts.failed = n,
            DeliveryStatus::Skipped => counts.skipped = n,
        }
    }
    Ok(counts)
}

/// Marks editions whose every delivery is final as sent; returns when each was created.
pub async fn complete_finished(db: &Db, now: DateTime<Utc>) -> anyhow::Result<Vec<DateTime<Utc>>> {
    with_pool!(db, pool => {
        sqlx::query_scalar(
            "update editions set status = 'sent', completed_at = $1 where status = 'sending' and not exists \
             (select 1 from deliveries d where d.edition_id = editions.id and d.status in ('pending', 'sending')) \
             returning created_at",
        )
        .bind(now)
        .fetch_all(pool)
        .await
    })
    .context("Failed to complete editions")
}

/// A sent edition's status back to `sending` (its failed deliveries were queued again). A
/// paused, cancelled or canary edition keeps its status.
pub async fn reopen(db: &Db, id: i64) -> anyhow::Result<()> {
    with_pool!(db, pool => {
        sqlx::query("update editions set status = 'sending', completed_at = null where id = $1 and status = 'sent'")
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ())
    })
    .context("Failed to reopen an edition")
}

/// Editions that went to at least one reader, newest first: the public archive.
pub async fn list_archive(db: &Db, limit: u32, offset: u32) -> anyhow::Result<Vec<Edition>> {
    with_pool!(db, pool => {
        sqlx::query_as(
            concat!(
                "select ", columns!(), " from editions ",
                "where recipients > 0 order by created_at desc, id desc limit $1 offset $2"
            ),
        )
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(pool)
        .await
    })
    .context("Failed to list the edition archive")
}

/// How many editions the archive holds.
pub async fn count_archive(db: &Db) -> anyhow::Result<i64> {
    with_pool!(db, pool => {
        sqlx::query_scalar("select count(*) from editions where recipients > 0")
            .fetch_one(pool)
            .await
    })
    .context("Failed to count the edition archive")
}

/// The posts of each of `edition_ids` (edition id, post), in each edition's order. A post
/// removed since is left out.
pub async fn posts_of(db: &Db, edition_ids: &[i64]) -> anyhow::Result<Vec<(i64, super::posts::PostLink)>> {
    if edition_ids.is_empty() {
        return Ok(Vec::new());
    }
    #[derive(sqlx::FromRow)]
    struct Row {
        edition_id: i64,
        slug: String,
        title: String,
        published_at: DateTime<Utc>,
    }
    let rows: Vec<Row> = with_pool!(db, pool => {
        let mut query = sqlx::QueryBuilder::new(
            "select ep.edition_id, p.slug, p.title, p.published_at from edition_posts ep \
             join posts p on p.id = ep.post_id where p.removed_at is null and ep.edition_id in (",
        );
        let mut ids = query.separated(", ");
        for id in edition_ids {
            ids.push_bind(*id);
        }
        query.push(") order by ep.edition_id, ep.position");
        query.build_query_as().fetch_all(pool).await
    })
    .context("Failed to read the editions' posts")?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.edition_id,
                super::posts::PostLink {
                    slug: r.slug,
                    title: r.title,
                    published_at: r.published_at,
                },
            )
        })
        .collect())
}

/// How many of `recipients` make the canary sample at `percent`: rounded up, at least one,
/// and none when that would leave nobody to wait.
pub fn canary_sample(recipients: i64, percent: f64) -> i64 {
    if percent <= 0.0 || recipients < 2 {
        return 0;
    }
    let sample = ((recipients as f64) * percent / 100.0).ceil() as i64;
    if sample >= recipients { 0 } else { sample.max(1) }
}

#[cfg(test)]
mod tests {
    use super::canary_sample;

    #[test]
    fn a_canary_sample_is_rounded_up_and_leaves_someone_to_wait() {
        assert_eq!(canary_sample(1000, 2.0), 20);
        assert_eq!(canary_sample(40, 10.0), 4);
        assert_eq!(canary_sample(30, 2.0), 1, "rounded up");
        assert_eq!(canary_sample(1000, 0.0), 0, "off");
        assert_eq!(canary_sample(1, 50.0), 0, "nobody would wait");
        assert_eq!(canary_sample(3, 99.0), 0, "nobody would wait");
        assert_eq!(canary_sample(0, 2.0), 0);
    }
}
