//! Preflight (`herald doctor`, `/admin/doctor`) against real parts: a DNS server on loopback
//! serving the records under test, a real Herald answering the one-click POST, servers that
//! refuse it, digests rendered by the real renderer.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use herald::doctor::{self, Check, Level, Report};
use herald::domain::{Frequency, SubscriberStatus};
use hickory_server::Server;
use hickory_server::proto::rr::rdata::{SOA, TXT};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};

use crate::common::{TestApp, add_subscriber, post, spawn_app_with};

/// The public half of `tests/fixtures/dkim-test-key.pem`, as `openssl rsa -pubout` prints it.
fn fixture_public_key(file: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect()
}

fn signing_key_path() -> String {
    format!("{}/tests/fixtures/dkim-test-key.pem", env!("CARGO_MANIFEST_DIR"))
}

/// Records that pass: Herald's key, one SPF record, DMARC at quarantine.
pub(crate) fn good_records() -> Vec<(&'static str, String)> {
    vec![
        (
            "herald._domainkey",
            format!("v=DKIM1; k=rsa; p={}", fixture_public_key("dkim-test-key.pub")),
        ),
        ("@", "v=spf1 include:_spf.relay.example -all".into()),
        ("@", "google-site-verification=abc".into()),
        ("_dmarc", "v=DMARC1; p=quarantine; rua=mailto:dmarc@example.org".into()),
    ]
}

/// An authoritative DNS server for `example.org` on 127.0.0.1 (UDP, a port of its own),
/// serving `records` (name relative to the zone, `@` for the zone itself; TXT values longer
/// than 255 bytes are split into strings, as zone files do). Runs until the test ends.
pub(crate) async fn dns_server(records: &[(&str, String)]) -> SocketAddr {
    let origin = Name::from_ascii("example.org.").unwrap();
    let mut zone: InMemoryZoneHandler = InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
    let soa = SOA::new(
        Name::from_ascii("ns.example.org.").unwrap(),
        Name::from_ascii("hostmaster.example.org.").unwrap(),
        1,
        3600,
        600,
        86400,
        60,
    );
    assert!(zone.upsert_mut(Record::from_rdata(origin.clone(), 60, RData::SOA(soa)), 1));
    for (name, value) in records {
        let name = if *name == "@" {
            origin.clone()
        } else {
            Name::from_ascii(format!("{name}.example.org.")).unwrap()
        };
        let pieces: Vec<String> = value
            .as_bytes()
            .chunks(255)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        assert!(zone.upsert_mut(Record::from_rdata(name, 60, RData::TXT(TXT::new(pieces))), 1));
    }
    let mut catalog = Catalog::new();
    catalog.upsert(LowerName::new(&origin), vec![Arc::new(zone)]);
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    let mut server = Server::new(catalog);
    server.register_socket(socket);
    tokio::spawn(async move {
        let _ = server.block_until_done().await;
    });
    address
}

/// A Herald signing for example.org, asking `nameserver` for its records.
pub(crate) async fn app_with_dns(nameserver: SocketAddr, extra: &str) -> TestApp {
    spawn_app_with(&format!(
        "[mail]\nfrom = \"News <news@example.org>\"\n[mail.dkim]\nselector = \"herald\"\ndomain = \"example.org\"\n\
         private_key_path = \"{}\"\n[doctor]\nnameserver = \"{nameserver}\"\n{extra}",
        signing_key_path()
    ))
    .await
}

async fn examine(app: &TestApp) -> Report {
    doctor::examine(&app.app.settings, &app.app.db, &app.app.digests).await
}

fn finding(report: &Report, check: Check) -> &doctor::Finding {
    report
        .get(check)
        .unwrap_or_else(|| panic!("no {check:?} finding: {report:?}"))
}

#[tokio::test]
async fn good_records_and_a_working_site_pass_every_check() {
    let dns = dns_server(&good_records()).await;
    let app = app_with_dns(dns, "").await;
    app.write_post(
        "otters.md",
        &post("Otters", "2026-01-02", &["wildlife"], "Otters are back."),
    );
    app.sync().await;

    let report = examine(&app).await;

    for f in &report.findings {
        assert_eq!(f.level, Level::Ok, "{f:?}");
        assert!(f.fix.is_none(), "{f:?}");
    }
    assert!(report.ok);
    assert_eq!(report.findings.len(), 6, "{report:?}");
    let dkim = finding(&report, Check::Dkim);
    assert!(
        dkim.summary.contains("herald._domainkey.example.org") && dkim.summary.contains("2048-bit"),
        "{dkim:?}"
    );
    assert!(finding(&report, Check::Spf).summary.contains("-all"));
    assert!(finding(&report, Check::Dmarc).summary.contains("p=quarantine"));
    let size = finding(&report, Check::DigestSize);
    assert!(
        size.summary.contains("(1 post)") && size.summary.contains("102.0 KB"),
        "{size:?}"
    );
    assert!(finding(&report, Check::OneClick).summary.contains("404"));
}

#[tokio::test]
async fn each_wrong_or_missing_record_is_its_own_finding_with_the_record_to_publish() {
    let own_key = format!("v=DKIM1; k=rsa; p={}", fixture_public_key("dkim-test-key.pub"));
    struct Case {
        name: &'static str,
        records: Vec<(&'static str, String)>,
        expect: Vec<(Check, Level, &'static str)>,
    }
    let cases = vec![
        Case {
            name: "another key, no SPF, DMARC monitoring only",
            records: vec![
                (
                    "herald._domainkey",
                    format!("v=DKIM1; k=rsa; p={}", fixture_public_key("dkim-other-key.pub")),
                ),
                ("_dmarc", "v=DMARC1; p=none".into()),
            ],
            expect: vec![
                (Check::Dkim, Level::Problem, "not the public half"),
                (Check::Spf, Level::Warning, "no SPF record at example.org"),
                (Check::Dmarc, Level::Warning, "p=none"),
            ],
        },
        Case {
            name: "nothing published",
            records: vec![],
            expect: vec![
                (
                    Check::Dkim,
                    Level::Problem,
                    "no DKIM record at herald._domainkey.example.org",
                ),
                (Check::Spf, Level::Warning, "no SPF record"),
                (Check::Dmarc, Level::Problem, "no DMARC record at _dmarc.example.org"),
            ],
        },
        Case {
            name: "a revoked key, two SPF records, an unknown policy",
            records: vec![
                ("herald._domainkey", "v=DKIM1; k=rsa; p=".into()),
                ("@", "v=spf1 mx -all".into()),
                ("@", "v=spf1 include:_spf.relay.example -all".into()),
                ("_dmarc", "v=DMARC1; p=maybe".into()),
            ],
            expect: vec![
                (Check::Dkim, Level::Problem, "revoked"),
                (Check::Spf, Level::Problem, "2 SPF records"),
                (Check::Dmarc, Level::Problem, "unknown policy p=maybe"),
            ],
        },
        Case {
            name: "an Ed25519 record for an RSA key, SPF open to all, DMARC rejecting",
            records: vec![
                ("herald._domainkey", own_key.replace("k=rsa", "k=ed25519")),
                ("@", "v=spf1 +all".into()),
                ("_dmarc", "v=DMARC1; p=reject".into()),
            ],
            expect: vec![
                (Check::Dkim, Level::Problem, "k=ed25519"),
                (Check::Spf, Level::Warning, "+all"),
                (Check::Dmarc, Level::Ok, "p=reject"),
            ],
        },
    ];
    for case in cases {
        let dns = dns_server(&case.records).await;
        let app = app_with_dns(dns, "").await;
        let report = examine(&app).await;
        for (check, level, words) in &case.expect {
            let f = finding(&report, *check);
            assert_eq!(f.level, *level, "{}: {f:?}", case.name);
            assert!(f.summary.contains(words), "{}: {f:?}", case.name);
            assert_eq!(f.fix.is_some(), *level != Level::Ok, "{}: {f:?}", case.name);
        }
        assert!(!report.ok, "{}", case.name);
        // Whatever is wrong, the fix names the exact record that would be right.
        let dkim_fix = finding(&report, Check::Dkim).fix.clone().unwrap();
        assert!(
            dkim_fix.contains(&format!("herald._domainkey.example.org with the value: {own_key}")),
            "{}: {dkim_fix}",
            case.name
        );
    }
}

#[tokio::test]
async fn an_unreachable_nameserver_is_reported_not_taken_for_missing_records() {
    // A UDP port where nobody answers: bound, then never read.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let app = app_with_dns(silent.local_addr().unwrap(), "").await;
    let report = examine(&app).await;
    for check in [Check::Dkim, Check::Spf, Check::Dmarc] {
        let f = finding(&report, check);
        assert_eq!(f.level, Level::Problem, "{f:?}");
        assert!(f.summary.contains("could not be looked up"), "{f:?}");
    }
}

/// A post of about `kb` kilobytes of paragraphs.
fn long_post(title: &str, date: &str, kb: usize) -> String {
    let paragraph = "The otters came back to the mill race this spring, and with them the kingfishers. ";
    let body = (0..kb * 1024 / paragraph.len() / 4)
        .map(|_| paragraph.repeat(4))
        .collect::<Vec<_>>()
        .join("\n\n");
    post(title, date, &["wildlife"], &body)
}

#[tokio::test]
async fn a_digest_over_gmails_clip_is_a_problem_and_one_under_it_is_not() {
    let app = spawn_app_with("[digest]\ncontent = \"full\"\n").await;
    app.write_post("one.md", &long_post("One", "2026-01-02", 20));
    app.sync().await;
    let small = doctor::size::check(&app.app.settings, &app.app.db, &app.app.digests).await;
    assert_eq!(small.level, Level::Ok, "{small:?}");

    // Posts after the first sync are news: the next weekly edition carries these two.
    app.write_post("two.md", &long_post("Two", "2026-01-03", 55));
    app.write_post("three.md", &long_post("Three", "2026-01-04", 55));
    app.sync().await;
    let measured = doctor::size::measure(&app.app.db, &app.app.digests)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (measured.edition.as_str(), measured.posts),
        ("the next weekly edition", 2)
    );
    assert!(
        measured.size.encoded > doctor::size::GMAIL_CLIP && measured.size.decoded > 100 * 1024,
        "{measured:?}"
    );
    let big = doctor::size::check(&app.app.settings, &app.app.db, &app.app.digests).await;
    assert_eq!(big.level, Level::Problem, "{big:?}");
    assert!(big.summary.contains("Gmail clips above 102.0 KB"), "{big:?}");
    assert!(big.fix.unwrap().contains("content = \"teaser\""));
}

#[tokio::test]
async fn the_measured_size_is_the_size_of_the_html_part_herald_sends() {
    let app = spawn_app_with("").await;
    app.write_post("one.md", &long_post("One", "2026-01-02", 3));
    app.sync().await;
    let measured = doctor::size::measure(&app.app.db, &app.app.digests)
        .await
        .unwrap()
        .unwrap();
    // A real message of the same posts, as a reader gets it.
    let reader = add_subscriber(
        &app,
        "ana@example.net",
        SubscriberStatus::Confirmed,
        Frequency::Weekly,
        &[],
    )
    .await;
    let renderer = app.app.digests.renderer();
    let ids: Vec<i64> = herald::store::posts::list_public(&app.app.db, chrono::Utc::now(), None, 3, 0)
        .await
        .unwrap()
        .iter()
        .map(|p| p.id)
        .collect();
    let content = herald::digest::render::EditionContent::preview(renderer, Frequency::Weekly, &ids)
        .await
        .unwrap();
    let variant = content.variant(renderer, &[]).unwrap().unwrap();
    let (_, bytes) = herald::digest::render::message(renderer, &content, &variant, &reader).unwrap();
    let message = mail_parser::MessageParser::default().parse(&bytes).unwrap();
    let html = message.html_part(0).unwrap();
    let raw_html_part = &bytes[html.raw_body_offset() as usize..html.raw_end_offset() as usize];
    let decoded = message.body_html(0).unwrap();
    // Same length of links, so the same size, give or take line ends.
    let near = |a: usize, b: usize| a.abs_diff(b) <= a / 50;
    assert!(
        near(measured.size.encoded, raw_html_part.len()),
        "{measured:?} vs {}",
        raw_html_part.len()
    );
    assert!(
        near(measured.size.decoded, decoded.len()),
        "{measured:?} vs {}",
        decoded.len()
    );
}

/// A site that answers every request with `status`, keeping the POSTs it got.
async fn refusing_site(status: StatusCode) -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = seen.clone();
    let router = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let kept = kept.clone();
        async move {
            let path = request.uri().path().to_owned();
            let body = axum::body::to_bytes(request.into_body(), 1024).await.unwrap();
            kept.lock()
                .unwrap()
                .push((path, String::from_utf8_lossy(&body).into_owned()));
            status
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (address, seen)
}

fn settings_at(base_url: &str) -> herald::config::Settings {
    let mut settings = herald::config::Settings::default();
    settings.site.base_url = url::Url::parse(base_url).unwrap();
    settings
}

#[tokio::test]
async fn one_click_passes_against_herald_and_unsubscribes_nobody() {
    let app = spawn_app_with("").await;
    let reader = add_subscriber(
        &app,
        "ana@example.net",
        SubscriberStatus::Confirmed,
        Frequency::Weekly,
        &[],
    )
    .await;

    let finding = doctor::site::check_one_click(&app.app.settings).await;

    assert_eq!(finding.level, Level::Ok, "{finding:?}");
    assert!(finding.summary.contains("404"), "{finding:?}");
    let still = herald::store::subscribers::find(&app.app.db, reader.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.status, SubscriberStatus::Confirmed);
}

#[tokio::test]
async fn one_click_fails_against_a_site_that_refuses_the_post_or_breaks() {
    for (status, words) in [
        (StatusCode::METHOD_NOT_ALLOWED, "refuses POST"),
        (StatusCode::INTERNAL_SERVER_ERROR, "Herald's log"),
        (StatusCode::FORBIDDEN, "bot challenges"),
        (StatusCode::MOVED_PERMANENTLY, "base_url"),
    ] {
        let (base, seen) = refusing_site(status).await;
        let finding = doctor::site::check_one_click(&settings_at(&base)).await;
        assert_eq!(finding.level, Level::Problem, "{status}: {finding:?}");
        assert!(finding.summary.contains(status.as_str()), "{finding:?}");
        assert!(finding.fix.as_deref().unwrap().contains(words), "{status}: {finding:?}");
        // What a mail provider sends (RFC 8058 §3.2), to a token that is nobody's.
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "one request, no redirect followed");
        assert!(seen[0].0.starts_with("/unsubscribe/") && seen[0].0.len() == "/unsubscribe/".len() + 43);
        assert_eq!(seen[0].1, "List-Unsubscribe=One-Click");
    }
    // Nobody listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let finding = doctor::site::check_one_click(&settings_at(&base)).await;
    assert_eq!(finding.level, Level::Problem);
    assert!(finding.summary.contains("got no answer"), "{finding:?}");
    assert_eq!(
        finding.summary.matches("unsubscribe/").count(),
        finding.summary.matches("unsubscribe/…").count(),
        "the made-up token is not shown: {finding:?}"
    );
}

#[test]
fn herald_doctor_prints_a_table_or_json_and_fails_on_a_problem() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dns = runtime.block_on(dns_server(&good_records()));
    let (site, _) = runtime.block_on(refusing_site(StatusCode::NOT_FOUND));
    let (dir, config) = crate::cli::project(&[]);
    let settings = |base_url: &str| {
        format!(
            "[site]\nbase_url = \"{base_url}\"\n[mail]\nfrom = \"News <news@example.org>\"\n[mail.dkim]\n\
             selector = \"herald\"\ndomain = \"example.org\"\nprivate_key_path = \"{}\"\n[doctor]\nnameserver = \"{dns}\"\n",
            signing_key_path()
        )
    };
    std::fs::write(&config, settings(&site)).unwrap();
    let run = |format: &str| {
        crate::cli::herald()
            .arg("--config")
            .arg(&config)
            .args(["doctor", "--format", format])
            .output()
            .unwrap()
    };
    let table = run("table");
    let out = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&table.stderr)
    );
    assert!(out.starts_with("check"), "{out}");
    for label in [
        "DKIM",
        "SPF",
        "DMARC",
        "digest size",
        "one-click unsubscribe",
        "base URL",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(label) && l.contains(" ok ")),
            "{label}: {out}"
        );
    }
    assert!(out.contains("All clear."), "{out}");

    // A plain-HTTP public address is a problem: the exit status says so, the fix says how.
    std::fs::write(&config, settings(&site.replace("127.0.0.1", "localhost.example"))).unwrap();
    let json = run("json");
    assert_eq!(json.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let base = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "base-url")
        .unwrap();
    assert_eq!(base["level"], "problem");
    assert!(
        base["fix"]
            .as_str()
            .unwrap()
            .contains("base_url = \"https://localhost.example"),
        "{base}"
    );
    drop(dir);
}
