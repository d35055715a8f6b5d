//! The two migration folders make the same schema: migrates a fresh SQLite file and a fresh
//! PostgreSQL database and compares their tables, columns, nullability, named indexes and
//! check constraints (with the words each allows), and the checks with Herald's enums.
//!
//! PostgreSQL is the server in `HERALD_TEST_DATABASE_URL`, or else the local one at
//! `postgres://postgres@127.0.0.1:5432/postgres`; with neither reachable the test says so and
//! passes, since there is nothing to compare with.

use std::collections::{BTreeMap, BTreeSet};

use herald::domain::{
    BounceKind, BounceSource, DeliveryStatus, EditionStatus, EventKind, EventSource, OutboxStatus, PauseCause,
    PollOutcome, PostSource, RequestStatus, SubscriberStatus,
};
use herald::store::Db;
use sqlx::Connection;

const LOCAL_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// What is compared: per table, each column and whether it may be null; the named indexes
/// (`table.index`); per check constraint, the quoted words in its expression.
#[derive(Debug, Default, PartialEq, Eq)]
struct Schema {
    columns: BTreeMap<String, BTreeMap<String, bool>>,
    indexes: BTreeSet<String>,
    checks: BTreeMap<String, BTreeSet<String>>,
}

/// The text between single quotes in an SQL expression (`'it''s'` is not needed here).
fn quoted(expression: &str) -> BTreeSet<String> {
    expression.split('\'').skip(1).step_by(2).map(str::to_owned).collect()
}

/// The named `constraint <name> check (<expression>)` clauses of a `create table`.
fn sqlite_checks(sql: &str) -> Vec<(String, String)> {
    let lower = sql.to_ascii_lowercase();
    let mut found = Vec::new();
    let mut rest = lower.as_str();
    while let Some(at) = rest.find("constraint ") {
        rest = &rest[at + "constraint ".len()..];
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let after = rest[name.len()..].trim_start();
        let Some(clause) = after.strip_prefix("check").map(str::trim_start) else {
            continue;
        };
        assert!(clause.starts_with('('), "a check clause in {sql}");
        let mut depth = 0;
        let mut end = 0;
        for (i, c) in clause.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = i + 1;
                break;
            }
        }
        found.push((name, clause[..end].to_owned()));
    }
    found
}

async fn sqlite_schema(pool: &sqlx::SqlitePool) -> Schema {
    let tables: Vec<(String, String)> = sqlx::query_as(
        "select name, sql from sqlite_master where type = 'table' \
         and name not like 'sqlite_%' and name <> '_sqlx_migrations' order by name",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut schema = Schema::default();
    for (table, sql) in tables {
        // A primary key column is never null (SQLite's own rowid alias, or a value Herald
        // always writes); PostgreSQL says so of its primary keys.
        let columns: Vec<(String, bool, i64)> =
            sqlx::query_as("select name, \"notnull\", pk from pragma_table_info($1)")
                .bind(&table)
                .fetch_all(pool)
                .await
                .unwrap();
        schema.columns.insert(
            table.clone(),
            columns
                .into_iter()
                .map(|(name, not_null, pk)| (name, !(not_null || pk > 0)))
                .collect(),
        );
        for (name, expression) in sqlite_checks(&sql) {
            schema.checks.insert(format!("{table}.{name}"), quoted(&expression));
        }
    }
    let indexes: Vec<(String, String)> =
        sqlx::query_as("select tbl_name, name from sqlite_master where type = 'index' and sql is not null")
            .fetch_all(pool)
            .await
            .unwrap();
    schema.indexes = indexes.into_iter().map(|(t, i)| format!("{t}.{i}")).collect();
    schema
}

async fn postgres_schema(pool: &sqlx::PgPool) -> Schema {
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "select table_name::text, column_name::text, is_nullable::text from information_schema.columns \
         where table_schema = 'public' and table_name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut schema = Schema::default();
    for (table, column, nullable) in columns {
        schema
            .columns
            .entry(table)
            .or_default()
            .insert(column, nullable == "YES");
    }
    // Indexes that are not a primary key or unique constraint's own.
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "select tablename::text, indexname::text from pg_indexes where schemaname = 'public' \
         and tablename <> '_sqlx_migrations' \
         and indexname not in (select conname from pg_constraint where contype in ('p', 'u'))",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    schema.indexes = indexes.into_iter().map(|(t, i)| format!("{t}.{i}")).collect();
    let checks: Vec<(String, String, String)> = sqlx::query_as(
        "select conrelid::regclass::text, conname::text, pg_get_constraintdef(oid) from pg_constraint \
         where contype = 'c' and connamespace = 'public'::regnamespace",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (table, name, definition) in checks {
        schema.checks.insert(format!("{table}.{name}"), quoted(&definition));
    }
    schema
}

/// A new, empty PostgreSQL database and the URL of the server's maintenance one, or `None`
/// (with a note) if no server answers and none was named.
async fn fresh_postgres() -> Option<(String, String)> {
    let named = std::env::var("HERALD_TEST_DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"));
    let server = named.clone().unwrap_or_else(|| LOCAL_POSTGRES.to_owned());
    let mut conn = match sqlx::PgConnection::connect(&server).await {
        Ok(conn) => conn,
        Err(e) if named.is_none() => {
            eprintln!("no PostgreSQL at {server} ({e}): the migration folders are not compared");
            return None;
        }
        Err(e) => panic!("PostgreSQL for tests at {server} is not reachable: {e}"),
    };
    let name = format!("herald_schema_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("create database {name}")))
        .execute(&mut conn)
        .await
        .expect("a test database can be created");
    let mut url = url::Url::parse(&server).unwrap();
    url.set_path(&name);
    Some((url.to_string(), server))
}

fn words<T: std::fmt::Display>(all: &[T]) -> BTreeSet<String> {
    all.iter().map(T::to_string).collect()
}

#[tokio::test]
async fn both_migration_folders_make_the_same_schema_with_the_enums_words_checked() {
    let Some((postgres_url, server)) = fresh_postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Db::connect_url(&format!("sqlite://{}", dir.path().join("herald.db").display()), 2)
        .await
        .unwrap();
    let postgres = Db::connect_url(&postgres_url, 2).await.unwrap();
    sqlite.migrate().await.unwrap();
    postgres.migrate().await.unwrap();
    let (Db::Sqlite(lite), Db::Postgres(pg)) = (&sqlite, &postgres) else {
        unreachable!()
    };
    let on_sqlite = sqlite_schema(lite).await;
    let on_postgres = postgres_schema(pg).await;
    postgres.close().await;
    sqlite.close().await;
    let mut conn = sqlx::PgConnection::connect(&server).await.unwrap();
    let name = postgres_url.rsplit('/').next().unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "drop database if exists {name} with (force)"
    )))
    .execute(&mut conn)
    .await
    .unwrap();

    let tables = |s: &Schema| s.columns.keys().cloned().collect::<Vec<_>>();
    assert_eq!(tables(&on_sqlite), tables(&on_postgres), "the same tables");
    for (table, columns) in &on_sqlite.columns {
        assert_eq!(
            Some(columns),
            on_postgres.columns.get(table),
            "table {table}: the same columns, null alike (SQLite left, PostgreSQL right)"
        );
    }
    assert_eq!(on_sqlite.indexes, on_postgres.indexes, "the same named indexes");
    assert_eq!(on_sqlite.checks, on_postgres.checks, "the same check constraints");

    let expected: BTreeMap<String, BTreeSet<String>> = [
        ("bounce_events.bounce_events_kind_check", words(BounceKind::ALL)),
        ("bounce_events.bounce_events_source_check", words(BounceSource::ALL)),
        ("deliveries.deliveries_status_check", words(DeliveryStatus::ALL)),
        ("editions.editions_status_check", words(EditionStatus::ALL)),
        ("editions.editions_paused_cause_check", words(PauseCause::ALL)),
        ("outbox.outbox_status_check", words(OutboxStatus::ALL)),
        ("posts.posts_source_check", words(&PostSource::PREFIXES)),
        ("sources.sources_last_outcome_check", words(PollOutcome::ALL)),
        ("subscribers.subscribers_status_check", words(SubscriberStatus::ALL)),
        ("subscriber_events.subscriber_events_kind_check", words(EventKind::ALL)),
        (
            "subscriber_events.subscriber_events_source_check",
            words(EventSource::ALL),
        ),
        (
            "subscription_requests.subscription_requests_status_check",
            words(RequestStatus::ALL),
        ),
    ]
    .into_iter()
    .map(|(name, words)| (name.to_owned(), words))
    .collect();
    assert_eq!(
        on_sqlite.checks, expected,
        "every state column allows its enum's words, no others"
    );
}
