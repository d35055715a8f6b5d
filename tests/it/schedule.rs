use std::time::Duration;

use herald::domain::{Frequency, SubscriberStatus};

use crate::common::{post, spawn_app_with};
use crate::smtp::SmtpServer;

async fn confirmed(app: &crate::common::TestApp, email: &str, frequency: Frequency) {
    crate::common::add_subscriber(app, email, SubscriberStatus::Confirmed, frequency, &[]).await;
}

fn smtp_config(smtp: &SmtpServer) -> String {
    format!(
        "[mail]\ntransport = \"smtp\"\nfrom = \"News <news@example.org>\"\n[mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\n",
        smtp.port
    )
}

#[tokio::test]
async fn a_post_file_dropped_in_reaches_feeds_and_immediate_subscribers_on_its_own() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(&format!("{}[schedule]\nsync = \"*/1 * * * * *\"\n", smtp_config(&smtp))).await;
    app.write_post("archive.md", &post("Archive", "2026-01-01", &["news"], "Old."));
    app.sync().await;
    confirmed(&app, "quick@example.org", Frequency::Immediate).await;
    confirmed(&app, "slow@example.org", Frequency::Weekly).await;

    // No command from here on: the scheduler syncs, composes and the worker delivers.
    app.write_post(
        "breaking.md",
        &post("Breaking news", "2026-09-14", &["news"], "Just in."),
    );
    let received = smtp.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(received.len(), 1, "delivered within the wait");
    assert_eq!(received[0].to, ["quick@example.org"]);
    let message = mail_parser::MessageParser::default().parse(&received[0].data).unwrap();
    assert_eq!(message.subject(), Some("Breaking news"));
    assert!(app.get_feed_text("/feed.atom").await.contains("Breaking news"));
}

#[tokio::test]
async fn an_edition_missed_while_down_is_sent_once_on_catch_up() {
    let smtp = SmtpServer::start().await;
    // Due every day at midnight: today's time has always passed when the test runs.
    let app = spawn_app_with(&format!("{}[schedule]\ndaily = \"0 0 0 * * *\"\n", smtp_config(&smtp))).await;
    app.write_post("archive.md", &post("Archive", "2026-01-01", &["news"], "Old."));
    app.sync().await;
    confirmed(&app, "daily@example.org", Frequency::Daily).await;
    app.write_post(
        "news.md",
        &post("News from yesterday", "2026-09-14", &["news"], "While we were down."),
    );
    app.sync().await;
    // As if Herald had last run yesterday, and was down when today's edition came due.
    herald::store::meta_set(&app.app.db, "schedule.daily.period", "2000-01-01")
        .await
        .unwrap();

    // Three instances (or restarts) catch up at once: one edition.
    let now = chrono::Utc::now();
    let (a, b, c) = tokio::join!(
        app.app.jobs.compose_due_editions(now),
        app.app.jobs.compose_due_editions(now),
        app.app.jobs.compose_due_editions(now),
    );
    assert_eq!(a.unwrap().len() + b.unwrap().len() + c.unwrap().len(), 1);
    assert!(
        app.app.jobs.compose_due_editions(now).await.unwrap().is_empty(),
        "and never again"
    );
    let received = smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.count(), 1, "exactly one message");
}
