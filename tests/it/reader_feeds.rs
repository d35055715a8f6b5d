//! A reader's private feed (`/feeds/{token}.atom`): made on the preferences page, valid Atom
//! with only the reader's topics, private and not indexed, renewable and revocable, and gone
//! when the reader leaves.

use herald::domain::{Frequency, Subscriber, SubscriberStatus};

use crate::common::{TestApp, add_subscriber, post, spawn_app};

async fn app_with_posts() -> TestApp {
    let app = spawn_app().await;
    app.write_post(
        "otters.md",
        &post("Otters return", "2026-09-14", &["wildlife"], "Otters."),
    );
    app.write_post(
        "herons.md",
        &post("Herons nest", "2026-09-16", &["wildlife", "birds"], "Herons."),
    );
    app.write_post(
        "scarves.md",
        &post("Scarf patterns", "2026-09-15", &["knitting"], "Wool."),
    );
    app.write_post(
        "water.md",
        &post("Water results", "2026-09-17", &["water-quality"], "Clear."),
    );
    app.sync().await;
    app
}

/// Posts the preferences page's feed form, as the page's own browser would.
async fn feed_action(app: &TestApp, s: &Subscriber, action: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/preferences/{}/feed", s.manage_token)))
        .header("origin", &app.address)
        .form(&[("action", action)])
        .send()
        .await
        .unwrap()
}

/// Makes (or renews) the reader's feed and returns its address, read off the page.
async fn make_feed(app: &TestApp, s: &Subscriber) -> String {
    let response = feed_action(app, s, "new").await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    let start = page
        .find(&app.url("/feeds/"))
        .unwrap_or_else(|| panic!("no feed address in {page}"));
    let url: String = page[start..].chars().take_while(|c| *c != '"').collect();
    assert!(url.ends_with(".atom"), "{url}");
    url
}

fn path_of(app: &TestApp, url: &str) -> String {
    url.strip_prefix(&app.address).unwrap().to_owned()
}

fn titles(feed: &feed_rs::model::Feed) -> Vec<String> {
    feed.entries
        .iter()
        .map(|e| e.title.as_ref().unwrap().content.clone())
        .collect()
}

#[tokio::test]
async fn a_readers_feed_has_only_their_topics_and_is_private() {
    let app = app_with_posts().await;
    let reader = add_subscriber(
        &app,
        "ana@example.org",
        SubscriberStatus::Confirmed,
        Frequency::Weekly,
        &["wildlife", "water-quality"],
    )
    .await;
    let page = app.get_text(&format!("/preferences/{}", reader.manage_token)).await;
    assert!(page.contains("Make my private feed"), "{page}");

    let url = make_feed(&app, &reader).await;
    let path = path_of(&app, &url);
    let token = path.trim_start_matches("/feeds/").trim_end_matches(".atom");
    assert!(
        token.len() >= 40 && !token.contains(&reader.manage_token),
        "its own token"
    );
    let response = app.get(&path).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["x-robots-tag"].to_str().unwrap().contains("noindex"),
        "not indexed"
    );
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("private"),
        "no shared cache"
    );
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/atom+xml")
    );
    let feed = app.get_feed(&path).await;
    assert_eq!(
        titles(&feed),
        ["Water results", "Herons nest", "Otters return"],
        "newest first, once each"
    );
    let body = app.get_feed_text(&path).await;
    assert!(
        body.contains(&format!("rel=\"self\" href=\"{url}\""))
            || body.contains(&format!("href=\"{url}\" rel=\"self\"")),
        "{body}"
    );
    assert!(body.contains("Test &amp; Trust: "), "titled with the topics: {body}");
    // The page now says there is one, without showing its address again.
    let page = app.get_text(&format!("/preferences/{}", reader.manage_token)).await;
    assert!(page.contains("You made a private feed on") && !page.contains(&url));

    // Everything, for a reader who chose no topics.
    let everyone = add_subscriber(
        &app,
        "ben@example.org",
        SubscriberStatus::Confirmed,
        Frequency::Daily,
        &[],
    )
    .await;
    let all = make_feed(&app, &everyone).await;
    let feed = app.get_feed(&path_of(&app, &all)).await;
    assert_eq!(
        titles(&feed),
        ["Water results", "Herons nest", "Scarf patterns", "Otters return"]
    );
}

#[tokio::test]
async fn a_renewed_or_revoked_feed_stops_at_its_old_address() {
    let app = app_with_posts().await;
    let reader = add_subscriber(
        &app,
        "ana@example.org",
        SubscriberStatus::Confirmed,
        Frequency::Weekly,
        &["knitting"],
    )
    .await;
    let first = path_of(&app, &make_feed(&app, &reader).await);
    assert_eq!(titles(&app.get_feed(&first).await), ["Scarf patterns"]);

    let second = path_of(&app, &make_feed(&app, &reader).await);
    assert_ne!(first, second);
    assert_eq!(app.get(&first).await.status(), 404, "the old address is gone");
    assert_eq!(app.get(&second).await.status(), 200);

    let revoked = feed_action(&app, &reader, "revoke").await;
    assert_eq!(revoked.status(), 200);
    assert!(revoked.text().await.unwrap().contains("Your private feed is revoked"));
    assert_eq!(app.get(&second).await.status(), 404);
    assert_eq!(app.get("/feeds/not-a-token.atom").await.status(), 404);
    assert_eq!(app.get("/feeds/feed.rss").await.status(), 404);

    // From another site, the form is refused and nothing is made.
    let cross = app
        .client
        .post(app.url(&format!("/preferences/{}/feed", reader.manage_token)))
        .header("origin", "https://evil.example")
        .form(&[("action", "new")])
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    assert!(
        herald::store::reader_feeds::made_at(&app.app.db, reader.id)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_feed_stops_when_its_reader_leaves_or_is_erased_and_is_for_confirmed_readers_only() {
    let app = app_with_posts().await;
    let reader = add_subscriber(
        &app,
        "ana@example.org",
        SubscriberStatus::Confirmed,
        Frequency::Weekly,
        &[],
    )
    .await;
    let path = path_of(&app, &make_feed(&app, &reader).await);
    assert_eq!(app.get(&path).await.status(), 200);
    let left = app
        .client
        .post(app.url(&format!("/unsubscribe/{}", reader.manage_token)))
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(left.status(), 200);
    assert_eq!(app.get(&path).await.status(), 410, "unsubscribed: gone");

    let other = add_subscriber(
        &app,
        "ben@example.org",
        SubscriberStatus::Confirmed,
        Frequency::Weekly,
        &[],
    )
    .await;
    let path = path_of(&app, &make_feed(&app, &other).await);
    assert!(
        app.app
            .subscriptions
            .erase(other.id, &herald::domain::Actor::cli())
            .await
            .unwrap()
    );
    assert_eq!(app.get(&path).await.status(), 404, "erased: nothing left");

    let pending = add_subscriber(
        &app,
        "cat@example.org",
        SubscriberStatus::Pending,
        Frequency::Weekly,
        &[],
    )
    .await;
    let page = app.get_text(&format!("/preferences/{}", pending.manage_token)).await;
    assert!(!page.contains("Make my private feed"));
    let refused = feed_action(&app, &pending, "new").await;
    assert_eq!(refused.status(), 422);
    assert!(
        herald::store::reader_feeds::made_at(&app.app.db, pending.id)
            .await
            .unwrap()
            .is_none()
    );
}
