//! Several Herald processes on one PostgreSQL database: the work is shared, nothing is
//! lost or repeated. These need PostgreSQL (`HERALD_TEST_DATABASE_URL`); CI runs them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use herald::subscribers::csv::{ImportOptions, import_csv};
use tokio::process::Command;

use crate::common::post;
use crate::smtp::SmtpServer;

fn postgres() -> bool {
    let on = std::env::var("HERALD_TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres"));
    if !on {
        eprintln!("multi-instance tests skipped: they need PostgreSQL (set HERALD_TEST_DATABASE_URL)");
    }
    on
}

pub(crate) fn herald(config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.env_remove("HERALD_CONFIG")
        .env("HERALD_LOG", "warn")
        .arg("--config")
        .arg(config)
        .kill_on_drop(true);
    cmd
}

/// A config folder on a fresh database (PostgreSQL when the tests have one) with
/// `subscribers` confirmed weekly readers and one new post waiting to go out. `extra`
/// continues the `[mail.smtp]` section.
pub(crate) async fn setup(
    smtp: &SmtpServer,
    subscribers: usize,
    extra: &str,
) -> (tempfile::TempDir, PathBuf, herald::store::Db) {
    setup_for(smtp, subscribers, herald::domain::Frequency::Weekly, 1, extra).await
}

/// Like [`setup`], with readers of `frequency` and `new_posts` posts waiting.
pub(crate) async fn setup_for(
    smtp: &SmtpServer,
    subscribers: usize,
    frequency: herald::domain::Frequency,
    new_posts: usize,
    extra: &str,
) -> (tempfile::TempDir, PathBuf, herald::store::Db) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("posts")).unwrap();
    let db_url = crate::common::fresh_database_url(dir.path()).await;
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[database]\nurl = \"{db_url}\"\n[content]\nposts_dir = \"posts\"\n\
             [mail]\ntransport = \"smtp\"\nfrom = \"News <news@example.org>\"\n\
             [mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\n{extra}",
            smtp.port
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("posts/old.md"),
        post("Old", "2026-01-01", &["news"], "Archive."),
    )
    .unwrap();
    assert!(herald(&config).arg("sync").status().await.unwrap().success());
    let app = herald::startup::App::start(herald::config::Settings::load(&config).unwrap())
        .await
        .unwrap();
    let mut csv = String::from("email,frequency\n");
    for i in 0..subscribers {
        csv.push_str(&format!("reader{i}@example.org,{frequency}\n"));
    }
    let options = ImportOptions {
        confirmed: true,
        force: false,
    };
    let report = import_csv(
        &app.db,
        std::io::Cursor::new(csv.into_bytes()),
        options,
        frequency,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(report.added, subscribers);
    for n in 0..new_posts {
        let (name, title) = match n {
            0 => ("news.md".to_owned(), "Big news".to_owned()),
            n => (format!("news-{n}.md"), format!("More news {n}")),
        };
        std::fs::write(
            dir.path().join("posts").join(name),
            post(&title, "2026-09-14", &["news"], "For everyone."),
        )
        .unwrap();
    }
    assert!(herald(&config).arg("sync").status().await.unwrap().success());
    (dir, config, app.db.clone())
}

/// Starts `n` instances of `herald send --frequency weekly` on one config, output piped.
pub(crate) fn spawn_sends(config: &Path, n: usize) -> Vec<tokio::process::Child> {
    (0..n)
        .map(|_| {
            let mut cmd = herald(config);
            cmd.args(["send", "--frequency", "weekly"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect()
}

pub(crate) fn sent_by(stdout: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(stdout);
    text.lines()
        .find_map(|l| {
            l.strip_prefix("sent ")
                .and_then(|r| r.split(',').next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or_else(|| panic!("no summary in {text}"))
}

async fn editions(db: &herald::store::Db) -> usize {
    herald::store::editions::list(db, 100).await.unwrap().len()
}

fn per_recipient(smtp: &SmtpServer) -> HashMap<String, usize> {
    let mut map = HashMap::new();
    for r in smtp.received() {
        *map.entry(r.to[0].clone()).or_default() += 1;
    }
    map
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_one_edition_and_everyone_gets_it_once() {
    if !postgres() {
        return;
    }
    const N: usize = 20_000;
    let smtp = SmtpServer::start().await;
    let (_dir, config, db) = setup(&smtp, N, "[digest]\nbatch_size = 200\nworkers = 1\n").await;
    let runs = spawn_sends(&config, 3);
    let mut shares = Vec::new();
    for run in runs {
        let out = run.wait_with_output().await.unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        shares.push(sent_by(&out.stdout));
    }
    assert_eq!(editions(&db).await, 1, "three composers, one edition");
    assert_eq!(shares.iter().sum::<u64>(), N as u64, "{shares:?}");
    assert!(
        shares.iter().all(|s| *s > 0),
        "the work is spread over all three: {shares:?}"
    );
    let counts = per_recipient(&smtp);
    assert_eq!(counts.len(), N, "every subscriber received it");
    assert!(counts.values().all(|c| *c == 1), "and nobody twice");
    eprintln!("shares of the work: {shares:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_is_covered_by_the_others_after_its_lease() {
    if !postgres() {
        return;
    }
    const N: usize = 6_000;
    const BATCH: usize = 100;
    const CONCURRENCY: usize = 8;
    let smtp = SmtpServer::start().await;
    let (_dir, config, db) = setup(
        &smtp,
        N,
        &format!(
            "rate_per_second = 1000\n[digest]\nbatch_size = {BATCH}\nworkers = 1\nconcurrency = {CONCURRENCY}\n\
             lease_seconds = 10\n"
        ),
    )
    .await;
    let mut runs = spawn_sends(&config, 3);
    let started = Instant::now();
    while smtp.count() < N / 3 {
        assert!(started.elapsed() < Duration::from_secs(60), "the send never got going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut victim = runs.remove(0);
    victim.start_kill().unwrap();
    victim.wait().await.unwrap();
    let at_kill = smtp.count();
    for run in runs {
        let out = run.wait_with_output().await.unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let counts = per_recipient(&smtp);
    assert_eq!(counts.len(), N, "the survivors delivered the killed instance's share");
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    assert!(
        duplicates <= CONCURRENCY,
        "at most the killed instance's sends in flight: {duplicates}"
    );
    let queue = herald::store::editions::counts(&db, None).await.unwrap();
    assert_eq!((queue.sent, queue.remaining()), (N as i64, 0));
    eprintln!("killed at {at_kill} delivered; {duplicates} sent twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_for_a_due_edition_create_it_once() {
    if !postgres() {
        return;
    }
    let smtp = SmtpServer::start().await;
    // Due every day at midnight, so on start-up today's edition is due and not yet made.
    let (_dir, config, db) = setup(&smtp, 50, "[schedule]\nweekly = \"0 0 0 * * *\"\n").await;
    let mut servers: Vec<_> = (0..2)
        .map(|_| {
            let mut cmd = herald(&config);
            cmd.arg("serve").stdout(Stdio::null()).stderr(Stdio::null());
            cmd.spawn().unwrap()
        })
        .collect();
    let received = smtp.wait_for(50, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for s in &mut servers {
        s.start_kill().unwrap();
    }
    let weekly = herald::store::editions::list(&db, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.frequency == herald::domain::Frequency::Weekly)
        .count();
    assert_eq!(weekly, 1, "one edition however many instances catch up");
    assert_eq!(received.len(), 50);
    assert_eq!(smtp.count(), 50, "each subscriber once");
}

#[tokio::test]
async fn concurrent_syncs_take_turns() {
    if !postgres() {
        return;
    }
    let app = crate::common::spawn_app().await;
    for i in 0..40 {
        app.write_post(
            &format!("p{i}.md"),
            &post(&format!("Post {i}"), "2026-09-14", &["news"], "Body."),
        );
    }
    let (a, b) = tokio::join!(app.app.sync(), app.app.sync());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a.added + b.added,
        40,
        "each post once, no unique-key clash: {a:?} {b:?}"
    );
    assert_eq!(app.get_feed("/feed.json").await.entries.len(), 20);
}
