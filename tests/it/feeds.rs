use feed_rs::model::FeedType;

use crate::common::{TestApp, post, spawn_app, spawn_app_with};

async fn app_with_three_posts() -> TestApp {
    let app = spawn_app().await;
    app.write_post(
        "otters.md",
        &post(
            "Otters & <friends>",
            "2026-09-14T09:30:00Z",
            &["Wildlife", "volunteering"],
            "Otters are *back*. See [the map](/map).",
        ),
    );
    app.write_post(
        "water.md",
        &post("Water results", "2026-10-21", &["water-quality"], "Readings are in."),
    );
    app.write_post(
        "appeal.md",
        &post(
            "Winter appeal",
            "2026-08-19",
            &["fundraising", "wildlife"],
            "Please give.",
        ),
    );
    let report = app.sync().await;
    assert_eq!(report.added, 3, "{report:?}");
    app
}

#[tokio::test]
async fn site_feeds_are_valid_in_every_format() {
    let app = app_with_three_posts().await;
    let base = format!("{}/", app.address);
    for (path, kind, content_type) in [
        ("/feed.rss", FeedType::RSS2, "application/rss+xml"),
        ("/feed.atom", FeedType::Atom, "application/atom+xml"),
        ("/feed.json", FeedType::JSON, "application/feed+json"),
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200);
        let ct = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with(content_type), "{path}: {ct}");
        let feed = app.get_feed(path).await;
        assert_eq!(feed.feed_type, kind, "{path}");
        assert_eq!(feed.title.as_ref().unwrap().content, "Test & Trust", "{path}");
        let titles: Vec<_> = feed
            .entries
            .iter()
            .map(|e| e.title.as_ref().unwrap().content.clone())
            .collect();
        assert_eq!(
            titles,
            ["Water results", "Otters & <friends>", "Winter appeal"],
            "{path}: newest first"
        );
        for entry in &feed.entries {
            assert!(entry.id.starts_with("urn:uuid:"), "{path}: id {}", entry.id);
            let link = &entry.links[0].href;
            assert!(
                link.starts_with(&base) && link.contains("/posts/"),
                "{path}: link {link}"
            );
            assert!(entry.published.is_some(), "{path}: published");
            assert_eq!(entry.authors[0].name.as_deref(), Some("Ana Author"), "{path}");
            assert!(!entry.categories.is_empty(), "{path}: categories");
            let content = entry.content.as_ref().and_then(|c| c.body.clone()).unwrap();
            assert!(content.contains("<p>"), "{path}: full HTML content");
        }
        let otters = &feed.entries[1];
        let content = otters.content.as_ref().and_then(|c| c.body.clone()).unwrap();
        assert!(
            content.contains(&format!("href=\"{base}map\"")),
            "{path}: relative link made absolute: {content}"
        );
        assert!(
            otters
                .categories
                .iter()
                .any(|c| c.term == "wildlife" || c.term == "Wildlife"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn every_feed_served_or_built_is_well_formed_for_strict_parsers_and_feed_readers() {
    // An empty site's feeds first: no items is still a valid document.
    let empty = spawn_app().await;
    for format in ["rss", "atom", "json"] {
        assert!(empty.get_feed(&format!("/feed.{format}")).await.entries.is_empty());
    }

    let app = app_with_three_posts().await;
    let tags = herald::store::posts::public_tags(&app.app.db, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(tags.len(), 4, "{tags:?}");
    let mut served = Vec::new();
    for prefix in std::iter::once(String::new()).chain(tags.iter().map(|(t, _)| format!("tags/{}/", t.slug()))) {
        for format in ["rss", "atom", "json"] {
            let path = format!("{prefix}feed.{format}");
            assert!(!app.get_feed(&format!("/{path}")).await.entries.is_empty(), "{path}");
            served.push(path);
        }
    }
    served.sort();

    let out = app.dir.path().join("site");
    herald::site::build::build(&app.app.db, &app.app.site, &out)
        .await
        .unwrap();
    assert_eq!(
        crate::feed_check::check_every_feed_in(&out),
        served,
        "the build writes the feeds the server serves"
    );
}

#[tokio::test]
async fn feeds_point_at_themselves_and_carry_the_newest_update() {
    let app = app_with_three_posts().await;
    let rss = app.get_feed_text("/feed.rss").await;
    assert!(
        rss.contains(&format!(r#"href="{}/feed.rss" rel="self""#, app.address)),
        "RSS atom:link rel=self: {rss}"
    );
    assert!(
        rss.contains("<pubDate>Wed, 21 Oct 2026 00:00:00 +0000</pubDate>"),
        "RFC 822 dates: {rss}"
    );
    let atom = app.get_feed("/feed.atom").await;
    assert!(
        atom.links
            .iter()
            .any(|l| l.rel.as_deref() == Some("self") && l.href == app.url("/feed.atom"))
    );
    assert_eq!(atom.updated.unwrap().to_rfc3339(), "2026-10-21T00:00:00+00:00");
    let json: serde_json::Value = serde_json::from_str(&app.get_feed_text("/feed.json").await).unwrap();
    assert_eq!(json["version"], "https://jsonfeed.org/version/1.1");
    assert_eq!(json["feed_url"], app.url("/feed.json"));
    assert_eq!(json["home_page_url"], app.url("/"));
    for item in json["items"].as_array().unwrap() {
        assert!(item["id"].is_string() && item["url"].is_string() && item["content_html"].is_string());
    }
}

#[tokio::test]
async fn tag_feeds_hold_only_their_tag() {
    let app = app_with_three_posts().await;
    for format in ["rss", "atom", "json"] {
        let feed = app.get_feed(&format!("/tags/wildlife/feed.{format}")).await;
        let titles: Vec<_> = feed
            .entries
            .iter()
            .map(|e| e.title.as_ref().unwrap().content.clone())
            .collect();
        assert_eq!(titles, ["Otters & <friends>", "Winter appeal"], "{format}");
    }
    let atom = app.get_feed("/tags/wildlife/feed.atom").await;
    assert!(
        atom.links
            .iter()
            .any(|l| l.rel.as_deref() == Some("self") && l.href == app.url("/tags/wildlife/feed.atom"))
    );
    assert_ne!(
        atom.id,
        app.get_feed("/feed.atom").await.id,
        "a tag feed has its own id"
    );
    assert_eq!(app.get("/tags/knitting/feed.atom").await.status(), 404);
    assert_eq!(app.get("/tags/wildlife/feed.xml").await.status(), 404);
}

#[tokio::test]
async fn feeds_stop_at_the_limit_newest_first_with_a_stable_order() {
    let app = spawn_app_with("[feeds]\nlimit = 5\n").await;
    for i in 0..8 {
        // Two posts share each date, so the tie-break decides their order.
        let date = format!("2026-09-{:02}T08:00:00Z", 10 + i / 2);
        app.write_post(
            &format!("p{i}.md"),
            &post(&format!("Post {i}"), &date, &["news"], "Body."),
        );
    }
    app.sync().await;
    let mut orders = Vec::new();
    for path in ["/feed.rss", "/feed.atom", "/feed.json", "/tags/news/feed.atom"] {
        let feed = app.get_feed(path).await;
        assert_eq!(feed.entries.len(), 5, "{path}");
        let dates: Vec<_> = feed.entries.iter().map(|e| e.published.unwrap()).collect();
        assert!(dates.windows(2).all(|w| w[0] >= w[1]), "{path}: newest first");
        orders.push(feed.entries.iter().map(|e| e.id.clone()).collect::<Vec<_>>());
    }
    assert!(
        orders.windows(2).all(|w| w[0] == w[1]),
        "every format lists the same posts in the same order"
    );
    let again = app.get_feed("/feed.rss").await;
    assert_eq!(
        again.entries.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        orders[0]
    );
}

#[tokio::test]
async fn an_edited_post_keeps_its_id_and_moves_its_updated_date() {
    let app = app_with_three_posts().await;
    let before = app.get_feed("/feed.atom").await;
    let id_before = before
        .entries
        .iter()
        .find(|e| e.title.as_ref().unwrap().content == "Water results")
        .unwrap()
        .id
        .clone();
    app.write_post(
        "water.md",
        "---\ntitle: Water results, revised\ndate: 2026-10-21\nupdated: 2026-11-02T10:00:00Z\ntags: [water-quality]\n---\nNew readings.\n",
    );
    assert_eq!(app.sync().await.updated, 1);
    let after = app.get_feed("/feed.atom").await;
    let entry = after
        .entries
        .iter()
        .find(|e| e.title.as_ref().unwrap().content == "Water results, revised")
        .unwrap();
    assert_eq!(entry.id, id_before, "atom:id never changes on edit");
    assert_eq!(entry.updated.unwrap().to_rfc3339(), "2026-11-02T10:00:00+00:00");
    assert_eq!(after.updated.unwrap().to_rfc3339(), "2026-11-02T10:00:00+00:00");
}
