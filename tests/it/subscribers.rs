use std::time::Duration;

use herald::domain::{EmailAddress, SubscriberStatus};
use mail_parser::{MessageParser, MimeHeaders};
use reqwest::header;

use crate::common::{TestApp, add_subscriber, post, spawn_app_with};
use crate::smtp::{Behaviour, SmtpServer};

const TOKEN: &str = "test-admin-token-0123456789";

async fn app_with_smtp(smtp: &SmtpServer, extra: &str) -> TestApp {
    let app = spawn_app_with(&format!(
        "[mail]\ntransport = \"smtp\"\nfrom = \"Riverside News <news@example.org>\"\nretry_base_seconds = 1\n\
         [mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\n[admin]\napi_token = \"{TOKEN}\"\n{extra}",
        smtp.port
    ))
    .await;
    app.write_post("otters.md", &post("Otters", "2026-09-14", &["wildlife"], "Body."));
    app.write_post("water.md", &post("Water", "2026-09-15", &["water-quality"], "Body."));
    app.sync().await;
    app
}

async fn subscribe(app: &TestApp, form: &[(&str, &str)]) -> reqwest::Response {
    app.client.post(app.url("/subscribe")).form(form).send().await.unwrap()
}

async fn subscriber(app: &TestApp, email: &str) -> Option<herald::domain::Subscriber> {
    herald::store::subscribers::find_by_email(&app.app.db, &EmailAddress::parse(email).unwrap())
        .await
        .unwrap()
}

/// Waits until the background worker has acted on every stored form request.
pub async fn requests_settled(app: &TestApp) {
    for _ in 0..200 {
        if herald::store::requests::pending(&app.app.db).await.unwrap() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("subscription requests still waiting after 5 s");
}

pub fn confirm_link(data: &[u8]) -> String {
    let message = MessageParser::default().parse(data).unwrap();
    let text = message.body_text(0).unwrap();
    let start = text.find("http").unwrap();
    text[start..].split_whitespace().next().unwrap().to_owned()
}

#[tokio::test]
async fn the_confirmation_mail_arrives_and_its_link_confirms() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(&smtp, "").await;
    let response = subscribe(
        &app,
        &[
            ("email", "Ana+News@Example.org"),
            ("name", "Ana Smith"),
            ("frequency", "daily"),
            ("topics", "wildlife"),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("Check your inbox"));
    let mail = smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].to, ["Ana+News@Example.org"]);
    assert_eq!(mail[0].from, "news@example.org");

    let message = MessageParser::default().parse(&mail[0].data).unwrap();
    assert_eq!(message.content_type().unwrap().subtype(), Some("alternative"));
    assert_eq!(message.subject(), Some("Confirm your subscription to Test & Trust"));
    assert!(message.message_id().unwrap().ends_with("@example.org"));
    assert!(message.date().is_some());
    assert_eq!(message.to().unwrap().first().unwrap().name(), Some("Ana Smith"));
    let text = message.body_text(0).unwrap();
    let html = message.body_html(0).unwrap();
    let link = confirm_link(&mail[0].data);
    assert!(link.starts_with(&app.url("/confirm/")), "{link}");
    assert!(
        text.contains(&link) && html.contains(&link),
        "both parts carry the link"
    );
    assert!(
        html.contains("style=\""),
        "CSS is inlined for clients that strip <style>"
    );
    let token = link.rsplit('/').next().unwrap();
    assert!(token.len() >= 43, "at least 256 bits, base64url: {token}");

    assert_eq!(
        subscriber(&app, "ana+news@example.org").await.unwrap().status,
        SubscriberStatus::Pending
    );
    let page = app.client.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("You are subscribed"));
    let s = subscriber(&app, "ana+news@example.org").await.unwrap();
    assert_eq!(s.status, SubscriberStatus::Confirmed);
    assert_eq!(s.email.as_str(), "Ana+News@Example.org", "stored as given");
    assert_eq!(s.topics, ["wildlife"]);
    assert!(s.confirmed_at.is_some() && s.consent_at.is_some());
    // Following the link again is harmless.
    assert_eq!(app.client.get(&link).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn the_form_answers_the_same_whoever_is_asking() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(&smtp, "").await;
    let form = |email: &'static str| vec![("email", email), ("frequency", "weekly")];
    let new = subscribe(&app, &form("new@example.org")).await.text().await.unwrap();

    subscribe(&app, &form("known@example.org")).await;
    let mail = smtp.wait_for(2, Duration::from_secs(10)).await;
    let link = mail
        .iter()
        .find(|m| m.to[0] == "known@example.org")
        .map(|m| confirm_link(&m.data))
        .unwrap();
    app.client.get(&link).send().await.unwrap();
    let confirmed = subscribe(&app, &form("known@example.org")).await.text().await.unwrap();
    let pending = subscribe(&app, &form("new@example.org")).await.text().await.unwrap();
    assert_eq!(new, confirmed, "a confirmed address looks like a new one");
    assert_eq!(new, pending, "a pending address looks like a new one");

    // Only the first request for each address mailed anything: at most one per few minutes.
    requests_settled(&app).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.count(), 2);
}

#[tokio::test]
async fn one_click_unsubscribe_needs_no_cookie_and_a_get_changes_nothing() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(&smtp, "").await;
    let s = crate::common::add_subscriber(
        &app,
        "leaver@example.org",
        SubscriberStatus::Confirmed,
        herald::domain::Frequency::Weekly,
        &[],
    )
    .await;
    let url = app.url(&format!("/unsubscribe/{}", s.manage_token));
    let page = app.client.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<button"));
    assert_eq!(
        subscriber(&app, "leaver@example.org").await.unwrap().status,
        SubscriberStatus::Confirmed
    );

    // As a mail provider does it: a bare POST, RFC 8058 body, no cookies, no Origin or its own.
    for origin in [None, Some("https://mail.example.net")] {
        let mut request = reqwest::Client::new()
            .post(&url)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click");
        if let Some(origin) = origin {
            request = request
                .header(header::ORIGIN, origin)
                .header("sec-fetch-site", "cross-site");
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            200,
            "200, never a redirect, and idempotent ({origin:?})"
        );
    }
    assert_eq!(
        subscriber(&app, "leaver@example.org").await.unwrap().status,
        SubscriberStatus::Unsubscribed
    );
    let wrong = app
        .client
        .post(app.url("/unsubscribe/not-a-token"))
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 404);
}

#[tokio::test]
async fn tricky_addresses_and_fields_are_accepted_or_refused_with_a_reason() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(&smtp, "[subscribers]\nrate_per_minute = 1000\n").await;
    let cases: &[(&str, bool)] = &[
        ("plain@example.org", true),
        ("first.last@example.org", true),
        ("ana+news@example.org", true),
        ("UPPER@EXAMPLE.ORG", true),
        ("someone@mail.sub.example.co.uk", true),
        ("ana@bücher.example", true),
        ("josé@example.org", true),
        ("  padded@example.org  ", true),
        ("o'neil@example.org", true),
        ("", false),
        ("plainaddress", false),
        ("@example.org", false),
        ("ana@", false),
        ("ana@@example.org", false),
        ("ana@exa@mple.org", false),
        ("ana..b@example.org", false),
        (".ana@example.org", false),
        ("ana@localhost", false),
        ("ana@[127.0.0.1]", false),
        ("ana smith@example.org", false),
        ("\"quoted\"@example.org", false),
        ("ana@example.org\r\nBcc: victim@example.net", false),
        ("ana@-example.org", false),
        ("ana@example.123", false),
    ];
    let long_local = format!("{}@example.org", "a".repeat(65));
    let long_total = format!("a@{}.example.org", "b".repeat(250));
    let mut all: Vec<(String, bool)> = cases.iter().map(|(e, ok)| (e.to_string(), *ok)).collect();
    all.push((long_local, false));
    all.push((long_total, false));
    for (email, ok) in &all {
        let response = subscribe(&app, &[("email", email.as_str())]).await;
        let status = response.status();
        let body = response.text().await.unwrap();
        if *ok {
            assert_eq!(status, 200, "{email:?} should be accepted: {body}");
        } else {
            assert_eq!(status, 422, "{email:?} should be refused");
            assert!(body.contains("class=\"error\""), "{email:?}: the reason is shown");
        }
    }
    let injected = subscribe(
        &app,
        &[
            ("email", "name@example.org"),
            ("name", "Ana\r\nBcc: victim@example.net"),
        ],
    )
    .await;
    assert_eq!(injected.status(), 422);
    let long_name = "n".repeat(101);
    let too_long = subscribe(&app, &[("email", "name@example.org"), ("name", long_name.as_str())]).await;
    assert_eq!(too_long.status(), 422);
    let bad_frequency = subscribe(&app, &[("email", "name@example.org"), ("frequency", "hourly")]).await;
    assert_eq!(bad_frequency.status(), 422);
    requests_settled(&app).await;
    assert!(
        subscriber(&app, "name@example.org").await.is_none(),
        "refused requests store nothing"
    );
    let big = "x".repeat(100 * 1024);
    let oversized = subscribe(&app, &[("email", "big@example.org"), ("name", big.as_str())]).await;
    assert_eq!(oversized.status(), 413, "request bodies are size-limited");
}

#[tokio::test]
async fn expired_and_unknown_links_get_a_helpful_page() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(&smtp, "").await;
    subscribe(&app, &[("email", "late@example.org")]).await;
    let link = confirm_link(&smtp.wait_for(1, Duration::from_secs(10)).await[0].data);
    // Age the token past its expiry.
    let past = chrono::Utc::now() - chrono::Duration::days(8);
    match &app.app.db {
        herald::store::Db::Sqlite(pool) => {
            sqlx::query("update confirmations set expires_at = $1")
                .bind(past)
                .execute(pool)
                .await
                .unwrap();
        }
        herald::store::Db::Postgres(pool) => {
            sqlx::query("update confirmations set expires_at = $1")
                .bind(past)
                .execute(pool)
                .await
                .unwrap();
        }
    }
    let expired = app.client.get(&link).send().await.unwrap();
    assert_eq!(expired.status(), 410);
    assert!(expired.text().await.unwrap().contains("This link has expired"));
    assert_eq!(
        subscriber(&app, "late@example.org").await.unwrap().status,
        SubscriberStatus::Pending
    );
    for path in ["/confirm/nonsense", "/preferences/nonsense", "/unsubscribe/nonsense"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert!(response.text().await.unwrap().contains("We do not recognise this link"));
    }
}

#[tokio::test]
async fn an_smtp_outage_delays_the_confirmation_but_loses_nothing() {
    let smtp = SmtpServer::start().await;
    smtp.set_behaviour(Behaviour::RejectAllRcpt(421, "4.3.2 Service shutting down".into()));
    let app = app_with_smtp(&smtp, "").await;
    assert_eq!(subscribe(&app, &[("email", "patient@example.org")]).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(smtp.count(), 0);
    assert!(smtp.rejected() >= 1, "the server was asked and said 421");
    let counts = herald::store::outbox::counts(&app.app.db).await.unwrap();
    assert_eq!(
        counts,
        [(herald::domain::OutboxStatus::Pending, 1)],
        "the message waits for its retry"
    );

    smtp.set_behaviour(Behaviour::Accept);
    let mail = smtp.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(mail.len(), 1, "the retry delivered it");
    assert_eq!(mail[0].to, ["patient@example.org"]);
    let link = confirm_link(&mail[0].data);
    app.client.get(&link).send().await.unwrap();
    assert_eq!(
        subscriber(&app, "patient@example.org").await.unwrap().status,
        SubscriberStatus::Confirmed
    );
}

#[tokio::test]
async fn a_permanent_refusal_marks_the_address_bounced() {
    let smtp = SmtpServer::start().await;
    smtp.set_behaviour(Behaviour::RejectRcptMatching(vec![(
        "nobody".into(),
        550,
        "5.1.1 No such user".into(),
    )]));
    let app = app_with_smtp(&smtp, "").await;
    subscribe(&app, &[("email", "nobody@example.org")]).await;
    for _ in 0..50 {
        if subscriber(&app, "nobody@example.org")
            .await
            .is_some_and(|s| s.status == SubscriberStatus::Bounced)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        subscriber(&app, "nobody@example.org").await.unwrap().status,
        SubscriberStatus::Bounced
    );
    assert_eq!(
        herald::store::outbox::counts(&app.app.db).await.unwrap(),
        [(herald::domain::OutboxStatus::Failed, 1)]
    );
    // A bounced address asking again gets the same page and no mail.
    assert_eq!(subscribe(&app, &[("email", "nobody@example.org")]).await.status(), 200);
    requests_settled(&app).await;
    assert_eq!(
        herald::store::outbox::counts(&app.app.db).await.unwrap(),
        [(herald::domain::OutboxStatus::Failed, 1)]
    );
}

#[tokio::test]
async fn bots_cross_site_posts_and_floods_are_turned_away() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(&smtp, "[subscribers]\nrate_per_minute = 3\n").await;
    let bot = subscribe(
        &app,
        &[("email", "bot@example.org"), ("website", "http://spam.example")],
    )
    .await;
    assert_eq!(bot.status(), 200);
    assert!(bot.text().await.unwrap().contains("Check your inbox"));
    requests_settled(&app).await;
    assert!(
        subscriber(&app, "bot@example.org").await.is_none(),
        "the honeypot drops it silently"
    );

    let cross = app
        .client
        .post(app.url("/subscribe"))
        .header(header::ORIGIN, "https://evil.example")
        .form(&[("email", "victim@example.org")])
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    let page = cross.text().await.unwrap();
    assert!(page.contains("This form was sent from another site"), "{page}");
    requests_settled(&app).await;
    assert!(subscriber(&app, "victim@example.org").await.is_none());

    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for i in 0..3 {
            v.push(
                subscribe(&app, &[("email", &format!("flood{i}@example.org"))])
                    .await
                    .status()
                    .as_u16(),
            );
        }
        v
    };
    assert_eq!(
        statuses,
        [200, 200, 429],
        "three per minute from one client, the bot's and the cross-site one counted"
    );
}

#[tokio::test]
async fn preferences_change_what_a_subscriber_gets() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(&smtp, "").await;
    subscribe(&app, &[("email", "prefs@example.org"), ("frequency", "daily")]).await;
    let link = confirm_link(&smtp.wait_for(1, Duration::from_secs(10)).await[0].data);
    app.client.get(&link).send().await.unwrap();
    let token = subscriber(&app, "prefs@example.org").await.unwrap().manage_token;
    let url = app.url(&format!("/preferences/{token}"));
    let page = app.get_text(&format!("/preferences/{token}")).await;
    assert!(page.contains("value=\"daily\" checked"), "{page}");
    let saved = app
        .client
        .post(&url)
        .form(&[
            ("frequency", "immediate"),
            ("topics", "wildlife"),
            ("topics", "water-quality"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), 200);
    assert!(saved.text().await.unwrap().contains("Your preferences are saved."));
    let s = subscriber(&app, "prefs@example.org").await.unwrap();
    assert_eq!(s.frequency, herald::domain::Frequency::Immediate);
    assert_eq!(s.topics, ["wildlife", "water-quality"]);
    let cross = app
        .client
        .post(&url)
        .header("sec-fetch-site", "cross-site")
        .form(&[("frequency", "weekly")])
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403, "preferences forms are CSRF-safe");
}

/// Every way a status changes goes through the one state machine: a bounce suppresses an
/// unsubscribed address, a complaint outlives a bounce and leaving, a suppressed address
/// asking again gets no mail, only an admin brings it back, and nobody is added as departed.
#[tokio::test]
async fn every_change_of_status_follows_the_one_state_machine() {
    use herald::domain::{Frequency, SubscriberEvent, Transition};
    use herald::store::subscribers::apply;

    let app = spawn_app_with(&format!("[admin]\napi_token = \"{TOKEN}\"\n")).await;
    let db = &app.app.db;
    let subscriptions = &app.app.subscriptions;
    let smtp = herald::domain::Actor::new(herald::domain::EventSource::Smtp, None);
    let status = |email: &'static str| {
        let app = &app;
        async move { subscriber(app, email).await.unwrap().status }
    };

    let left = add_subscriber(
        &app,
        "left@example.org",
        SubscriberStatus::Confirmed,
        Frequency::Weekly,
        &[],
    )
    .await;
    subscriptions.unsubscribe(&left).await.unwrap();
    assert_eq!(status("left@example.org").await, SubscriberStatus::Unsubscribed);
    let bounced = apply(db, left.id, SubscriberEvent::Bounced, &smtp, None, chrono::Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bounced.transition, Transition::To(SubscriberStatus::Bounced));
    assert_eq!(status("left@example.org").await, SubscriberStatus::Bounced);

    let spam = add_subscriber(
        &app,
        "spam@example.org",
        SubscriberStatus::Confirmed,
        Frequency::Weekly,
        &[],
    )
    .await;
    apply(
        db,
        spam.id,
        SubscriberEvent::Complained,
        &smtp,
        None,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    let again = apply(db, spam.id, SubscriberEvent::Bounced, &smtp, None, chrono::Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.transition, Transition::Same);
    subscriptions.unsubscribe(&again.subscriber).await.unwrap();
    assert_eq!(status("spam@example.org").await, SubscriberStatus::Complained);
    // Asking again on the form: the same answer, and no mail.
    assert_eq!(subscribe(&app, &[("email", "spam@example.org")]).await.status(), 200);
    requests_settled(&app).await;
    assert!(herald::store::outbox::counts(db).await.unwrap().is_empty());
    // An admin's word brings them back.
    let forced = subscriptions
        .admin_update(
            spam.id,
            &Default::default(),
            Some(SubscriberStatus::Confirmed),
            &herald::domain::Actor::cli(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(forced.status, SubscriberStatus::Confirmed);

    let api = |path: &str| app.url(&format!("/admin/api{path}"));
    let departed = app
        .client
        .post(api("/subscribers"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"email": "new@example.org", "status": "bounced"}))
        .send()
        .await
        .unwrap();
    assert_eq!(departed.status(), 422);
    assert!(subscriber(&app, "new@example.org").await.is_none());
    let patched = app
        .client
        .patch(api(&format!("/subscribers/{}", left.id)))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"status": "confirmed", "frequency": "daily"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let body: serde_json::Value = patched.json().await.unwrap();
    assert_eq!(
        (&body["status"], &body["frequency"]),
        (&serde_json::json!("confirmed"), &serde_json::json!("daily"))
    );
}

#[tokio::test]
async fn the_form_refuses_a_topic_no_public_post_has() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(&smtp, "").await;
    // Scheduled: its topic is not offered on the form yet, and not named by its answer.
    app.write_post("later.md", &post("Later", "2099-01-01", &["secret-plans"], "Body."));
    app.sync().await;
    for topic in ["otterz", "secret-plans"] {
        let response = subscribe(
            &app,
            &[
                ("email", "reader@example.org"),
                ("topics", "wildlife"),
                ("topics", topic),
            ],
        )
        .await;
        assert_eq!(response.status(), 422, "{topic}");
        let page = response.text().await.unwrap();
        assert!(
            page.contains(&format!(
                "Topics: unknown topic &quot;{topic}&quot; (known topics: water-quality, wildlife)."
            )),
            "{page}"
        );
    }
    let response = subscribe(&app, &[("email", "reader@example.org"), ("topics", "wildlife")]).await;
    assert_eq!(response.status(), 200);
    crate::subscribers::requests_settled(&app).await;
    assert_eq!(
        subscriber(&app, "reader@example.org").await.unwrap().topics,
        ["wildlife"]
    );
}
