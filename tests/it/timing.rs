//! The subscribe form must not tell, by how long it takes, whether an address is new,
//! waiting for confirmation or already confirmed. Measured on a real `herald serve`
//! process: many requests per kind of address, interleaved in random order so that
//! whatever else loads the machine loads every kind alike, compared round by round.

use std::time::{Duration, Instant};

use herald::domain::{Frequency, SubscriberStatus};
use rand::seq::SliceRandom;

use crate::serve::ServeProcess;

const ROUNDS: usize = 200;
const WARM_UP: usize = 10;
/// How far apart two kinds' medians may be, relative to the faster. The old form took
/// about twice as long for a new address as for a confirmed one (in a release build;
/// several times as long in a debug build).
const TOLERANCE: f64 = 0.25;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    New,
    Pending,
    Confirmed,
}

const KINDS: [Kind; 3] = [Kind::New, Kind::Pending, Kind::Confirmed];

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Waits until the server has finished whatever a request left for the background
/// (acting on it, sending its mail), so each measurement starts from a quiet server.
async fn quiet(db: &herald::store::Db) {
    let started = Instant::now();
    while herald::store::requests::pending(db).await.unwrap() > 0
        || herald::store::outbox::pending(db).await.unwrap() > 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server never went quiet"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Posts the form for `email`: how long the answer took (ms, until its last byte) and its body.
async fn post_form(client: &reqwest::Client, url: &str, email: String) -> (f64, String) {
    let started = Instant::now();
    let response = client
        .post(url)
        .form(&[("email", email.as_str()), ("frequency", "weekly")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    (started.elapsed().as_secs_f64() * 1000.0, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscribe_form_takes_as_long_for_a_known_address_as_for_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("posts")).unwrap();
    let db_url = crate::common::fresh_database_url(dir.path()).await;
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[database]\nurl = \"{db_url}\"\n[content]\nposts_dir = \"posts\"\n\
             [subscribers]\nrate_per_minute = 1000000\nconfirm_resend_minutes = 60\n"
        ),
    )
    .unwrap();
    let server = ServeProcess::start(&config, "warn,herald::web=info").await;
    let db = herald::store::Db::connect_url(&db_url, 2).await.unwrap();
    let client = reqwest::Client::new();
    let url = server.url("/subscribe");
    let form = |email: String| post_form(&client, &url, email);

    // Confirmed readers, and addresses whose confirmation mail has just gone out.
    let confirmed: Vec<String> = (0..5).map(|i| format!("confirmed{i}@example.org")).collect();
    for email in &confirmed {
        let new = herald::store::subscribers::NewSubscriber {
            email: herald::domain::EmailAddress::parse(email).unwrap(),
            name: None,
            status: SubscriberStatus::Confirmed,
            frequency: Frequency::Weekly,
            topics: Vec::new(),
            source: herald::domain::SubscriberSource::Cli,
            consent_at: None,
        };
        herald::store::subscribers::insert_or_get(&db, &new, chrono::Utc::now())
            .await
            .unwrap();
    }
    let pending: Vec<String> = (0..5).map(|i| format!("pending{i}@example.org")).collect();
    for email in &pending {
        form(email.clone()).await;
    }
    quiet(&db).await;

    let mut next_new = 0;
    // One row per round: the time for each kind, measured moments apart.
    let mut rounds: Vec<[f64; 3]> = Vec::new();
    let mut bodies = std::collections::HashSet::new();
    let mut order = KINDS;
    for round in 0..WARM_UP + ROUNDS {
        order.shuffle(&mut rand::rng());
        let mut times = [0.0; 3];
        for kind in order {
            let email = match kind {
                Kind::New => {
                    next_new += 1;
                    format!("new{next_new}@example.org")
                }
                Kind::Pending => pending[round % pending.len()].clone(),
                Kind::Confirmed => confirmed[round % confirmed.len()].clone(),
            };
            let (took, body) = form(email).await;
            quiet(&db).await;
            times[kind as usize] = took;
            bodies.insert(body);
        }
        if round >= WARM_UP {
            rounds.push(times);
        }
    }
    assert_eq!(bodies.len(), 1, "the same answer for every address");

    let medians: Vec<(Kind, f64)> = KINDS
        .iter()
        .map(|&k| (k, median(&mut rounds.iter().map(|r| r[k as usize]).collect::<Vec<_>>())))
        .collect();
    eprintln!("median milliseconds per kind of address: {medians:?}");
    // Compared round by round, so a burst of load from elsewhere (this machine runs
    // other tests meanwhile) weighs on both sides of each ratio alike.
    for (i, a) in KINDS.iter().enumerate() {
        for b in &KINDS[i + 1..] {
            let ratio = median(
                &mut rounds
                    .iter()
                    .map(|r| r[*a as usize] / r[*b as usize])
                    .collect::<Vec<_>>(),
            );
            eprintln!("{a:?} / {b:?}: median ratio {ratio:.3}");
            assert!(
                (1.0 / (1.0 + TOLERANCE)..=1.0 + TOLERANCE).contains(&ratio),
                "the answer's timing tells {a:?} from {b:?} addresses: {ratio:.2} times as long ({medians:?})"
            );
        }
    }
}
