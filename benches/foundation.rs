//! Content benchmark: 10,000 posts across 50 tags on the embedded SQLite default.
//!
//! `cargo bench --bench foundation` prints one line per measure; BENCHMARKS.md
//! records the figures. Sizes can be changed with HERALD_BENCH_POSTS.

mod common;

use common::post_text;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use herald::config::Settings;
use herald::feeds::FeedFormat;
use herald::startup::App;
use herald::web;
use tokio_util::sync::CancellationToken;

fn time<T>(label: &str, f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    println!("{label:<44} {:>9.1} ms", took.as_secs_f64() * 1000.0);
    (out, took)
}

async fn timed<T>(label: &str, f: impl std::future::Future<Output = T>) -> T {
    let start = Instant::now();
    let out = f.await;
    println!("{label:<44} {:>9.1} ms", start.elapsed().as_secs_f64() * 1000.0);
    out
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: usize = std::env::var("HERALD_BENCH_POSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir()?;
    let posts = dir.path().join("posts");
    std::fs::create_dir_all(&posts)?;
    let ((), _) = time(&format!("generate {count} post files"), || {
        for i in 0..count {
            std::fs::write(posts.join(format!("post-{i:05}.md")), post_text(i)).unwrap();
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[site]\nbase_url = \"http://{address}/\"\n[content]\nposts_dir = \"posts\"\n"),
    )?;
    let app = App::start(Settings::load(&config)?).await?;

    let first = timed("first sync", app.sync()).await?;
    assert_eq!(first.added, count, "{first}");
    let again = timed("re-sync, nothing changed", app.sync()).await?;
    assert_eq!(again.unchanged, count, "{again}");
    std::fs::write(posts.join("post-00001.md"), post_text(1).replace("Heading", "Edited"))?;
    let one = timed("re-sync, one post edited", app.sync()).await?;
    assert_eq!(one.updated, 1);

    let now = Utc::now();
    let tags = herald::store::posts::public_tags(&app.db, now).await?;
    let start = Instant::now();
    let mut feeds = 0;
    for format in FeedFormat::ALL {
        app.site.feed(&app.db, format, None, now).await?;
        feeds += 1;
        for (tag, _) in &tags {
            app.site.feed(&app.db, format, Some(tag.slug()), now).await?;
            feeds += 1;
        }
    }
    println!(
        "{:<44} {:>9.1} ms",
        format!("build every feed ({feeds}: site + {} tags x 3)", tags.len()),
        start.elapsed().as_secs_f64() * 1000.0
    );

    let out = dir.path().join("site");
    let report = timed(
        "herald build (export everything)",
        herald::site::build::build(&app.db, &app.site, &out),
    )
    .await?;
    println!("  {} files, {} written", report.files, report.written);

    serve_bench(app, listener, address).await
}

async fn serve_bench(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    address: std::net::SocketAddr,
) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn(web::serve(app, listener, shutdown.clone()));
    let client = reqwest::Client::builder().no_gzip().build()?;
    let url = format!("http://{address}/feed.atom");
    let start = Instant::now();
    client.get(&url).send().await?.bytes().await?;
    println!(
        "{:<44} {:>9.1} ms",
        "GET /feed.atom, cold (render)",
        start.elapsed().as_secs_f64() * 1000.0
    );

    const REQUESTS: usize = 4000;
    const CONCURRENCY: usize = 8;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let client = client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut bytes = 0;
            for _ in 0..REQUESTS / CONCURRENCY {
                bytes += client.get(&url).send().await.unwrap().bytes().await.unwrap().len();
            }
            bytes
        }));
    }
    let mut bytes = 0;
    for t in tasks {
        bytes += t.await?;
    }
    let took = start.elapsed().as_secs_f64();
    println!(
        "{:<44} {:>9.0} req/s ({:.2} ms mean, {} KiB each)",
        format!("GET /feed.atom, warm ({REQUESTS} x {CONCURRENCY} clients)"),
        REQUESTS as f64 / took,
        took * 1000.0 / (REQUESTS / CONCURRENCY) as f64,
        bytes / REQUESTS / 1024
    );
    let etag = client.get(&url).send().await?.headers()["etag"].to_str()?.to_owned();
    let start = Instant::now();
    for _ in 0..1000 {
        let r = client.get(&url).header("if-none-match", &etag).send().await?;
        assert_eq!(r.status(), 304);
    }
    println!(
        "{:<44} {:>9.0} req/s",
        "GET /feed.atom, If-None-Match -> 304 (1 client)",
        1000.0 / start.elapsed().as_secs_f64()
    );
    shutdown.cancel();
    Ok(())
}
