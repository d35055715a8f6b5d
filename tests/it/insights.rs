//! The console's insight page over HTTP: a list with a known history (who joined when, from
//! where, who left and how, what an edition came to) read back as JSON figures and as SVG
//! charts a strict XML parser accepts, with each series drawn where it should be.

use chrono::{DateTime, Duration, Utc};
use herald::bounces::BounceReport;
use herald::domain::{
    BounceKind, BounceSource, EmailAddress, Frequency, SubscriberEvent, SubscriberSource, SubscriberStatus,
};
use herald::insight::charts::palette;
use herald::store;
use plotters::style::RGBColor;
use serde_json::Value;

use crate::common::{TestApp, post, spawn_app_with};
use crate::console::Console;

/// A site whose first sync has made its archive (never mailed as new).
async fn app_with_archive() -> TestApp {
    let app = spawn_app_with("").await;
    app.write_post(
        "archive.md",
        &post("Archive post", "2026-01-10", &["wildlife"], "Old news."),
    );
    app.sync().await;
    app
}

/// Someone who asked to join at `asked`, from `source`, and was confirmed at `confirmed`.
async fn joined(
    app: &TestApp,
    email: &str,
    source: SubscriberSource,
    asked: DateTime<Utc>,
    confirmed: Option<DateTime<Utc>>,
) -> i64 {
    let db = &app.app.db;
    let new = store::subscribers::NewSubscriber {
        email: EmailAddress::parse(email).unwrap(),
        name: None,
        status: SubscriberStatus::Pending,
        frequency: Frequency::Immediate,
        topics: Vec::new(),
        source,
        consent_at: Some(asked),
    };
    let (s, _) = store::subscribers::insert_or_get(db, &new, asked).await.unwrap();
    if let Some(at) = confirmed {
        store::subscribers::apply(
            db,
            s.id,
            SubscriberEvent::Confirmed,
            &herald::domain::Actor::cli(),
            None,
            at,
        )
        .await
        .unwrap()
        .unwrap();
    }
    s.id
}

async fn event(app: &TestApp, id: i64, event: SubscriberEvent, at: DateTime<Utc>) {
    store::subscribers::apply(&app.app.db, id, event, &herald::domain::Actor::cli(), None, at)
        .await
        .unwrap()
        .unwrap();
}

fn day(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

fn hex(c: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

/// Checks a chart as a strict XML parser and a screen reader would, and returns its text
/// and how many filled shapes each colour has.
fn read_svg(what: &str, svg: &str) -> (Vec<String>, std::collections::HashMap<String, usize>) {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("{what} is not well-formed XML: {e}\n{svg}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg", "{what}");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg"),
        "{what}"
    );
    assert!(root.attribute("viewBox").is_some(), "{what} scales to its box");
    assert_eq!(root.attribute("role"), Some("img"), "{what}");
    let title = root
        .children()
        .find(|n| n.has_tag_name("title"))
        .expect("a <title> first");
    assert!(!title.text().unwrap_or("").is_empty(), "{what} has a title");
    let texts = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(|t| t.trim().to_owned()))
        .collect();
    let mut fills = std::collections::HashMap::new();
    for n in doc.descendants().filter(|n| n.has_tag_name("rect")) {
        if let Some(fill) = n.attribute("fill") {
            *fills.entry(fill.to_uppercase()).or_default() += 1;
        }
    }
    (texts, fills)
}

#[tokio::test]
async fn the_lists_history_comes_back_as_figures_and_as_charts() {
    let app = app_with_archive().await;
    let now = Utc::now();
    let ago = |days: i64| now - Duration::days(days);

    // Two imported 40 days ago: before a 30-day report begins.
    for email in ["imp1@example.org", "imp2@example.org"] {
        joined(&app, email, SubscriberSource::Import, ago(41), Some(ago(40))).await;
    }
    // Three from the form ten days ago; one leaves five days ago.
    let mut form = Vec::new();
    for email in ["f1@example.org", "f2@example.org", "f3@example.org"] {
        form.push(joined(&app, email, SubscriberSource::Form, ago(11), Some(ago(10))).await);
    }
    event(&app, form[0], SubscriberEvent::Unsubscribed, ago(5)).await;
    // One from the API two days ago, bounced yesterday.
    let api = joined(&app, "api@example.org", SubscriberSource::Api, ago(2), Some(ago(2))).await;
    event(&app, api, SubscriberEvent::Bounced, ago(1)).await;
    // Asked, never confirmed, then dropped: never a subscriber.
    let never = joined(&app, "never@example.org", SubscriberSource::Form, ago(3), None).await;
    event(&app, never, SubscriberEvent::Unsubscribed, ago(3)).await;

    let console = Console::new(&app).await;
    let report: Value = console.get("/admin/api/insights?days=30").await.json().await.unwrap();
    assert_eq!(report["days"], 30);
    assert_eq!(report["bucket"], "day");
    assert_eq!(report["to"], day(now));
    assert_eq!(report["from"], day(ago(29)));
    assert_eq!(report["confirmed"], 4, "two imported and two from the form are left");
    assert_eq!((report["joined"].as_i64(), report["left"].as_i64()), (Some(4), Some(2)));
    let growth = report["growth"].as_array().unwrap();
    assert_eq!(growth.len(), 30);
    let on = |at: DateTime<Utc>| growth.iter().find(|p| p["label"] == day(at)).unwrap().clone();
    assert_eq!(
        growth[0]["confirmed"], 2,
        "the imported pair were there when the report begins"
    );
    assert_eq!(
        (on(ago(10))["joined"].as_i64(), on(ago(10))["confirmed"].as_i64()),
        (Some(3), Some(5))
    );
    assert_eq!(
        (on(ago(5))["unsubscribed"].as_i64(), on(ago(5))["confirmed"].as_i64()),
        (Some(1), Some(4))
    );
    assert_eq!(on(ago(3))["unsubscribed"], 0, "a dropped request is not a departure");
    assert_eq!(
        (on(ago(1))["bounced"].as_i64(), on(ago(1))["confirmed"].as_i64()),
        (Some(1), Some(4))
    );
    assert_eq!(growth.last().unwrap()["confirmed"], 4);
    let source = |name: &str| {
        report["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["source"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        (
            source("form")["confirmed"].as_i64(),
            source("form")["total"].as_i64(),
            source("form")["joined"].as_i64()
        ),
        (Some(2), Some(4), Some(3))
    );
    assert_eq!(
        (
            source("import")["confirmed"].as_i64(),
            source("import")["joined"].as_i64()
        ),
        (Some(2), Some(0))
    );
    assert_eq!(
        (source("api")["confirmed"].as_i64(), source("api")["joined"].as_i64()),
        (Some(0), Some(1))
    );

    // A longer report counts by ISO week and still ends at today's count.
    let long: Value = console.get("/admin/api/insights?days=365").await.json().await.unwrap();
    assert_eq!(long["bucket"], "week");
    assert!(long["growth"][0]["label"].as_str().unwrap().contains("-W"));
    assert_eq!(long["growth"][0]["confirmed"], 0);
    assert_eq!(long["growth"].as_array().unwrap().last().unwrap()["confirmed"], 4);

    // The charts: well-formed SVG, titled, each series where the figures put it.
    let (texts, fills) = read_svg("flows", &console.page("/admin/insights/flows.svg?days=30").await);
    for series in ["Joined", "Unsubscribed", "Bounced", "Complained"] {
        assert!(
            texts.iter().any(|t| t == series),
            "flows names {series} in its legend: {texts:?}"
        );
    }
    // One bar a day with anything in it, and one box in the legend.
    let count = |c: RGBColor| fills.get(&hex(c)).copied().unwrap_or(0);
    assert_eq!(count(palette::JOINED), 2 + 1, "{fills:?}");
    assert_eq!(count(palette::UNSUBSCRIBED), 1 + 1, "{fills:?}");
    assert_eq!(count(palette::BOUNCED), 1 + 1, "{fills:?}");
    assert_eq!(count(palette::COMPLAINED), 1, "no complaint: its legend box alone");
    assert!(texts.contains(&day(ago(29))), "the first day is labelled: {texts:?}");

    let growth_svg = console.page("/admin/insights/growth.svg?days=30").await;
    let (texts, _) = read_svg("growth", &growth_svg);
    assert!(texts.iter().any(|t| t == "Confirmed"), "{texts:?}");
    let doc = roxmltree::Document::parse(&growth_svg).unwrap();
    let line = doc
        .descendants()
        .find(|n| {
            n.has_tag_name("polyline")
                && n.attribute("stroke")
                    .is_some_and(|s| s.eq_ignore_ascii_case(&hex(palette::CONFIRMED)))
        })
        .expect("the confirmed count is drawn as a line");
    assert_eq!(
        line.attribute("points").unwrap().split_whitespace().count(),
        30,
        "a point a day"
    );

    let (texts, fills) = read_svg("sources", &console.page("/admin/insights/sources.svg?days=30").await);
    for source in ["form", "import", "api", "cli"] {
        assert!(texts.iter().any(|t| t == source), "sources labels {source}: {texts:?}");
    }
    assert_eq!(
        fills.get(&hex(palette::NOW)).copied(),
        Some(2 + 1),
        "confirmed now: form and import"
    );
    assert_eq!(
        fills.get(&hex(palette::JOINED)).copied(),
        Some(2 + 1),
        "joined: form and api"
    );

    // The page shows the four charts with their figures for people who cannot see them.
    let page = console.page("/admin/insights?days=30").await;
    for name in ["growth", "flows", "editions", "sources"] {
        assert!(page.contains(&format!("/admin/insights/{name}.svg?days=30")), "{name}");
    }
    assert!(
        !page.contains("/admin/insights/clicks.svg") && page.contains("<code>[tracking] clicks</code> is off"),
        "with clicks off there is no click chart, and the page says why"
    );
    assert!(
        page.contains(&format!("<td>{}</td><td>5</td><td>3</td>", day(ago(10)))),
        "{page}"
    );

    // Asking for what is not there is said plainly.
    assert_eq!(console.get("/admin/insights/nothing.svg").await.status(), 404);
    let short = console.get("/admin/api/insights?days=3").await;
    assert_eq!(short.status(), 422);
    assert!(short.text().await.unwrap().contains("days must be from 7"));
    let anonymous = app
        .client
        .get(app.url("/admin/insights/growth.svg"))
        .send()
        .await
        .unwrap();
    assert_ne!(anonymous.status(), 200, "charts are for admins only");
}

#[tokio::test]
async fn each_edition_shows_what_its_mail_came_to() {
    let app = app_with_archive().await;
    let now = Utc::now();
    let mut ids = Vec::new();
    for email in ["a@example.org", "b@example.org", "c@example.org", "d@example.org"] {
        ids.push(
            joined(
                &app,
                email,
                SubscriberSource::Form,
                now - Duration::days(3),
                Some(now - Duration::days(2)),
            )
            .await,
        );
    }

    let send = |title: &'static str| {
        let app = &app;
        async move {
            app.write_post(
                &format!("{title}.md"),
                &post(title, "2026-11-01", &["wildlife"], "News."),
            );
            app.sync().await;
            let editions = app
                .app
                .digests
                .compose(Frequency::Immediate, herald::digest::Trigger::Manual, None)
                .await
                .unwrap();
            assert_eq!(editions.len(), 1);
            for _ in 0..200 {
                herald::digest::send::deliver_batch(&app.app.sender).await.unwrap();
                if store::editions::counts(&app.app.db, None).await.unwrap().remaining() == 0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            editions[0].id
        }
    };
    let first = send("first").await;
    // After the first edition, a reports spam and b's mailbox turns out not to exist.
    for (i, kind) in [(0, BounceKind::Complaint), (1, BounceKind::Hard)] {
        app.app
            .bounces
            .record(BounceReport {
                address: ["a@example.org", "b@example.org"][i].into(),
                kind,
                diagnostic: None,
                source: BounceSource::Ingest,
                message_id: Some(format!("<edition.{first}.{}@example.org>", ids[i])),
                external_id: None,
                occurred_at: Utc::now(),
            })
            .await
            .unwrap();
    }
    let second = send("second").await;
    // c leaves after the second edition: it, not the first, is the one they left after.
    event(
        &app,
        ids[2],
        SubscriberEvent::Unsubscribed,
        Utc::now() + Duration::seconds(1),
    )
    .await;

    let console = Console::new(&app).await;
    let report: Value = console.get("/admin/api/insights").await.json().await.unwrap();
    let editions = report["editions"].as_array().unwrap();
    assert_eq!(editions.len(), 2);
    let (e1, e2) = (&editions[0], &editions[1]);
    assert_eq!(
        (e1["id"].as_i64(), e2["id"].as_i64()),
        (Some(first), Some(second)),
        "oldest first"
    );
    let figures =
        |e: &Value| ["sent", "failed", "bounced", "complained", "unsubscribed_after"].map(|k| e[k].as_i64().unwrap());
    assert_eq!(figures(e1), [4, 0, 1, 1, 0]);
    assert_eq!(figures(e2), [2, 0, 0, 0, 1], "the suppressed two get nothing more");
    assert_eq!(e1["rates"]["complained"], 25.0);
    assert_eq!(e2["rates"]["unsubscribed_after"], 50.0);

    let (texts, fills) = read_svg("editions", &console.page("/admin/insights/editions.svg").await);
    assert!(
        texts.contains(&format!("#{first}")) && texts.contains(&format!("#{second}")),
        "{texts:?}"
    );
    let count = |c: RGBColor| fills.get(&hex(c)).copied().unwrap_or(0);
    assert_eq!(count(palette::BOUNCED), 1 + 1, "{fills:?}");
    assert_eq!(count(palette::COMPLAINED), 1 + 1, "{fills:?}");
    assert_eq!(count(palette::UNSUBSCRIBED), 1 + 1, "{fills:?}");
    assert_eq!(count(palette::FAILED), 1, "nothing failed: the legend box alone");
}
