use crate::common::{post, spawn_app};

const HOSTILE: &str = r#"Hello <script>alert('x')</script> world.

<img src="/images/a.png" onerror="alert(1)" alt="a">

<a href="javascript:alert(1)">click</a> and <a href="jAvAsCrIpT:alert(2)">this</a>

<iframe src="https://evil.example/"></iframe>

<p style="background:url(javascript:alert(3))" onclick="alert(4)">styled</p>

<form action="https://evil.example/"><input name="x"></form>
"#;

// `evil.example` is where the hostile frame and form point (pages have forms of their own).
const FORBIDDEN: [&str; 8] = [
    "<script",
    "onerror",
    "javascript:",
    "jAvAsCrIpT",
    "<iframe",
    "onclick",
    "evil.example",
    "style=",
];

fn assert_clean(what: &str, text: &str) {
    // Feeds escape the HTML of content; look at it unescaped too.
    let unescaped = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    for bad in FORBIDDEN {
        assert!(!unescaped.contains(bad), "{bad} survived in {what}:\n{text}");
    }
}

#[tokio::test]
async fn hostile_html_comes_out_clean_in_feeds_pages_and_the_export() {
    let app = spawn_app().await;
    app.write_post("hostile.md", &post("Hostile", "2026-09-14", &["news"], HOSTILE));
    app.sync().await;
    for path in [
        "/feed.rss",
        "/feed.atom",
        "/feed.json",
        "/tags/news/feed.atom",
        "/posts/hostile/",
        "/",
    ] {
        let body = if path.contains("feed.") {
            app.get_feed_text(path).await
        } else {
            app.get_text(path).await
        };
        assert_clean(path, &body);
    }
    let page = app.get_text("/posts/hostile/").await;
    assert!(page.contains("world."), "the harmless text stays");
    assert!(
        page.contains(&format!(r#"src="{}/images/a.png""#, app.address)),
        "image kept, made absolute"
    );

    let out = app.dir.path().join("site");
    herald::site::build::build(&app.app.db, &app.app.site, &out)
        .await
        .unwrap();
    for file in [
        "posts/hostile/index.html",
        "feed.atom",
        "feed.rss",
        "feed.json",
        "index.html",
    ] {
        if file.contains("feed.") {
            crate::feed_check::read_feed_file(&out.join(file));
        }
        let text = std::fs::read_to_string(out.join(file)).unwrap();
        assert_clean(file, &text);
    }
}
