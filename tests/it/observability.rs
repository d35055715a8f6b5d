use std::time::Duration;

use herald::digest::Trigger;
use herald::domain::{Frequency, SubscriberStatus};

use crate::common::{TestApp, post, spawn_app_with};
use crate::smtp::SmtpServer;

async fn scrape(app: &TestApp) -> prometheus_parse::Scrape {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text format")
}

fn value(scrape: &prometheus_parse::Scrape, name: &str, label: Option<(&str, &str)>) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(ref h) => h.last().map_or(0.0, |b| b.count),
            prometheus_parse::Value::Summary(_) => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn metrics_parse_and_move_after_a_send() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(&format!(
        "[mail]\ntransport = \"smtp\"\nfrom = \"News <news@example.org>\"\n[mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\n",
        smtp.port
    ))
    .await;
    app.write_post("archive.md", &post("Archive", "2026-01-01", &["news"], "Old."));
    app.sync().await;
    for i in 0..3 {
        let email = format!("m{i}@example.org");
        crate::common::add_subscriber(&app, &email, SubscriberStatus::Confirmed, Frequency::Weekly, &[]).await;
    }
    let before = scrape(&app).await;
    assert_eq!(
        value(&before, "herald_deliveries_total", Some(("outcome", "sent"))),
        0.0
    );

    let first = app.get("/feed.atom").await;
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    app.client
        .get(app.url("/feed.atom"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();

    app.write_post("news.md", &post("News", "2026-09-14", &["news"], "New."));
    app.sync().await;
    app.app
        .digests
        .compose(Frequency::Weekly, Trigger::Manual, None)
        .await
        .unwrap();
    smtp.wait_for(3, Duration::from_secs(10)).await;
    let mut after = scrape(&app).await;
    for _ in 0..50 {
        if value(&after, "herald_deliveries_total", Some(("outcome", "sent"))) >= 3.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = scrape(&app).await;
    }
    assert_eq!(value(&after, "herald_deliveries_total", Some(("outcome", "sent"))), 3.0);
    assert_eq!(
        value(&after, "herald_feed_requests_total", Some(("status", "200"))),
        1.0
    );
    assert_eq!(
        value(&after, "herald_feed_requests_total", Some(("status", "304"))),
        1.0
    );
    assert!(
        value(&after, "herald_smtp_send_seconds_count", None) >= 3.0,
        "SMTP latency observed"
    );
    assert_eq!(value(&after, "herald_queue_depth", None), 0.0);
    assert_eq!(app.get_text("/readyz").await, "ready");
}
