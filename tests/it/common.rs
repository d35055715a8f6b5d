//! A real Herald for each test: its own folder, posts, database and server on port 0.

use std::path::PathBuf;
use std::sync::Arc;

use herald::config::Settings;
use herald::content::SyncReport;
use herald::startup::App;
use herald::web;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

pub struct TestApp {
    pub address: String,
    pub dir: TempDir,
    pub posts_dir: PathBuf,
    pub app: Arc<App>,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A Markdown post with YAML front matter.
pub fn post(title: &str, date: &str, tags: &[&str], body: &str) -> String {
    format!(
        "---\ntitle: \"{title}\"\ndate: {date}\nauthor: Ana Author\ntags: [{}]\n---\n{body}\n",
        tags.join(", ")
    )
}

/// The database URL for a fresh test database: a SQLite file in `dir`, or a new
/// PostgreSQL database when `HERALD_TEST_DATABASE_URL` names a server.
pub async fn fresh_database_url(dir: &std::path::Path) -> String {
    match std::env::var("HERALD_TEST_DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => {
            use sqlx::Connection;
            let name = format!("herald_test_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(&url)
                .await
                .expect("PostgreSQL for tests is reachable");
            sqlx::query(sqlx::AssertSqlSafe(format!("create database {name}")))
                .execute(&mut conn)
                .await
                .expect("a test database can be created");
            let mut parsed = url::Url::parse(&url).unwrap();
            parsed.set_path(&name);
            parsed.to_string()
        }
        _ => format!("sqlite://{}", dir.join("herald.db").display()),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with("").await
}

/// Starts Herald with `extra` appended to its config file; keys of a `[site]` section in it
/// join the test site's own section.
pub async fn spawn_app_with(extra: &str) -> TestApp {
    let (site_keys, extra) = match extra.split_once("[site]\n") {
        Some((before, after)) => {
            let end = after.find("\n[").map_or(after.len(), |i| i + 1);
            (after[..end].to_owned(), format!("{before}{}", &after[end..]))
        }
        None => (String::new(), extra.to_owned()),
    };
    let dir = tempfile::tempdir().unwrap();
    let posts_dir = dir.path().join("posts");
    std::fs::create_dir_all(&posts_dir).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let db_url = fresh_database_url(dir.path()).await;
    let config = format!(
        "[site]\ntitle = \"Test & Trust\"\nbase_url = \"{address}/\"\nauthor = \"Site Author\"\nlanguage = \"en-GB\"\n{site_keys}\
         [database]\nurl = \"{db_url}\"\n[content]\nposts_dir = \"posts\"\n{extra}\n"
    );
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, config).unwrap();
    let settings = Settings::load(&config_path).unwrap();
    let app = App::start(settings).await.unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(web::serve(app.clone(), listener, shutdown.clone()));
    // The scheduler's start-up catch-up settles the current daily, weekly and monthly periods
    // (with nothing new, it marks them done): wait for it, so it never races a test's own sends.
    for _ in 0..200 {
        let mut settled = true;
        for key in [
            "schedule.daily.period",
            "schedule.weekly.period",
            "schedule.monthly.period",
        ] {
            settled &= herald::store::meta_get(&app.db, key).await.unwrap().is_some();
        }
        if settled {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    TestApp {
        address,
        posts_dir,
        app,
        dir,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        shutdown,
    }
}

impl TestApp {
    pub fn write_post(&self, name: &str, text: &str) {
        std::fs::write(self.posts_dir.join(name), text).unwrap();
    }

    pub fn remove_post(&self, name: &str) {
        std::fs::remove_file(self.posts_dir.join(name)).unwrap();
    }

    pub async fn sync(&self) -> SyncReport {
        self.app.sync().await.unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_text(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.text().await.unwrap()
    }

    /// Fetches a feed and parses it strictly, then with feed-rs (see `feed_check`).
    pub async fn get_feed(&self, path: &str) -> feed_rs::model::Feed {
        let body = self.get_text(path).await;
        crate::feed_check::parse_feed(path, body.as_bytes())
    }

    /// A feed's text, once it has passed the same checks as [`Self::get_feed`].
    pub async fn get_feed_text(&self, path: &str) -> String {
        let body = self.get_text(path).await;
        crate::feed_check::parse_feed(path, body.as_bytes());
        body
    }
}

/// Puts someone on the list directly, as an admin import would.
pub async fn add_subscriber(
    app: &TestApp,
    email: &str,
    status: herald::domain::SubscriberStatus,
    frequency: herald::domain::Frequency,
    topics: &[&str],
) -> herald::domain::Subscriber {
    let new = herald::store::subscribers::NewSubscriber {
        email: herald::domain::EmailAddress::parse(email).unwrap(),
        name: None,
        status,
        frequency,
        topics: topics.iter().map(|t| t.to_string()).collect(),
        source: herald::domain::SubscriberSource::Cli,
        consent_at: None,
    };
    herald::store::subscribers::insert_or_get(&app.app.db, &new, chrono::Utc::now())
        .await
        .unwrap()
        .0
}
