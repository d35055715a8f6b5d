//! The HTTP server under clients that misbehave: slow headers, slow bodies, idle sockets,
//! more sockets than descriptors; and the security headers on every kind of response.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{TestApp, post, spawn_app_with};

/// A real `herald serve` process in its own folder, killed when dropped.
pub(crate) struct Served {
    child: Child,
    pub address: SocketAddr,
    pub config: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Served {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs `herald --config <this server's config> ARGS` with `stdin`, to completion.
    pub async fn cli(&self, args: &[&str], stdin: &str) -> std::process::Output {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .env_remove("HERALD_CONFIG")
            .env("HERALD_LOG", "warn")
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `herald serve` with `server` added to its `[server]` section and `extra` appended
/// to its config, optionally under an open-files limit (`ulimit -n`), and waits until it listens.
pub(crate) async fn serve_binary(server: &str, extra: &str, open_files: Option<u32>) -> Served {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("posts")).unwrap();
    let db_url = crate::common::fresh_database_url(dir.path()).await;
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{server}\n[database]\nurl = \"{db_url}\"\n[content]\nposts_dir = \"posts\"\n\
             [log]\nformat = \"json\"\n{extra}\n"
        ),
    )
    .unwrap();
    let limit = open_files.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"[ "$1" = unlimited ] || ulimit -n "$1"; shift; exec "$@""#)
        .arg("sh")
        .arg(limit)
        .arg(env!("CARGO_BIN_EXE_herald"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env_remove("HERALD_CONFIG")
        .env("HERALD_LOG", "info,sqlx=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent
                && let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line)
                && entry["fields"]["message"] == "serving"
                && let Some(address) = entry["fields"]["address"].as_str()
            {
                let _ = tx.send(address.parse::<SocketAddr>().unwrap());
                sent = true;
            } else if !sent {
                eprintln!("herald: {line}");
            }
        }
    });
    let address = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
        .await
        .unwrap()
        .expect("herald serve starts listening");
    Served {
        child,
        address,
        config,
        _dir: dir,
    }
}

/// Reads until the server closes the connection (or `limit` passes); the time it took.
async fn time_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit.saturating_sub(started.elapsed()), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

fn address(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn a_client_sending_its_headers_byte_by_byte_is_cut_off_at_the_header_timeout() {
    let app = spawn_app_with("[server]\nheader_timeout_seconds = 2\nkeep_alive_seconds = 1\n").await;
    let mut stream = TcpStream::connect(address(&app)).await.unwrap();
    let started = Instant::now();
    let request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut cut_off = None;
    for byte in request {
        if stream.write_all(&[*byte]).await.is_err() {
            cut_off = Some(started.elapsed());
            break;
        }
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                cut_off = Some(started.elapsed());
                break;
            }
            _ => {}
        }
    }
    let cut_off = cut_off.expect("the server closed the connection before the headers were complete");
    assert!(
        cut_off >= Duration::from_millis(1900),
        "a client still sending is not cut off as idle: closed after {cut_off:?}"
    );
    assert!(cut_off < Duration::from_secs(8), "closed after {cut_off:?}");
    // Everyone else is served meanwhile and after.
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_keep_alive_time() {
    let app = spawn_app_with("[server]\nkeep_alive_seconds = 1\nheader_timeout_seconds = 10\n").await;
    let mut stream = TcpStream::connect(address(&app)).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let closed = time_until_closed(&mut stream, Duration::from_secs(8))
        .await
        .expect("the idle connection is closed");
    assert!(closed >= Duration::from_millis(900), "closed after {closed:?}");

    // A connection that never sends anything is idle too.
    let mut silent = TcpStream::connect(address(&app)).await.unwrap();
    assert!(time_until_closed(&mut silent, Duration::from_secs(8)).await.is_some());
}

#[tokio::test]
async fn a_request_body_that_does_not_arrive_in_time_gets_408_and_the_socket_back() {
    let app = spawn_app_with("[server]\nbody_timeout_seconds = 1\n").await;
    let mut stream = TcpStream::connect(address(&app)).await.unwrap();
    stream
        .write_all(
            b"POST /subscribe HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 100\r\n\r\nemail=slow",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(8), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server answered and closed the connection");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test]
async fn idle_sockets_beyond_the_descriptor_limit_do_not_keep_a_new_client_out() {
    // The process may hold 64 files; 100 clients connect and say nothing.
    let served = serve_binary("keep_alive_seconds = 30\nheader_timeout_seconds = 30", "", Some(64)).await;
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(TcpStream::connect(served.address).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let started = Instant::now();
    let response = client.get(served.url("/healthz")).send().await;
    let response = response.expect("a new client is served while idle sockets pile up");
    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "served before any idle socket timed out"
    );
    // And the server still does its work (database files, responses) within its descriptors.
    let page = client.get(served.url("/subscribe")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    drop(idle);
}

fn assert_security_headers(what: &str, response: &reqwest::Response) {
    let headers = response.headers();
    let get = |name: &str| {
        headers
            .get(name)
            .unwrap_or_else(|| panic!("{what}: no {name}"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    let csp = get("content-security-policy");
    assert!(csp.contains("default-src 'none'"), "{what}: {csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{what}: {csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert_eq!(get("x-frame-options"), "DENY", "{what}");
    assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(get("referrer-policy"), "same-origin", "{what}");
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app_with("").await;
    app.write_post("otters.md", &post("Otters", "2026-09-14", &["wildlife"], "Back."));
    app.sync().await;
    let token = herald::auth::create_token(&app.app.db, "test").await.unwrap();
    let paths = [
        ("/", 200),
        ("/posts/otters/", 200),
        ("/tags/wildlife/", 200),
        ("/feed.rss", 200),
        ("/feed.atom", 200),
        ("/feed.json", 200),
        ("/tags/wildlife/feed.atom", 200),
        ("/subscribe", 200),
        ("/confirm/not-a-token", 404),
        ("/preferences/not-a-token", 404),
        ("/no/such/page", 404),
        ("/admin/login", 200),
        ("/admin", 303),
        ("/admin/api/dashboard", 401),
        ("/healthz", 200),
        ("/metrics", 200),
    ];
    for (path, status) in paths {
        let response = app.get(path).await;
        assert_eq!(response.status(), status, "{path}");
        assert_security_headers(path, &response);
    }
    let api = app
        .client
        .get(app.url("/admin/api/dashboard"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 200);
    assert_security_headers("the API", &api);
    let invalid = app
        .client
        .post(app.url("/admin/api/subscribers"))
        .header("authorization", format!("Bearer {token}"))
        .json(&serde_json::json!({"email": "not an address"}))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 422);
    assert_security_headers("an API error", &invalid);
    let refused = app
        .client
        .post(app.url("/subscribe"))
        .header("origin", "https://evil.example")
        .form(&[("email", "a@example.org")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert_security_headers("a refused form", &refused);
}

#[tokio::test]
async fn the_web_view_of_an_edition_runs_no_script_and_only_the_console_may_frame_its_preview() {
    let app = spawn_app_with("").await;
    app.write_post("archive.md", &post("Archive", "2026-01-01", &["news"], "Old."));
    app.sync().await;
    crate::common::add_subscriber(
        &app,
        "r@example.org",
        herald::domain::SubscriberStatus::Confirmed,
        herald::domain::Frequency::Weekly,
        &[],
    )
    .await;
    app.write_post("otters.md", &post("Otters", "2026-09-14", &["wildlife"], "Back."));
    app.sync().await;
    let editions = app
        .app
        .digests
        .compose(herald::domain::Frequency::Weekly, herald::digest::Trigger::Manual, None)
        .await
        .unwrap();
    let id = editions[0].id;

    let view = app.get(&format!("/editions/{id}")).await;
    assert_eq!(view.status(), 200);
    let csp = view.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(
        !csp.contains("script-src"),
        "scripts fall back to default-src 'none': {csp}"
    );
    assert_eq!(view.headers()["x-frame-options"], "DENY");

    let session = crate::admin_api::admin_session(&app).await;
    let preview = app
        .client
        .get(app.url(&format!("/admin/editions/{id}/preview")))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(preview.status(), 200);
    let csp = preview.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("frame-ancestors 'self'"), "{csp}");
    assert_eq!(preview.headers()["x-frame-options"], "SAMEORIGIN");
    let console = app
        .client
        .get(app.url(&format!("/admin/editions/{id}")))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_security_headers("the console", &console);
}
