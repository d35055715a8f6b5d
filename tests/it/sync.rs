use chrono::{Duration, SecondsFormat, Utc};

use crate::common::{post, spawn_app};

#[tokio::test]
async fn broken_files_are_reported_with_path_and_line_and_the_rest_publish() {
    let app = spawn_app().await;
    app.write_post("good.md", &post("Good post", "2026-09-14", &["news"], "Fine."));
    app.write_post(
        "bad-yaml.md",
        "---\ntitle: Broken\ndate: 2026-09-14\ntags: [unclosed\n---\nBody\n",
    );
    app.write_post("no-title.md", "---\ndate: 2026-09-14\n---\nBody\n");
    app.write_post("bad-date.md", "---\ntitle: Bad date\ndate: the fourteenth\n---\nBody\n");
    app.write_post("latin1.md", "");
    std::fs::write(
        app.posts_dir.join("latin1.md"),
        b"---\ntitle: caf\xe9\ndate: 2026-09-14\n---\n",
    )
    .unwrap();
    let report = app.sync().await;
    assert_eq!(report.added, 1, "{report:?}");
    let mut failures: Vec<String> = report
        .failed
        .iter()
        .map(|f| {
            format!(
                "{}:{}: {}",
                f.path.file_name().unwrap().to_string_lossy(),
                f.line,
                f.message
            )
        })
        .collect();
    failures.sort();
    assert_eq!(failures.len(), 4, "{failures:#?}");
    assert!(
        failures[0].starts_with("bad-date.md:3: date: \"the fourteenth\" is not a date"),
        "{failures:#?}"
    );
    assert!(
        failures[1].starts_with("bad-yaml.md:") && failures[1].contains("invalid YAML"),
        "{failures:#?}"
    );
    assert!(
        failures[2].starts_with("latin1.md:2: the file is not UTF-8 text (column 11)"),
        "{failures:#?}"
    );
    assert!(
        failures[3].starts_with("no-title.md:1: missing `title`"),
        "{failures:#?}"
    );
    let feed = app.get_feed("/feed.atom").await;
    assert_eq!(feed.entries.len(), 1);
    assert_eq!(app.get("/posts/good/").await.status(), 200);
}

#[tokio::test]
async fn a_broken_edit_keeps_the_last_good_version_published() {
    let app = spawn_app().await;
    app.write_post(
        "otters.md",
        &post("Otters return", "2026-09-14", &["wildlife"], "Body."),
    );
    app.sync().await;
    app.write_post("otters.md", "---\ntitle: Otters\ndate: not-a-date\n---\n");
    let report = app.sync().await;
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.unpublished, 0, "a broken file is not a removed file");
    assert!(app.get_text("/posts/otters/").await.contains("Otters return"));
}

#[tokio::test]
async fn drafts_and_future_posts_stay_out_until_due() {
    let app = spawn_app().await;
    let soon = (Utc::now() + Duration::seconds(2)).to_rfc3339_opts(SecondsFormat::Secs, true);
    app.write_post(
        "draft.md",
        "---\ntitle: Draft post\ndate: 2026-01-01\ndraft: true\n---\nSecret.\n",
    );
    app.write_post("later.md", &post("Later post", "2099-01-01", &["news"], "Not yet."));
    app.write_post("soon.md", &post("Soon post", &soon, &["news"], "Any moment."));
    app.write_post("now.md", &post("Current post", "2026-01-01", &["news"], "Here."));
    let report = app.sync().await;
    assert_eq!(report.added, 4);
    for path in ["/feed.atom", "/feed.rss", "/feed.json", "/", "/tags/news/"] {
        let body = if path.contains("feed.") {
            app.get_feed_text(path).await
        } else {
            app.get_text(path).await
        };
        assert!(body.contains("Current post"), "{path}");
        for hidden in ["Draft post", "Later post", "Soon post"] {
            assert!(!body.contains(hidden), "{hidden} leaked into {path}");
        }
    }
    for path in ["/posts/draft/", "/posts/later/", "/posts/soon/"] {
        assert_eq!(app.get(path).await.status(), 404, "{path}");
    }
    // The scheduled post appears when its time comes, with no sync in between.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert!(app.get_feed_text("/feed.atom").await.contains("Soon post"));
    assert_eq!(app.get("/posts/soon/").await.status(), 200);
    assert_eq!(app.get("/posts/later/").await.status(), 404);
}

#[tokio::test]
async fn a_second_sync_finds_everything_unchanged() {
    let app = spawn_app().await;
    for i in 0..5 {
        app.write_post(
            &format!("p{i}.md"),
            &post(&format!("Post {i}"), "2026-09-14", &["news"], "Body."),
        );
    }
    app.write_post("broken.md", "---\ntitle: x\n---\n");
    let first = app.sync().await;
    assert_eq!((first.added, first.failed.len()), (5, 1));
    let second = app.sync().await;
    assert_eq!(
        (second.added, second.updated, second.unchanged, second.unpublished),
        (0, 0, 5, 0),
        "{second:?}"
    );
    assert_eq!(second.failed.len(), 1, "a broken file keeps being reported");
}

#[tokio::test]
async fn a_post_whose_file_disappears_is_unpublished_and_can_come_back() {
    let app = spawn_app().await;
    let text = post("Otters return", "2026-09-14", &["wildlife"], "Body.");
    app.write_post("otters.md", &text);
    app.write_post("water.md", &post("Water", "2026-09-15", &["water"], "Body."));
    app.sync().await;
    let id = app
        .get_feed("/feed.atom")
        .await
        .entries
        .iter()
        .find(|e| e.title.as_ref().unwrap().content == "Otters return")
        .unwrap()
        .id
        .clone();
    app.remove_post("otters.md");
    let report = app.sync().await;
    assert_eq!((report.unpublished, report.unchanged), (1, 1), "{report:?}");
    assert_eq!(app.get("/posts/otters/").await.status(), 404);
    assert_eq!(app.get("/tags/wildlife/").await.status(), 404);
    assert!(!app.get_feed_text("/feed.atom").await.contains("Otters return"));

    app.write_post("otters.md", &text);
    assert_eq!(app.sync().await.updated, 1);
    let back = app.get_feed("/feed.atom").await;
    assert!(
        back.entries.iter().any(|e| e.id == id),
        "it comes back under the same id"
    );
}

#[tokio::test]
async fn renaming_a_slug_unpublishes_the_old_address() {
    let app = spawn_app().await;
    app.write_post("otters.md", &post("Otters", "2026-09-14", &["wildlife"], "Body."));
    app.sync().await;
    app.write_post(
        "otters.md",
        "---\ntitle: Otters\ndate: 2026-09-14\nslug: otters-are-back\n---\nBody.\n",
    );
    let report = app.sync().await;
    assert_eq!((report.added, report.unpublished), (1, 1), "{report:?}");
    assert_eq!(app.get("/posts/otters/").await.status(), 404);
    assert_eq!(app.get("/posts/otters-are-back/").await.status(), 200);
}

#[tokio::test]
async fn two_files_claiming_one_slug_are_reported() {
    let app = spawn_app().await;
    app.write_post("a.md", "---\ntitle: First\ndate: 2026-09-14\nslug: same\n---\n");
    app.write_post("b.md", "---\ntitle: Second\ndate: 2026-09-14\nslug: same\n---\n");
    let report = app.sync().await;
    assert_eq!(report.added, 1);
    assert_eq!(report.failed.len(), 1);
    assert!(
        report.failed[0].message.contains("already used by"),
        "{:?}",
        report.failed
    );
    assert!(report.failed[0].path.ends_with("b.md"));
}

#[tokio::test]
async fn toml_front_matter_posts_publish_too() {
    let app = spawn_app().await;
    app.write_post(
        "policy.md",
        "+++\ntitle = \"Policy\"\ndate = 2026-08-19\nauthors = [\"A\", \"B\"]\ntags = [\"policy\"]\n+++\nText.\n",
    );
    assert_eq!(app.sync().await.added, 1);
    let feed = app.get_feed("/tags/policy/feed.json").await;
    assert_eq!(feed.entries[0].authors.len(), 2);
}

#[tokio::test]
async fn a_new_file_reusing_a_published_slug_fails_and_the_post_stays_untouched() {
    let app = spawn_app().await;
    app.write_post(
        "otters.md",
        &post("Otters return", "2026-09-14", &["wildlife"], "The real story."),
    );
    app.sync().await;
    let before = app.get_feed("/feed.atom").await;
    let page_before = app.get_text("/posts/otters/").await;

    // One newcomer sorts before the owner's file, one after: neither order takes it over.
    for newcomer in ["aardvark.md", "zebra.md"] {
        app.write_post(
            newcomer,
            "---\ntitle: Impostor\ndate: 2026-10-01\nslug: otters\n---\nSomething else.\n",
        );
        let report = app.sync().await;
        assert_eq!(
            (report.added, report.updated, report.unchanged, report.unpublished),
            (0, 0, 1, 0),
            "{report:?}"
        );
        assert_eq!(report.failed.len(), 1, "{report:?}");
        let failure = &report.failed[0];
        assert!(failure.path.ends_with(newcomer), "{failure}");
        assert!(
            failure.message.contains("\"otters\"") && failure.message.contains("otters.md"),
            "names the slug and the file that owns it: {failure}"
        );
        app.remove_post(newcomer);
    }
    let after = app.get_feed("/feed.atom").await;
    assert_eq!(after.entries.len(), 1);
    assert_eq!(after.entries[0].id, before.entries[0].id, "the feed id stays");
    assert_eq!(after.entries[0].title.as_ref().unwrap().content, "Otters return");
    assert_eq!(app.get_text("/posts/otters/").await, page_before);
}

#[tokio::test]
async fn a_file_renamed_with_its_slug_stays_the_same_post() {
    let app = spawn_app().await;
    app.write_post(
        "otters.md",
        &post("Otters return", "2026-09-14", &["wildlife"], "Body."),
    );
    app.sync().await;
    let id = app.get_feed("/feed.atom").await.entries[0].id.clone();
    app.remove_post("otters.md");
    app.write_post(
        "2026-09-otters.md",
        "---\ntitle: Otters return\ndate: 2026-09-14\nslug: otters\n---\nBody.\n",
    );
    let report = app.sync().await;
    assert_eq!(
        (report.added, report.updated, report.unpublished, report.failed.len()),
        (0, 1, 0, 0),
        "{report:?}"
    );
    let feed = app.get_feed("/feed.atom").await;
    assert_eq!(feed.entries.len(), 1);
    assert_eq!(feed.entries[0].id, id, "same post, same feed id");
    assert_eq!(app.get("/posts/otters/").await.status(), 200);
    // The next sync sees the file in its new place as the post's own.
    let again = app.sync().await;
    assert_eq!((again.unchanged, again.failed.len()), (1, 0), "{again:?}");
}
