//! Every SQL statement, the migrations and the connection pool. The rest of
//! Herald calls the named functions here and never writes SQL. Uses `domain` and `config`.
//!
//! Both backends run the same SQL text (`$1` placeholders work on SQLite too);
//! [`with_pool!`] expands a body once per backend so each is compiled against
//! its own driver with its native types.

pub mod accounts;
pub mod bounces;
pub mod clicks;
pub mod deliveries;
pub mod editions;
pub mod health;
pub mod history;
pub mod insight;
pub mod outbox;
pub mod pauses;
pub mod posts;
pub mod reader_feeds;
pub mod requests;
pub mod sources;
pub mod subscribers;

#[cfg(test)]
mod tests;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgPoolOptions, Postgres};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite, Transaction};

use crate::config::{DatabaseUrl, Settings};

/// A pool on one of the supported backends.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(Pool<Sqlite>),
    Postgres(Pool<Postgres>),
}

/// Runs `$body` with `$pool` bound to the concrete pool of whichever backend `$db` is.
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// A connection taken from the pool and held, on one of the backends.
pub enum DbConn {
    Sqlite(sqlx::pool::PoolConnection<Sqlite>),
    Postgres(sqlx::pool::PoolConnection<Postgres>),
}

impl Db {
    /// Takes a connection out of the pool until it is dropped.
    pub async fn acquire(&self) -> anyhow::Result<DbConn> {
        Ok(match self {
            Db::Sqlite(pool) => DbConn::Sqlite(pool.acquire().await.context("No database connection")?),
            Db::Postgres(pool) => DbConn::Postgres(pool.acquire().await.context("No database connection")?),
        })
    }
}

/// Starts a write transaction the right way for each backend.
pub(crate) trait BeginWrite {
    type Database: sqlx::Database;
    async fn begin_write(&self) -> sqlx::Result<Transaction<'static, Self::Database>>;
}

impl BeginWrite for Pool<Sqlite> {
    type Database = Sqlite;
    // A deferred SQLite transaction that later writes can fail with SQLITE_BUSY
    // whatever the busy timeout; taking the write lock up front makes it wait instead.
    async fn begin_write(&self) -> sqlx::Result<Transaction<'static, Sqlite>> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl BeginWrite for Pool<Postgres> {
    type Database = Postgres;
    async fn begin_write(&self) -> sqlx::Result<Transaction<'static, Postgres>> {
        self.begin().await
    }
}

impl Db {
    /// Connects to the database named in the settings (creating a SQLite file if needed).
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        Self::open(&settings.database.url, settings.database.max_connections.get(), false).await
    }

    /// As [`Db::connect`], for a process that reads the whole store over and over (`herald
    /// build`): SQLite maps the database into memory and keeps a bigger page cache. Not for
    /// the server or the sender, whose memory would then grow with the database.
    pub async fn connect_for_bulk_reads(settings: &Settings) -> anyhow::Result<Self> {
        Self::open(&settings.database.url, settings.database.max_connections.get(), true).await
    }

    /// Connects to `url` as it is (a relative SQLite path is read from the current directory).
    pub async fn connect_url(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        let url = DatabaseUrl::try_from(url.to_owned()).map_err(|e| anyhow::anyhow!("a database URL {e}"))?;
        Self::open(&url, max_connections, false).await
    }

    async fn open(url: &DatabaseUrl, max_connections: u32, bulk_reads: bool) -> anyhow::Result<Self> {
        if let DatabaseUrl::Postgres(url) = url {
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .context("Failed to connect to PostgreSQL (database.url)")?;
            return Ok(Self::Postgres(pool));
        }
        let url = url.as_str();
        let mut options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("database.url is not a usable SQLite URL: {url}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        if bulk_reads {
            // Reads through a memory map instead of a read(2) per 4 KiB page, a bigger page
            // cache, and sorts in memory: listing 10,000 posts (their HTML spills into
            // overflow pages) otherwise costs hundreds of thousands of system calls. Both
            // count in the process's resident memory, in proportion to what is read.
            options = options
                .pragma("mmap_size", "268435456")
                .pragma("cache_size", "-32768")
                .pragma("temp_store", "memory");
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .connect_with(options)
            .await
            .with_context(|| format!("Failed to open the SQLite database {url}"))?;
        Ok(Self::Sqlite(pool))
    }

    /// Applies every migration not yet applied. On PostgreSQL sqlx holds an
    /// advisory lock meanwhile, so instances starting together migrate once.
    ///
    /// On SQLite they run on a connection of their own that is closed afterwards: a
    /// migration that rebuilds tables turns foreign keys off while it does, and should it
    /// fail half-way, no pooled connection is left without them (or inside its transaction).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Db::Sqlite(pool) => {
                let mut conn = pool.acquire().await.context("No database connection to migrate with")?;
                conn.close_on_drop();
                sqlx::migrate!("./migrations/sqlite").run(&mut *conn).await
            }
            Db::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await,
        }
        .context("Failed to apply database migrations")
    }

    /// Whether every migration built into this binary has been applied.
    pub async fn migrations_current(&self) -> bool {
        let expected = match self {
            Db::Sqlite(_) => sqlx::migrate!("./migrations/sqlite").iter().count(),
            Db::Postgres(_) => sqlx::migrate!("./migrations/postgres").iter().count(),
        } as i64;
        let applied: sqlx::Result<i64> = with_pool!(self, pool => {
            sqlx::query_scalar("select count(*) from _sqlx_migrations where success").fetch_one(pool).await
        });
        applied.is_ok_and(|n| n >= expected)
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }
}

/// A stable identifier for this installation (feed ids derive from it), created on first use.
#[tracing::instrument(skip_all)]
pub async fn site_uuid(db: &Db) -> anyhow::Result<uuid::Uuid> {
    let fresh = uuid::Uuid::new_v4().to_string();
    // Read first: a read-only database that has one still serves its pages.
    let value: String = with_pool!(db, pool => {
        let stored: Option<String> = sqlx::query_scalar("select value from site_meta where key = 'site_uuid'")
            .fetch_optional(pool)
            .await?;
        match stored {
            Some(value) => Ok(value),
            None => {
                sqlx::query("insert into site_meta (key, value) values ('site_uuid', $1) on conflict (key) do nothing")
                    .bind(&fresh)
                    .execute(pool)
                    .await?;
                sqlx::query_scalar("select value from site_meta where key = 'site_uuid'")
                    .fetch_one(pool)
                    .await
            }
        }
    })
    .context("Failed to read the site identifier")?;
    uuid::Uuid::parse_str(&value).context("The stored site identifier is not a UUID")
}

/// A value kept in `site_meta`, if set.
pub async fn meta_get(db: &Db, key: &str) -> anyhow::Result<Option<String>> {
    with_pool!(db, pool => {
        sqlx::query_scalar("select value from site_meta where key = $1").bind(key).fetch_optional(pool).await
    })
    .context("Failed to read site metadata")
}

/// Sets a `site_meta` value.
pub async fn meta_set(db: &Db, key: &str, value: &str) -> anyhow::Result<()> {
    with_pool!(db, pool => {
        sqlx::query(
            "insert into site_meta (key, value) values ($1, $2) on conflict (key) do update set value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(pool)
        .await
        .map(|_| ())
    })
    .context("Failed to write site metadata")
}

/// Sets a `site_meta` value unless it is already set; returns whether this call set it.
pub async fn meta_set_once(db: &Db, key: &str, value: &str) -> anyhow::Result<bool> {
    with_pool!(db, pool => {
        sqlx::query("insert into site_meta (key, value) values ($1, $2) on conflict (key) do nothing")
            .bind(key)
            .bind(value)
            .execute(pool)
            .await
            .map(|r| r.rows_affected() > 0)
    })
    .context("Failed to write site metadata")
}

/// `update <table> set status = 'sending', attempts = attempts + 1, next_attempt_at = <lease>`
/// on up to `limit` due rows (pending, or sending with a lapsed lease), returning `columns`.
/// SQLite takes its write lock first; PostgreSQL skips rows another instance is claiming.
macro_rules! claim_sql {
    ($table:literal, $columns:literal, $lock:literal) => {
        concat!(
            "update ",
            $table,
            " set status = 'sending', attempts = attempts + 1, next_attempt_at = $2 ",
            "where id in (select id from ",
            $table,
            " where status in ('pending', 'sending') ",
            "and next_attempt_at <= $1 limit $3",
            $lock,
            ") returning ",
            $columns
        )
    };
}
pub(crate) use claim_sql;

/// Runs a claim built by [`claim_sql!`] (`$1` now, `$2` lease end, `$3` limit).
pub(crate) async fn claim_rows<T>(
    db: &Db,
    sqlite: &'static str,
    postgres: &'static str,
    now: chrono::DateTime<chrono::Utc>,
    lease_until: chrono::DateTime<chrono::Utc>,
    limit: u32,
) -> sqlx::Result<Vec<T>>
where
    T: Send
        + Unpin
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    let limit = i64::from(limit);
    match db {
        Db::Sqlite(pool) => {
            let mut tx = pool.begin_write().await?;
            let rows = sqlx::query_as(sqlite)
                .bind(now)
                .bind(lease_until)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(rows)
        }
        Db::Postgres(pool) => {
            sqlx::query_as(postgres)
                .bind(now)
                .bind(lease_until)
                .bind(limit)
                .fetch_all(pool)
                .await
        }
    }
}

/// Runs `work` unless another instance is running the same job (`key`) right now, in which
/// case it returns `None` at once. On PostgreSQL this is a session advisory lock, held on a
/// connection taken out of the pool for the duration and released before it goes back (a
/// crashed holder's connection closes, which releases it). On SQLite, write transactions
/// are already serialised by the database, so the work simply runs.
pub async fn exclusively<T, F>(db: &Db, key: i64, work: F) -> anyhow::Result<Option<T>>
where
    F: std::future::Future<Output = anyhow::Result<T>>,
{
    let Db::Postgres(pool) = db else {
        return work.await.map(Some);
    };
    let mut conn = pool.acquire().await.context("Failed to take a connection for a lock")?;
    let locked: bool = sqlx::query_scalar("select pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(&mut *conn)
        .await
        .context("Failed to take an advisory lock")?;
    if !locked {
        return Ok(None);
    }
    let result = work.await;
    let unlocked = sqlx::query("select pg_advisory_unlock($1)")
        .bind(key)
        .execute(&mut *conn)
        .await;
    if unlocked.is_err() {
        // Never hand a connection that may still hold the lock back to the pool.
        conn.detach();
    }
    result.map(Some)
}

/// Advisory lock keys of the jobs that must not run twice at once.
pub mod locks {
    pub const CONTENT_SYNC: i64 = 0x4845_5241_4c44_0001;
    pub const SOURCE_POLL: i64 = 0x4845_5241_4c44_0002;
}
