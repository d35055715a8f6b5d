//! Consent evidence, a person's history, the purge of unconfirmed subscriptions and erasure,
//! through the real form, mail, API, command line and database (SQLite, or PostgreSQL when
//! `HERALD_TEST_DATABASE_URL` is set).

use std::time::Duration;

use chrono::Utc;
use herald::domain::{EmailAddress, Frequency, SubscriberStatus};
use serde_json::Value;

use crate::cli::herald;
use crate::common::{TestApp, add_subscriber, post, spawn_app_with};
use crate::smtp::SmtpServer;
use crate::subscribers::{confirm_link, requests_settled};

async fn app_with_smtp(smtp: &SmtpServer, extra: &str) -> TestApp {
    let app = spawn_app_with(&format!(
        "[mail]\ntransport = \"smtp\"\nfrom = \"News <news@example.org>\"\n\
         [mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\n\
         [server]\ntrust_forwarded_for = true\n\
         [subscribers]\nrate_per_minute = 1000\nconfirm_resend_minutes = 0\n{extra}",
        smtp.port
    ))
    .await;
    app.write_post("otters.md", &post("Otters", "2026-09-14", &["wildlife"], "Body."));
    app.sync().await;
    app
}

/// Posts the subscribe form and follows the link of the `nth` mail the SMTP server gets.
async fn subscribe_and_confirm(app: &TestApp, smtp: &SmtpServer, form: &[(&str, &str)], nth: usize) {
    app.client.post(app.url("/subscribe")).form(form).send().await.unwrap();
    requests_settled(app).await;
    let mail = smtp.wait_for(nth, Duration::from_secs(10)).await;
    let confirmed = app.client.get(confirm_link(&mail[nth - 1].data)).send().await.unwrap();
    assert_eq!(confirmed.status(), 200);
}

/// `herald subscribers ARGS` against the test app's own config and database.
fn run(app: &TestApp, args: &[&str]) -> std::process::Output {
    herald()
        .arg("--config")
        .arg(app.dir.path().join("config.toml"))
        .arg("subscribers")
        .args(args)
        .output()
        .unwrap()
}

fn show_json(app: &TestApp, email: &str) -> Value {
    let output = run(app, &["show", email, "--format", "json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn kinds(record: &Value) -> Vec<String> {
    record["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

async fn manage_token(app: &TestApp, email: &str) -> String {
    herald::store::subscribers::find_by_email(&app.app.db, &EmailAddress::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap()
        .manage_token
}

/// The consent wording's version in a page's subscribe form.
fn form_version(page: &str) -> String {
    let start = page
        .find("name=\"consent\" value=\"")
        .expect("the form carries the wording's version")
        + "name=\"consent\" value=\"".len();
    page[start..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_consent_record_shows_the_form_wording_confirmation_changes_and_leaving_in_order() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(&smtp, "").await;
    let email = "ana@example.org";

    // Ana reads the form and subscribes on it.
    let page = app.get_text("/subscribe").await;
    let version = form_version(&page);
    assert!(page.contains("By subscribing you agree"), "{page}");
    let response = app
        .client
        .post(app.url("/subscribe"))
        .form(&[("email", email), ("frequency", "weekly"), ("consent", version.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    requests_settled(&app).await;
    // She confirms from her phone, behind her provider's proxy.
    let mail = smtp.wait_for(1, Duration::from_secs(10)).await;
    let link = confirm_link(&mail[0].data);
    let confirmed = app
        .client
        .get(&link)
        .header("x-forwarded-for", "203.0.113.77")
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), 200);
    // She chooses daily news about wildlife, then leaves.
    let manage = manage_token(&app, email).await;
    let saved = app
        .client
        .post(app.url(&format!("/preferences/{manage}")))
        .form(&[("frequency", "daily"), ("topics", "wildlife")])
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), 200);
    app.client
        .post(app.url(&format!("/unsubscribe/{manage}")))
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();

    let record = show_json(&app, email);
    assert_eq!(record["email"], email);
    assert_eq!(record["status"], "unsubscribed");
    assert_eq!(
        kinds(&record),
        ["requested", "confirmed", "preferences_changed", "unsubscribed"]
    );
    let events = record["events"].as_array().unwrap();
    let sources: Vec<&str> = events.iter().map(|e| e["source"].as_str().unwrap()).collect();
    assert_eq!(sources, ["form", "link", "link", "link"]);
    for pair in events.windows(2) {
        assert!(pair[0]["at"].as_str() <= pair[1]["at"].as_str(), "{pair:?}");
    }
    assert_eq!(events[0]["wording_version"], version.as_str());
    assert_eq!(events[1]["ip"], "203.0.113.0", "only the network is kept");
    assert_eq!(events[1]["wording_version"], version.as_str());
    assert!(
        events[2]["detail"]
            .as_str()
            .unwrap()
            .contains("frequency weekly → daily"),
        "{}",
        events[2]
    );
    let consent = &record["consent"];
    assert_eq!(consent["source"], "form");
    assert_eq!(consent["wording"]["version"], version.as_str());
    assert!(
        consent["wording"]["text"]
            .as_str()
            .unwrap()
            .starts_with("By subscribing you agree that Test & Trust keeps your email address"),
        "{consent}"
    );
    assert_eq!(consent["confirmed_from"], "203.0.113.0");
    assert!(consent["given_at"].as_str() < consent["confirmed_at"].as_str());
    let text = serde_json::to_string(&record).unwrap();
    assert!(!text.contains("203.0.113.77"), "the full address is never kept");

    // The same for people: a table, and the history.
    let output = run(&app, &["show", email]);
    assert!(output.status.success());
    let shown = String::from_utf8_lossy(&output.stdout);
    for words in [
        "unsubscribed",
        "consent given",
        "203.0.113.0",
        &version,
        "preferences_changed",
    ] {
        assert!(shown.contains(words), "{words:?} in {shown}");
    }
    // The console's page shows the same history, and an admin's edit joins it by name.
    let console = crate::console::Console::new(&app).await;
    let id = record["id"].as_i64().unwrap();
    let saved = console
        .post(
            &format!("/admin/subscribers/{id}"),
            &[("name", "Ana".to_owned()), ("frequency", "weekly".to_owned())],
        )
        .await;
    let page = console.follow(saved).await;
    for kind in [
        "requested",
        "confirmed",
        "preferences_changed",
        "unsubscribed",
        "edited",
    ] {
        assert!(page.contains(&format!("data-kind=\"{kind}\"")), "{kind} on the page");
    }
    assert!(page.contains("console (ops@example.org)"), "{page}");
    assert!(page.contains("from 203.0.113.0"), "{page}");
    assert!(
        page.contains("By subscribing you agree that Test &amp; Trust"),
        "{page}"
    );
    assert_eq!(kinds(&show_json(&app, email)).last().unwrap(), "edited");

    // An address not on the list is an error, not an empty record.
    let missing = run(&app, &["show", "nobody@example.org"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not on the list"));
}

#[tokio::test]
async fn an_import_keeps_its_file_name_and_the_api_its_token_name() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(&smtp, "").await;
    let token = herald::auth::create_token(&app.app.db, "crm-sync").await.unwrap();
    let created = app
        .client
        .post(app.url("/admin/api/subscribers"))
        .header("authorization", format!("Bearer {token}"))
        .json(&serde_json::json!({"email": "api@example.org", "status": "confirmed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let record: Value = app
        .client
        .get(app.url(&format!("/admin/api/subscribers/{id}/record")))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(record["consent"]["source"], "api");
    assert_eq!(record["consent"]["by"], "crm-sync");
    assert_eq!(record["events"][0]["kind"], "added");
    assert_eq!(record["events"][0]["by"], "crm-sync");

    let file = app.dir.path().join("members-2026.csv");
    std::fs::write(&file, "email,name\nimported@example.org,Ivo\n").unwrap();
    let output = run(&app, &["import", file.to_str().unwrap(), "--confirmed"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let record = show_json(&app, "imported@example.org");
    assert_eq!(record["consent"]["source"], "import");
    assert_eq!(record["consent"]["by"], "members-2026.csv");
    assert_eq!(kinds(&record), ["imported"]);
    assert_eq!(record["events"][0]["source"], "import");
}

#[tokio::test]
async fn only_pending_subscriptions_older_than_the_setting_are_purged() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(&smtp, "purge_pending_days = 30\n").await;
    let db = &app.app.db;
    let long_ago = Utc::now() - chrono::Duration::days(31);
    let lately = Utc::now() - chrono::Duration::days(29);
    let add = |email: &'static str, status, at| {
        let new = herald::store::subscribers::NewSubscriber {
            email: EmailAddress::parse(email).unwrap(),
            name: None,
            status,
            frequency: Frequency::Weekly,
            topics: Vec::new(),
            source: herald::domain::SubscriberSource::Form,
            consent_at: Some(at),
        };
        async move { herald::store::subscribers::insert_or_get(db, &new, at).await.unwrap().0 }
    };
    let stale = add("stale@example.org", SubscriberStatus::Pending, long_ago).await;
    add("fresh@example.org", SubscriberStatus::Pending, lately).await;
    add("member@example.org", SubscriberStatus::Confirmed, long_ago).await;
    add("left@example.org", SubscriberStatus::Unsubscribed, long_ago).await;
    // The stale one's confirmation mail bounced: the report names the address.
    let bounce = herald::store::bounces::NewBounceEvent {
        subscriber_id: Some(stale.id),
        address: "stale@example.org",
        kind: herald::domain::BounceKind::Soft,
        diagnostic: Some("452 mailbox of stale@example.org is full"),
        source: herald::domain::BounceSource::Smtp,
        edition_id: None,
        external_id: None,
        occurred_at: long_ago,
        recorded_at: long_ago,
    };
    herald::store::bounces::insert(db, &bounce).await.unwrap();

    assert_eq!(app.app.subscriptions.purge_pending(Utc::now()).await.unwrap(), 1);
    assert_eq!(app.app.subscriptions.purge_pending(Utc::now()).await.unwrap(), 0);
    let left: Vec<String> = herald::store::subscribers::list(
        db,
        &herald::store::subscribers::ListFilter {
            limit: 100,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .into_iter()
    .map(|s| s.email.to_string())
    .collect();
    assert_eq!(left, ["fresh@example.org", "member@example.org", "left@example.org"]);
    assert!(addresses_in_database(&app, "stale@example.org").await.is_empty());
    // Nothing is suppressed: they never joined, and may ask again.
    let stale_address = EmailAddress::parse("stale@example.org").unwrap();
    assert_eq!(app.app.subscriptions.erased_at(&stale_address).await.unwrap(), None);
}

#[tokio::test]
async fn the_purge_days_cannot_be_shorter_than_a_confirmation_link_lives() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[subscribers]\nconfirm_token_days = 7\npurge_pending_days = 3\n",
    )
    .unwrap();
    let error = herald::config::Settings::load(&config).unwrap_err();
    assert!(
        format!("{error:#}").contains("subscribers.purge_pending_days"),
        "{error:#}"
    );
}

/// Every `(table, column)` whose text holds `needle` (case-insensitively), in every table.
async fn addresses_in_database(app: &TestApp, needle: &str) -> Vec<(String, String)> {
    use sqlx::Row;
    let needle = needle.to_lowercase();
    let mut found = Vec::new();
    match &app.app.db {
        herald::store::Db::Sqlite(pool) => {
            let tables: Vec<String> =
                sqlx::query_scalar("select name from sqlite_master where type = 'table' and name not like 'sqlite_%'")
                    .fetch_all(pool)
                    .await
                    .unwrap();
            for table in tables {
                let columns: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "select name from pragma_table_info('{table}')"
                )))
                .fetch_all(pool)
                .await
                .unwrap();
                for column in columns {
                    let sql = format!(
                        "select count(*) from \"{table}\" where instr(lower(cast(\"{column}\" as text)), $1) > 0"
                    );
                    let n: i64 = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(&needle)
                        .fetch_one(pool)
                        .await
                        .unwrap()
                        .get(0);
                    if n > 0 {
                        found.push((table.clone(), column));
                    }
                }
            }
        }
        herald::store::Db::Postgres(pool) => {
            let columns: Vec<(String, String, String)> = sqlx::query_as(
                "select table_name::text, column_name::text, data_type::text from information_schema.columns \
                 where table_schema = 'public' and data_type in ('text', 'character varying', 'bytea', 'json', 'jsonb')",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            for (table, column, data_type) in columns {
                let text = if data_type == "bytea" {
                    format!("encode(\"{column}\", 'escape')")
                } else {
                    format!("\"{column}\"::text")
                };
                let sql = format!("select count(*) from \"{table}\" where strpos(lower({text}), $1) > 0");
                let n: i64 = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&needle)
                    .fetch_one(pool)
                    .await
                    .unwrap()
                    .get(0);
                if n > 0 {
                    found.push((table, column));
                }
            }
        }
    }
    found
}

#[tokio::test]
async fn an_erased_person_leaves_no_address_and_a_later_import_refuses_them_row_by_row() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(&smtp, "").await;
    let email = "Erin.Erased@Example.org";
    let token = herald::auth::create_token(&app.app.db, "gdpr-desk").await.unwrap();
    // Erin subscribes and confirms; a bounce report quotes her address; a neighbour stays.
    subscribe_and_confirm(&app, &smtp, &[("email", email), ("name", "Erin")], 1).await;
    let report = herald::bounces::BounceReport {
        address: email.to_owned(),
        kind: herald::domain::BounceKind::Soft,
        diagnostic: Some(format!("452 4.2.2 <{email}>: mailbox full")),
        source: herald::domain::BounceSource::Postmark,
        message_id: None,
        external_id: Some("pm-1".to_owned()),
        occurred_at: Utc::now(),
    };
    app.app.bounces.record(report).await.unwrap();
    add_subscriber(
        &app,
        "neighbour@example.org",
        SubscriberStatus::Confirmed,
        Frequency::Weekly,
        &[],
    )
    .await;
    let erin = herald::store::subscribers::find_by_email(&app.app.db, &EmailAddress::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(
        !addresses_in_database(&app, email).await.is_empty(),
        "the scan finds her before"
    );

    // She asks to be forgotten.
    let erased = app
        .client
        .delete(app.url(&format!("/admin/api/subscribers/{}", erin.id)))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(erased.status(), 204);
    assert_eq!(addresses_in_database(&app, email).await, Vec::<(String, String)>::new());
    assert_eq!(
        addresses_in_database(&app, "erin.erased").await,
        Vec::<(String, String)>::new()
    );
    assert_eq!(
        addresses_in_database(&app, "neighbour@example.org").await.len(),
        2,
        "the scan finds addresses that are there (email, email_key)"
    );

    // A later import of an old list refuses her, saying so on her row; the others import.
    let today = Utc::now().format("%Y-%m-%d").to_string();
    let file = app.dir.path().join("old-list.csv");
    std::fs::write(&file, "email,name\nnew@example.org,New\nerin.erased@example.org,Erin\n").unwrap();
    let output = run(&app, &["import", file.to_str().unwrap(), "--confirmed"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "row 3: erin.erased@example.org was erased at their request on {today}; not imported"
        )),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("1 added"));
    assert_eq!(addresses_in_database(&app, email).await, Vec::<(String, String)>::new());
    // Nor does the API or the command line add her.
    let again = app
        .client
        .post(app.url("/admin/api/subscribers"))
        .header("authorization", format!("Bearer {token}"))
        .json(&serde_json::json!({"email": email, "status": "confirmed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    assert!(again.text().await.unwrap().contains("erased at their request"));
    let cli = run(&app, &["add", email, "--confirmed"]);
    assert!(!cli.status.success());
    assert!(String::from_utf8_lossy(&cli.stderr).contains("erased at their request"));

    // She may come back herself: her own request, confirmed by her link, lifts the suppression.
    subscribe_and_confirm(&app, &smtp, &[("email", email)], 2).await;
    let erin = EmailAddress::parse(email).unwrap();
    assert_eq!(app.app.subscriptions.erased_at(&erin).await.unwrap(), None);
    let record = show_json(&app, email);
    assert_eq!(record["status"], "confirmed");
    assert_eq!(
        kinds(&record),
        ["requested", "confirmed"],
        "her old history went with her"
    );
}
