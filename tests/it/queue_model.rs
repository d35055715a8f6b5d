//! The delivery queue against a model: random sequences of posts published, readers joining
//! (with any frequency), leaving and starting to bounce, editions composed, batches
//! delivered and workers that die holding deliveries (their lease runs out), with random
//! batch sizes and concurrency, on the real store (a SQLite file, or PostgreSQL when
//! `HERALD_TEST_DATABASE_URL` is set) and a real SMTP server. The model says who may and who
//! must get each edition; once the queue is drained:
//! - each edition is created exactly when there were posts its frequency had not mailed;
//! - nobody receives an edition twice;
//! - nobody receives an edition unless they were a confirmed subscriber of its frequency
//!   when it was composed;
//! - everyone who was, and stayed subscribed and reachable, received it;
//! - nothing of an edition is sent while it is paused (by the breaker or a canary's
//!   verdict), and pausing and resuming loses and repeats nothing;
//! - a cancelled edition sends nothing more, and owes nobody anything.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::Utc;
use herald::config::Settings;
use herald::digest::Trigger;
use herald::digest::send;
use herald::domain::{EditionStatus, EmailAddress, Frequency, PauseCause, SubscriberSource, SubscriberStatus};
use herald::startup::App;
use herald::store::{self, subscribers::NewSubscriber, subscribers::SubscriberPatch};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::common::post;
use crate::smtp::{Behaviour, SmtpServer};

const READERS: usize = 5;

#[derive(Debug, Clone)]
enum Op {
    /// A new post appears in the posts folder and is synced.
    Publish,
    /// An admin adds the reader as confirmed, or confirms them again with this frequency.
    Join { who: usize, frequency: Frequency },
    /// The reader unsubscribes.
    Leave { who: usize },
    /// The reader's mailbox starts refusing mail for good (SMTP 550 5.1.1).
    Bounce { who: usize },
    /// An admin sends this frequency now (for daily and weekly, an extra edition).
    Compose { frequency: Frequency },
    /// A worker claims and sends one batch.
    Deliver,
    /// A worker claims up to `take` deliveries and dies: their lease runs out unrecorded.
    WorkerDies { take: u32 },
    /// One of the editions (the `pick`-th, modulo their number) pauses, as the circuit breaker
    /// or a canary's verdict would pause it.
    Pause { pick: usize },
    /// An admin resumes every paused edition.
    Resume,
    /// An admin cancels one of the editions.
    Cancel { pick: usize },
}

fn frequency() -> impl Strategy<Value = Frequency> {
    prop_oneof![
        Just(Frequency::Immediate),
        Just(Frequency::Daily),
        Just(Frequency::Weekly)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Publish),
        4 => (0..READERS, frequency()).prop_map(|(who, frequency)| Op::Join { who, frequency }),
        1 => (0..READERS).prop_map(|who| Op::Leave { who }),
        1 => (0..READERS).prop_map(|who| Op::Bounce { who }),
        3 => frequency().prop_map(|frequency| Op::Compose { frequency }),
        3 => Just(Op::Deliver),
        1 => (1..6u32).prop_map(|take| Op::WorkerDies { take }),
        2 => (0..8usize).prop_map(|pick| Op::Pause { pick }),
        1 => Just(Op::Resume),
        1 => (0..8usize).prop_map(|pick| Op::Cancel { pick }),
    ]
}

#[derive(Debug, Default)]
struct Reader {
    id: Option<i64>,
    subscribed: Option<Frequency>,
    refusing: bool,
}

/// Who may and who must receive one edition.
#[derive(Debug)]
struct Expected {
    may: HashSet<usize>,
    must: HashSet<usize>,
}

fn address(case: usize, who: usize) -> String {
    format!("r{who}c{case}@example.org")
}

async fn herald_for(smtp: &SmtpServer, dir: &std::path::Path, batch: u32, concurrency: u32) -> Arc<App> {
    std::fs::create_dir_all(dir.join("posts")).unwrap();
    let db_url = crate::common::fresh_database_url(dir).await;
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[site]\nbase_url = \"http://herald.test/\"\n[database]\nurl = \"{db_url}\"\n[content]\nposts_dir = \"posts\"\n\
             [mail]\ntransport = \"smtp\"\nfrom = \"News <news@example.org>\"\n\
             [mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\n\
             [digest]\nbatch_size = {batch}\nconcurrency = {concurrency}\nworkers = 1\nlease_seconds = 10\n",
            smtp.port
        ),
    )
    .unwrap();
    let app = App::start(Settings::load(&config).unwrap()).await.unwrap();
    // Herald's first sync: what is there now is the archive, never mailed.
    std::fs::write(
        dir.join("posts/archive.md"),
        post("Archive", "2026-01-01", &["news"], "Old."),
    )
    .unwrap();
    app.sync().await.unwrap();
    app
}

async fn run_case(case: usize, batch: u32, concurrency: u32, ops: &[Op]) -> Result<(), TestCaseError> {
    let smtp = SmtpServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = herald_for(&smtp, dir.path(), batch, concurrency).await;
    let mut readers: Vec<Reader> = (0..READERS).map(|_| Reader::default()).collect();
    let mut refusals = Vec::new();
    let mut unmailed: HashMap<Frequency, usize> = HashMap::new();
    let mut expected: HashMap<i64, Expected> = HashMap::new();
    let mut published = 0;
    // Paused editions, with the messages of each received when it paused.
    let mut paused: HashMap<i64, usize> = HashMap::new();
    let mut cancelled: HashSet<i64> = HashSet::new();
    // The `pick`-th of the editions not finished yet, if any.
    let picked = |db: herald::store::Db, pick: usize| async move {
        let ids: Vec<i64> = store::editions::list(&db, 1000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| matches!(e.status, EditionStatus::Sending | EditionStatus::Paused))
            .map(|e| e.id)
            .collect();
        (!ids.is_empty()).then(|| ids[pick % ids.len()])
    };
    for op in ops {
        match op {
            Op::Publish => {
                published += 1;
                std::fs::write(
                    dir.path().join(format!("posts/news-{published}.md")),
                    post(&format!("News {published}"), "2026-09-14", &["news"], "Body."),
                )
                .unwrap();
                app.sync().await.unwrap();
                for f in Frequency::ALL.iter().copied() {
                    *unmailed.entry(f).or_default() += 1;
                }
            }
            Op::Join { who, frequency } => {
                let reader = &mut readers[*who];
                if reader.refusing {
                    continue; // A bounced address is not added back.
                }
                match reader.id {
                    None => {
                        let new = NewSubscriber {
                            email: EmailAddress::parse(&address(case, *who)).unwrap(),
                            name: None,
                            status: SubscriberStatus::Confirmed,
                            frequency: *frequency,
                            topics: Vec::new(),
                            source: SubscriberSource::Cli,
                            consent_at: None,
                        };
                        let (s, _) = store::subscribers::insert_or_get(&app.db, &new, Utc::now())
                            .await
                            .unwrap();
                        reader.id = Some(s.id);
                    }
                    Some(id) => {
                        let patch = SubscriberPatch {
                            frequency: Some(*frequency),
                            ..Default::default()
                        };
                        app.subscriptions
                            .admin_update(
                                id,
                                &patch,
                                Some(SubscriberStatus::Confirmed),
                                &herald::domain::Actor::cli(),
                            )
                            .await
                            .unwrap();
                    }
                }
                reader.subscribed = Some(*frequency);
            }
            Op::Leave { who } => {
                let reader = &mut readers[*who];
                if let Some(id) = reader.id {
                    let subscriber = store::subscribers::find(&app.db, id).await.unwrap().unwrap();
                    app.subscriptions.unsubscribe(&subscriber).await.unwrap();
                    reader.subscribed = None;
                    for e in expected.values_mut() {
                        e.must.remove(who);
                    }
                }
            }
            Op::Bounce { who } => {
                readers[*who].refusing = true;
                refusals.push((format!("r{who}c{case}@"), 550, "5.1.1 no such user".to_owned()));
                smtp.set_behaviour(Behaviour::RejectRcptMatching(refusals.clone()));
                for e in expected.values_mut() {
                    e.must.remove(who);
                }
            }
            Op::Compose { frequency } => {
                let created = app.digests.compose(*frequency, Trigger::Manual, None).await.unwrap();
                let waiting = unmailed.insert(*frequency, 0).unwrap_or(0);
                let should = match frequency {
                    Frequency::Immediate => waiting,
                    _ => usize::from(waiting > 0),
                };
                prop_assert_eq!(created.len(), should, "editions composed for {}", frequency);
                for edition in created {
                    let may: HashSet<usize> = (0..READERS)
                        .filter(|who| readers[*who].subscribed == Some(*frequency))
                        .collect();
                    let must = may.iter().copied().filter(|who| !readers[*who].refusing).collect();
                    expected.insert(edition.id, Expected { may, must });
                }
            }
            Op::Deliver => {
                send::deliver_batch(&app.sender).await.unwrap();
                for (edition, before) in &paused {
                    prop_assert_eq!(
                        received_of(&smtp, *edition),
                        *before,
                        "edition {} sent while paused",
                        edition
                    );
                }
            }
            Op::Pause { pick } => {
                if let Some(id) = picked(app.db.clone(), *pick).await {
                    let done = store::pauses::pause(&app.db, id, PauseCause::Breaker, "model", None, Utc::now())
                        .await
                        .unwrap();
                    if done.now {
                        paused.insert(id, received_of(&smtp, id));
                    }
                }
            }
            Op::Resume => {
                for id in std::mem::take(&mut paused).into_keys() {
                    prop_assert!(store::pauses::resume(&app.db, id, Utc::now()).await.unwrap());
                }
            }
            Op::Cancel { pick } => {
                if let Some(id) = picked(app.db.clone(), *pick).await
                    && store::pauses::cancel(&app.db, id, Utc::now()).await.unwrap().is_some()
                {
                    cancelled.insert(id);
                    paused.remove(&id);
                    if let Some(e) = expected.get_mut(&id) {
                        e.must.clear();
                    }
                }
            }
            Op::WorkerDies { take } => {
                let now = Utc::now();
                // Claimed with a lease that has already run out: as if the worker died long ago.
                store::deliveries::claim(&app.db, now, now - chrono::Duration::seconds(1), *take, rand::random())
                    .await
                    .unwrap();
            }
        }
    }
    for id in paused.into_keys() {
        prop_assert!(store::pauses::resume(&app.db, id, Utc::now()).await.unwrap());
    }
    let mut rounds = 0;
    while store::editions::counts(&app.db, None).await.unwrap().remaining() > 0 {
        rounds += 1;
        prop_assert!(rounds < 1000, "the queue does not drain");
        send::deliver_batch(&app.sender).await.unwrap();
    }
    let by_id: HashMap<i64, usize> = readers
        .iter()
        .enumerate()
        .filter_map(|(who, r)| r.id.map(|id| (id, who)))
        .collect();
    let mut received: HashMap<(i64, usize), usize> = HashMap::new();
    for message in smtp.received() {
        let parsed = mail_parser::MessageParser::default().parse(&message.data).unwrap();
        let id = parsed.message_id().unwrap();
        let key = id.split('@').next().unwrap();
        let parts: Vec<&str> = key.split('.').collect();
        prop_assert_eq!(parts[0], "edition", "{}", id);
        let edition: i64 = parts[1].parse().unwrap();
        let subscriber: i64 = parts[2].parse().unwrap();
        *received.entry((edition, by_id[&subscriber])).or_default() += 1;
    }
    for ((edition, who), copies) in &received {
        prop_assert_eq!(*copies, 1, "reader {} got edition {} {} times", who, edition, copies);
        let e = &expected[edition];
        prop_assert!(e.may.contains(who), "reader {} got edition {} ({:?})", who, edition, e);
    }
    for (edition, e) in &expected {
        for who in &e.must {
            prop_assert!(
                received.contains_key(&(*edition, *who)),
                "reader {} never got edition {} ({:?})",
                who,
                edition,
                e
            );
        }
    }
    for edition in store::editions::list(&app.db, 1000).await.unwrap() {
        let finished = if cancelled.contains(&edition.id) {
            EditionStatus::Cancelled
        } else {
            EditionStatus::Sent
        };
        prop_assert_eq!(edition.status, finished, "edition {} is finished", edition.id);
    }
    app.db.close().await;
    Ok(())
}

/// Messages of `edition` the server has received.
fn received_of(smtp: &SmtpServer, edition: i64) -> usize {
    let prefix = format!("<edition.{edition}.");
    smtp.received()
        .iter()
        .filter(|m| {
            let parsed = mail_parser::MessageParser::default().parse(&m.data).unwrap();
            parsed
                .message_id()
                .is_some_and(|id| format!("<{id}").starts_with(&prefix))
        })
        .count()
}

#[test]
fn every_confirmed_reader_gets_each_edition_once_and_nobody_else_gets_anything() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicUsize::new(0);
    let strategy = (1..6u32, 1..4u32, proptest::collection::vec(op(), 1..40));
    let result = runner.run(&strategy, |(batch, concurrency, ops)| {
        let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        runtime.block_on(run_case(n, batch, concurrency, &ops))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
