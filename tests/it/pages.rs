use reqwest::header;

use crate::common::{post, spawn_app};

#[tokio::test]
async fn home_lists_posts_and_advertises_the_feeds() {
    let app = spawn_app().await;
    app.write_post(
        "otters.md",
        &post("Otters return", "2026-09-14", &["wildlife"], "Otters are *back*."),
    );
    app.sync().await;
    let home = app.get_text("/").await;
    assert!(home.contains("Otters return"));
    assert!(home.contains(&format!("href=\"{}/posts/otters/\"", app.address)));
    for (kind, path) in [
        ("application/rss+xml", "feed.rss"),
        ("application/atom+xml", "feed.atom"),
        ("application/feed+json", "feed.json"),
    ] {
        assert!(
            home.contains(&format!(
                r#"<link rel="alternate" type="{kind}" title="Test &amp; Trust ({}" href="{}/{path}">"#,
                match path {
                    "feed.rss" => "RSS)",
                    "feed.atom" => "Atom)",
                    _ => "JSON Feed)",
                },
                app.address
            )),
            "autodiscovery for {path}: {home}"
        );
    }
    let page = app.get_text("/posts/otters/").await;
    assert!(page.contains("<em>back</em>"));
    assert!(page.contains("name=\"viewport\""), "readable on a phone");
    let tag = app.get_text("/tags/wildlife/").await;
    assert!(tag.contains("Otters return"));
    assert!(
        tag.contains(&format!("href=\"{}/tags/wildlife/feed.atom\"", app.address)),
        "the tag's own feed is advertised"
    );
}

#[tokio::test]
async fn unknown_addresses_get_a_real_not_found_page() {
    let app = spawn_app().await;
    app.write_post(
        "otters.md",
        &post("Otters return", "2026-09-14", &["wildlife"], "Body."),
    );
    app.sync().await;
    for path in [
        "/posts/nope/",
        "/posts/Otters/",
        "/tags/nope/",
        "/page/2/",
        "/page/0/",
        "/page/x/",
        "/no/such/thing",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        let body = response.text().await.unwrap();
        assert!(
            body.contains("Page not found") && body.contains("<html"),
            "{path}: {body}"
        );
    }
}

#[tokio::test]
async fn listings_are_paginated() {
    let app = spawn_app().await;
    for i in 0..12 {
        app.write_post(
            &format!("p{i:02}.md"),
            &post(
                &format!("Post number {i:02}"),
                &format!("2026-09-{:02}", i + 1),
                &["news"],
                "Body.",
            ),
        );
    }
    app.sync().await;
    let first = app.get_text("/").await;
    assert!(first.contains("Post number 11") && !first.contains("Post number 01"));
    assert!(
        first.contains(&format!("href=\"{}/page/2/\"", app.address)),
        "link to older posts"
    );
    let second = app.get_text("/page/2/").await;
    assert!(
        second.contains("Post number 01") && second.contains("Post number 00") && !second.contains("Post number 11")
    );
    assert!(app.get_text("/tags/news/page/2/").await.contains("Post number 00"));
    assert_eq!(app.get("/page/3/").await.status(), 404);
}

#[tokio::test]
async fn unchanged_documents_answer_304_and_edits_change_the_etag() {
    let app = spawn_app().await;
    app.write_post(
        "otters.md",
        &post("Otters return", "2026-09-14", &["wildlife"], "Body."),
    );
    app.sync().await;
    for path in [
        "/feed.atom",
        "/feed.rss",
        "/feed.json",
        "/",
        "/posts/otters/",
        "/tags/wildlife/feed.json",
    ] {
        let first = app.get(path).await;
        assert_eq!(first.status(), 200);
        let etag = first.headers()[header::ETAG].to_str().unwrap().to_owned();
        assert!(
            etag.starts_with('"') && !etag.starts_with("W/"),
            "strong ETag on {path}: {etag}"
        );
        let modified = first.headers()[header::LAST_MODIFIED].to_str().unwrap().to_owned();
        assert_eq!(modified, "Mon, 14 Sep 2026 00:00:00 GMT", "{path}");
        if path.contains("feed.") {
            crate::feed_check::parse_feed(path, &first.bytes().await.unwrap());
        }

        let again = app
            .client
            .get(app.url(path))
            .header(header::IF_NONE_MATCH, &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert_eq!(again.headers()[header::ETAG], etag.as_str());
        assert!(again.bytes().await.unwrap().is_empty(), "304 has no body");

        let since = app
            .client
            .get(app.url(path))
            .header(header::IF_MODIFIED_SINCE, &modified)
            .send()
            .await
            .unwrap();
        assert_eq!(since.status(), 304, "{path} If-Modified-Since");
        let stale = app
            .client
            .get(app.url(path))
            .header(header::IF_NONE_MATCH, "\"something-else\"")
            .header(header::IF_MODIFIED_SINCE, &modified)
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status(), 200, "{path}: If-None-Match wins over If-Modified-Since");
    }
    let etag = app.get("/feed.atom").await.headers()[header::ETAG]
        .to_str()
        .unwrap()
        .to_owned();
    app.write_post(
        "otters.md",
        &post("Otters return again", "2026-09-14", &["wildlife"], "Edited."),
    );
    app.sync().await;
    let after = app
        .client
        .get(app.url("/feed.atom"))
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 200, "an edit invalidates the ETag");
    assert_ne!(after.headers()[header::ETAG].to_str().unwrap(), etag);
    let body = after.bytes().await.unwrap();
    crate::feed_check::parse_feed("/feed.atom", &body);
    assert!(String::from_utf8_lossy(&body).contains("Otters return again"));
}

#[tokio::test]
async fn responses_are_compressed_when_the_client_accepts_it() {
    let app = spawn_app().await;
    app.write_post(
        "otters.md",
        &post("Otters return", "2026-09-14", &["wildlife"], &"Long body. ".repeat(200)),
    );
    app.sync().await;
    // A client that leaves decoding to us, so the encoding header stays visible.
    let raw = reqwest::Client::builder().no_gzip().build().unwrap();
    for path in ["/feed.atom", "/posts/otters/"] {
        let response = raw
            .get(app.url(path))
            .header(header::ACCEPT_ENCODING, "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip", "{path}");
        let plain = raw.get(app.url(path)).send().await.unwrap();
        assert!(
            !plain.headers().contains_key(header::CONTENT_ENCODING),
            "{path}: identity when not asked"
        );
    }
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    assert_eq!(app.get_text("/healthz").await, "ok");
    assert_eq!(app.get_text("/readyz").await, "ready");
}

#[tokio::test]
async fn search_engines_get_a_sitemap_of_every_public_address_and_a_robots_file_naming_it() {
    let app = spawn_app().await;
    app.write_post(
        "otters.md",
        &post("Otters return", "2026-09-14", &["wildlife"], "Back."),
    );
    app.write_post(
        "water.md",
        &post("Water & <tests>", "2026-10-01", &["water"], "Results."),
    );
    app.write_post(
        "later.md",
        &post("Not yet", "2099-01-01", &["future"], "Scheduled, not public."),
    );
    app.sync().await;

    let response = app.get("/sitemap.xml").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/xml")
    );
    assert!(
        response.headers().contains_key(header::ETAG),
        "served from the document cache"
    );
    let xml = response.text().await.unwrap();
    // A strict parser, not the code that wrote it.
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}:\n{xml}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "urlset");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.sitemaps.org/schemas/sitemap/0.9")
    );
    let locs: Vec<&str> = root
        .descendants()
        .filter(|n| n.has_tag_name("loc"))
        .filter_map(|n| n.text())
        .collect();
    for url in [
        "/",
        "/posts/otters/",
        "/posts/water/",
        "/tags/wildlife/",
        "/tags/water/",
    ] {
        assert!(locs.contains(&app.url(url).as_str()), "{url} in {locs:?}");
    }
    assert!(
        !xml.contains("not-yet") && !xml.contains("/tags/future/"),
        "only what is public: {xml}"
    );
    for lastmod in root
        .descendants()
        .filter(|n| n.has_tag_name("lastmod"))
        .filter_map(|n| n.text())
    {
        chrono::DateTime::parse_from_rfc3339(lastmod).unwrap_or_else(|e| panic!("{lastmod}: {e}"));
    }

    let robots = app.get("/robots.txt").await;
    assert_eq!(robots.status(), 200);
    let robots = robots.text().await.unwrap();
    assert!(robots.contains("Disallow: /admin/"), "{robots}");
    assert!(
        robots.contains(&format!("Sitemap: {}", app.url("/sitemap.xml"))),
        "{robots}"
    );

    let out = app.dir.path().join("site");
    herald::site::build::build(&app.app.db, &app.app.site, &out)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("sitemap.xml")).unwrap(),
        xml,
        "the build writes the same sitemap"
    );
    assert_eq!(std::fs::read_to_string(out.join("robots.txt")).unwrap(), robots);
}

#[tokio::test]
async fn the_topics_page_lists_every_public_topic_with_its_page_and_feed() {
    let app = spawn_app().await;
    app.write_post(
        "otters.md",
        &post("Otters", "2026-09-14", &["Wildlife", "Rivers"], "Back."),
    );
    app.write_post("fish.md", &post("Fish", "2026-09-15", &["Wildlife"], "Many."));
    app.write_post("later.md", &post("Later", "2099-01-01", &["Future"], "Not yet."));
    app.sync().await;
    for path in ["/tags/", "/tags"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let html = response.text().await.unwrap();
        assert!(
            html.contains(&format!("href=\"{}\"", app.url("/tags/wildlife/"))),
            "{html}"
        );
        assert!(html.contains("2 posts") && html.contains("1 post"), "{html}");
        assert!(html.contains(&app.url("/tags/rivers/feed.atom")), "{html}");
        assert!(!html.contains("Future"), "only public topics: {html}");
    }
    let out = app.dir.path().join("site");
    herald::site::build::build(&app.app.db, &app.app.site, &out)
        .await
        .unwrap();
    assert!(
        std::fs::read_to_string(out.join("tags/index.html"))
            .unwrap()
            .contains("Wildlife")
    );
}

#[tokio::test]
async fn a_shared_post_link_previews_with_its_own_title_description_and_image() {
    let app = spawn_app().await;
    app.write_post(
        "otters.md",
        "---\ntitle: \"Otters & \\\"friends\\\" return\"\ndate: 2026-09-14\ntags: [Wildlife]\n\
         summary: \"Seen at <dawn> on the river.\"\nimage: /images/otter.jpg\nimage_alt: \"An otter\"\n---\nBody.\n",
    );
    app.write_post("plain.md", &post("Plain", "2026-09-15", &[], "No picture here."));
    app.sync().await;

    let page = app.get_text("/posts/otters/").await;
    for tag in [
        "<meta property=\"og:type\" content=\"article\">".to_owned(),
        "<meta property=\"og:title\" content=\"Otters &amp; &quot;friends&quot; return\">".to_owned(),
        "<meta name=\"description\" content=\"Seen at &lt;dawn&gt; on the river.\">".to_owned(),
        "<meta property=\"og:description\" content=\"Seen at &lt;dawn&gt; on the river.\">".to_owned(),
        format!("<meta property=\"og:url\" content=\"{}\">", app.url("/posts/otters/")),
        format!(
            "<meta property=\"og:image\" content=\"{}\">",
            app.url("/images/otter.jpg")
        ),
        "<meta property=\"og:image:alt\" content=\"An otter\">".to_owned(),
        "<meta name=\"twitter:card\" content=\"summary_large_image\">".to_owned(),
        "<meta property=\"article:tag\" content=\"Wildlife\">".to_owned(),
    ] {
        assert!(page.contains(&tag), "{tag} in:\n{page}");
    }
    assert_eq!(
        page.matches("name=\"description\"").count(),
        1,
        "one description, the post's"
    );

    let plain = app.get_text("/posts/plain/").await;
    assert!(
        plain.contains("<meta name=\"twitter:card\" content=\"summary\">"),
        "{plain}"
    );
    assert!(!plain.contains("og:image"), "{plain}");
    let home = app.get_text("/").await;
    assert!(
        home.contains("<meta property=\"og:type\" content=\"website\">"),
        "{home}"
    );
}

/// The `href` of the first `<a>` with `class` in `page`, and its text.
fn link_with_class(page: &str, class: &str) -> Option<(String, String)> {
    let document = scraper::Html::parse_document(page);
    let selector = scraper::Selector::parse(&format!("a.{class}")).unwrap();
    document.select(&selector).next().map(|a| {
        (
            a.value().attr("href").unwrap_or_default().to_owned(),
            a.text()
                .collect::<String>()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        )
    })
}

#[tokio::test]
async fn a_post_links_to_the_posts_beside_it_and_offers_a_subscribe_box() {
    let app = spawn_app().await;
    app.write_post("first.md", &post("First & oldest", "2026-09-01", &[], "One."));
    app.write_post("second.md", &post("Second", "2026-09-02", &[], "Two."));
    app.write_post("third.md", &post("Third", "2026-09-03", &[], "Three."));
    app.write_post("later.md", &post("Not yet public", "2099-01-01", &[], "Scheduled."));
    app.sync().await;

    let second = app.get_text("/posts/second/").await;
    assert_eq!(
        link_with_class(&second, "older"),
        Some((app.url("/posts/first/"), "Older First & oldest".into()))
    );
    assert_eq!(
        link_with_class(&second, "newer"),
        Some((app.url("/posts/third/"), "Newer Third".into()))
    );
    let third = app.get_text("/posts/third/").await;
    assert_eq!(link_with_class(&third, "newer"), None, "a scheduled post is not linked");
    assert!(link_with_class(&third, "older").is_some());
    let first = app.get_text("/posts/first/").await;
    assert_eq!(link_with_class(&first, "older"), None);

    // A newer post changes the page that was newest: its validators change too.
    let before = app.get("/posts/third/").await;
    let etag = before.headers()[header::ETAG].clone();
    app.write_post("fourth.md", &post("Fourth", "2026-09-04", &[], "Four."));
    app.sync().await;
    let after = app.get("/posts/third/").await;
    assert_ne!(after.headers()[header::ETAG], etag);
    let third = after.text().await.unwrap();
    assert_eq!(
        link_with_class(&third, "newer"),
        Some((app.url("/posts/fourth/"), "Newer Fourth".into()))
    );

    // The box at the end of the post subscribes with the default choices.
    let document = scraper::Html::parse_document(&third);
    let form = document
        .select(&scraper::Selector::parse("form.subscribe-box").unwrap())
        .next()
        .expect("a subscribe box after the post");
    assert_eq!(form.value().attr("action"), Some(app.url("/subscribe").as_str()));
    let response = app
        .client
        .post(app.url("/subscribe"))
        .header(header::ORIGIN, &app.address)
        .form(&[("email", "reader@example.org"), ("website", "")])
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    crate::subscribers::requests_settled(&app).await;
    let subscriber = herald::store::subscribers::find_by_email(&app.app.db, &"reader@example.org".parse().unwrap())
        .await
        .unwrap()
        .expect("a pending subscription");
    assert_eq!(subscriber.status, herald::domain::SubscriberStatus::Pending);
    assert_eq!(subscriber.frequency, herald::domain::Frequency::Weekly, "the default");
}
