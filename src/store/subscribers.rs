//! Subscribers and their confirmation tokens.

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::history::{NewEvent, record_event};
use super::{BeginWrite, Db, with_pool};
use crate::domain::{
    Actor, EmailAddress, EventKind, EventSource, Frequency, Subscriber, SubscriberEvent, SubscriberSource,
    SubscriberStatus, Transition,
};

#[derive(sqlx::FromRow)]
struct SubscriberRow {
    id: i64,
    email: String,
    name: Option<String>,
    status: SubscriberStatus,
    frequency: Frequency,
    topics: String,
    source: SubscriberSource,
    manage_token: String,
    consent_at: Option<DateTime<Utc>>,
    confirmed_at: Option<DateTime<Utc>>,
    unsubscribed_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, email, name, status, frequency, topics, source, manage_token, consent_at, \
     confirmed_at, unsubscribed_at, created_at, updated_at";

impl TryFrom<SubscriberRow> for Subscriber {
    type Error = anyhow::Error;

    fn try_from(r: SubscriberRow) -> anyhow::Result<Self> {
        Ok(Subscriber {
            id: r.id,
            email: EmailAddress::parse(&r.email).with_context(|| format!("Stored address of subscriber {}", r.id))?,
            name: r.name,
            status: r.status,
            frequency: r.frequency,
            topics: serde_json::from_str(&r.topics).unwrap_or_default(),
            source: r.source,
            manage_token: r.manage_token,
            consent_at: r.consent_at,
            confirmed_at: r.confirmed_at,
            unsubscribed_at: r.unsubscribed_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

fn convert(rows: Vec<SubscriberRow>) -> anyhow::Result<Vec<Subscriber>> {
    rows.into_iter().map(Subscriber::try_from).collect()
}

/// A subscriber to be created.
#[derive(Debug, Clone)]
pub struct NewSubscriber {
    pub email: EmailAddress,
    pub name: Option<String>,
    pub status: SubscriberStatus,
    pub frequency: Frequency,
    pub topics: Vec<String>,
    pub source: SubscriberSource,
    pub consent_at: Option<DateTime<Utc>>,
}

/// Changes to a subscriber's choices; `None` leaves a field as it is. (Their status changes
/// only through [`apply`].)
#[derive(Debug, Clone, Default)]
pub struct SubscriberPatch {
    pub name: Option<Option<String>>,
    pub frequency: Option<Frequency>,
    pub topics: Option<Vec<String>>,
}

/// What applying an event to a stored subscriber did.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The state machine's answer for the status the subscriber had.
    pub transition: Transition,
    /// The subscriber as they are now.
    pub subscriber: Subscriber,
}

/// Which subscribers to list, a page at a time: in id order after `after_id` (keyset
/// pagination, for exports and the API), or sorted by `sort` and skipping `offset` rows (the
/// console's numbered pages).
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<SubscriberStatus>,
    pub frequency: Option<Frequency>,
    /// Part of the address or name, case-insensitive.
    pub search: Option<String>,
    pub after_id: i64,
    pub limit: u32,
    pub sort: SortBy,
    pub descending: bool,
    pub offset: u32,
}

/// The columns a list may be sorted by. Ties are broken by id, so the order is stable and a
/// page never repeats or skips a row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortBy {
    #[default]
    Id,
    Email,
    Created,
    Status,
}

impl SortBy {
    /// Every key, with its word in URLs.
    pub const ALL: [(SortBy, &'static str); 4] = [
        (SortBy::Id, "id"),
        (SortBy::Email, "email"),
        (SortBy::Created, "created"),
        (SortBy::Status, "status"),
    ];

    /// The key a URL's word names, if any.
    pub fn parse(word: &str) -> Option<SortBy> {
        Self::ALL.iter().find(|(_, w)| *w == word).map(|(s, _)| *s)
    }

    /// Its word in URLs.
    pub fn as_str(self) -> &'static str {
        Self::ALL.iter().find(|(s, _)| *s == self).map_or("id", |(_, w)| w)
    }

    /// The column: one of a fixed few, never input.
    fn column(self) -> &'static str {
        match self {
            SortBy::Id => "id",
            SortBy::Email => "email_key",
            SortBy::Created => "created_at",
            SortBy::Status => "status",
        }
    }
}

/// The `where` clause a [`ListFilter`] stands for (`$1` to `$4`), and its search pattern.
fn list_condition(filter: &ListFilter) -> (&'static str, Option<String>) {
    let search = filter.search.as_deref().map(|s| {
        format!(
            "%{}%",
            s.to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )
    });
    (
        "where id > $1 and ($2 = '' or status = $2) and ($3 = '' or frequency = $3) \
         and ($4 = '' or email_key like $4 escape '\\' or lower(coalesce(name, '')) like $4 escape '\\')",
        search,
    )
}

/// 256 bits from the operating system's CSPRNG, base64url: the secret in a subscriber's links.
pub fn new_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// How a token is stored: only its SHA-256, so the table alone cannot confirm anyone.
pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Voids every confirmation link of a subscriber that has not been used yet.
macro_rules! void_confirmations {
    ($executor:expr, $id:expr, $now:expr) => {
        sqlx::query(
            "update confirmations set revoked_at = $2 \
             where subscriber_id = $1 and used_at is null and revoked_at is null",
        )
        .bind($id)
        .bind($now)
        .execute($executor)
        .await
        .map(|_| ())
    };
}
pub(crate) use void_confirmations;

/// Voids every outstanding confirmation link of a subscriber.
pub async fn revoke_confirmations(db: &Db, id: i64, now: DateTime<Utc>) -> anyhow::Result<()> {
    with_pool!(db, pool => void_confirmations!(pool, id, now)).context("Failed to void confirmation links")
}

/// Inserts a subscriber unless the address is already on the list; returns the row either way
/// and whether it was created now.
#[tracing::instrument(skip_all)]
pub async fn insert_or_get(db: &Db, new: &NewSubscriber, now: DateTime<Utc>) -> anyhow::Result<(Subscriber, bool)> {
    let topics = serde_json::to_string(&new.topics)?;
    let confirmed_at = (new.status == SubscriberStatus::Confirmed).then_some(now);
    let inserted: Option<i64> = with_pool!(db, pool => {
        sqlx::query_scalar(
            "insert into subscribers (email, email_key, name, status, frequency, topics, source, manage_token, \
             consent_at, confirmed_at, created_at, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
             on conflict (email_key) do nothing returning id",
        )
        .bind(new.email.as_str())
        .bind(new.email.key())
        .bind(&new.name)
        .bind(new.status)
        .bind(new.frequency.as_str())
        .bind(&topics)
        .bind(new.source.as_str())
        .bind(new_token())
        .bind(new.consent_at)
        .bind(confirmed_at)
        .bind(now)
        .fetch_optional(pool)
        .await
    })
    .context("Failed to store a subscriber")?;
    let subscriber = find_by_email(db, &new.email)
        .await?
        .context("A subscriber vanished right after it was stored")?;
    Ok((subscriber, inserted.is_some()))
}

/// The one subscriber whose `column` equals `value` (a unique column).
macro_rules! find_one {
    ($db:expr, $column:literal, $value:expr) => {{
        let sql = sqlx::AssertSqlSafe(format!("select {COLUMNS} from subscribers where {} = $1", $column));
        let row: Option<SubscriberRow> = with_pool!($db, pool => {
            sqlx::query_as(sql).bind($value).fetch_optional(pool).await
        })
        .context(concat!("Failed to look up a subscriber by ", $column))?;
        row.map(Subscriber::try_from).transpose()
    }};
}

#[tracing::instrument(skip_all)]
pub async fn find_by_email(db: &Db, email: &EmailAddress) -> anyhow::Result<Option<Subscriber>> {
    find_one!(db, "email_key", email.key())
}

#[tracing::instrument(skip_all)]
pub async fn find(db: &Db, id: i64) -> anyhow::Result<Option<Subscriber>> {
    find_one!(db, "id", id)
}

/// The subscriber whose preferences/unsubscribe links carry `token`.
#[tracing::instrument(skip_all)]
pub async fn find_by_manage_token(db: &Db, token: &str) -> anyhow::Result<Option<Subscriber>> {
    if token.len() > 100 {
        return Ok(None);
    }
    find_one!(db, "manage_token", token)
}

/// A page of subscribers, in the filter's order.
#[tracing::instrument(skip_all)]
pub async fn list(db: &Db, filter: &ListFilter) -> anyhow::Result<Vec<Subscriber>> {
    let (condition, search) = list_condition(filter);
    let direction = if filter.descending { "desc" } else { "asc" };
    let column = filter.sort.column();
    let sql = sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from subscribers {condition} \
         order by {column} {direction}, id {direction} limit $5 offset $6"
    ));
    let rows: Vec<SubscriberRow> = with_pool!(db, pool => {
        sqlx::query_as(sql)
            .bind(filter.after_id)
            .bind(filter.status.map(|s| s.as_str()).unwrap_or(""))
            .bind(filter.frequency.map(|f| f.as_str()).unwrap_or(""))
            .bind(search.as_deref().unwrap_or(""))
            .bind(i64::from(filter.limit.max(1)))
            .bind(i64::from(filter.offset))
            .fetch_all(pool)
            .await
    })
    .context("Failed to list subscribers")?;
    convert(rows)
}

/// How many subscribers of each status match the filter (its own status aside), for the
/// totals above a list.
#[tracing::instrument(skip_all)]
pub async fn count_matching(db: &Db, filter: &ListFilter) -> anyhow::Result<Vec<(SubscriberStatus, i64)>> {
    let (condition, search) = list_condition(filter);
    let sql = sqlx::AssertSqlSafe(format!(
        "select status, count(*) from subscribers {condition} group by status order by status"
    ));
    with_pool!(db, pool => {
        sqlx::query_as(sql)
            .bind(filter.after_id)
            .bind("")
            .bind(filter.frequency.map(|f| f.as_str()).unwrap_or(""))
            .bind(search.as_deref().unwrap_or(""))
            .fetch_all(pool)
            .await
    })
    .context("Failed to count subscribers")
}

/// `status in ('pending', ...)`: a condition that holds for exactly `statuses` (words of the
/// enum, never input), for conditional updates whose statuses the state machine chose.
pub(crate) fn status_in(statuses: &[SubscriberStatus]) -> String {
    if statuses.is_empty() {
        return "1 = 0".to_owned();
    }
    let words: Vec<String> = statuses.iter().map(|s| format!("'{}'", s.as_str())).collect();
    format!("status in ({})", words.join(", "))
}

/// Sets the status to `to`, with the time of the change in its column (`confirmed_at`,
/// ...), only while it is still `from`; a departure voids the address's outstanding
/// confirmation links. Returns whether the row was still `from` (and so changed).
macro_rules! move_status {
    ($tx:expr, $id:expr, $from:expr, $to:expr, $now:expr) => {{
        let (id, to, now): (i64, SubscriberStatus, DateTime<Utc>) = ($id, $to, $now);
        let stamp = |s: SubscriberStatus| (to == s).then_some(now);
        let moved = sqlx::query(
            "update subscribers set status = $3, updated_at = $4, \
             confirmed_at = coalesce($5, confirmed_at), unsubscribed_at = coalesce($6, unsubscribed_at), \
             bounced_at = coalesce($7, bounced_at), complained_at = coalesce($8, complained_at) \
             where id = $1 and status = $2",
        )
        .bind(id)
        .bind($from)
        .bind(to)
        .bind(now)
        .bind(stamp(SubscriberStatus::Confirmed))
        .bind(stamp(SubscriberStatus::Unsubscribed))
        .bind(stamp(SubscriberStatus::Bounced))
        .bind(stamp(SubscriberStatus::Complained))
        .execute(&mut *$tx)
        .await?
        .rows_affected()
            > 0;
        if moved && !to.on_list() {
            void_confirmations!(&mut *$tx, id, now)?;
        }
        Ok::<bool, sqlx::Error>(moved)
    }};
}

/// Applies an event to a subscriber's status as the state machine
/// ([`SubscriberEvent::transition`]) decides: the move is written only while the status is
/// still the one the machine was asked about (another writer may have changed it since; the
/// machine is then asked again about the new one). Leaving the list voids the address's
/// outstanding confirmation links. A move is kept in the subscriber's history, as made by
/// `actor` (with `detail`, such as an admin's reason), in the same transaction. `None` if
/// there is no such subscriber.
#[tracing::instrument(skip_all, fields(event = ?event))]
pub async fn apply(
    db: &Db,
    id: i64,
    event: SubscriberEvent,
    actor: &Actor,
    detail: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<Applied>> {
    for _ in 0..5 {
        let Some(subscriber) = find(db, id).await? else {
            return Ok(None);
        };
        let transition = event.transition(Some(subscriber.status));
        let Transition::To(to) = transition else {
            return Ok(Some(Applied { transition, subscriber }));
        };
        let from = subscriber.status;
        let mut record = NewEvent::new(id, EventKind::of_move(event, from, to), actor, now);
        record.detail = Some(match detail {
            Some(detail) => format!("{from} → {to}: {detail}"),
            None => format!("{from} → {to}"),
        });
        let moved = with_pool!(db, pool => {
            let mut tx = pool.begin_write().await?;
            let moved = move_status!(tx, id, from, to, now)?;
            if moved {
                record_event!(&mut *tx, &record)?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(moved)
        })
        .with_context(|| format!("Failed to change the status of subscriber {id} from {from} to {to}"))?;
        if moved {
            let subscriber = find(db, id)
                .await?
                .context("A subscriber vanished right after a change of status")?;
            tracing::info!(subscriber = id, %from, %to, "status changed");
            return Ok(Some(Applied { transition, subscriber }));
        }
    }
    anyhow::bail!("The status of subscriber {id} kept changing under {event:?}")
}

/// What changed between two sets of choices, in words (`frequency weekly → daily`); `None`
/// when nothing did.
pub fn describe_change(
    before: (&Option<String>, Frequency, &[String]),
    after: (&Option<String>, Frequency, &[String]),
) -> Option<String> {
    let topics = |t: &[String]| if t.is_empty() { "(all)".to_owned() } else { t.join(",") };
    let mut changes = Vec::new();
    if before.0 != after.0 {
        changes.push("name".to_owned());
    }
    if before.1 != after.1 {
        changes.push(format!("frequency {} → {}", before.1, after.1));
    }
    if before.2 != after.2 {
        changes.push(format!("topics {} → {}", topics(before.2), topics(after.2)));
    }
    (!changes.is_empty()).then(|| changes.join("; "))
}

/// Changes a subscriber's choices (name, frequency, topics), and keeps what changed in their
/// history: `preferences_changed` when the reader did it by their link, `edited` when an
/// admin did. Returns the updated row.
#[tracing::instrument(skip_all)]
pub async fn update(
    db: &Db,
    id: i64,
    patch: &SubscriberPatch,
    actor: &Actor,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<Subscriber>> {
    let Some(current) = find(db, id).await? else {
        return Ok(None);
    };
    let name = patch.name.clone().unwrap_or(current.name.clone());
    let frequency = patch.frequency.unwrap_or(current.frequency);
    let new_topics = patch.topics.as_ref().unwrap_or(&current.topics);
    let topics = serde_json::to_string(new_topics)?;
    let kind = if actor.source == EventSource::Link {
        EventKind::PreferencesChanged
    } else {
        EventKind::Edited
    };
    let change = describe_change(
        (&current.name, current.frequency, &current.topics),
        (&name, frequency, new_topics),
    );
    let record = change.map(|c| NewEvent::new(id, kind, actor, now).detail(c));
    with_pool!(db, pool => {
        let mut tx = pool.begin_write().await?;
        let updated = sqlx::query("update subscribers set name = $2, frequency = $3, topics = $4, updated_at = $5 where id = $1")
            .bind(id)
            .bind(&name)
            .bind(frequency.as_str())
            .bind(&topics)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if let Some(record) = &record
            && updated > 0
        {
            record_event!(&mut *tx, record)?;
        }
        tx.commit().await
    })
    .context("Failed to update a subscriber")?;
    find(db, id).await
}

/// Takes every trace of an address out of the tables that do not go with the subscriber's
/// row: bounce reports keep their kind and time but lose the address and the text (which may
/// quote it), mail queued to it goes, and (with `$requests`) so do requests for it still
/// waiting for the worker.
macro_rules! forget_address {
    ($tx:expr, $id:expr, $email:expr, $requests:expr) => {{
        let (id, email): (i64, &EmailAddress) = ($id, $email);
        let (lower, key) = (email.as_str().to_lowercase(), email.key());
        sqlx::query(
            "update bounce_events set address = '', diagnostic = null \
             where subscriber_id = $1 or address = $2 or address = $3",
        )
        .bind(id)
        .bind(&lower)
        .bind(&key)
        .execute(&mut *$tx)
        .await?;
        if $requests {
            sqlx::query("delete from subscription_requests where lower(email) = $1 or lower(email) = $2")
                .bind(&lower)
                .bind(&key)
                .execute(&mut *$tx)
                .await?;
        }
        sqlx::query("delete from outbox where subscriber_id = $1 or lower(recipient) = $2 or lower(recipient) = $3")
            .bind(id)
            .bind(&lower)
            .bind(&key)
            .execute(&mut *$tx)
            .await?;
        Ok::<(), sqlx::Error>(())
    }};
}

/// Erases a person: their row, history, tokens and queued mail, and their address from the
/// bounce reports; only `email_hash` (a keyed hash of the address) is kept, on the
/// suppression list, with `source` (who asked) and the time. Returns whether anyone was there.
#[tracing::instrument(skip_all)]
pub async fn erase(
    db: &Db,
    id: i64,
    email_hash: &str,
    source: EventSource,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let Some(subscriber) = find(db, id).await? else {
        return Ok(false);
    };
    let deleted = with_pool!(db, pool => {
        let mut tx = pool.begin_write().await?;
        forget_address!(tx, id, &subscriber.email, true)?;
        sqlx::query(
            "insert into suppressions (email_hash, reason, source, created_at) values ($1, 'erased', $2, $3) \
             on conflict (email_hash) do update set source = excluded.source, created_at = excluded.created_at",
        )
        .bind(email_hash)
        .bind(source)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let deleted = sqlx::query("delete from subscribers where id = $1").bind(id).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok::<_, sqlx::Error>(deleted)
    })
    .context("Failed to erase a subscriber")?;
    Ok(deleted > 0)
}

/// Deletes, at most `limit` at a time, subscribers still pending who were added and last
/// mailed a confirmation link before `cutoff`, with every trace of their address (as
/// [`erase`], but keeping no hash: they never joined). Each is deleted only if it is still
/// so when its own transaction runs, so instances purging at once, or a confirmation
/// arriving meanwhile, change nothing. Returns how many went.
#[tracing::instrument(skip_all)]
pub async fn purge_pending(db: &Db, cutoff: DateTime<Utc>, limit: u32) -> anyhow::Result<usize> {
    const STALE: &str = "status = 'pending' and created_at < $1 \
         and (confirmation_sent_at is null or confirmation_sent_at < $1)";
    let sql = sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from subscribers where {STALE} order by id limit $2"
    ));
    let rows: Vec<SubscriberRow> = with_pool!(db, pool => {
        sqlx::query_as(sql).bind(cutoff).bind(i64::from(limit)).fetch_all(pool).await
    })
    .context("Failed to find pending subscribers to purge")?;
    let mut purged = 0;
    for row in rows {
        let subscriber = Subscriber::try_from(row)?;
        let delete = sqlx::AssertSqlSafe(format!("delete from subscribers where id = $2 and {STALE}"));
        let deleted = with_pool!(db, pool => {
            let mut tx = pool.begin_write().await?;
            // A request they make now is theirs to make: it stays.
            forget_address!(tx, subscriber.id, &subscriber.email, false)?;
            let deleted = sqlx::query(delete).bind(cutoff).bind(subscriber.id).execute(&mut *tx).await?.rows_affected();
            // Confirmed (or changed) meanwhile: the rollback keeps everything.
            if deleted > 0 {
                tx.commit().await?;
            }
            Ok::<_, sqlx::Error>(deleted)
        })
        .context("Failed to purge a pending subscriber")?;
        purged += deleted as usize;
    }
    Ok(purged)
}

/// Counts by status.
pub async fn count_by_status(db: &Db) -> anyhow::Result<Vec<(SubscriberStatus, i64)>> {
    with_pool!(db, pool => {
        sqlx::query_as("select status, count(*) from subscribers group by status order by status")
            .fetch_all(pool)
            .await
    })
    .context("Failed to count subscribers")
}

/// Whether a confirmation mail went to this subscriber after `since`.
pub fn confirmation_recent(sent_at: Option<DateTime<Utc>>, since: DateTime<Utc>) -> bool {
    sent_at.is_some_and(|t| t > since)
}

/// When the last confirmation mail was queued for a subscriber.
pub async fn confirmation_sent_at(db: &Db, id: i64) -> anyhow::Result<Option<DateTime<Utc>>> {
    with_pool!(db, pool => {
        sqlx::query_scalar("select confirmation_sent_at from subscribers where id = $1").bind(id).fetch_one(pool).await
    })
    .context("Failed to read when a confirmation was sent")
}

/// Outcome of following a confirmation link.
#[derive(Debug, Clone, PartialEq)]
pub enum Confirmed {
    /// Followed now: the choices it was mailed with are applied, and the subscriber is
    /// confirmed (unless the address is suppressed or an admin has confirmed it meanwhile).
    Confirmed(Box<Subscriber>),
    /// Followed before: a link confirms once and never again.
    Used,
    /// A newer link was sent to the address since, or the address left: this one is void.
    Superseded,
    /// The link is past its time.
    Expired,
    /// No such link.
    Unknown,
}

/// Consumes a confirmation token: only the newest unused, unexpired link of an address
/// works, and only once. Where the state machine lets [`SubscriberEvent::Confirmed`] move
/// the subscriber (pending, or unsubscribed and asked again), it confirms them with the
/// name, frequency and topics it was mailed with; a confirmed one keeps their own choices,
/// a suppressed one stays suppressed. The confirmation is kept in their history with `ip`
/// (the truncated address of the request that followed the link) and the version of the
/// consent wording their request was made under.
#[tracing::instrument(skip_all)]
pub async fn confirm(db: &Db, token: &str, ip: Option<String>, now: DateTime<Utc>) -> anyhow::Result<Confirmed> {
    let link = Actor::link();
    let hash = token_hash(token);
    // The statuses the state machine confirms from: a link confirms only those, and only
    // as they are at the moment of the write.
    let event = SubscriberEvent::Confirmed;
    let confirm_sql = format!(
        "update subscribers set status = '{}', name = coalesce($2, name), \
         frequency = coalesce($3, frequency), topics = coalesce($4, topics), \
         consent_at = $5, confirmed_at = $5, updated_at = $5 where id = $1 and {}",
        event.target(),
        status_in(&event.moves_from())
    );
    type Consumed = (i64, Option<String>, Option<String>, Option<String>);
    let consumed: Option<Consumed> = with_pool!(db, pool => {
        let mut tx = pool.begin_write().await?;
        // Claimed and used in one statement: two clicks at once cannot both pass.
        let consumed: Option<Consumed> = sqlx::query_as(
            "update confirmations set used_at = $2 \
             where token_hash = $1 and used_at is null and revoked_at is null and expires_at >= $2 \
             returning subscriber_id, name, frequency, topics",
        )
        .bind(&hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((id, name, frequency, topics)) = &consumed {
            let from: Option<SubscriberStatus> = sqlx::query_scalar("select status from subscribers where id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let wording_version: Option<Option<String>> = sqlx::query_scalar(
                "select wording_version from subscriber_events where subscriber_id = $1 and kind = 'requested' \
                 order by at desc, id desc limit 1",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let moved = sqlx::query(sqlx::AssertSqlSafe(confirm_sql.clone()))
            .bind(id)
            .bind(name)
            .bind(frequency)
            .bind(topics)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if moved && let Some(from) = from {
                let record = NewEvent {
                    detail: Some(format!("{from} → {}", event.target())),
                    wording_version: wording_version.flatten(),
                    ip: ip.clone(),
                    ..NewEvent::new(*id, EventKind::of_move(event, from, event.target()), &link, now)
                };
                record_event!(&mut *tx, &record)?;
            }
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(consumed)
    })
    .context("Failed to confirm a subscriber")?;
    if let Some((id, ..)) = consumed {
        return Ok(match find(db, id).await? {
            Some(s) => Confirmed::Confirmed(Box::new(s)),
            None => Confirmed::Unknown,
        });
    }
    // Not usable: say why.
    type Spent = (Option<DateTime<Utc>>, Option<DateTime<Utc>>, DateTime<Utc>);
    let spent: Option<Spent> = with_pool!(db, pool => {
        sqlx::query_as("select used_at, revoked_at, expires_at from confirmations where token_hash = $1")
            .bind(&hash)
            .fetch_optional(pool)
            .await
    })
    .context("Failed to look up a confirmation")?;
    Ok(match spent {
        None => Confirmed::Unknown,
        Some((Some(_), _, _)) => Confirmed::Used,
        Some((None, Some(_), _)) => Confirmed::Superseded,
        Some((None, None, _)) => Confirmed::Expired,
    })
}

/// One good row of an import file.
#[derive(Debug, Clone)]
pub struct ImportRow {
    pub line: u64,
    pub email: EmailAddress,
    pub name: Option<String>,
    pub frequency: Option<Frequency>,
    pub topics: Option<Vec<String>>,
    pub status: SubscriberStatus,
}

/// What importing a row did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportOutcome {
    Added,
    Updated,
    Unchanged,
    /// The state machine refused the row's status for the address, which has this one (a
    /// departed address is not brought closer to the list without `--force`): the row is
    /// left out whole.
    Kept(SubscriberStatus),
}

/// Imports rows in one transaction. Each row's status is an [`SubscriberEvent::Imported`]
/// for the state machine: a new address gets the status it carries; a known one moves only
/// where the machine lets it (without `force`, never from departed back onto the list, and
/// a confirmed one never back to pending), and a row it refuses is left out whole. Name,
/// frequency and topics are taken from the row where it has them.
#[tracing::instrument(skip_all, fields(rows = rows.len()))]
pub async fn import_batch(
    db: &Db,
    rows: &[ImportRow],
    force: bool,
    default_frequency: Frequency,
    actor: &Actor,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<ImportOutcome>> {
    let select = format!("select {COLUMNS} from subscribers where email_key = $1");
    with_pool!(db, pool => {
        let mut tx = pool.begin_write().await.context("Failed to start an import batch")?;
        let mut outcomes = Vec::with_capacity(rows.len());
        for row in rows {
            let event = SubscriberEvent::Imported { to: row.status, force };
            // Written only while the status is the one the machine was asked about: another
            // writer may change it between the read and the write (then ask again).
            let mut attempts = 0;
            let outcome = loop {
                attempts += 1;
                if attempts > 5 {
                    anyhow::bail!("Import line {}: the status of {} kept changing", row.line, row.email);
                }
                let existing: Option<SubscriberRow> = sqlx::query_as(sqlx::AssertSqlSafe(select.clone()))
                    .bind(row.email.key())
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(existing) = existing else {
                    let Transition::To(status) = event.transition(None) else {
                        anyhow::bail!("Import line {}: an import cannot add an address as {}", row.line, row.status);
                    };
                    let confirmed_at = (status == SubscriberStatus::Confirmed).then_some(now);
                    let topics = serde_json::to_string(row.topics.as_deref().unwrap_or(&[]))?;
                    let id: i64 = sqlx::query_scalar(
                        "insert into subscribers (email, email_key, name, status, frequency, topics, source, \
                         manage_token, consent_at, confirmed_at, created_at, updated_at) \
                         values ($1, $2, $3, $4, $5, $6, 'import', $7, $8, $9, $8, $8) returning id",
                    )
                    .bind(row.email.as_str())
                    .bind(row.email.key())
                    .bind(&row.name)
                    .bind(status)
                    .bind(row.frequency.unwrap_or(default_frequency).as_str())
                    .bind(&topics)
                    .bind(new_token())
                    .bind(now)
                    .bind(confirmed_at)
                    .fetch_one(&mut *tx)
                    .await
                    .with_context(|| format!("Failed to import line {}", row.line))?;
                    let record = NewEvent::new(id, EventKind::Imported, actor, now)
                        .detail(format!("line {}: added as {status}", row.line));
                    record_event!(&mut *tx, &record)?;
                    break ImportOutcome::Added;
                };
                let current = Subscriber::try_from(existing)?;
                let status = match event.transition(Some(current.status)) {
                    Transition::Refused => break ImportOutcome::Kept(current.status),
                    Transition::Same => current.status,
                    Transition::To(to) => to,
                };
                let name = row.name.clone().or(current.name.clone());
                let frequency = row.frequency.unwrap_or(current.frequency);
                let topics = row.topics.clone().unwrap_or(current.topics.clone());
                if status == current.status
                    && name == current.name
                    && frequency == current.frequency
                    && topics == current.topics
                {
                    break ImportOutcome::Unchanged;
                }
                let held = sqlx::query(
                    "update subscribers set name = $3, frequency = $4, topics = $5, updated_at = $6 \
                     where id = $1 and status = $2",
                )
                .bind(current.id)
                .bind(current.status)
                .bind(&name)
                .bind(frequency.as_str())
                .bind(serde_json::to_string(&topics)?)
                .bind(now)
                .execute(&mut *tx)
                .await
                .with_context(|| format!("Failed to import line {}", row.line))?
                .rows_affected()
                    > 0;
                if !held {
                    continue;
                }
                if status != current.status {
                    move_status!(tx, current.id, current.status, status, now)
                        .with_context(|| format!("Failed to import line {}", row.line))?;
                }
                let mut changes = vec![format!("line {}", row.line)];
                if status != current.status {
                    changes.push(format!("{} → {status}", current.status));
                }
                changes.extend(describe_change(
                    (&current.name, current.frequency, &current.topics),
                    (&name, frequency, &topics),
                ));
                let record = NewEvent::new(current.id, EventKind::Imported, actor, now).detail(changes.join("; "));
                record_event!(&mut *tx, &record)?;
                break ImportOutcome::Updated;
            };
            outcomes.push(outcome);
        }
        tx.commit().await.context("Failed to commit an import batch")?;
        Ok(outcomes)
    })
}

/// Confirmed subscribers of a frequency.
pub async fn count_confirmed(db: &Db, frequency: Frequency) -> anyhow::Result<i64> {
    with_pool!(db, pool => {
        sqlx::query_scalar("select count(*) from subscribers where status = 'confirmed' and frequency = $1")
            .bind(frequency.as_str())
            .fetch_one(pool)
            .await
    })
    .context("Failed to count subscribers")
}

/// Subscribers by id (those that still exist).
pub async fn find_many(db: &Db, ids: &[i64]) -> anyhow::Result<Vec<Subscriber>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<SubscriberRow> = with_pool!(db, pool => {
        let mut query = sqlx::QueryBuilder::new(format!("select {COLUMNS} from subscribers where id in ("));
        let mut list = query.separated(", ");
        for id in ids {
            list.push_bind(*id);
        }
        query.push(")");
        query.build_query_as().fetch_all(pool).await
    })
    .context("Failed to read subscribers")?;
    convert(rows)
}
