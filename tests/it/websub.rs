//! WebSub: every feed names the hubs, and the hubs hear of a new post within a second of
//! the sync that publishes it. The hubs are real HTTP servers on loopback that record what
//! they are sent: one that answers, one that refuses (500) and one that never answers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;

use crate::common::{TestApp, post, spawn_app_with};
use crate::feed_check::parse_feed;

#[derive(Clone, Copy)]
enum HubBehaviour {
    Accept,
    Refuse,
    Stall,
}

/// Each ping a hub was sent: when, and its form fields.
type Pings = Arc<Mutex<Vec<(Instant, Vec<(String, String)>)>>>;

/// A WebSub hub on loopback: records each publish ping (when, and its form) it is sent.
#[derive(Clone)]
struct Hub {
    url: String,
    pings: Pings,
}

impl Hub {
    async fn start(behaviour: HubBehaviour) -> Hub {
        let pings: Pings = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hub", listener.local_addr().unwrap());
        let router = axum::Router::new()
            .route(
                "/hub",
                axum::routing::post(
                    move |State(pings): State<Pings>, axum::Form(form): axum::Form<Vec<(String, String)>>| async move {
                        pings.lock().unwrap().push((Instant::now(), form));
                        match behaviour {
                            HubBehaviour::Accept => StatusCode::NO_CONTENT,
                            HubBehaviour::Refuse => StatusCode::INTERNAL_SERVER_ERROR,
                            HubBehaviour::Stall => {
                                tokio::time::sleep(Duration::from_secs(600)).await;
                                StatusCode::NO_CONTENT
                            }
                        }
                    },
                ),
            )
            .with_state(pings.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Hub { url, pings }
    }

    /// The feed URLs pinged so far, with when, in order.
    fn pinged(&self) -> Vec<(Instant, String)> {
        self.pings
            .lock()
            .unwrap()
            .iter()
            .map(|(at, form)| {
                let mode = form.iter().find(|(k, _)| k == "hub.mode").map(|(_, v)| v.as_str());
                assert_eq!(mode, Some("publish"), "{form:?}");
                let url = form.iter().find(|(k, _)| k == "hub.url").unwrap();
                (*at, url.1.clone())
            })
            .collect()
    }

    fn clear(&self) {
        self.pings.lock().unwrap().clear();
    }

    /// Waits until every one of `feeds` has been pinged at least once.
    async fn wait_for(&self, feeds: &[String], timeout: Duration) -> Vec<(Instant, String)> {
        let end = Instant::now() + timeout;
        loop {
            let pinged = self.pinged();
            if feeds.iter().all(|f| pinged.iter().any(|(_, u)| u == f)) || Instant::now() > end {
                return pinged;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn hubs_config(hubs: &[&Hub]) -> String {
    let list: Vec<String> = hubs.iter().map(|h| format!("\"{}\"", h.url)).collect();
    format!("[feeds]\nwebsub_hubs = [{}]\n", list.join(", "))
}

/// The site's feeds and those of `tags`, as Herald names them.
fn feeds_of(app: &TestApp, tags: &[&str]) -> Vec<String> {
    let mut feeds = Vec::new();
    for prefix in std::iter::once(String::new()).chain(tags.iter().map(|t| format!("tags/{t}/"))) {
        for file in ["feed.rss", "feed.atom", "feed.json"] {
            feeds.push(app.url(&format!("/{prefix}{file}")));
        }
    }
    feeds
}

#[tokio::test]
async fn hubs_hear_of_a_new_post_within_a_second_of_the_sync_whatever_other_hubs_do() {
    let (stalling, refusing, good) = (
        Hub::start(HubBehaviour::Stall).await,
        Hub::start(HubBehaviour::Refuse).await,
        Hub::start(HubBehaviour::Accept).await,
    );
    let app = spawn_app_with(&hubs_config(&[&stalling, &refusing, &good])).await;
    app.write_post("archive.md", &post("Archive", "2026-01-01", &["news"], "Old."));
    app.sync().await;
    // The first sync's feeds are new too: wait for that round, then listen afresh.
    good.wait_for(&feeds_of(&app, &["news"]), Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for hub in [&stalling, &refusing, &good] {
        hub.clear();
    }

    app.write_post(
        "otters.md",
        &post(
            "Otters return",
            "2026-09-14",
            &["Wildlife", "Water quality"],
            "Spotted.",
        ),
    );
    let started = Instant::now();
    let report = app.sync().await;
    let synced = started.elapsed();
    assert_eq!(report.added, 1);
    assert!(
        synced < Duration::from_secs(2),
        "the sync does not wait for the hubs: {synced:?}"
    );

    let expected = feeds_of(&app, &["wildlife", "water-quality"]);
    let pinged = good.wait_for(&expected, Duration::from_secs(5)).await;
    let urls: Vec<&String> = pinged.iter().map(|(_, u)| u).collect();
    assert_eq!(
        {
            let mut u = urls.clone();
            u.sort();
            u
        },
        {
            let mut e: Vec<&String> = expected.iter().collect();
            e.sort();
            e
        },
        "the site's feeds and each tag's, once each; nothing for a tag the post does not have"
    );
    let last = pinged.iter().map(|(at, _)| *at).max().unwrap();
    assert!(
        last.duration_since(started) < Duration::from_secs(1),
        "every ping within a second of the sync: {:?}",
        last.duration_since(started)
    );

    // The refusing and the stalling hub got the pings meant for them too (a topic's feed is
    // this post's alone), and the refused one is tried again a second later.
    let topic_feed = app.url("/tags/water-quality/feed.rss");
    let of_topic = |hub: &Hub| hub.pinged().into_iter().filter(|(_, u)| *u == topic_feed).count();
    assert_eq!(of_topic(&stalling), 1, "the stalling hub holds the ping");
    assert_eq!(of_topic(&refusing), 1, "the refusing hub was pinged");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(of_topic(&refusing), 2, "a refused ping is tried again");

    // Nothing new: no ping at the next sync.
    good.clear();
    app.sync().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(good.pinged().is_empty(), "{:?}", good.pinged());
}

#[tokio::test]
async fn a_scheduled_post_is_announced_when_its_time_comes() {
    let good = Hub::start(HubBehaviour::Accept).await;
    let app = spawn_app_with(&hubs_config(&[&good])).await;
    app.write_post("archive.md", &post("Archive", "2026-01-01", &["news"], "Old."));
    app.sync().await;
    good.wait_for(&feeds_of(&app, &["news"]), Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    good.clear();

    // Due in a few seconds: the sync that reads it publishes nothing yet.
    let due = chrono::Utc::now() + chrono::Duration::seconds(2);
    let date = due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    app.write_post("soon.md", &post("Soon", &date, &["events"], "At last."));
    app.sync().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(good.pinged().is_empty(), "not public yet: {:?}", good.pinged());
    // No sync from here on: the announcer's own look (every five seconds) finds it.
    let expected = feeds_of(&app, &["events"]);
    let pinged = good.wait_for(&expected, Duration::from_secs(12)).await;
    assert_eq!(pinged.len(), expected.len(), "{pinged:?}");
}

#[tokio::test]
async fn instances_sharing_a_database_announce_each_post_once() {
    // No hub here, so the app's own announcer stays out of the race.
    let app = spawn_app_with("").await;
    for i in 0..20 {
        app.write_post(
            &format!("p{i}.md"),
            &post(&format!("Post {i}"), "2026-09-14", &["news"], "Body."),
        );
    }
    app.sync().await;
    let now = chrono::Utc::now();
    let db = &app.app.db;
    let (a, b, c) = tokio::join!(
        herald::store::posts::claim_unannounced(db, now),
        herald::store::posts::claim_unannounced(db, now),
        herald::store::posts::claim_unannounced(db, now),
    );
    let mut all: Vec<i64> = [a, b, c].into_iter().flat_map(Result::unwrap).collect();
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!((before, all.len()), (20, 20), "each post claimed by one instance");
    assert!(
        herald::store::posts::claim_unannounced(db, now)
            .await
            .unwrap()
            .is_empty(),
        "and never again"
    );
}

#[tokio::test]
async fn every_feed_names_the_hubs_beside_its_own_url() {
    let app =
        spawn_app_with("[feeds]\nwebsub_hubs = [\"https://hub.example/\", \"https://pubsubhubbub.example/publish\"]\n")
            .await;
    app.write_post(
        "otters.md",
        &post("Otters return", "2026-09-14", &["wildlife"], "Spotted."),
    );
    app.sync().await;
    for path in [
        "/feed.rss",
        "/feed.atom",
        "/feed.json",
        "/tags/wildlife/feed.rss",
        "/tags/wildlife/feed.atom",
        "/tags/wildlife/feed.json",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200);
        let own = app.url(path);
        assert_eq!(
            response.headers()["link"],
            format!("<https://hub.example/>; rel=\"hub\", <https://pubsubhubbub.example/publish>; rel=\"hub\", <{own}>; rel=\"self\"").as_str(),
            "{path}"
        );
        let body = response.bytes().await.unwrap();
        let feed = parse_feed(path, &body);
        if path.ends_with(".json") {
            let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(doc["feed_url"], own.as_str());
            assert_eq!(
                doc["hubs"],
                serde_json::json!([
                    {"type": "WebSub", "url": "https://hub.example/"},
                    {"type": "WebSub", "url": "https://pubsubhubbub.example/publish"}
                ]),
                "{path}"
            );
        } else {
            let links: Vec<(Option<&str>, &str)> =
                feed.links.iter().map(|l| (l.rel.as_deref(), l.href.as_str())).collect();
            for wanted in [
                (Some("self"), own.as_str()),
                (Some("hub"), "https://hub.example/"),
                (Some("hub"), "https://pubsubhubbub.example/publish"),
            ] {
                assert!(links.contains(&wanted), "{path}: {wanted:?} not in {links:?}");
            }
        }
    }
    // A site without hubs names none.
    let plain = spawn_app_with("").await;
    plain.sync().await;
    let response = plain.get("/feed.atom").await;
    assert!(response.headers().get("link").is_none());
    assert!(!response.text().await.unwrap().contains("rel=\"hub\""));
}
