//! Readiness tells the truth about the database: deleted under a running server, read-only,
//! and a full disk that leaves no half-written mail behind.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::config::Settings;
use herald::startup::App;
use herald::web;
use tokio_util::sync::CancellationToken;

use crate::common::{TestApp, spawn_app, spawn_app_with};

fn postgres() -> bool {
    std::env::var("HERALD_TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres"))
}

/// GET /readyz: status and body.
async fn readyz(app: &TestApp) -> (u16, String) {
    let response = app.get("/readyz").await;
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Posts the subscribe form; whether the answer acknowledged the subscription.
async fn subscribe(client: &reqwest::Client, base: &str, email: &str) -> (u16, bool) {
    let response = client
        .post(format!("{base}/subscribe"))
        .form(&[("email", email), ("frequency", "weekly")])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap().contains("Check your inbox"))
}

async fn stored(app: &TestApp, email: &str) -> bool {
    let email = herald::domain::EmailAddress::parse(email).unwrap();
    herald::store::subscribers::find_by_email(&app.app.db, &email)
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn deleting_the_sqlite_file_under_a_running_server_makes_it_unready_and_says_why() {
    if postgres() {
        eprintln!("skipped: the database is PostgreSQL, not a file");
        return;
    }
    let app = spawn_app().await;
    assert_eq!(readyz(&app).await, (200, "ready".to_owned()));
    let file = app.dir.path().join("herald.db");
    std::fs::remove_file(&file).unwrap();

    let (status, body) = readyz(&app).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("deleted") && body.contains(&file.display().to_string()),
        "the reason names the file: {body}"
    );
}

/// A second Herald in-process, on the same files as `app` but with `url` as its database.
async fn start_on(app: &TestApp, url: &str) -> (Arc<App>, String, CancellationToken) {
    let config = app.dir.path().join("read-only.toml");
    std::fs::write(
        &config,
        format!("[database]\nurl = \"{url}\"\n[content]\nposts_dir = \"posts\"\n"),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut settings = Settings::load(&config).unwrap();
    settings.site.base_url = url::Url::parse(&format!("{base}/")).unwrap();
    let started = App::start(settings)
        .await
        .expect("Herald starts on a read-only database");
    let shutdown = CancellationToken::new();
    tokio::spawn(web::serve(started.clone(), listener, shutdown.clone()));
    (started, base, shutdown)
}

#[tokio::test]
async fn a_read_only_database_is_reported_as_such_and_no_subscription_is_acknowledged() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    let (base, reason_must_name, _shutdown) = if postgres() {
        // Every new session read-only, and the server's sessions ended so that its pool
        // reconnects into the new default.
        let url = url::Url::parse(app.app.settings.database.url.as_str()).unwrap();
        let name = url.path().trim_start_matches('/').to_owned();
        let admin = sqlx::PgPool::connect(&std::env::var("HERALD_TEST_DATABASE_URL").unwrap())
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "alter database {name} set default_transaction_read_only = on"
        )))
        .execute(&admin)
        .await
        .unwrap();
        sqlx::query("select pg_terminate_backend(pid) from pg_stat_activity where datname = $1")
            .bind(&name)
            .execute(&admin)
            .await
            .unwrap();
        (app.address.clone(), name, None)
    } else {
        // Root can write any file whatever its mode, so the database is opened read-only
        // instead: what SQLite does by itself when the file or its folder is not writable.
        let file = app.dir.path().join("herald.db");
        let (_, base, shutdown) = start_on(&app, &format!("sqlite://{}?mode=ro", file.display())).await;
        (base, file.display().to_string(), Some(shutdown))
    };

    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let response = client.get(format!("{base}/readyz")).send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        if body.contains("read-only") || Instant::now() > deadline {
            assert_eq!(status, 503, "{body}");
            break body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        body.contains("read-only") && body.contains(&reason_must_name),
        "the reason says read-only and names the database: {body}"
    );

    let (status, acknowledged) = subscribe(&client, &base, "reader@example.org").await;
    assert!(
        !acknowledged,
        "nothing stored, nothing acknowledged (answered {status})"
    );
    assert!(status >= 500, "answered {status}");
    let page = client.get(format!("{base}/subscribe")).send().await.unwrap();
    assert_eq!(page.status(), 200, "pages are still served");
    if !postgres() {
        assert!(!stored(&app, "reader@example.org").await);
    }
}

/// A small tmpfs mounted over a folder, filled to the last byte; unmounted when dropped.
struct FullDisk {
    at: PathBuf,
    filler: PathBuf,
}

impl FullDisk {
    /// `None` (with the reason printed) where mounting is not allowed.
    fn mount(at: &Path) -> Option<FullDisk> {
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(at)
            .output();
        match mounted {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                eprintln!(
                    "skipped: cannot mount a small tmpfs (needs root): {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                return None;
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount: {e}");
                return None;
            }
        }
        let filler = at.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = [0u8; 4096];
        while std::io::Write::write_all(&mut file, &chunk).is_ok() {}
        Some(FullDisk {
            at: at.to_path_buf(),
            filler,
        })
    }

    fn free(&self) {
        std::fs::remove_file(&self.filler).unwrap();
    }
}

impl Drop for FullDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "filler")
        .collect()
}

#[tokio::test]
async fn a_full_disk_leaves_no_partial_mail_in_the_outbox_and_the_mail_goes_out_once_there_is_room() {
    let app = spawn_app_with("[mail]\nretry_base_seconds = 1\n").await;
    let outbox = app.app.settings.outbox_dir();
    let Some(disk) = FullDisk::mount(&outbox) else {
        return;
    };

    // The mailer on its own: the write fails and nothing is left behind.
    let mailer = herald::mail::FileMailer::new(outbox.clone()).unwrap();
    let envelope = lettre::address::Envelope::new(
        Some("news@example.org".parse().unwrap()),
        vec!["reader@example.org".parse().unwrap()],
    )
    .unwrap();
    let message = format!(
        "Message-ID: <full.1@example.org>\r\nSubject: x\r\n\r\n{}",
        "y".repeat(20_000)
    );
    let sent = herald::mail::Mailer::send(&mailer, &envelope, message.as_bytes()).await;
    assert!(matches!(sent, Err(herald::mail::SendError::Transient(_))), "{sent:?}");
    assert_eq!(names_in(&outbox), Vec::<String>::new(), "no debris");

    // Through the server: the confirmation waits in the database while the disk is full.
    let (status, acknowledged) = subscribe(&app.client, &app.address, "reader@example.org").await;
    assert!(status == 200 && acknowledged);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(names_in(&outbox), Vec::<String>::new(), "no debris after failed sends");

    disk.free();
    let deadline = Instant::now() + Duration::from_secs(30);
    // (A `.partial` may be seen for an instant while the message is being written.)
    while !names_in(&outbox).iter().any(|n| n.ends_with(".eml")) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let names = names_in(&outbox);
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].ends_with(".eml"), "{names:?}");
    drop(disk);
}
