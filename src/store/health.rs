//! Readiness: whether the database can still store what Herald acknowledges. Answering a
//! query is not enough: a SQLite file deleted while open keeps answering (and taking writes
//! no one will ever read), and a read-only database answers every read.

use std::path::PathBuf;
use std::sync::Mutex;

use chrono::Utc;

use super::{BeginWrite, Db};

/// Identifies a file whatever its name: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    device: u64,
    inode: u64,
}

#[cfg(unix)]
fn file_id(path: &std::path::Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(FileId {
        device: meta.dev(),
        inode: meta.ino(),
    })
}

#[cfg(not(unix))]
fn file_id(path: &std::path::Path) -> Option<FileId> {
    std::fs::metadata(path).ok().map(|_| FileId { device: 0, inode: 0 })
}

/// What readiness knows of the database, and what it last reported.
pub struct Readiness {
    /// The SQLite file as opened: its path and identity at that moment.
    sqlite_file: Option<(PathBuf, FileId)>,
    /// Words for the database in messages (a path, or a PostgreSQL database's name and host).
    what: String,
    last: Mutex<Option<String>>,
}

impl Readiness {
    /// Notes which file a SQLite database is (call right after connecting).
    pub fn new(db: &Db) -> Self {
        let (sqlite_file, what) = match db {
            Db::Sqlite(pool) => {
                let path = pool.connect_options().get_filename().to_path_buf();
                let id = file_id(&path);
                let what = format!("the SQLite database {}", path.display());
                (id.map(|id| (path, id)), what)
            }
            Db::Postgres(pool) => {
                let options = pool.connect_options();
                let what = format!(
                    "the PostgreSQL database {} on {}",
                    options.get_database().unwrap_or("(default)"),
                    options.get_host()
                );
                (None, what)
            }
        };
        Self {
            sqlite_file,
            what,
            last: Mutex::new(None),
        }
    }

    /// `Ok` when the database is the one opened, takes a write, and has every migration;
    /// otherwise why not. A change of state is logged once (not at every probe).
    pub async fn check(&self, db: &Db) -> Result<(), String> {
        let result = self.probe(db).await;
        let problem = result.as_ref().err().cloned();
        if let Ok(mut last) = self.last.lock()
            && *last != problem
        {
            match &problem {
                Some(reason) => tracing::error!(%reason, "not ready"),
                None => tracing::info!("ready again"),
            }
            *last = problem;
        }
        result
    }

    async fn probe(&self, db: &Db) -> Result<(), String> {
        let what = &self.what;
        if let Some((path, opened)) = &self.sqlite_file
            && file_id(path) != Some(*opened)
        {
            return Err(format!(
                "{what} was deleted or replaced while Herald had it open: what is written now goes to a file \
                 no one will read again; restore the file and restart Herald"
            ));
        }
        if let Err(e) = write_probe(db).await {
            return Err(describe_write_error(what, &e));
        }
        if !db.migrations_current().await {
            return Err(format!(
                "{what} lacks migrations this Herald needs: run `herald migrate`"
            ));
        }
        Ok(())
    }
}

/// A tiny write, committed: the same path every acknowledged write takes.
async fn write_probe(db: &Db) -> sqlx::Result<()> {
    let now = Utc::now().to_rfc3339();
    let sql = "insert into site_meta (key, value) values ('ready_probe', $1) \
               on conflict (key) do update set value = excluded.value";
    match db {
        Db::Sqlite(pool) => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(sql).bind(&now).execute(&mut *tx).await?;
            tx.commit().await
        }
        Db::Postgres(pool) => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(sql).bind(&now).execute(&mut *tx).await?;
            tx.commit().await
        }
    }
}

/// Words for why a write failed: read-only and full disks named as such.
fn describe_write_error(what: &str, error: &sqlx::Error) -> String {
    let (code, message) = match error {
        sqlx::Error::Database(e) => (
            e.code().map(|c| c.into_owned()).unwrap_or_default(),
            e.message().to_owned(),
        ),
        other => (String::new(), other.to_string()),
    };
    let lower = message.to_lowercase();
    // SQLite result codes (primary code in the low byte): 8 READONLY, 13 FULL.
    // PostgreSQL SQLSTATEs: 25006 read_only_sql_transaction, 53100 disk_full.
    let primary = code.parse::<u32>().ok().map(|c| c & 0xff);
    if primary == Some(8) || code == "25006" || lower.contains("read-only") || lower.contains("readonly") {
        format!("{what} is read-only and cannot store anything ({message}); check its permissions and mount")
    } else if primary == Some(13) || code == "53100" || lower.contains("disk is full") || lower.contains("no space") {
        format!("the disk holding {what} is full ({message})")
    } else {
        format!("{what} cannot take a write: {message}")
    }
}
