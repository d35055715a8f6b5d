//! Subscriber benchmark: CSV import of 10,000 and 100,000 rows (time and the importing
//! process's peak memory), and subscribe-form POSTs per second on the embedded SQLite.
//!
//! `cargo bench --bench subscribers`; BENCHMARKS.md records the figures.

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use herald::config::Settings;
use herald::startup::App;
use herald::web;
use tokio_util::sync::CancellationToken;

fn write_csv(path: &std::path::Path, rows: usize) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "email,name,frequency,topics,status")?;
    let frequencies = ["immediate", "daily", "weekly"];
    for i in 0..rows {
        writeln!(
            out,
            "reader{i}@example{}.org,Reader {i},{},\"topic-{},topic-{}\",confirmed",
            i % 97,
            frequencies[i % 3],
            i % 50,
            (i + 7) % 50
        )?;
    }
    out.flush()
}

/// Peak resident memory of a child, read from /proc while it runs.
fn run_measured(cmd: &mut Command) -> anyhow::Result<(Duration, u64, String)> {
    let start = Instant::now();
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_path)
            && let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:"))
        {
            peak_kib = peak_kib.max(line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0));
        }
        if child.try_wait()?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = start.elapsed();
    let output = child.wait_with_output()?;
    Ok((
        took,
        peak_kib,
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
    ))
}

fn import_bench(rows: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let csv = dir.path().join("list.csv");
    write_csv(&csv, rows)?;
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "")?;
    let herald = env!("CARGO_BIN_EXE_herald");
    run_measured(Command::new(herald).arg("--config").arg(&config).arg("migrate"))?;
    let (took, peak, out) = run_measured(
        Command::new(herald)
            .arg("--config")
            .arg(&config)
            .args(["subscribers", "import"])
            .arg(&csv),
    )?;
    println!(
        "{:<44} {:>9.0} ms  {:>7.0} rows/s  peak RSS {:>6.1} MiB  ({out})",
        format!("import {rows} rows (herald subscribers import)"),
        took.as_secs_f64() * 1000.0,
        rows as f64 / took.as_secs_f64(),
        peak as f64 / 1024.0
    );
    let (took, peak, _) = run_measured(
        Command::new(herald)
            .arg("--config")
            .arg(&config)
            .args(["subscribers", "import"])
            .arg(&csv),
    )?;
    println!(
        "{:<44} {:>9.0} ms  {:>7.0} rows/s  peak RSS {:>6.1} MiB",
        format!("re-import {rows} rows (all unchanged)"),
        took.as_secs_f64() * 1000.0,
        rows as f64 / took.as_secs_f64(),
        peak as f64 / 1024.0
    );
    Ok(())
}

async fn subscribe_bench() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[site]\nbase_url = \"http://{address}/\"\n[subscribers]\nrate_per_minute = 1000000\n\
             [content]\nposts_dir = \"posts\"\n"
        ),
    )?;
    std::fs::create_dir_all(dir.path().join("posts"))?;
    let app = App::start(Settings::load(&config)?).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(web::serve(app.clone(), listener, shutdown.clone()));
    const POSTS: usize = 2000;
    const CLIENTS: usize = 8;
    let client = reqwest::Client::new();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = client.clone();
        let url = format!("http://{address}/subscribe");
        tasks.push(tokio::spawn(async move {
            for i in 0..POSTS / CLIENTS {
                let email = format!("bench{c}-{i}@example.org");
                let r = client
                    .post(&url)
                    .form(&[("email", email.as_str()), ("frequency", "weekly")])
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let took = start.elapsed().as_secs_f64();
    println!(
        "{:<44} {:>9.0} req/s ({POSTS} new addresses, {CLIENTS} clients; each stores the request, a worker the subscriber, token and mail)",
        "POST /subscribe",
        POSTS as f64 / took
    );
    shutdown.cancel();
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    import_bench(10_000)?;
    import_bench(100_000)?;
    subscribe_bench().await
}
