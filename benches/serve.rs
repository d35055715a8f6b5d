//! Serving benchmark: `GET /feed.atom` (about 50 KiB) from the release `herald serve`,
//! compressed and not, against nginx serving the very same bytes from a file with
//! `gzip on`, loaded by `wrk` side by side on loopback.
//!
//! Needs Debian's `nginx-light` (or `nginx`) and `wrk`; it installs them with apt-get when
//! they are missing. nginx runs as a child process with its own configuration in a temporary
//! folder (the system service is not used). `cargo bench --bench serve`; BENCHMARKS.md
//! records the figures.
//!
//! With `HERALD_BENCH_BEFORE=/path/to/an/older/herald` that binary is loaded too, in the same
//! rounds, so before and after are compared in one run. `HERALD_BENCH_SECONDS` (default 10)
//! and `HERALD_BENCH_ROUNDS` (default 3) set how long each load lasts and how many times the
//! servers take turns; medians are reported.

mod common;

use common::post_text;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// wrk's load: as many connections as a busy feed host sees from readers and proxies.
const CONNECTIONS: u32 = 32;
const THREADS: u32 = 2;
/// nginx's own default `gzip_comp_level` (1, its fastest) and the level often configured (6).
const NGINX_LEVELS: [u32; 2] = [1, 6];

/// A child process stopped when dropped: SIGTERM, so nginx's master stops its workers too
/// (killed outright, it would leave them running, holding the port and whatever files the
/// bench inherited, such as a `flock` lock).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        for _ in 0..250 {
            if self.0.try_wait().is_ok_and(|s| s.is_some()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) -> anyhow::Result<()> {
    for _ in 0..500 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("{what} exited at start-up ({status})");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    anyhow::bail!("{what} did not listen on port {port}")
}

/// Installs nginx and wrk from Debian's packages when they are missing.
fn ensure_tools() -> anyhow::Result<()> {
    let have = |program: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {program} || test -x /usr/sbin/{program}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if have("nginx") && have("wrk") {
        return Ok(());
    }
    eprintln!("installing nginx-light and wrk with apt-get");
    let status = Command::new("sh")
        .args([
            "-c",
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk",
        ])
        .status()?;
    anyhow::ensure!(status.success(), "could not install nginx-light and wrk with apt-get");
    Ok(())
}

/// Starts `herald serve` from `binary` on a fresh SQLite site of `posts` posts, synced first.
fn start_herald(binary: &str, dir: &Path) -> anyhow::Result<(Server, u16)> {
    let posts = dir.join("posts");
    std::fs::create_dir_all(&posts)?;
    for i in 0..1000 {
        std::fs::write(posts.join(format!("post-{i:05}.md")), post_text(i))?;
    }
    let port = free_port();
    let config = dir.join("config.toml");
    // A fixed base URL, so every server's feed is the same bytes whatever its port.
    std::fs::write(
        &config,
        format!(
            "[site]\ntitle = \"Benchmark Trust\"\nbase_url = \"https://news.example.org/\"\n\
             [server]\nlisten = \"127.0.0.1:{port}\"\n[content]\nposts_dir = \"posts\"\n\
             [database]\nurl = \"sqlite://herald.db\"\n"
        ),
    )?;
    let sync = Command::new(binary)
        .arg("--config")
        .arg(&config)
        .arg("sync")
        .env("HERALD_LOG", "warn")
        .output()?;
    anyhow::ensure!(
        sync.status.success(),
        "herald sync failed: {}",
        String::from_utf8_lossy(&sync.stderr)
    );
    let mut child = Command::new(binary)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("HERALD_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    wait_for_port(port, &mut child, "herald serve")?;
    Ok((Server(child), port))
}

/// Starts nginx on `root` with `gzip_comp_level level`, as a child with its own files.
fn start_nginx(dir: &Path, root: &Path, level: u32) -> anyhow::Result<(Server, u16)> {
    let port = free_port();
    let conf = dir.join(format!("nginx-{level}.conf"));
    let d = dir.display();
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nworker_processes auto;\npid {d}/nginx-{level}.pid;\nerror_log {d}/error-{level}.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  types {{ application/atom+xml atom; }}\n  default_type application/octet-stream;\n\
               sendfile on;\n  tcp_nopush on;\n  tcp_nodelay on;\n  keepalive_requests 1000000;\n\
               client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;\n\
               uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
               gzip on;\n  gzip_types application/atom+xml;\n  gzip_comp_level {level};\n  gzip_vary on;\n\
               server {{ listen 127.0.0.1:{port}; root {}; }}\n}}\n",
            root.display()
        ),
    )?;
    let binary = if Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    };
    let mut child = Command::new(binary)
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    wait_for_port(port, &mut child, "nginx")?;
    Ok((Server(child), port))
}

/// GET `/feed.atom` with the given Accept-Encoding: status, Content-Encoding, body as sent.
async fn fetch(
    client: &reqwest::Client,
    port: u16,
    accept: Option<&str>,
) -> anyhow::Result<(u16, Option<String>, Vec<u8>)> {
    let mut request = client.get(format!("http://127.0.0.1:{port}/feed.atom"));
    if let Some(accept) = accept {
        request = request.header("accept-encoding", accept);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let encoding = response
        .headers()
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((status, encoding, response.bytes().await?.to_vec()))
}

fn decode(encoding: Option<&str>, body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    match encoding {
        None => out.extend_from_slice(body),
        Some("gzip") => {
            flate2::read::GzDecoder::new(body).read_to_end(&mut out)?;
        }
        Some("br") => {
            brotli::Decompressor::new(body, 4096).read_to_end(&mut out)?;
        }
        Some(other) => anyhow::bail!("unexpected Content-Encoding {other}"),
    }
    Ok(out)
}

/// Checks that a server's answer to `accept` is `encoding` and decodes to `identity`;
/// returns the size on the wire.
async fn check(
    client: &reqwest::Client,
    name: &str,
    port: u16,
    accept: Option<&str>,
    encoding: Option<&str>,
    identity: &[u8],
) -> anyhow::Result<usize> {
    let (status, got, body) = fetch(client, port, accept).await?;
    anyhow::ensure!(status == 200, "{name}: {status} for Accept-Encoding {accept:?}");
    anyhow::ensure!(
        got.as_deref() == encoding,
        "{name}: Content-Encoding {got:?} for Accept-Encoding {accept:?}, expected {encoding:?}"
    );
    let decoded = decode(got.as_deref(), &body)?;
    anyhow::ensure!(
        decoded == identity,
        "{name}: the {encoding:?} body does not decode to the identity bytes"
    );
    Ok(body.len())
}

/// One wrk load of `/feed.atom`; requests per second.
fn wrk(port: u16, accept: Option<&str>, seconds: u64) -> anyhow::Result<f64> {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t",
        &THREADS.to_string(),
        "-c",
        &CONNECTIONS.to_string(),
        "-d",
        &format!("{seconds}s"),
    ]);
    if let Some(accept) = accept {
        cmd.args(["-H", &format!("Accept-Encoding: {accept}")]);
    }
    let output = cmd.arg(format!("http://127.0.0.1:{port}/feed.atom")).output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(output.status.success(), "wrk failed: {text}");
    anyhow::ensure!(
        !text.contains("Non-2xx") && !text.contains("Socket errors"),
        "wrk saw errors:\n{text}"
    );
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no Requests/sec in wrk's output:\n{text}"))
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// A server under load and what it is asked for.
struct Target {
    name: String,
    port: u16,
    accept: Option<&'static str>,
    /// Bytes of one response on the wire.
    size: usize,
    samples: Vec<f64>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    ensure_tools()?;
    let seconds: u64 = std::env::var("HERALD_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let rounds: usize = std::env::var("HERALD_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut binaries: Vec<(String, String)> = std::env::var("HERALD_BENCH_BEFORE")
        .into_iter()
        .map(|path| ("herald before".to_owned(), path))
        .collect();
    binaries.push(("herald".to_owned(), env!("CARGO_BIN_EXE_herald").to_owned()));

    let dir = tempfile::tempdir()?;
    let client = reqwest::Client::builder().no_gzip().build()?;
    let mut servers = Vec::new();
    let mut heralds = Vec::new();
    for (i, (name, binary)) in binaries.iter().enumerate() {
        let site: PathBuf = dir.path().join(format!("site-{i}"));
        std::fs::create_dir_all(&site)?;
        let (server, port) = start_herald(binary, &site)?;
        servers.push(server);
        // First requests after start: rendering, then each compressed variant.
        let mut firsts = Vec::new();
        for accept in [None, Some("gzip"), Some("br")] {
            let start = Instant::now();
            fetch(&client, port, accept).await?;
            firsts.push(format!(
                "{} {:.1} ms",
                accept.unwrap_or("identity"),
                start.elapsed().as_secs_f64() * 1000.0
            ));
        }
        println!("{name}: first GET /feed.atom: {}", firsts.join(", "));
        heralds.push((name.clone(), port));
    }

    // This Herald's identity bytes are what nginx serves. (An older binary's may differ
    // slightly: the posts' files were written at other times.)
    let (_, _, identity) = fetch(&client, heralds[heralds.len() - 1].1, None).await?;
    let root = dir.path().join("www");
    std::fs::create_dir_all(&root)?;
    std::fs::write(root.join("feed.atom"), &identity)?;
    println!(
        "/feed.atom: {} bytes ({:.1} KiB)",
        identity.len(),
        identity.len() as f64 / 1024.0
    );
    let mut nginxes = Vec::new();
    for level in NGINX_LEVELS {
        let (server, port) = start_nginx(dir.path(), &root, level)?;
        servers.push(server);
        nginxes.push((format!("nginx gzip_comp_level {level}"), port));
    }

    // Every body is what it claims to be before anything is timed.
    let mut targets = Vec::new();
    for (name, port) in &heralds {
        let (_, _, own) = fetch(&client, *port, None).await?;
        for (accept, encoding) in [(Some("gzip"), Some("gzip")), (None, None), (Some("br"), Some("br"))] {
            let size = check(&client, name, *port, accept, encoding, &own).await?;
            targets.push(Target {
                name: name.clone(),
                port: *port,
                accept,
                size,
                samples: Vec::new(),
            });
        }
    }
    for (i, (name, port)) in nginxes.iter().enumerate() {
        let size = check(&client, name, *port, Some("gzip"), Some("gzip"), &identity).await?;
        targets.push(Target {
            name: name.clone(),
            port: *port,
            accept: Some("gzip"),
            size,
            samples: Vec::new(),
        });
        // Identity does not depend on the gzip level: load one nginx for it.
        if i == 0 {
            let size = check(&client, "nginx", *port, None, None, &identity).await?;
            targets.push(Target {
                name: "nginx".to_owned(),
                port: *port,
                accept: None,
                size,
                samples: Vec::new(),
            });
        }
    }
    // Herald and nginx take turns for each encoding, round after round.
    targets.sort_by_key(|t| match t.accept {
        Some("gzip") => 0,
        None => 1,
        _ => 2,
    });

    println!("wrk -t{THREADS} -c{CONNECTIONS} -d{seconds}s, {rounds} rounds, Herald and nginx in turns");
    for round in 1..=rounds {
        for target in targets.iter_mut() {
            let rate = wrk(target.port, target.accept, seconds)?;
            println!(
                "  round {round}: {:<28} {:<9} {rate:>9.0} req/s",
                target.name,
                target.accept.unwrap_or("identity")
            );
            target.samples.push(rate);
        }
    }

    println!("medians:");
    let medians: Vec<f64> = targets.iter_mut().map(|t| median(&mut t.samples)).collect();
    for (target, rate) in targets.iter().zip(&medians) {
        let accept = target.accept.unwrap_or("identity");
        // Herald's share of each nginx loaded with the same Accept-Encoding.
        let shares: Vec<String> = if target.name.starts_with("nginx") {
            Vec::new()
        } else {
            targets
                .iter()
                .zip(&medians)
                .filter(|(t, _)| t.name.starts_with("nginx") && t.accept == target.accept)
                .map(|(t, r)| format!("{:.0} % of {}", 100.0 * rate / r, t.name))
                .collect()
        };
        println!(
            "  {:<28} {accept:<9} {rate:>9.0} req/s  {:>6} bytes  {}",
            target.name,
            target.size,
            shares.join(", ")
        );
    }
    drop(servers);
    Ok(())
}
