//! The reader's subscription flow in a real browser: headless Chromium driven over WebDriver.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use herald::domain::{EmailAddress, Frequency, Subscriber, SubscriberStatus};
use hyper_util::client::legacy::connect::HttpConnector;
use mail_parser::{MessageParser, MimeHeaders};

use crate::common::{TestApp, post, spawn_app_with};
use crate::smtp::SmtpServer;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const EMAIL: &str = "reader+news@example.org";

/// A chromedriver on a free port. Dropping it asks it to shut down, which also quits its browsers
/// (a plain kill would leave Chromium orphaned), then kills it if it is still there.
pub(crate) struct Chromedriver {
    child: Child,
    port: u16,
}

impl Chromedriver {
    pub(crate) async fn start() -> Chromedriver {
        let free = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut driver = Chromedriver { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/status", driver.url())).await
                && r.status().is_success()
            {
                return driver;
            }
            assert!(driver.child.try_wait().unwrap().is_none(), "chromedriver exited early");
            assert!(Instant::now() < deadline, "chromedriver does not answer on port {port}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        if let Ok(mut s) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.write_all(b"GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            let _ = s.read_to_end(&mut Vec::new());
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn browser(driver: &Chromedriver, profile: &Path) -> Client {
    let serde_json::Value::Object(caps) = serde_json::json!({"goog:loggingPrefs": {"browser": "ALL"}, "goog:chromeOptions": {
        "binary": CHROMIUM,
        "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
            "--disable-quic", format!("--user-data-dir={}", profile.display())],
    }}) else {
        unreachable!()
    };
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url())
        .await
        .expect("a Chromium session");
    client.set_window_size(1024, 1200).await.unwrap();
    client
}

/// Chromedriver's console log (its `se/log` extension to WebDriver).
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (axum::http::Method::POST, Some(r#"{"type": "browser"}"#.to_owned()))
    }
}

/// Fails if the browser refused anything under the Content-Security-Policy since the last call:
/// Chromium reports each refusal on the console.
pub(crate) async fn assert_no_csp_violations(client: &Client) {
    let log = client
        .issue_cmd(BrowserLog)
        .await
        .expect("chromedriver returns the console log");
    let refused: Vec<&str> = log
        .as_array()
        .expect("a list of log entries")
        .iter()
        .filter_map(|entry| entry["message"].as_str())
        .filter(|message| message.contains("Content Security Policy"))
        .collect();
    assert!(refused.is_empty(), "the browser refused: {refused:#?}");
}

/// Polls until the element matching `css` contains `want`: after a click the next page may still be loading.
pub(crate) async fn wait_text(client: &Client, css: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(element) = client.find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
            && text.contains(want)
        {
            return;
        }
        if Instant::now() > deadline {
            let url = client.current_url().await.unwrap();
            panic!("no {css} with {want:?} at {url}:\n{}", client.source().await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn find(client: &Client, css: &str) -> fantoccini::elements::Element {
    let found = client.find(Locator::Css(css)).await;
    found.unwrap_or_else(|e| panic!("{css}: {e}"))
}

pub(crate) async fn click(client: &Client, css: &str) {
    let element = find(client, css).await;
    element.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn is_selected(client: &Client, css: &str) -> bool {
    find(client, css).await.is_selected().await.unwrap()
}

async fn stored(app: &TestApp) -> Subscriber {
    let email = EmailAddress::parse(EMAIL).unwrap();
    let found = herald::store::subscribers::find_by_email(&app.app.db, &email).await;
    found.unwrap().expect("the reader is stored")
}

/// Whether the browser is installed; in CI it must be.
pub(crate) fn available() -> bool {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    let msg = "browser tests skipped: chromium/chromedriver not installed";
    assert!(std::env::var_os("CI").is_none(), "{msg}");
    eprintln!("{msg}");
    false
}

#[tokio::test]
async fn a_reader_subscribes_confirms_changes_preferences_and_leaves_in_a_real_browser() {
    if !available() {
        return;
    }
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(&format!(
        "[mail]\ntransport = \"smtp\"\nfrom = \"News <news@example.org>\"\n\
         [mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\n",
        smtp.port
    ))
    .await;
    app.write_post("otters.md", &post("Otters", "2026-09-14", &["wildlife"], "Back."));
    let heron = post("Heron", "2026-09-15", &["wildlife", "birds"], "Grey.");
    app.write_post("heron.md", &heron);
    app.sync().await;
    let profile = tempfile::tempdir().unwrap();
    let driver = Chromedriver::start().await;
    let client = browser(&driver, profile.path()).await;

    // Subscribe on the home page.
    client.goto(&app.url("/")).await.unwrap();
    client.wait().for_element(Locator::Css("form.subscribe")).await.unwrap();
    let email = find(&client, "form.subscribe input[name=email]").await;
    email.send_keys(EMAIL).await.unwrap();
    let name = find(&client, "form.subscribe input[name=name]").await;
    name.send_keys("Rita Reader").await.unwrap();
    click(&client, "form.subscribe input[name=frequency][value=daily]").await;
    click(&client, "form.subscribe input[name=topics][value=wildlife]").await;
    click(&client, "form.subscribe button[type=submit]").await;
    wait_text(&client, "h1", "Check your inbox").await;
    assert_no_csp_violations(&client).await;

    // The confirmation mail: text and HTML alternatives, the link in the text.
    let mail = smtp.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(stored(&app).await.status, SubscriberStatus::Pending);
    assert_eq!(mail.len(), 1, "one confirmation mail");
    assert_eq!(mail[0].to, [EMAIL]);
    let message = MessageParser::default().parse(&mail[0].data).expect("the mail parses");
    let ctype = message.content_type().expect("a Content-Type");
    assert_eq!((ctype.ctype(), ctype.subtype()), ("multipart", Some("alternative")));
    let (plain, html) = (message.text_part(0).unwrap(), message.html_part(0).unwrap());
    assert!(!plain.is_text_html() && html.is_text_html(), "text/plain and text/html");
    let text = message.body_text(0).unwrap();
    let prefix = app.url("/confirm/");
    let start = text.find(&prefix).unwrap_or_else(|| panic!("no {prefix} in:\n{text}"));
    let confirm_url = text[start..].split_whitespace().next().unwrap();

    client.goto(confirm_url).await.unwrap();
    wait_text(&client, "h1", "You are subscribed").await;
    let s = stored(&app).await;
    assert_eq!(s.status, SubscriberStatus::Confirmed);
    assert_eq!(s.frequency, Frequency::Daily);
    assert_eq!(s.topics, ["wildlife"]);
    assert_eq!(s.name.as_deref(), Some("Rita Reader"));

    // Preferences: the form shows what was chosen; change it.
    let preferences = Locator::LinkText("Choose how often and which topics");
    client.find(preferences).await.unwrap().click().await.unwrap();
    wait_text(&client, "h1", "Your subscription").await;
    assert!(client.current_url().await.unwrap().path().starts_with("/preferences/"));
    assert!(is_selected(&client, "input[name=frequency][value=daily]").await);
    assert!(is_selected(&client, "input[name=topics][value=wildlife]").await);
    click(&client, "form.subscribe input[name=frequency][value=weekly]").await;
    click(&client, "form.subscribe input[name=topics][value=wildlife]").await;
    click(&client, "form.subscribe button[type=submit]").await;
    wait_text(&client, "p.notice", "Your preferences are saved.").await;
    assert!(is_selected(&client, "input[name=frequency][value=weekly]").await);
    assert!(!is_selected(&client, "input[name=topics][value=wildlife]").await);
    let s = stored(&app).await;
    assert_eq!(s.status, SubscriberStatus::Confirmed);
    assert_eq!(s.frequency, Frequency::Weekly);
    assert!(s.topics.is_empty(), "{:?}", s.topics);

    // An artefact for people to look at, not asserted on.
    let png = client.screenshot().await.unwrap();
    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-preferences.png");
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    std::fs::write(&shot, png).unwrap();

    // Leave.
    let leave = find(&client, "form[action*='/unsubscribe/'] button").await;
    assert_eq!(leave.text().await.unwrap(), "Unsubscribe from everything");
    leave.click().await.unwrap();
    wait_text(&client, "h1", "You are unsubscribed").await;
    assert_eq!(stored(&app).await.status, SubscriberStatus::Unsubscribed);
    assert_no_csp_violations(&client).await;
    // The site's stylesheet applied (an inline one, allowed by its hash).
    let font = client
        .execute(
            "return getComputedStyle(document.querySelector('header.site a.brand')).fontWeight",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(font, "700");

    client.close().await.unwrap();
}

/// A Chrome DevTools Protocol command sent through chromedriver's `goog/cdp/execute` extension.
#[derive(Debug)]
struct Cdp(serde_json::Value);

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/goog/cdp/execute", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (axum::http::Method::POST, Some(self.0.to_string()))
    }
}

pub async fn cdp(client: &Client, cmd: &str, params: serde_json::Value) {
    let body = serde_json::json!({"cmd": cmd, "params": params});
    client
        .issue_cmd(Cdp(body))
        .await
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
}

/// Makes the viewport `width` CSS pixels wide, as on a phone of that width.
pub async fn viewport(client: &Client, width: u32) {
    let metrics = serde_json::json!({"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": false});
    cdp(client, "Emulation.setDeviceMetricsOverride", metrics).await;
}

/// Emulates `prefers-color-scheme: scheme` (`light` or `dark`).
pub async fn scheme(client: &Client, scheme: &str) {
    let features = serde_json::json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]});
    cdp(client, "Emulation.setEmulatedMedia", features).await;
}
