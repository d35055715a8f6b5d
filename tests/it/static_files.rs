//! The static folder and page bundles: files served at the site's root and beside their
//! post, with validators and caching, never outside their folder and never over Herald's
//! own routes; relative URLs in a bundle resolved to its files everywhere the post goes;
//! and `herald build` carrying them all.

use std::path::Path;
use std::process::Command;

use herald::digest::Trigger;
use herald::domain::{Frequency, SubscriberStatus};
use reqwest::header;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{TestApp, spawn_app};

/// A tiny real PNG (1×1, transparent).
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00,
    0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// The status of a request sent byte for byte as written: no client in between to resolve
/// `..` or decode `%2e` first.
async fn raw_status(app: &TestApp, path: &str) -> u16 {
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    let status = text.split_whitespace().nth(1).unwrap_or_default();
    status
        .parse()
        .unwrap_or_else(|_| panic!("GET {path}: no status in {text:?}"))
}

/// The `src` of every `<img>` in `html`.
fn image_sources(html: &str) -> Vec<String> {
    html.split("<img ")
        .skip(1)
        .filter_map(|tag| {
            let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
            let start = tag.find("src=\"")? + 5;
            let end = tag[start..].find('"')? + start;
            Some(tag[start..end].replace("&amp;", "&"))
        })
        .collect()
}

#[tokio::test]
async fn static_files_are_served_with_their_type_validators_and_304() {
    let app = spawn_app().await;
    let root = app.dir.path().join("static");
    write(&root.join("images/map.png"), PNG);
    write(&root.join("css/site.css"), b"body { color: #333 }\n");

    let response = app.get("/images/map.png").await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers[header::CONTENT_TYPE], "image/png");
    let etag = headers[header::ETAG].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let last_modified = headers[header::LAST_MODIFIED].to_str().unwrap().to_owned();
    let cache = headers[header::CACHE_CONTROL].to_str().unwrap();
    assert!(cache.contains("public") && cache.contains("max-age=3600"), "{cache}");
    assert_eq!(response.bytes().await.unwrap().as_ref(), PNG);

    let css = app.get("/css/site.css").await;
    assert_eq!(css.status(), 200);
    assert_eq!(css.headers()[header::CONTENT_TYPE], "text/css; charset=utf-8");

    // Conditional GET: by ETag, by date, and a stale ETag wins over a current date.
    let url = app.url("/images/map.png");
    let by_etag = app
        .client
        .get(&url)
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(by_etag.status(), 304);
    assert_eq!(by_etag.headers()[header::ETAG], etag.as_str());
    assert!(by_etag.headers().contains_key(header::CACHE_CONTROL));
    let by_date = app
        .client
        .get(&url)
        .header(header::IF_MODIFIED_SINCE, &last_modified)
        .send()
        .await
        .unwrap();
    assert_eq!(by_date.status(), 304);
    let stale = app
        .client
        .get(&url)
        .header(header::IF_NONE_MATCH, "\"something-else\"")
        .header(header::IF_MODIFIED_SINCE, &last_modified)
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
    let head = app.client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()[header::ETAG], etag.as_str());

    // A changed file is served at once, with a new ETag.
    std::thread::sleep(std::time::Duration::from_millis(20));
    write(&root.join("images/map.png"), &[PNG, b"more"].concat());
    let changed = app
        .client
        .get(&url)
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    assert_ne!(changed.headers()[header::ETAG], etag.as_str());
    assert_eq!(changed.bytes().await.unwrap().len(), PNG.len() + 4);

    // No listings, no folders.
    for folder in ["/images", "/images/", "/css/"] {
        assert_eq!(app.get(folder).await.status(), 404, "{folder}");
    }
}

#[tokio::test]
async fn a_static_file_never_shadows_heralds_own_routes() {
    let app = spawn_app().await;
    app.write_post(
        "otters.md",
        &crate::common::post("Otters", "2026-09-14", &["wildlife"], "Body."),
    );
    app.sync().await;
    let root = app.dir.path().join("static");
    for name in [
        "feed.rss",
        "robots.txt",
        "sitemap.xml",
        "favicon.svg",
        "healthz",
        "admin/index.html",
        "admin/api/x.json",
        "posts/otters/index.html",
        "posts/otters/extra.txt",
        "tags/index.html",
        "subscribe/index.html",
    ] {
        write(&root.join(name), b"shadow");
    }
    write(&root.join("index.html"), b"shadow");

    app.get_feed("/feed.rss").await;
    for path in [
        "/robots.txt",
        "/sitemap.xml",
        "/favicon.svg",
        "/healthz",
        "/",
        "/posts/otters/",
        "/tags/",
        "/subscribe",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_ne!(response.text().await.unwrap(), "shadow", "{path}");
    }
    for path in [
        "/admin/index.html",
        "/admin/api/x.json",
        "/posts/otters/extra.txt",
        "/posts/otters/index.html",
        "/subscribe/index.html",
        "/tags/index.html",
    ] {
        let response = app.get(path).await;
        assert_ne!(response.status(), 200, "{path}");
        assert_ne!(response.text().await.unwrap(), "shadow", "{path}");
    }
    // What Herald does not answer itself is the folder's.
    assert_eq!(app.get_text("/index.html").await, "shadow");
}

#[tokio::test]
async fn traversal_attempts_are_not_found() {
    let app = spawn_app().await;
    let root = app.dir.path().join("static");
    write(&root.join("images/map.png"), PNG);
    write(&root.join(".env"), b"SECRET=1");
    write(&app.dir.path().join("secret.txt"), b"secret");
    #[cfg(unix)]
    std::os::unix::fs::symlink(app.dir.path().join("secret.txt"), root.join("leak.txt")).unwrap();
    app.write_post("slip.md", &crate::common::post("Slip", "2026-09-14", &[], "Body."));
    let bundle = app.posts_dir.join("otters");
    write(
        &bundle.join("index.md"),
        crate::common::post("Otters", "2026-09-14", &[], "Body.").as_bytes(),
    );
    write(&bundle.join("photo.png"), PNG);
    #[cfg(unix)]
    std::os::unix::fs::symlink(app.dir.path().join("secret.txt"), bundle.join("leak.txt")).unwrap();
    app.sync().await;

    assert_eq!(raw_status(&app, "/images/map.png").await, 200);
    assert_eq!(raw_status(&app, "/posts/otters/photo.png").await, 200);
    for path in [
        "/../secret.txt",
        "/images/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/images/%2e%2e/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e%2fsecret.txt",
        "/images%2f..%2f..%2fsecret.txt",
        "/..%5csecret.txt",
        "/%252e%252e/secret.txt",
        "/.%2e/secret.txt",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
        "/images/%00map.png",
        "/.env",
        "/%2eenv",
        "/leak.txt",
        "/config.toml",
        "/herald.db",
        "/posts/otters/../../secret.txt",
        "/posts/otters/%2e%2e/%2e%2e/secret.txt",
        "/posts/otters/..%2f..%2fsecret.txt",
        "/posts/otters/%2e%2e/slip.md",
        "/posts/otters/index.md",
        "/posts/otters/leak.txt",
        "/posts/otters/",
    ] {
        let status = raw_status(&app, path).await;
        let expected = if path == "/posts/otters/" { 200 } else { 404 };
        assert_eq!(status, expected, "{path}");
    }
}

const BUNDLE_POST: &str = "---\ntitle: Otters return\ndate: 2026-09-14\nimage: photo.png\nimage_alt: Two cubs\n---\n\
The cubs on camera: ![Cubs](images/cubs.png)\n\nSee [the map](/images/map.png) and [the photo](photo.png).\n";

/// A public bundle (`otters`), a draft one (`secret`), and the static map.
fn write_bundles(app: &TestApp) {
    write(&app.posts_dir.join("otters/index.md"), BUNDLE_POST.as_bytes());
    write(&app.posts_dir.join("otters/photo.png"), PNG);
    write(&app.posts_dir.join("otters/images/cubs.png"), &[PNG, b"cubs"].concat());
    write(
        &app.posts_dir.join("secret/index.md"),
        b"---\ntitle: Secret\ndate: 2026-09-14\ndraft: true\n---\n![x](plan.png)\n",
    );
    write(&app.posts_dir.join("secret/plan.png"), PNG);
    write(&app.dir.path().join("static/images/map.png"), PNG);
}

#[tokio::test]
async fn a_page_bundle_serves_its_files_and_everything_points_at_them() {
    let app = spawn_app().await;
    // Herald's first sync is the archive; what comes after it is news for the digest.
    app.sync().await;
    write_bundles(&app);
    let report = app.sync().await;
    assert_eq!(report.failed, [], "{report}");

    // The page's images resolve to the bundle's files, which are served.
    let html = app.get_text("/posts/otters/").await;
    let photo = app.url("/posts/otters/photo.png");
    let cubs = app.url("/posts/otters/images/cubs.png");
    let sources = image_sources(&html);
    assert!(sources.contains(&cubs), "{sources:?} in {html}");
    assert!(
        html.contains(&format!("href=\"{}\"", app.url("/images/map.png"))),
        "{html}"
    );
    assert!(html.contains(&format!("href=\"{photo}\"")), "{html}");
    for src in &sources {
        let response = app.client.get(src).send().await.unwrap();
        assert_eq!(response.status(), 200, "{src}");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "image/png", "{src}");
        assert!(response.headers().contains_key(header::ETAG), "{src}");
    }
    let served = app.get("/posts/otters/photo.png").await;
    assert_eq!(served.status(), 200);
    let etag = served.headers()[header::ETAG].to_str().unwrap().to_owned();
    assert_eq!(served.bytes().await.unwrap().as_ref(), PNG);
    let again = app
        .client
        .get(&photo)
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    // A draft's files stay private; the post file itself is not served.
    for path in [
        "/posts/secret/plan.png",
        "/posts/otters/index.md",
        "/posts/nobody/photo.png",
    ] {
        assert_eq!(app.get(path).await.status(), 404, "{path}");
    }

    // A changed file is served without a sync; the post is not re-rendered for it.
    write(&app.posts_dir.join("otters/photo.png"), &[PNG, b"new"].concat());
    assert_eq!(
        app.get("/posts/otters/photo.png").await.bytes().await.unwrap().len(),
        PNG.len() + 3
    );
    let report = app.sync().await;
    // (The draft bundle is unchanged too.)
    assert_eq!((report.unchanged, report.updated, report.added), (2, 0, 0), "{report}");

    // Feeds carry the absolute URLs: the lead image as media:content in RSS and Atom.
    for feed in ["/feed.rss", "/feed.atom"] {
        let text = app.get_feed_text(feed).await;
        let parsed = crate::feed_check::parse_feed(feed, text.as_bytes());
        let entry = &parsed.entries[0];
        let media: Vec<String> = entry
            .media
            .iter()
            .flat_map(|m| m.content.iter())
            .filter_map(|c| c.url.as_ref().map(|u| u.to_string()))
            .collect();
        assert_eq!(media, std::slice::from_ref(&photo), "{feed}: {text}");
        assert!(text.contains("xmlns:media=\"http://search.yahoo.com/mrss/\""), "{feed}");
        assert!(text.contains("medium=\"image\""), "{feed}");
        assert!(text.contains("type=\"image/png\""), "{feed}");
        let body = entry.content.as_ref().and_then(|c| c.body.clone()).unwrap_or_default();
        assert!(body.contains(&cubs), "{feed}: {body}");
    }
    let json: serde_json::Value = serde_json::from_str(&app.get_feed_text("/feed.json").await).unwrap();
    assert_eq!(json["items"][0]["image"], photo.as_str());
    assert!(json["items"][0]["content_html"].as_str().unwrap().contains(&cubs));

    // And so does the email digest (its web view is the same HTML), which shows the lead image.
    crate::common::add_subscriber(
        &app,
        "reader@example.org",
        SubscriberStatus::Confirmed,
        Frequency::Weekly,
        &[],
    )
    .await;
    let editions = app
        .app
        .digests
        .compose(Frequency::Weekly, Trigger::Manual, None)
        .await
        .unwrap();
    assert_eq!(editions.len(), 1);
    let email = app.get_text(&format!("/editions/{}", editions[0].id)).await;
    let sources = image_sources(&email);
    assert!(sources.contains(&photo), "{sources:?}");
}

#[tokio::test]
async fn build_copies_the_static_folder_and_the_bundles_files() {
    let app = spawn_app().await;
    write_bundles(&app);
    write(&app.dir.path().join("static/feed.rss"), b"shadow");
    write(&app.dir.path().join("static/.git/config"), b"hidden");
    let out = app.dir.path().join("public");
    let config = app.dir.path().join("config.toml");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_herald"))
            .env_remove("HERALD_CONFIG")
            .env("HERALD_LOG", "warn")
            .arg("--config")
            .arg(&config)
            .arg("build")
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let out = app.dir.path().join("public");
    assert_eq!(std::fs::read(out.join("images/map.png")).unwrap(), PNG);
    assert_eq!(std::fs::read(out.join("posts/otters/photo.png")).unwrap(), PNG);
    assert!(out.join("posts/otters/images/cubs.png").is_file());
    assert!(out.join("posts/otters/index.html").is_file());
    for absent in ["posts/otters/index.md", "posts/secret/plan.png", ".git/config"] {
        assert!(!out.join(absent).exists(), "{absent} was built");
    }
    // Herald's own feed, not the static folder's file of the same name; every feed strict.
    crate::feed_check::read_feed_file(&out.join("feed.rss"));
    crate::feed_check::check_every_feed_in(&out);
    let page = std::fs::read_to_string(out.join("posts/otters/index.html")).unwrap();
    for src in image_sources(&page) {
        let path = src.strip_prefix(&format!("{}/", app.address)).unwrap_or(&src);
        assert!(out.join(path).is_file(), "{src} is not in the build");
    }
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let target = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[tokio::test]
async fn the_example_site_has_no_broken_image_of_its_own() {
    let app = spawn_app().await;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_tree(&repo.join("content/posts"), &app.posts_dir);
    copy_tree(&repo.join("static"), &app.dir.path().join("static"));
    let report = app.sync().await;
    assert_eq!(report.failed, [], "{report}");
    let feed = app.get_feed("/feed.json").await;
    let mut checked = 0;
    for entry in &feed.entries {
        let page = app.get_text(entry.links[0].href.trim_start_matches(&app.address)).await;
        for src in image_sources(&page) {
            let path = src
                .strip_prefix(&app.address)
                .unwrap_or_else(|| panic!("{src} on {} is not the site's own", entry.links[0].href));
            {
                let response = app.get(path).await;
                assert_eq!(response.status(), 200, "{src} on {}", entry.links[0].href);
                assert!(
                    response.headers()[header::CONTENT_TYPE]
                        .to_str()
                        .unwrap()
                        .starts_with("image/"),
                    "{src}"
                );
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 4,
        "the example posts show images of the site's own: {checked}"
    );
    // Posts not yet public point at files of their own too.
    for entry in walkdir::WalkDir::new(repo.join("content/posts")) {
        let entry = entry.unwrap();
        if entry.path().extension().is_some_and(|e| e == "md") {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            for external in ["image: http", "image = \"http"] {
                assert!(!text.contains(external), "{} has {external}", entry.path().display());
            }
            for image in text.split("![").skip(1) {
                let target = image.split_once("](").map(|(_, t)| t).unwrap_or_default();
                assert!(!target.starts_with("http"), "{}: ![{image}", entry.path().display());
            }
        }
    }
}
