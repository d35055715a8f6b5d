use herald::domain::{EmailAddress, SubscriberStatus};
use herald::subscribers::csv::{ImportOptions, import_csv};

use crate::common::{TestApp, spawn_app, spawn_app_with};

async fn import(
    app: &TestApp,
    csv: &[u8],
    options: ImportOptions,
) -> anyhow::Result<herald::subscribers::csv::ImportReport> {
    import_csv(
        &app.app.db,
        std::io::Cursor::new(csv.to_vec()),
        options,
        herald::domain::Frequency::Weekly,
        |_| {},
    )
    .await
}

async fn status_of(app: &TestApp, email: &str) -> Option<SubscriberStatus> {
    herald::store::subscribers::find_by_email(&app.app.db, &EmailAddress::parse(email).unwrap())
        .await
        .unwrap()
        .map(|s| s.status)
}

#[tokio::test]
async fn good_rows_land_and_bad_rows_are_reported_by_line() {
    let app = spawn_app().await;
    app.write_post(
        "otters.md",
        &crate::common::post("Otters", "2026-09-14", &["wildlife", "policy"], "Body."),
    );
    app.sync().await;
    let mut csv = b"Email,Name,Frequency,Topics,Status,Notes\n\
        ana@example.org,Ana,daily,\"wildlife,policy\",confirmed,extra column ignored\n\
        not-an-address,Bob,weekly,,,\n\
        cy@example.org,Cy,hourly,,,\n\
        di@example.org,,,,,\n\
        eve@example.org,\"Eve\r\nBcc: x@evil.example\",,,,\n\
        fay@example.org,Fay,weekly,,gone,\n"
        .to_vec();
    csv.extend_from_slice(b"gus@example.org,G\xfcnter,weekly,,,\n");
    csv.extend_from_slice(b"hal@example.org,Hal,immediate,wildlife,pending,\n");
    csv.extend_from_slice(b"ivy@example.org,Ivy,weekly,Wildlife;Otterz,,\n");
    let report = import(&app, &csv, ImportOptions::default()).await.unwrap();
    assert_eq!(
        (report.added, report.updated, report.unchanged),
        (3, 0, 0),
        "{report:#?}"
    );
    let failed: Vec<(u64, &str)> = report.failed.iter().map(|p| (p.line, p.reason.as_str())).collect();
    // Lines of the file, as an editor shows them: Eve's quoted name spans lines 6 and 7.
    assert_eq!(
        failed.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
        [3, 4, 6, 8, 9, 11],
        "{failed:#?}"
    );
    assert_eq!(
        failed[5].1, "topics: unknown topic \"otterz\" (known topics: policy, wildlife)",
        "a topic no post has would never bring mail"
    );
    assert_eq!(status_of(&app, "ivy@example.org").await, None);
    assert!(failed[0].1.starts_with("email:"), "{failed:?}");
    assert!(failed[1].1.contains("hourly"), "{failed:?}");
    assert!(failed[2].1.starts_with("name:"), "{failed:?}");
    assert!(failed[3].1.contains("gone"), "{failed:?}");
    assert!(failed[4].1.contains("UTF-8"), "{failed:?}");
    assert_eq!(
        status_of(&app, "ana@example.org").await,
        Some(SubscriberStatus::Confirmed)
    );
    assert_eq!(status_of(&app, "di@example.org").await, Some(SubscriberStatus::Pending));
    assert_eq!(
        status_of(&app, "hal@example.org").await,
        Some(SubscriberStatus::Pending)
    );
    let ana = herald::store::subscribers::find_by_email(&app.app.db, &EmailAddress::parse("ana@example.org").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ana.topics, ["wildlife", "policy"]);

    let again = import(&app, &csv, ImportOptions::default()).await.unwrap();
    assert_eq!(
        (again.added, again.updated, again.unchanged),
        (0, 0, 3),
        "re-import changes nothing"
    );
}

#[tokio::test]
async fn rows_of_a_spreadsheets_crlf_file_are_reported_at_their_own_lines_and_a_repeated_address_is_reported() {
    let app = spawn_app().await;
    let csv = b"email,name\r\n\
        ana@example.org,Ana\r\n\
        \r\n\
        not-an-address,Bob\r\n\
        eve@example.org,\"Eve\r\nBcc: x@evil.example\"\r\n\
        ANA@example.org,Ana Again\r\n\
        cy@example.org,Cy\r\n";
    let report = import(&app, csv, ImportOptions::default()).await.unwrap();
    assert_eq!((report.added, report.updated), (2, 0), "{report:#?}");
    let failed: Vec<(u64, &str)> = report.failed.iter().map(|p| (p.line, p.reason.as_str())).collect();
    // As an editor numbers them: the blank line is 3, Eve's quoted name spans 5 and 6.
    assert_eq!(
        failed.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
        [4, 5, 7],
        "{failed:#?}"
    );
    assert!(failed[0].1.starts_with("email:"), "{failed:?}");
    assert!(failed[1].1.starts_with("name:"), "{failed:?}");
    assert!(failed[2].1.contains("on line 2 already"), "{failed:?}");
    let ana = herald::store::subscribers::find_by_email(&app.app.db, &EmailAddress::parse("ana@example.org").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ana.name.as_deref(),
        Some("Ana"),
        "the first row for an address is the one applied"
    );
}

#[tokio::test]
async fn departed_addresses_stay_departed_unless_forced() {
    let app = spawn_app().await;
    import(
        &app,
        b"email,status\nleft@example.org,unsubscribed\nbounce@example.org,bounced\n",
        ImportOptions::default(),
    )
    .await
    .unwrap();
    let confirmed = ImportOptions {
        confirmed: true,
        force: false,
    };
    let report = import(
        &app,
        b"email\nleft@example.org\nbounce@example.org\nnew@example.org\n",
        confirmed,
    )
    .await
    .unwrap();
    assert_eq!(report.added, 1);
    assert_eq!(report.kept.iter().map(|k| k.line).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(
        status_of(&app, "left@example.org").await,
        Some(SubscriberStatus::Unsubscribed)
    );
    assert_eq!(
        status_of(&app, "bounce@example.org").await,
        Some(SubscriberStatus::Bounced)
    );
    assert_eq!(
        status_of(&app, "new@example.org").await,
        Some(SubscriberStatus::Confirmed)
    );
    let forced = ImportOptions {
        confirmed: true,
        force: true,
    };
    let report = import(&app, b"email\nleft@example.org\n", forced).await.unwrap();
    assert_eq!(report.updated, 1);
    assert_eq!(
        status_of(&app, "left@example.org").await,
        Some(SubscriberStatus::Confirmed)
    );
}

#[tokio::test]
async fn without_force_an_import_records_only_a_stronger_departure() {
    let app = spawn_app().await;
    import(
        &app,
        b"email,status\nleft@example.org,unsubscribed\nbounce@example.org,bounced\nspam@example.org,complained\n",
        ImportOptions::default(),
    )
    .await
    .unwrap();
    let report = import(
        &app,
        b"email,status\nleft@example.org,bounced\nbounce@example.org,unsubscribed\nspam@example.org,bounced\n",
        ImportOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.updated, 1);
    assert_eq!(report.kept.iter().map(|k| k.line).collect::<Vec<_>>(), [3, 4]);
    assert_eq!(
        report.kept[0].reason,
        "bounce@example.org is bounced; not made unsubscribed without --force"
    );
    assert_eq!(
        status_of(&app, "left@example.org").await,
        Some(SubscriberStatus::Bounced)
    );
    assert_eq!(
        status_of(&app, "bounce@example.org").await,
        Some(SubscriberStatus::Bounced)
    );
    assert_eq!(
        status_of(&app, "spam@example.org").await,
        Some(SubscriberStatus::Complained),
        "a complaint is never weakened"
    );
    let forced = ImportOptions {
        confirmed: false,
        force: true,
    };
    let report = import(&app, b"email,status\nspam@example.org,unsubscribed\n", forced)
        .await
        .unwrap();
    assert_eq!(report.updated, 1);
    assert_eq!(
        status_of(&app, "spam@example.org").await,
        Some(SubscriberStatus::Unsubscribed)
    );
}

#[tokio::test]
async fn a_file_without_a_header_is_refused_as_a_whole() {
    let app = spawn_app().await;
    let err = import(
        &app,
        b"ana@example.org,Ana\nbob@example.org,Bob\n",
        ImportOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no header"), "{err}");
    let err = import(&app, b"", ImportOptions::default()).await.unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
    assert_eq!(status_of(&app, "ana@example.org").await, None);
}

#[tokio::test]
async fn the_api_needs_its_token_and_manages_the_list() {
    let app = spawn_app_with("[admin]\napi_token = \"s3cret-token-for-tests\"\n").await;
    app.write_post(
        "otters.md",
        &crate::common::post("Otters", "2026-09-14", &["wildlife", "policy"], "Body."),
    );
    app.sync().await;
    let api = |path: &str| app.url(&format!("/admin/api{path}"));
    for auth in [None, Some("Bearer wrong"), Some("s3cret-token-for-tests")] {
        let mut request = app.client.get(api("/subscribers"));
        if let Some(a) = auth {
            request = request.header("authorization", a);
        }
        assert_eq!(request.send().await.unwrap().status(), 401, "{auth:?}");
    }
    let client = &app.client;
    let bearer = "Bearer s3cret-token-for-tests";
    let created = client
        .post(api("/subscribers"))
        .header("authorization", bearer)
        .json(&serde_json::json!({"email": "api@example.org", "name": "Api", "status": "confirmed", "topics": ["Wildlife"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let body: serde_json::Value = created.json().await.unwrap();
    assert_eq!(body["topics"], serde_json::json!(["wildlife"]));
    let unknown = client
        .post(api("/subscribers"))
        .header("authorization", bearer)
        .json(&serde_json::json!({"email": "other@example.org", "topics": ["otterz"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 422);
    let problem: serde_json::Value = unknown.json().await.unwrap();
    assert_eq!(
        problem["error"],
        "unknown topic \"otterz\" (known topics: policy, wildlife)"
    );
    assert!(body.get("manage_token").is_none(), "tokens never leave through the API");
    let id = body["id"].as_i64().unwrap();

    let dup = client
        .post(api("/subscribers"))
        .header("authorization", bearer)
        .json(&serde_json::json!({"email": "API@example.org"}))
        .send()
        .await
        .unwrap();
    assert_eq!(dup.status(), 409);
    let bad = client
        .post(api("/subscribers"))
        .header("authorization", bearer)
        .json(&serde_json::json!({"email": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    assert!(
        bad.json::<serde_json::Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .contains('@')
    );

    let patched = client
        .patch(api(&format!("/subscribers/{id}")))
        .header("authorization", bearer)
        .json(&serde_json::json!({"frequency": "daily"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.json::<serde_json::Value>().await.unwrap()["frequency"], "daily");

    let imported = client
        .post(api("/subscribers/import?confirmed=true"))
        .header("authorization", bearer)
        .body("email,name\na1@example.org,A1\nbroken,B\na2@example.org,A2\n")
        .send()
        .await
        .unwrap();
    let report: serde_json::Value = imported.json().await.unwrap();
    assert_eq!(report["added"], 2);
    assert_eq!(report["failed"][0]["line"], 3);

    let page: serde_json::Value = client
        .get(api("/subscribers?status=confirmed&limit=2"))
        .header("authorization", bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let after = page["next_after"].as_i64().unwrap();
    let rest: serde_json::Value = client
        .get(api(&format!("/subscribers?status=confirmed&limit=2&after={after}")))
        .header("authorization", bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert!(rest["next_after"].is_null());

    let deleted = client
        .delete(api(&format!("/subscribers/{id}")))
        .header("authorization", bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = client
        .get(api(&format!("/subscribers/{id}")))
        .header("authorization", bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
}

/// What the public form lets anyone type, aimed at whoever opens the export in a spreadsheet.
const HOSTILE_SIGNUPS: [(&str, &str); 5] = [
    (
        "formula@example.org",
        "=HYPERLINK(\"https://evil.example/?x\",\"Click me\")",
    ),
    ("plus@example.org", "+1+cmd|' /C calc'!A0"),
    ("minus@example.org", "-2+3"),
    ("at@example.org", "@SUM(1,2)"),
    ("=2+5@example.org", "'=quoted already"),
];

/// Every cell of a CSV document, checked as a spreadsheet would see it; returns the rows.
fn spreadsheet_safe_rows(what: &str, csv_text: &str) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(csv_text.as_bytes());
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    for cell in rows.iter().flatten() {
        assert!(
            !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
            "{what}: {cell:?} would run as a formula:\n{csv_text}"
        );
    }
    for line in csv_text.lines() {
        assert!(
            line.starts_with('"') && line.ends_with('"'),
            "{what}: every cell quoted: {line}"
        );
    }
    rows
}

#[tokio::test]
async fn names_from_the_public_form_never_run_as_formulas_in_any_export_and_import_back_unchanged() {
    let app = spawn_app().await;
    for (email, name) in HOSTILE_SIGNUPS {
        let response = app
            .client
            .post(app.url("/subscribe"))
            .form(&[("email", email), ("name", name), ("frequency", "weekly")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{email}");
    }
    crate::subscribers::requests_settled(&app).await;

    // The API's export, the console's, and the command line's.
    let token = herald::auth::create_token(&app.app.db, "export").await.unwrap();
    let api = app
        .client
        .get(app.url("/admin/api/subscribers/export"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 200);
    let api = api.text().await.unwrap();
    herald::auth::create_user(&app.app.db, "ops@example.org", "the right passphrase")
        .await
        .unwrap();
    let login = app
        .client
        .post(app.url("/admin/login"))
        .form(&[("email", "ops@example.org"), ("password", "the right passphrase")])
        .send()
        .await
        .unwrap();
    let session = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let console = app
        .client
        .get(app.url("/admin/subscribers/export.csv"))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(console.status(), 200);
    let console = console.text().await.unwrap();
    let config = app.dir.path().join("config.toml");
    let cli = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .env_remove("HERALD_CONFIG")
            .env("HERALD_LOG", "warn")
            .arg("--config")
            .arg(config)
            .args(["subscribers", "export"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let cli = String::from_utf8(cli.stdout).unwrap();

    for (what, text) in [("API export", &api), ("console export", &console), ("CLI export", &cli)] {
        let rows = spreadsheet_safe_rows(what, text);
        assert_eq!(rows.len(), 1 + HOSTILE_SIGNUPS.len(), "{what}");
        for (email, name) in HOSTILE_SIGNUPS {
            assert!(
                rows.iter()
                    .any(|r| r[0] == herald::subscribers::csv::neutralise(email) && r[1] == format!("'{name}")),
                "{what}: {email} with its name behind one quote:\n{text}"
            );
        }
    }

    // The export imports back as it was: into the same list, nothing changes; into a new
    // list, every name and address arrives exactly as typed.
    let same = import(&app, api.as_bytes(), ImportOptions::default()).await.unwrap();
    assert_eq!(
        (same.added, same.updated, same.unchanged, same.failed.len()),
        (0, 0, HOSTILE_SIGNUPS.len(), 0),
        "{same:#?}"
    );
    let other = spawn_app().await;
    let moved = import(&other, api.as_bytes(), ImportOptions::default()).await.unwrap();
    assert_eq!(
        (moved.added, moved.failed.len()),
        (HOSTILE_SIGNUPS.len(), 0),
        "{moved:#?}"
    );
    for (email, name) in HOSTILE_SIGNUPS {
        let s = herald::store::subscribers::find_by_email(&other.app.db, &EmailAddress::parse(email).unwrap())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{email} imported"));
        assert_eq!(s.email.as_str(), email);
        assert_eq!(s.name.as_deref(), Some(name), "{email}");
    }
}
