//! Each subscriber gets each edition exactly once: real `herald send` processes against a
//! real SMTP server, on a SQLite file or PostgreSQL.

use std::collections::{HashMap, HashSet};

use herald::domain::Frequency;
use herald::store::{self, deliveries::Outcome, deliveries::Recorded};

use crate::instances::{herald, sent_by, setup_for, spawn_sends};
use crate::smtp::SmtpServer;

async fn run(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    let out = herald(config).args(args).output().await.unwrap();
    assert!(
        out.status.success(),
        "herald {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Message-IDs received per recipient.
fn message_ids(smtp: &SmtpServer) -> HashMap<String, Vec<String>> {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for r in smtp.received() {
        let parsed = mail_parser::MessageParser::default().parse(&r.data).unwrap();
        map.entry(r.to[0].clone())
            .or_default()
            .push(parsed.message_id().unwrap().to_owned());
    }
    map
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_editions_for_one_reader_in_one_batch_are_both_sent() {
    let smtp = SmtpServer::start().await;
    // Two new posts: two immediate editions, whose twenty deliveries fit one batch.
    let (_dir, config, db) = setup_for(&smtp, 10, Frequency::Immediate, 2, "").await;
    let out = run(&config, &["send"]).await;
    assert_eq!(sent_by(&out.stdout), 20, "{}", String::from_utf8_lossy(&out.stdout));
    let received = message_ids(&smtp);
    assert_eq!(received.len(), 10);
    for (reader, ids) in &received {
        let distinct: HashSet<&String> = ids.iter().collect();
        assert_eq!((ids.len(), distinct.len()), (2, 2), "{reader}: {ids:?}");
    }
    let queue = store::editions::counts(&db, None).await.unwrap();
    assert_eq!((queue.sent, queue.skipped), (20, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_outlives_its_lease_is_not_sent_again() {
    const READERS: usize = 60;
    let smtp = SmtpServer::start().await;
    // 60 messages at 5 a second take 12 s, in one batch leased for 10 s; a second instance
    // is waiting to take over any lease that runs out.
    let (_dir, config, db) = setup_for(
        &smtp,
        READERS,
        Frequency::Weekly,
        1,
        "rate_per_second = 5\n[digest]\nlease_seconds = 10\n",
    )
    .await;
    let runs = spawn_sends(&config, 2);
    let mut sent = 0;
    for run in runs {
        let out = run.wait_with_output().await.unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        sent += sent_by(&out.stdout);
    }
    let received = message_ids(&smtp);
    assert_eq!(received.len(), READERS);
    assert!(
        received.values().all(|ids| ids.len() == 1),
        "nobody twice: {} messages",
        smtp.count()
    );
    assert_eq!(sent, READERS as u64, "the instances report what was sent");
    let queue = store::editions::counts(&db, None).await.unwrap();
    assert_eq!(queue.sent, READERS as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hourly_sends_mail_a_weekly_reader_once_a_week_unless_forced() {
    let smtp = SmtpServer::start().await;
    let (dir, config, _db) = setup_for(&smtp, 3, Frequency::Weekly, 1, "").await;
    // The first run sends this week's edition, whose time has come.
    run(&config, &["send"]).await;
    assert_eq!(smtp.count(), 3);
    // More news, and `herald send` run from cron every hour: nothing until next week.
    std::fs::write(
        dir.path().join("posts/later.md"),
        crate::common::post("Later news", "2026-09-15", &["news"], "More."),
    )
    .unwrap();
    run(&config, &["sync"]).await;
    for _ in 0..3 {
        let out = run(&config, &["send"]).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("nothing to deliver"), "{stdout}");
    }
    assert_eq!(smtp.count(), 3, "one weekly digest a week");
    let plan = run(&config, &["send", "--dry-run"]).await;
    let plan = String::from_utf8_lossy(&plan.stdout);
    assert!(
        plan.contains("weekly: no edition now") && plan.contains("--force sends one") && plan.contains("Later news"),
        "{plan}"
    );
    // An admin who wants an extra edition says so.
    let out = run(&config, &["send", "--frequency", "weekly", "--force"]).await;
    assert_eq!(sent_by(&out.stdout), 3);
    let received = smtp.wait_for(6, std::time::Duration::from_secs(5)).await;
    assert_eq!(received.len(), 6);
    let extra = mail_parser::MessageParser::default().parse(&received[5].data).unwrap();
    assert_eq!(extra.subject(), Some("Later news"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_lease_was_taken_over_cannot_record_over_its_successor() {
    let smtp = SmtpServer::start().await;
    let (_dir, config, db) = setup_for(&smtp, 3, Frequency::Weekly, 1, "").await;
    let app = herald::startup::App::start(herald::config::Settings::load(&config).unwrap())
        .await
        .unwrap();
    let request = herald::schedule::SendRequest {
        frequency: Some(Frequency::Weekly),
        ..Default::default()
    };
    assert_eq!(app.jobs.send_now(request).await.unwrap().len(), 1);
    // A worker claims the three deliveries, stalls past its lease, and another takes over.
    let now = chrono::Utc::now();
    let stale = store::deliveries::claim(&db, now, now - chrono::Duration::seconds(1), 10, 1)
        .await
        .unwrap();
    assert_eq!(stale.len(), 3);
    let report = herald::digest::send::deliver_batch(&app.sender).await.unwrap();
    assert_eq!(report.sent, 3);
    // The stalled worker wakes up and records a failure: nothing of it is written.
    let late: Vec<Recorded> = stale
        .into_iter()
        .map(|delivery| Recorded {
            delivery,
            token: 1,
            outcome: Outcome::Failed {
                error: "late".to_owned(),
                bounce: true,
            },
        })
        .collect();
    let lost = store::deliveries::record(&db, &late, chrono::Utc::now()).await.unwrap();
    assert_eq!(lost.len(), 3, "every late outcome is refused");
    let queue = store::editions::counts(&db, None).await.unwrap();
    assert_eq!((queue.sent, queue.failed), (3, 0));
    let statuses = store::subscribers::count_by_status(&db).await.unwrap();
    assert!(
        statuses
            .iter()
            .all(|(s, _)| *s == herald::domain::SubscriberStatus::Confirmed),
        "nobody bounced by a stale worker: {statuses:?}"
    );
    assert_eq!(smtp.count(), 3);
}
