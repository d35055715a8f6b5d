//! Remote sources against a real HTTP server on loopback serving fixture feeds.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use herald::content::remote::SourceOutcome;
use tokio::sync::RwLock;

use crate::common::spawn_app_with;

#[derive(Default)]
struct Fixtures {
    rss: RwLock<(String, String)>,
    hits: AtomicUsize,
    not_modified: AtomicUsize,
}

fn rss(items: &[(&str, &str, &str)]) -> String {
    let items: String = items
        .iter()
        .map(|(guid, title, body)| {
            format!(
                "<item><guid isPermaLink=\"false\">{guid}</guid><title>{title}</title><link>https://cms.example.org/{guid}</link>\
                 <pubDate>Mon, 14 Sep 2026 09:30:00 +0000</pubDate><category>Campaigns</category>\
                 <description><![CDATA[{body}]]></description></item>"
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>CMS</title><link>https://cms.example.org/</link><description>d</description>{items}</channel></rss>"
    )
}

const ATOM: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Other</title><id>urn:x</id><updated>2026-10-01T00:00:00Z</updated>
<entry><id>urn:uuid:1</id><title>Atom item &amp; more</title><updated>2026-10-01T00:00:00Z</updated>
<link rel="alternate" href="https://atom.example.org/news/item-1"/>
<content type="html">&lt;p&gt;Read &lt;a href="/about"&gt;about us&lt;/a&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src="pic.png" onerror="x()"&gt;&lt;/p&gt;</content></entry>
</feed>"#;

async fn serve_fixtures(fixtures: Arc<Fixtures>) -> String {
    let good = {
        let f = fixtures.clone();
        move |headers: HeaderMap| {
            let f = f.clone();
            async move {
                f.hits.fetch_add(1, Ordering::SeqCst);
                let (etag, body) = f.rss.read().await.clone();
                if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
                    f.not_modified.fetch_add(1, Ordering::SeqCst);
                    return StatusCode::NOT_MODIFIED.into_response();
                }
                (
                    [
                        (header::ETAG, etag),
                        (header::CONTENT_TYPE, "application/rss+xml".into()),
                    ],
                    body,
                )
                    .into_response()
            }
        }
    };
    let app = Router::new()
        .route("/good.rss", get(good))
        .route("/atom.xml", get(|| async { ATOM }))
        .route(
            "/broken.xml",
            get(|| async { "<html><body>Oops, this is not a feed</body></html>" }),
        )
        .route("/missing.xml", get(|| async { StatusCode::NOT_FOUND }))
        .route(
            "/slow.xml",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "too late"
            }),
        )
        .route("/huge.xml", get(|| async { " ".repeat(11 * 1024 * 1024) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

#[tokio::test]
async fn sources_import_once_honour_304_and_fail_alone() {
    let fixtures = Arc::new(Fixtures::default());
    *fixtures.rss.write().await = (
        "\"v1\"".into(),
        rss(&[
            ("a1", "First campaign", "<p>One</p>"),
            ("a2", "Second campaign", "<p>Two</p>"),
        ]),
    );
    let feeds = serve_fixtures(fixtures.clone()).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut config = String::new();
    for (path, tags) in [
        ("good.rss", "[\"from-cms\"]"),
        ("atom.xml", "[]"),
        ("broken.xml", "[]"),
        ("missing.xml", "[]"),
        ("huge.xml", "[]"),
    ] {
        config.push_str(&format!("[[sources]]\nurl = \"{feeds}/{path}\"\ntags = {tags}\n"));
    }
    config.push_str(&format!(
        "[[sources]]\nurl = \"{feeds}/slow.xml\"\ntimeout_seconds = 1\n"
    ));
    config.push_str(&format!("[[sources]]\nurl = \"http://{closed}/down.xml\"\n"));
    let app = spawn_app_with(&config).await;

    let outcomes: std::collections::HashMap<String, SourceOutcome> = app
        .app
        .poll_sources()
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.url, p.outcome))
        .collect();
    let at = |path: &str| {
        outcomes
            .iter()
            .find(|(u, _)| u.ends_with(path))
            .map(|(_, o)| o.clone())
            .unwrap()
    };
    assert_eq!(at("good.rss"), SourceOutcome::Changed { added: 2, updated: 0 });
    assert_eq!(at("atom.xml"), SourceOutcome::Changed { added: 1, updated: 0 });
    for (path, reason) in [
        ("broken.xml", "not a feed"),
        ("missing.xml", "404"),
        ("huge.xml", "larger than"),
        ("slow.xml", "no answer"),
        ("down.xml", "no answer"),
    ] {
        match at(path) {
            SourceOutcome::Failed(e) => assert!(e.contains(reason), "{path}: {e}"),
            other => panic!("{path}: {other:?}"),
        }
    }

    let feed = app.get_feed("/feed.atom").await;
    let titles: Vec<_> = feed.entries.iter().map(|e| e.title.clone().unwrap().content).collect();
    assert_eq!(titles.len(), 3, "{titles:?}");
    assert!(titles.contains(&"Atom item & more".to_owned()));
    let tagged = app.get_feed("/tags/from-cms/feed.json").await;
    assert_eq!(tagged.entries.len(), 2, "the source's tags are given");
    assert_eq!(
        app.get_feed("/tags/campaigns/feed.json").await.entries.len(),
        2,
        "categories become tags"
    );
    let atom_page = app.get_text("/posts/atom-item-more/").await;
    assert!(
        atom_page.contains("href=\"https://atom.example.org/about\""),
        "made absolute against the item's link"
    );
    assert!(atom_page.contains("src=\"https://atom.example.org/news/pic.png\""));
    assert!(
        !atom_page.contains("<script") && !atom_page.contains("onerror"),
        "sanitised"
    );

    // Again: the good source answers 304; nothing is imported twice.
    let again: std::collections::HashMap<String, SourceOutcome> = app
        .app
        .poll_sources()
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.url, p.outcome))
        .collect();
    assert!(
        again
            .iter()
            .filter(|(u, _)| u.ends_with("good.rss") || u.ends_with("atom.xml"))
            .all(|(_, o)| *o == SourceOutcome::Unchanged)
    );
    assert_eq!(
        fixtures.not_modified.load(Ordering::SeqCst),
        1,
        "If-None-Match was sent and honoured"
    );
    assert_eq!(app.get_feed("/feed.atom").await.entries.len(), 3);

    // The CMS publishes one more item and edits one; then empties its feed.
    *fixtures.rss.write().await = (
        "\"v2\"".into(),
        rss(&[
            ("a1", "First campaign, updated", "<p>One!</p>"),
            ("a2", "Second campaign", "<p>Two</p>"),
            ("a3", "Third", "<p>3</p>"),
        ]),
    );
    let changed: std::collections::HashMap<String, SourceOutcome> = app
        .app
        .poll_sources()
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.url, p.outcome))
        .collect();
    assert_eq!(
        changed.iter().find(|(u, _)| u.ends_with("good.rss")).unwrap().1,
        &SourceOutcome::Changed { added: 1, updated: 1 }
    );
    *fixtures.rss.write().await = ("\"v3\"".into(), rss(&[]));
    app.app.poll_sources().await.unwrap();
    let titles: Vec<_> = app
        .get_feed("/feed.atom")
        .await
        .entries
        .iter()
        .map(|e| e.title.clone().unwrap().content)
        .collect();
    assert_eq!(
        titles.len(),
        4,
        "imported posts stay when they leave the remote feed: {titles:?}"
    );
    assert!(titles.contains(&"First campaign, updated".to_owned()));
}

/// A source server whose one feed the test rewrites between polls (no validators, so
/// every poll reads the whole feed).
async fn serve_one_feed(body: Arc<RwLock<String>>) -> String {
    let app = Router::new().route(
        "/feed.rss",
        get(move || {
            let body = body.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, "application/rss+xml")],
                    body.read().await.clone(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}/feed.rss", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

/// An RSS item; `date` None leaves out `pubDate`.
fn item(guid: &str, title: &str, date: Option<&str>) -> String {
    let date = date.map(|d| format!("<pubDate>{d}</pubDate>")).unwrap_or_default();
    format!(
        "<item><guid isPermaLink=\"false\">{guid}</guid><title>{title}</title>\
         <link>https://cms.example.org/{guid}</link>{date}<description>{title} body</description></item>"
    )
}

fn channel(items: &[String]) -> String {
    format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>CMS</title>\
         <link>https://cms.example.org/</link><description>d</description>{}</channel></rss>",
        items.concat()
    )
}

/// (title, date_published) of the site's JSON Feed, in its order.
async fn listed(app: &crate::common::TestApp) -> Vec<(String, String)> {
    let json: serde_json::Value = serde_json::from_str(&app.get_feed_text("/feed.json").await).unwrap();
    json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["title"].as_str().unwrap().to_owned(),
                i["date_published"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_undated_remote_item_keeps_its_first_seen_date_across_polls() {
    let body = Arc::new(RwLock::new(channel(&[
        item("dated", "Dated item", Some("Mon, 14 Sep 2026 09:30:00 +0000")),
        item("undated", "Undated item", None),
    ])));
    let url = serve_one_feed(body.clone()).await;
    let app = spawn_app_with(&format!("[[sources]]\nurl = \"{url}\"\n")).await;

    let first = app.app.poll_sources().await.unwrap();
    assert_eq!(first[0].outcome, SourceOutcome::Changed { added: 2, updated: 0 });
    let before = listed(&app).await;
    assert_eq!(before[0].0, "Undated item", "first seen now, so newest: {before:?}");

    // Later, the source publishes a dated item; the undated one must not jump above it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let newer = chrono::Utc::now().to_rfc2822();
    *body.write().await = channel(&[
        item("newer", "Newer item", Some(&newer)),
        item("dated", "Dated item", Some("Mon, 14 Sep 2026 09:30:00 +0000")),
        item("undated", "Undated item", None),
    ]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..2 {
        let polled = app.app.poll_sources().await.unwrap();
        assert!(
            matches!(
                polled[0].outcome,
                SourceOutcome::Changed { updated: 0, .. } | SourceOutcome::Unchanged
            ),
            "the undated item is not updated again: {:?}",
            polled[0]
        );
    }
    let after = listed(&app).await;
    let titles: Vec<&str> = after.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(titles, ["Newer item", "Undated item", "Dated item"]);
    assert_eq!(after[1], before[0], "same first-seen date");
}

#[tokio::test]
async fn items_sharing_an_id_in_one_feed_make_one_post_and_are_reported() {
    let body = Arc::new(RwLock::new(channel(&[
        item("same", "First of two", Some("Mon, 14 Sep 2026 09:30:00 +0000")),
        item("other", "Other item", Some("Tue, 15 Sep 2026 09:30:00 +0000")),
        item("same", "Second of two", Some("Wed, 16 Sep 2026 09:30:00 +0000")),
    ])));
    let url = serve_one_feed(body.clone()).await;
    let app = spawn_app_with(&format!("[[sources]]\nurl = \"{url}\"\n")).await;

    let first = app.app.poll_sources().await.unwrap();
    assert_eq!(first[0].outcome, SourceOutcome::Changed { added: 2, updated: 0 });
    assert_eq!(first[0].duplicate_ids, ["same"]);
    assert!(
        first[0].to_string().contains("\"same\""),
        "the report names the id: {}",
        first[0]
    );
    for _ in 0..3 {
        let again = app.app.poll_sources().await.unwrap();
        assert_eq!(again[0].outcome, SourceOutcome::Unchanged, "nothing swaps");
        assert_eq!(again[0].duplicate_ids, ["same"]);
        let titles: Vec<String> = listed(&app).await.into_iter().map(|(t, _)| t).collect();
        assert_eq!(titles, ["Other item", "First of two"], "the first item wins");
    }
}

#[tokio::test]
async fn a_post_file_cannot_take_over_an_imported_posts_slug() {
    let body = Arc::new(RwLock::new(channel(&[item(
        "a1",
        "Campaign news",
        Some("Mon, 14 Sep 2026 09:30:00 +0000"),
    )])));
    let url = serve_one_feed(body).await;
    let app = spawn_app_with(&format!("[[sources]]\nurl = \"{url}\"\n")).await;
    app.app.poll_sources().await.unwrap();
    assert_eq!(app.get("/posts/campaign-news/").await.status(), 200);

    app.write_post(
        "takeover.md",
        "---\ntitle: Takeover\ndate: 2026-10-01\nslug: campaign-news\n---\nMine now.\n",
    );
    let report = app.sync().await;
    assert_eq!((report.added, report.updated), (0, 0), "{report:?}");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(report.failed[0].path.ends_with("takeover.md"));
    assert!(
        report.failed[0].message.contains(&url),
        "names the source that holds the slug: {}",
        report.failed[0]
    );
    assert!(
        app.get_text("/posts/campaign-news/")
            .await
            .contains("Campaign news body")
    );
}
