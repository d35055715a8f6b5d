//! The migrated schema on real databases: every state column refuses a word that is not one
//! of its enum's and takes each one that is, and SQLite's table rebuilds keep every column,
//! default, index, foreign key, row and AUTOINCREMENT counter; a bounce written with a
//! delivery's outcome moves its subscriber as the state machine says.
//!
//! SQLite always; PostgreSQL too when `HERALD_TEST_DATABASE_URL` names a server.

use std::path::Path;

use chrono::{DateTime, Utc};
use sqlx::error::ErrorKind;

use super::{Db, with_pool};
use crate::domain::{
    DeliveryStatus, EditionStatus, OutboxStatus, PauseCause, PollOutcome, RequestStatus, SubscriberStatus,
};

/// The last migration before the state checks.
const BEFORE_STATE_CHECKS: i64 = 20261125000100;
/// The migration that rebuilds the SQLite tables with their state checks.
const STATE_CHECKS: i64 = 20261126000100;
/// The last migration before `pause_and_canary`, which rebuilds `editions` on SQLite.
const BEFORE_PAUSE: i64 = 20261126000300;
/// `pause_and_canary` itself (later migrations add tables of their own).
const PAUSE: i64 = 20261126000500;

async fn sqlite(dir: &Path) -> Db {
    Db::connect_url(&format!("sqlite://{}", dir.join("herald.db").display()), 2)
        .await
        .unwrap()
}

/// A new, empty PostgreSQL database, if tests have a server.
async fn postgres() -> Option<Db> {
    use sqlx::Connection;
    let url = std::env::var("HERALD_TEST_DATABASE_URL").ok()?;
    let name = format!("herald_unit_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&url)
        .await
        .expect("PostgreSQL for tests is reachable");
    sqlx::query(sqlx::AssertSqlSafe(format!("create database {name}")))
        .execute(&mut conn)
        .await
        .expect("a test database can be created");
    let mut parsed = url::Url::parse(&url).unwrap();
    parsed.set_path(&name);
    Some(Db::connect_url(parsed.as_str(), 2).await.unwrap())
}

/// Ids of the rows [`seed`] made.
struct Seeded {
    post: i64,
    subscriber: i64,
    edition: i64,
}

/// One row in every table that has a state column (and the rows they point to), written
/// with SQL as a person at a database prompt would.
async fn seed(db: &Db, now: DateTime<Utc>) -> Seeded {
    with_pool!(db, pool => {
        let post: i64 = sqlx::query_scalar(
            "insert into posts (uid, slug, title, published_at, updated_at, content_html, source, content_hash, \
             created_at, changed_at) values ('urn:uuid:1', 'otters', 'Otters', $1, $1, '<p>Otters</p>', \
             'file:otters.md', 'h', $1, $1) returning id",
        )
        .bind(now)
        .fetch_one(pool)
        .await
        .unwrap();
        sqlx::query("insert into post_tags (post_id, tag, name, position) values ($1, 'wildlife', 'Wildlife', 0)")
            .bind(post)
            .execute(pool)
            .await
            .unwrap();
        let subscriber: i64 = sqlx::query_scalar(
            "insert into subscribers (email, email_key, status, frequency, source, manage_token, created_at, \
             updated_at) values ('ana@example.org', 'ana@example.org', 'confirmed', 'daily', 'cli', 't1', $1, $1) \
             returning id",
        )
        .bind(now)
        .fetch_one(pool)
        .await
        .unwrap();
        sqlx::query(
            "insert into outbox (kind, subscriber_id, recipient, message_id, message, status, next_attempt_at, \
             created_at) values ('confirmation', $2, 'ana@example.org', '<1@example.org>', $3, 'pending', $1, $1)",
        )
        .bind(now)
        .bind(subscriber)
        .bind(b"Subject: hello\r\n\r\nhello\r\n".to_vec())
        .execute(pool)
        .await
        .unwrap();
        let edition: i64 = sqlx::query_scalar(
            "insert into editions (frequency, period, subject, status, created_at) \
             values ('daily', '2026-11-26', 'Otters', 'sending', $1) returning id",
        )
        .bind(now)
        .fetch_one(pool)
        .await
        .unwrap();
        sqlx::query("insert into edition_posts (edition_id, frequency, post_id, position) values ($1, 'daily', $2, 0)")
            .bind(edition)
            .bind(post)
            .execute(pool)
            .await
            .unwrap();
        sqlx::query(
            "insert into deliveries (edition_id, subscriber_id, status, next_attempt_at) values ($2, $3, 'pending', $1)",
        )
        .bind(now)
        .bind(edition)
        .bind(subscriber)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query("insert into sources (url, last_outcome) values ('https://example.org/feed.xml', 'changed')")
            .execute(pool)
            .await
            .unwrap();
        sqlx::query(
            "insert into subscription_requests (email, frequency, source, next_attempt_at, created_at) \
             values ('bo@example.org', 'daily', 'form', $1, $1)",
        )
        .bind(now)
        .execute(pool)
        .await
        .unwrap();
        Seeded {
            post,
            subscriber,
            edition,
        }
    })
}

fn words<T: Copy + std::fmt::Display>(all: &[T]) -> Vec<String> {
    all.iter().map(T::to_string).collect()
}

/// Every checked column: its table, its name, the values it takes and one it refuses.
fn checked_columns() -> Vec<(&'static str, &'static str, Vec<String>, &'static str)> {
    vec![
        ("deliveries", "status", words(DeliveryStatus::ALL), "delivered"),
        ("editions", "status", words(EditionStatus::ALL), "done"),
        ("editions", "paused_cause", words(PauseCause::ALL), "tired"),
        ("outbox", "status", words(OutboxStatus::ALL), "queued"),
        ("sources", "last_outcome", words(PollOutcome::ALL), "ok"),
        ("subscription_requests", "status", words(RequestStatus::ALL), "claimed"),
        ("subscribers", "status", words(SubscriberStatus::ALL), "gone"),
        (
            "posts",
            "source",
            vec!["file:otters.md".into(), "feed:https://example.org/feed.xml#1".into()],
            "otters.md",
        ),
    ]
}

async fn set(db: &Db, table: &str, column: &str, value: &str) -> sqlx::Result<u64> {
    let sql = sqlx::AssertSqlSafe(format!("update {table} set {column} = $1"));
    with_pool!(db, pool => {
        sqlx::query(sql).bind(value).execute(pool).await.map(|r| r.rows_affected())
    })
}

async fn states_are_checked(db: &Db) {
    db.migrate().await.unwrap();
    seed(db, Utc::now()).await;
    for (table, column, values, refused) in checked_columns() {
        for value in &values {
            let updated = set(db, table, column, value).await;
            assert_eq!(updated.ok(), Some(1), "{table}.{column} takes {value:?}");
        }
        let kept = values.last().unwrap();
        let err = set(db, table, column, refused)
            .await
            .expect_err("an unknown word is refused");
        let err = err.as_database_error().expect("the database refused it");
        assert_eq!(err.kind(), ErrorKind::CheckViolation, "{table}.{column}: {err}");
        let constraint = format!("{table}_{column}_check");
        assert!(
            err.message().contains(&constraint),
            "{table}.{column}: {err} names {constraint}"
        );
        let stored: String = with_pool!(db, pool => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("select {column} from {table}")))
                .fetch_one(pool)
                .await
                .unwrap()
        });
        assert_eq!(&stored, kept, "{table}.{column} is unchanged");
    }
    db.close().await;
}

#[tokio::test]
async fn sqlite_refuses_a_state_that_is_not_one_of_its_words() {
    let dir = tempfile::tempdir().unwrap();
    states_are_checked(&sqlite(dir.path()).await).await;
}

#[tokio::test]
async fn postgres_refuses_a_state_that_is_not_one_of_its_words() {
    match postgres().await {
        Some(db) => states_are_checked(&db).await,
        None => eprintln!("HERALD_TEST_DATABASE_URL is not set: PostgreSQL's state checks are not tested here"),
    }
}

/// Every column (name, type, not null, default, primary key), index (with its columns and
/// their order), foreign key and named index's SQL of every table, one line each.
async fn sqlite_schema(pool: &sqlx::SqlitePool) -> Vec<String> {
    const TABLES: &str = "select name from sqlite_master where type = 'table' and name not like 'sqlite_%'";
    let queries = [
        format!(
            "select t.name || ' column ' || c.cid || ' ' || c.name || ' ' || c.type || ' ' || c.\"notnull\" \
             || ' ' || coalesce(c.dflt_value, '-') || ' ' || c.pk \
             from ({TABLES}) t join pragma_table_info(t.name) c order by t.name, c.cid"
        ),
        format!(
            "select t.name || ' index ' || i.name || ' ' || i.\"unique\" || ' ' || i.origin || ' ' || i.partial \
             || ' ' || x.seqno || ' ' || coalesce(x.name, '-') || ' ' || x.\"desc\" || ' ' || x.coll \
             from ({TABLES}) t join pragma_index_list(t.name) i join pragma_index_xinfo(i.name) x \
             order by t.name, i.name, x.seqno"
        ),
        format!(
            "select t.name || ' references ' || f.id || ' ' || f.seq || ' ' || f.\"table\" || ' ' || f.\"from\" \
             || ' ' || f.\"to\" || ' ' || f.on_delete from ({TABLES}) t join pragma_foreign_key_list(t.name) f \
             order by t.name, f.id, f.seq"
        ),
        "select 'index ' || name || ' on ' || tbl_name || ': ' || sql from sqlite_master \
         where type = 'index' and sql is not null order by name"
            .to_owned(),
        "select 'sequence ' || name || ' ' || seq from sqlite_sequence order by name".to_owned(),
    ];
    let mut lines = Vec::new();
    for sql in queries {
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool)
            .await
            .unwrap();
        lines.extend(rows);
    }
    lines
}

#[tokio::test]
async fn sqlite_editions_rebuilt_for_pauses_keep_their_schema_rows_counter_and_references() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite(dir.path()).await;
    let Db::Sqlite(pool) = &db else { unreachable!() };
    sqlx::migrate!("./migrations/sqlite")
        .run_to(BEFORE_PAUSE, pool)
        .await
        .unwrap();
    let seeded = seed(&db, Utc::now()).await;
    sqlx::query("update sqlite_sequence set seq = seq + 10")
        .execute(pool)
        .await
        .unwrap();
    let before = sqlite_schema(pool).await;

    sqlx::migrate!("./migrations/sqlite").run_to(PAUSE, pool).await.unwrap();

    // The same but for the new columns and the new words of the status check.
    let added = [
        "deliveries column 9 canary boolean 1 false 0",
        "deliveries column 10 failed_at TEXT 0 - 0",
        "editions column 8 paused_cause TEXT 0 - 0",
        "editions column 9 paused_reason TEXT 0 - 0",
        "editions column 10 paused_at TEXT 0 - 0",
        "editions column 11 canary_until TEXT 0 - 0",
    ];
    let mut after = sqlite_schema(pool).await;
    after.retain(|line| !added.contains(&line.as_str()));
    assert_eq!(before, after, "the rebuilt editions table is as it was");
    let edition = super::editions::find(&db, seeded.edition).await.unwrap().unwrap();
    assert_eq!((edition.status, edition.paused_cause), (EditionStatus::Sending, None));
    assert_eq!(
        super::editions::counts(&db, Some(seeded.edition))
            .await
            .unwrap()
            .pending,
        1
    );
    // Deliveries (and bounce events) still point at the editions: deleting one cascades.
    sqlx::query("delete from editions where id = $1")
        .bind(seeded.edition)
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(super::editions::counts(&db, None).await.unwrap().total(), 0);
}

#[tokio::test]
async fn sqlite_tables_rebuilt_with_state_checks_keep_their_schema_rows_and_counters() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite(dir.path()).await;
    let Db::Sqlite(pool) = &db else { unreachable!() };
    sqlx::migrate!("./migrations/sqlite")
        .run_to(BEFORE_STATE_CHECKS, pool)
        .await
        .unwrap();
    let now = Utc::now();
    let seeded = seed(&db, now).await;
    // As if rows at the end had been deleted: their ids must never come back.
    sqlx::query("update sqlite_sequence set seq = seq + 10")
        .execute(pool)
        .await
        .unwrap();
    // Written by earlier versions for a moment, and forgotten by the migration.
    sqlx::query("insert into sources (url, last_outcome) values ('https://example.org/other.xml', 'ok')")
        .execute(pool)
        .await
        .unwrap();
    let before = sqlite_schema(pool).await;
    for line in [
        "posts column 18 archived boolean 1 false 0",
        "deliveries index deliveries_due 0 c 0 1 next_attempt_at 0 BINARY",
        "deliveries references 1 0 editions edition_id id CASCADE",
        "sequence subscription_requests 11",
    ] {
        assert!(before.iter().any(|l| l == line), "{line:?} in {before:#?}");
    }

    // The state checks alone: later migrations add tables and indexes of their own.
    sqlx::migrate!("./migrations/sqlite")
        .run_to(STATE_CHECKS, pool)
        .await
        .unwrap();
    let after = sqlite_schema(pool).await;
    assert_eq!(before, after, "the rebuilt tables are as they were");
    db.migrate().await.unwrap();
    assert!(db.migrations_current().await);

    // The rows are all there, and read as what they are.
    let sources = super::posts::sources(&db).await.unwrap();
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0].source, crate::domain::PostSource::File("otters.md".into()));
    let ana = super::subscribers::find(&db, seeded.subscriber).await.unwrap().unwrap();
    assert_eq!(ana.status, SubscriberStatus::Confirmed);
    let edition = super::editions::find(&db, seeded.edition).await.unwrap().unwrap();
    assert_eq!(edition.status, EditionStatus::Sending);
    assert_eq!(super::editions::counts(&db, None).await.unwrap().pending, 1);
    assert_eq!(super::outbox::counts(&db).await.unwrap(), [(OutboxStatus::Pending, 1)]);
    assert_eq!(super::requests::pending(&db).await.unwrap(), 1);
    let polled = super::sources::last_outcome(&db, "https://example.org/feed.xml")
        .await
        .unwrap();
    assert_eq!(polled.map(|p| p.0), Some(Some(PollOutcome::Changed)));
    let forgotten = super::sources::last_outcome(&db, "https://example.org/other.xml")
        .await
        .unwrap();
    assert_eq!(forgotten.map(|p| p.0), Some(None));

    // Foreign keys are on again on every connection, and point at the new tables.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut conn = pool.acquire().await.unwrap();
        let on: i64 = sqlx::query_scalar("pragma foreign_keys")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(on, 1, "foreign keys are enforced");
        held.push(conn);
    }
    drop(held);
    let dangling = sqlx::query(
        "insert into deliveries (edition_id, subscriber_id, status, next_attempt_at) \
         values (999, 999, 'pending', $1)",
    )
    .bind(now)
    .execute(pool)
    .await
    .expect_err("a delivery of no edition is refused");
    assert_eq!(
        dangling.as_database_error().unwrap().kind(),
        ErrorKind::ForeignKeyViolation
    );
    sqlx::query("delete from posts where id = $1")
        .bind(seeded.post)
        .execute(pool)
        .await
        .unwrap();
    let tags: i64 = sqlx::query_scalar("select count(*) from post_tags")
        .fetch_one(pool)
        .await
        .unwrap();
    let carried: i64 = sqlx::query_scalar("select count(*) from edition_posts")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(
        (tags, carried),
        (0, 0),
        "deleting a post still deletes its tags and edition entries"
    );
    db.close().await;
}

/// The status of the seeded subscriber, and whether a confirmation link of theirs is still
/// live, after each bounce recorded on their delivery: the state machine decides, from
/// whatever status they have when the outcome is written, and a bounce that moves them
/// voids their links. Each bounce is kept as an `smtp` event.
async fn delivery_bounces_follow_the_state_machine(db: &Db) {
    use super::deliveries::{Outcome, Recorded};
    use crate::domain::{SubscriberEvent, Transition};

    db.migrate().await.unwrap();
    let now = Utc::now();
    let seeded = seed(db, now).await;
    for (n, from) in SubscriberStatus::ALL.iter().copied().enumerate() {
        with_pool!(db, pool => {
            sqlx::query("update subscribers set status = $2 where id = $1")
                .bind(seeded.subscriber)
                .bind(from)
                .execute(pool)
                .await
                .unwrap();
            sqlx::query("update deliveries set status = 'pending', next_attempt_at = $1")
                .bind(now)
                .execute(pool)
                .await
                .unwrap();
            sqlx::query(
                "insert into confirmations (token_hash, subscriber_id, expires_at, created_at) values ($1, $2, $3, $3)",
            )
            .bind(format!("hash-{n}"))
            .bind(seeded.subscriber)
            .bind(now + chrono::Duration::days(1))
            .execute(pool)
            .await
            .unwrap();
        });
        let token = n as i64 + 1;
        let claimed = super::deliveries::claim(db, now, now + chrono::Duration::minutes(1), 10, token)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        let failed = Recorded {
            delivery: claimed[0].clone(),
            token,
            outcome: Outcome::Failed {
                error: "550 5.1.1 no such user".to_owned(),
                bounce: true,
            },
        };
        assert!(super::deliveries::record(db, &[failed], now).await.unwrap().is_empty());
        let after = super::subscribers::find(db, seeded.subscriber)
            .await
            .unwrap()
            .unwrap()
            .status;
        let moved = SubscriberEvent::Bounced.transition(Some(from));
        let expected = match moved {
            Transition::To(to) => to,
            _ => from,
        };
        assert_eq!(after, expected, "a bounce from {from}");
        // Every SMTP bounce is kept, whether or not it moved the status.
        let events = super::bounces::for_subscriber(db, seeded.subscriber, 100)
            .await
            .unwrap();
        assert_eq!(events.len(), n + 1, "one event per bounce, from {from}");
        let newest = &events[0];
        assert_eq!(
            (
                newest.kind,
                newest.source,
                newest.edition_id,
                newest.diagnostic.as_deref()
            ),
            (
                crate::domain::BounceKind::Hard,
                crate::domain::BounceSource::Smtp,
                Some(claimed[0].edition_id),
                Some("550 5.1.1 no such user")
            )
        );
        let live: i64 = with_pool!(db, pool => {
            sqlx::query_scalar("select count(*) from confirmations where token_hash = $1 and revoked_at is null")
                .bind(format!("hash-{n}"))
                .fetch_one(pool)
                .await
                .unwrap()
        });
        assert_eq!(
            live == 0,
            matches!(moved, Transition::To(_)),
            "links voided by a bounce from {from}"
        );
    }
    assert_eq!(
        SubscriberEvent::Bounced.transition(Some(SubscriberStatus::Unsubscribed)),
        Transition::To(SubscriberStatus::Bounced),
        "an unsubscribed address that bounces is suppressed"
    );
    db.close().await;
}

#[tokio::test]
async fn sqlite_delivery_bounces_follow_the_state_machine() {
    let dir = tempfile::tempdir().unwrap();
    delivery_bounces_follow_the_state_machine(&sqlite(dir.path()).await).await;
}

#[tokio::test]
async fn postgres_delivery_bounces_follow_the_state_machine() {
    match postgres().await {
        Some(db) => delivery_bounces_follow_the_state_machine(&db).await,
        None => eprintln!("HERALD_TEST_DATABASE_URL is not set: PostgreSQL's delivery bounces are not tested here"),
    }
}
