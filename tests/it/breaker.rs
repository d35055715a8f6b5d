//! The circuit breaker and the canary sample: an edition that pauses itself instead of
//! burning through the list, and goes on (or not) when an admin says so. A real SMTP server
//! on loopback that starts refusing; the server's own delivery workers take part.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use herald::digest::Trigger;
use herald::domain::{DeliveryStatus, EditionStatus, Frequency, PauseCause, SubscriberStatus};
use herald::store::{self, Db, editions::Edition};

use crate::common::{TestApp, post, spawn_app_with};
use crate::smtp::{Behaviour, SmtpServer};

const TOKEN: &str = "breaker-token";

async fn app_with_smtp(smtp: &SmtpServer, digest: &str) -> TestApp {
    let app = spawn_app_with(&format!(
        "[mail]\ntransport = \"smtp\"\nfrom = \"Riverside News <news@example.org>\"\nretry_base_seconds = 1\n\
         [mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\n[admin]\napi_token = \"{TOKEN}\"\n[digest]\n{digest}",
        smtp.port
    ))
    .await;
    // Herald's first sync: what is public now is the archive and is never mailed as new.
    app.write_post("archive.md", &post("Archive post", "2026-01-10", &[], "Old news."));
    app.sync().await;
    app
}

/// `n` confirmed readers of `frequency`, reader0@... upwards.
async fn readers(app: &TestApp, n: usize, frequency: Frequency, domain: &str) {
    for i in 0..n {
        let email = format!("reader{i}@{domain}");
        crate::common::add_subscriber(app, &email, SubscriberStatus::Confirmed, frequency, &[]).await;
    }
}

/// Publishes a post and composes the immediate edition for it.
async fn publish(app: &TestApp, name: &str, frequency: Frequency) -> Edition {
    app.write_post(&format!("{name}.md"), &post(name, "2026-09-14", &[], "News."));
    app.sync().await;
    let created = app.app.digests.compose(frequency, Trigger::Manual, None).await.unwrap();
    assert_eq!(created.len(), 1, "one edition for {name}");
    created.into_iter().next().unwrap()
}

async fn edition(app: &TestApp, id: i64) -> Edition {
    store::editions::find(&app.app.db, id).await.unwrap().unwrap()
}

/// Waits (the server's workers send in the background) until the edition's status is `status`.
async fn wait_for_status(app: &TestApp, id: i64, status: EditionStatus) -> Edition {
    for _ in 0..600 {
        let e = edition(app, id).await;
        if e.status == status {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let e = edition(app, id).await;
    panic!("edition {id} is {} after 12 s, not {status}: {e:?}", e.status);
}

/// Delivers until nothing claimable is left (the server's own workers may take part).
async fn drain(app: &TestApp) {
    for _ in 0..600 {
        herald::digest::send::deliver_batch(&app.app.sender).await.unwrap();
        if store::deliveries::claimable_left(&app.app.db).await.unwrap() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the queue did not drain");
}

fn per_reader(smtp: &SmtpServer) -> HashMap<String, usize> {
    let mut map = HashMap::new();
    for r in smtp.received() {
        *map.entry(r.to[0].clone()).or_default() += 1;
    }
    map
}

async fn bounced(app: &TestApp) -> i64 {
    store::subscribers::count_by_status(&app.app.db)
        .await
        .unwrap()
        .into_iter()
        .filter(|(s, _)| *s == SubscriberStatus::Bounced)
        .map(|(_, n)| n)
        .sum()
}

async fn post_api(app: &TestApp, path: &str) -> reqwest::Response {
    app.client.post(app.url(path)).bearer_auth(TOKEN).send().await.unwrap()
}

/// Runs SQL the application has no reason to: a test's stand-in for time passing.
async fn execute(db: &Db, sql: &'static str, id: i64) {
    match db {
        Db::Sqlite(pool) => sqlx::query(sql).bind(id).execute(pool).await.map(drop),
        Db::Postgres(pool) => sqlx::query(sql).bind(id).execute(pool).await.map(drop),
    }
    .unwrap();
}

#[tokio::test]
async fn a_send_into_a_server_that_starts_refusing_pauses_itself_after_the_window_and_loses_nothing() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(
        &smtp,
        "breaker_window = 10\nbreaker_failure_rate = 0.5\nbatch_size = 20\n",
    )
    .await;
    readers(&app, 80, Frequency::Immediate, "example.org").await;
    // A bare 550 reads as a bad mailbox: without the breaker, every reader from here on
    // would be bounced off the list.
    smtp.set_behaviour(Behaviour::RefuseAfter(25, 550, "5.1.1 relay access denied".into()));

    let first = publish(&app, "first", Frequency::Immediate).await;
    let paused = wait_for_status(&app, first.id, EditionStatus::Paused).await;

    assert_eq!(paused.paused_cause, Some(PauseCause::Breaker));
    let reason = paused.paused_reason.clone().unwrap();
    assert!(reason.starts_with("circuit breaker: "), "{reason}");
    assert!(reason.contains("5.1.1 relay access denied"), "{reason}");
    // Workers of this instance finish what they hold: let them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let counts = store::editions::counts(&app.app.db, Some(first.id)).await.unwrap();
    // Messages already past RCPT when the 25th was accepted go through too (8 at once).
    let sent = smtp.count() as i64;
    assert!((25..=25 + 8).contains(&sent), "{sent}");
    assert_eq!(counts.sent, sent, "{counts:?}");
    assert_eq!(
        counts.failed, 0,
        "the refusals while tripping went back to the queue: {counts:?}"
    );
    assert_eq!(counts.pending + counts.sending, 80 - sent, "{counts:?}");
    assert_eq!(
        bounced(&app).await,
        0,
        "nobody is bounced because the relay refused everything"
    );
    let sql = "select count(*) from bounce_events where edition_id = $1";
    let events: i64 = match &app.app.db {
        Db::Sqlite(pool) => sqlx::query_scalar(sql).bind(first.id).fetch_one(pool).await,
        Db::Postgres(pool) => sqlx::query_scalar(sql).bind(first.id).fetch_one(pool).await,
    }
    .unwrap();
    assert_eq!(events, 0, "nor kept as having bounced");
    let refused = smtp.rejected();
    assert!(
        (5..=5 + 8 * 2).contains(&refused),
        "it stopped after the window (5 refusals, plus the sends in flight): {refused}"
    );

    // Paused is a state in the database: no worker claims its deliveries, not this
    // instance's, nor another instance's that never saw the breaker trip...
    let report = herald::digest::send::deliver_batch(&app.app.sender).await.unwrap();
    assert_eq!(report.claimed, 0);
    let settings = herald::config::Settings::load(&app.dir.path().join("config.toml")).unwrap();
    let other_instance = herald::startup::App::start(settings).await.unwrap();
    let report = herald::digest::send::deliver_batch(&other_instance.sender)
        .await
        .unwrap();
    assert_eq!(report.claimed, 0, "another instance respects the pause");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.rejected(), refused, "nothing more was tried");
    assert_eq!(store::deliveries::claimable_left(&app.app.db).await.unwrap(), 0);
    // ...while other editions go on.
    smtp.set_behaviour(Behaviour::Accept);
    readers(&app, 3, Frequency::Daily, "daily.example.org").await;
    let other = publish(&app, "other", Frequency::Daily).await;
    wait_for_status(&app, other.id, EditionStatus::Sent).await;
    assert_eq!(edition(&app, first.id).await.status, EditionStatus::Paused);
    assert_eq!(smtp.count() as i64, sent + 3);

    // /metrics, `herald status` and the console say so, and why.
    let metrics = app.get_text("/metrics").await;
    let line = format!("herald_edition_paused{{edition=\"{}\",cause=\"breaker\"}} 1", first.id);
    assert!(metrics.contains(&line), "{metrics}");

    // The admin resumes it with the relay healthy again: everyone has exactly one copy.
    let resumed = post_api(&app, &format!("/admin/api/editions/{}/resume", first.id)).await;
    assert_eq!(resumed.status(), 200);
    let again = post_api(&app, &format!("/admin/api/editions/{}/resume", first.id)).await;
    assert_eq!(again.status(), 409, "only a paused edition resumes");
    drain(&app).await;
    wait_for_status(&app, first.id, EditionStatus::Sent).await;
    let counts = store::editions::counts(&app.app.db, Some(first.id)).await.unwrap();
    assert_eq!(
        (counts.sent, counts.failed, counts.remaining()),
        (80, 0, 0),
        "{counts:?}"
    );
    let got = per_reader(&smtp);
    for i in 0..80 {
        assert_eq!(got.get(&format!("reader{i}@example.org")), Some(&1), "reader{i}");
    }
    assert_eq!(bounced(&app).await, 0);
    let metrics = app.get_text("/metrics").await;
    assert!(!metrics.contains("herald_edition_paused{"), "{metrics}");
    assert!(metrics.contains("herald_breaker_trips_total 1"), "{metrics}");
}

#[tokio::test]
async fn a_temporary_outage_backs_off_without_tripping_the_breaker() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(&smtp, "breaker_window = 10\nbreaker_failure_rate = 0.5\n").await;
    readers(&app, 30, Frequency::Immediate, "example.org").await;
    smtp.set_behaviour(Behaviour::RejectAllRcpt(451, "4.3.0 try again later".into()));

    let e = publish(&app, "outage", Frequency::Immediate).await;
    for _ in 0..200 {
        if smtp.rejected() >= 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(smtp.rejected() >= 30, "every reader was tried: {}", smtp.rejected());
    assert_eq!(
        edition(&app, e.id).await.status,
        EditionStatus::Sending,
        "4xx is not a failure"
    );

    smtp.set_behaviour(Behaviour::Accept);
    drain(&app).await;
    wait_for_status(&app, e.id, EditionStatus::Sent).await;
    let counts = store::editions::counts(&app.app.db, Some(e.id)).await.unwrap();
    assert_eq!((counts.sent, counts.failed), (30, 0));
    assert!(per_reader(&smtp).values().all(|n| *n == 1));
}

#[tokio::test]
async fn the_breaker_trips_on_a_template_that_cannot_be_sent_and_a_cancelled_edition_sends_nothing_more() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(
        &smtp,
        "breaker_window = 10\nbreaker_failure_rate = 0.5\nbatch_size = 10\n",
    )
    .await;
    readers(&app, 40, Frequency::Immediate, "example.org").await;
    // A policy refusal (5.7.x) is the sender's problem: nobody would be bounced, but the
    // list would be burnt through all the same.
    smtp.set_behaviour(Behaviour::RefuseAfter(0, 554, "5.7.1 account suspended".into()));
    let e = publish(&app, "suspended", Frequency::Immediate).await;
    let paused = wait_for_status(&app, e.id, EditionStatus::Paused).await;
    assert!(paused.paused_reason.unwrap().contains("5.7.1 account suspended"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tried = smtp.rejected();
    assert!(tried < 40, "stopped early: {tried}");

    let cancelled = post_api(&app, &format!("/admin/api/editions/{}/cancel", e.id)).await;
    assert_eq!(cancelled.status(), 200);
    assert_eq!(edition(&app, e.id).await.status, EditionStatus::Cancelled);
    smtp.set_behaviour(Behaviour::Accept);
    drain(&app).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.count(), 0, "a cancelled edition sends nothing more");
    let counts = store::editions::counts(&app.app.db, Some(e.id)).await.unwrap();
    assert_eq!(counts.remaining(), 0, "{counts:?}");
    let resumed = post_api(&app, &format!("/admin/api/editions/{}/resume", e.id)).await;
    assert_eq!(resumed.status(), 409, "a cancelled edition cannot be resumed");
}

/// The canary deliveries of an edition, by status.
async fn sample(app: &TestApp, id: i64) -> Vec<DeliveryStatus> {
    let sql = "select status from deliveries where edition_id = $1 and canary";
    match &app.app.db {
        Db::Sqlite(pool) => sqlx::query_scalar(sql).bind(id).fetch_all(pool).await,
        Db::Postgres(pool) => sqlx::query_scalar(sql).bind(id).fetch_all(pool).await,
    }
    .unwrap()
}

const END_WAIT: &str = "update editions set canary_until = '2000-01-01T00:00:00Z' where id = $1";

#[tokio::test]
async fn a_canary_sample_goes_first_waits_and_the_rest_follows_when_it_is_healthy() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(&smtp, "canary_percent = 10\ncanary_minutes = 30\n").await;
    readers(&app, 40, Frequency::Immediate, "example.org").await;

    let e = publish(&app, "canary", Frequency::Immediate).await;
    assert_eq!(e.status, EditionStatus::Canary);
    assert_eq!(sample(&app, e.id).await.len(), 4, "10 % of 40");
    drain(&app).await;
    smtp.wait_for(4, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.count(), 4, "only the sample, for now");
    assert!(sample(&app, e.id).await.iter().all(|s| *s == DeliveryStatus::Sent));
    let waiting = edition(&app, e.id).await;
    assert_eq!(waiting.status, EditionStatus::Canary);
    let until = waiting.canary_until.expect("the wait started once the sample was out");
    let minutes = (until - Utc::now()).num_minutes();
    assert!((28..=30).contains(&minutes), "a 30-minute wait: {minutes}");

    // The wait is over (as if 30 minutes passed): the sample drew no bounces, the rest goes.
    execute(&app.app.db, END_WAIT, e.id).await;
    drain(&app).await;
    wait_for_status(&app, e.id, EditionStatus::Sent).await;
    assert_eq!(smtp.count(), 40);
    assert!(per_reader(&smtp).values().all(|n| *n == 1));
}

#[tokio::test]
async fn a_canary_sample_that_bounces_pauses_the_edition_until_an_admin_decides() {
    let smtp = SmtpServer::start().await;
    // The breaker is off: the sample alone decides.
    let app = app_with_smtp(&smtp, "canary_percent = 10\ncanary_minutes = 0\nbreaker_window = 0\n").await;
    readers(&app, 40, Frequency::Immediate, "example.org").await;
    smtp.set_behaviour(Behaviour::RejectAllRcpt(550, "5.1.1 no such user".into()));

    let e = publish(&app, "bouncy", Frequency::Immediate).await;
    let paused = wait_for_status(&app, e.id, EditionStatus::Paused).await;
    assert_eq!(paused.paused_cause, Some(PauseCause::Canary));
    let reason = paused.paused_reason.unwrap();
    assert!(reason.contains("4 of 4 sample readers bounced"), "{reason}");
    assert_eq!(smtp.rejected(), 4, "only the sample was tried");

    // The console shows why, with a Resume and a Cancel button.
    let console = crate::console::Console::new(&app).await;
    let html = console.page(&format!("/admin/editions/{}", e.id)).await;
    assert!(html.contains("4 of 4 sample readers bounced"), "{html}");
    assert!(html.contains(&format!("admin/editions/{}/resume", e.id)));
    assert!(html.contains(&format!("admin/editions/{}/cancel", e.id)));
    let list = console.page("/admin/editions").await;
    assert!(list.contains("4 of 4 sample readers bounced"), "{list}");
    let dashboard = console.page("/admin").await;
    assert!(dashboard.contains("is paused: canary: 4 of 4"), "{dashboard}");

    // A form posted from another site is refused (CSRF), and changes nothing.
    let forged = app
        .client
        .post(app.url(&format!("/admin/editions/{}/resume", e.id)))
        .header("cookie", &console.session)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(edition(&app, e.id).await.status, EditionStatus::Paused);

    // Resumed: the rest goes (the sample's bounced readers are not tried again).
    smtp.set_behaviour(Behaviour::Accept);
    let resumed = console.post(&format!("/admin/editions/{}/resume", e.id), &[]).await;
    let page = console.follow(resumed).await;
    assert!(page.contains("Resumed"), "{page}");
    drain(&app).await;
    wait_for_status(&app, e.id, EditionStatus::Sent).await;
    assert_eq!(smtp.count(), 36);
    let counts = store::editions::counts(&app.app.db, Some(e.id)).await.unwrap();
    assert_eq!((counts.sent, counts.failed), (36, 4));
}

/// The subscriber ids of an edition's canary sample.
async fn sample_readers(app: &TestApp, id: i64) -> Vec<i64> {
    let sql = "select subscriber_id from deliveries where edition_id = $1 and canary order by subscriber_id";
    match &app.app.db {
        Db::Sqlite(pool) => sqlx::query_scalar(sql).bind(id).fetch_all(pool).await,
        Db::Postgres(pool) => sqlx::query_scalar(sql).bind(id).fetch_all(pool).await,
    }
    .unwrap()
}

#[tokio::test]
async fn hard_bounces_reported_for_the_canary_sample_pause_the_edition_and_cancel_sends_nothing_more() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(&smtp, "canary_percent = 10\ncanary_minutes = 30\n").await;
    readers(&app, 40, Frequency::Immediate, "example.org").await;
    let e = publish(&app, "reported", Frequency::Immediate).await;
    drain(&app).await;
    smtp.wait_for(4, Duration::from_secs(5)).await;
    assert_eq!(smtp.count(), 4, "the sample");

    // During the wait, a delivery status notification says one sample address is gone.
    let reader = sample_readers(&app, e.id).await[0];
    let bounces = herald::bounces::Bounces::new(app.app.db.clone(), &app.app.settings.bounces);
    let report = herald::bounces::BounceReport {
        address: store::subscribers::find(&app.app.db, reader)
            .await
            .unwrap()
            .unwrap()
            .email
            .to_string(),
        kind: herald::domain::BounceKind::Hard,
        diagnostic: Some("550 5.1.1 mailbox unavailable".into()),
        source: herald::domain::BounceSource::Ingest,
        message_id: Some(format!("<edition.{}.{reader}@example.org>", e.id)),
        external_id: None,
        occurred_at: Utc::now(),
    };
    bounces.record(report).await.unwrap();
    execute(&app.app.db, END_WAIT, e.id).await;
    drain(&app).await;
    let paused = wait_for_status(&app, e.id, EditionStatus::Paused).await;
    assert_eq!(paused.paused_cause, Some(PauseCause::Canary));
    let reason = paused.paused_reason.unwrap();
    assert!(
        reason.contains("1 of 4 sample readers bounced (25.0 %, more than the 2.0 % allowed)"),
        "{reason}"
    );

    // The admin cancels it: nobody else gets it.
    let console = crate::console::Console::new(&app).await;
    let cancelled = console.post(&format!("/admin/editions/{}/cancel", e.id), &[]).await;
    let page = console.follow(cancelled).await;
    assert!(page.contains("Cancelled: 36 reader(s)"), "{page}");
    drain(&app).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.count(), 4, "nothing more was sent");
    assert_eq!(edition(&app, e.id).await.status, EditionStatus::Cancelled);
}
