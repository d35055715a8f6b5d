use std::time::Duration;

use herald::domain::{Frequency, SubscriberStatus};

use crate::common::{post, spawn_app_with};
use crate::smtp::{Behaviour, SmtpServer};

#[tokio::test]
async fn the_console_tasks_are_in_the_api_too() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(&format!(
        "[mail]\ntransport = \"smtp\"\nfrom = \"News <news@example.org>\"\nmax_attempts = 1\n[mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\n",
        smtp.port
    ))
    .await;
    let token = herald::auth::create_token(&app.app.db, "test").await.unwrap();
    let call = |method: reqwest::Method, path: &str| {
        app.client
            .request(method, app.url(&format!("/admin/api{path}")))
            .header("authorization", format!("Bearer {token}"))
    };
    app.write_post("archive.md", &post("Archive", "2026-01-01", &["news"], "Old."));
    app.sync().await;
    for email in ["ok@example.org", "later@example.org"] {
        crate::common::add_subscriber(&app, email, SubscriberStatus::Confirmed, Frequency::Daily, &[]).await;
    }
    app.write_post("news.md", &post("Fresh news", "2026-09-14", &["news"], "New."));
    app.write_post(
        "draft.md",
        "---\ntitle: Unfinished\ndate: 2026-09-14\ndraft: true\n---\nx\n",
    );
    app.sync().await;

    let posts: serde_json::Value = call(reqwest::Method::GET, "/posts")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let states: Vec<(String, String)> = posts
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["title"].as_str().unwrap().to_owned(),
                p["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(states.contains(&("Unfinished".into(), "draft".into())), "{states:?}");
    assert!(states.contains(&("Fresh news".into(), "published".into())));

    // One address refuses for good (max_attempts = 1): then it is fixed and retried from the API.
    smtp.set_behaviour(Behaviour::RejectRcptMatching(vec![(
        "later".into(),
        452,
        "4.2.2 Mailbox full".into(),
    )]));
    // Today's daily edition is done (the server started after its time): an extra one.
    let sent: serde_json::Value = call(reqwest::Method::POST, "/editions/send")
        .json(&serde_json::json!({"frequency": "daily", "force": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = sent["editions"][0]["id"].as_i64().unwrap();
    let status = || async {
        call(reqwest::Method::GET, &format!("/editions/{id}"))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };
    let mut now = status().await;
    for _ in 0..100 {
        if now["edition"]["status"] == "sent" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = status().await;
    }
    assert_eq!(
        (now["deliveries"]["sent"].as_i64(), now["deliveries"]["failed"].as_i64()),
        (Some(1), Some(1))
    );
    let dashboard: serde_json::Value = call(reqwest::Method::GET, "/dashboard")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dashboard["failures"][0]["email"], "later@example.org");

    smtp.set_behaviour(Behaviour::Accept);
    let retried: serde_json::Value = call(reqwest::Method::POST, &format!("/editions/{id}/retry"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(retried["queued"], 1);
    let received = smtp.wait_for(2, Duration::from_secs(10)).await;
    assert!(
        received.iter().any(|m| m.to == ["later@example.org"]),
        "the retried delivery arrived"
    );

    let test = call(reqwest::Method::POST, &format!("/editions/{id}/test"))
        .json(&serde_json::json!({"to": "me@example.org"}))
        .send()
        .await
        .unwrap();
    assert_eq!(test.status(), 200);
    let received = smtp.wait_for(3, Duration::from_secs(5)).await;
    let test_mail = received.iter().find(|m| m.to == ["me@example.org"]).unwrap();
    let message = mail_parser::MessageParser::default().parse(&test_mail.data).unwrap();
    // A test copy's links all work: its web view is the edition's page, and it says where a
    // subscriber's own links go rather than pointing them at another page.
    for body in [message.body_html(0).unwrap(), message.body_text(0).unwrap()] {
        assert!(body.contains(&format!("/editions/{id}")), "{body}");
        assert!(body.contains("This is a test"), "{body}");
        assert!(
            !body.contains("/unsubscribe/") && !body.contains("/preferences/"),
            "{body}"
        );
    }
    let web = app
        .client
        .get(app.url(&format!("/editions/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(web.status(), 200, "the test's web link works");
    let bad = call(reqwest::Method::POST, &format!("/editions/{id}/test"))
        .json(&serde_json::json!({"to": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let editions: serde_json::Value = call(reqwest::Method::GET, "/editions")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(editions[0]["id"], id);
}

#[tokio::test]
async fn logins_are_rate_limited_and_sessions_are_required() {
    let app = spawn_app_with("[admin]\nlogin_attempts_per_minute = 3\n").await;
    herald::auth::create_user(&app.app.db, "ops@example.org", "the right passphrase")
        .await
        .unwrap();
    let attempt = |password: &'static str| {
        app.client
            .post(app.url("/admin/login"))
            .form(&[("email", "ops@example.org"), ("password", password)])
            .send()
    };
    for _ in 0..3 {
        assert_eq!(attempt("wrong passphrase").await.unwrap().status(), 401);
    }
    assert_eq!(
        attempt("the right passphrase").await.unwrap().status(),
        429,
        "limited even with the right password"
    );

    let fresh = spawn_app_with("").await;
    herald::auth::create_user(&fresh.app.db, "ops@example.org", "the right passphrase")
        .await
        .unwrap();
    let ok = fresh
        .client
        .post(fresh.url("/admin/login"))
        .form(&[("email", "ops@example.org"), ("password", "the right passphrase")])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 303);
    let cookie = ok.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    let page = fresh
        .client
        .get(fresh.url("/admin/subscribers"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let api = fresh
        .client
        .get(fresh.url("/admin/api/dashboard"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 200, "the console's own API calls ride on the session");
    let forged = fresh
        .client
        .get(fresh.url("/admin/subscribers"))
        .header("cookie", "herald_session=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 303, "to the login page");
    fresh
        .client
        .post(fresh.url("/admin/logout"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    let after = fresh
        .client
        .get(fresh.url("/admin/subscribers"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 303, "the session ended at logout");
}

#[tokio::test]
async fn unreadable_api_requests_get_a_json_error_that_names_the_problem() {
    let app = spawn_app_with("").await;
    let token = herald::auth::create_token(&app.app.db, "script").await.unwrap();
    let send = |method: reqwest::Method, path: &str| {
        app.client
            .request(method, app.url(&format!("/admin/api{path}")))
            .header("authorization", format!("Bearer {token}"))
    };
    let error = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let kind = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(kind.starts_with("application/json"), "{status}: {kind}");
        let body: serde_json::Value = response.json().await.unwrap();
        (status, body["error"].as_str().unwrap().to_owned())
    };

    let malformed = send(reqwest::Method::POST, "/subscribers")
        .header("content-type", "application/json")
        .body(r#"{"email": "a@example.org",}"#)
        .send()
        .await
        .unwrap();
    let (status, message) = error(malformed).await;
    assert_eq!(status, 400);
    assert!(message.contains("JSON") && message.contains("line 1"), "{message}");

    let unknown = send(reqwest::Method::POST, "/subscribers")
        .json(&serde_json::json!({"email": "a@example.org", "colour": "blue"}))
        .send()
        .await
        .unwrap();
    let (status, message) = error(unknown).await;
    assert_eq!(status, 422);
    assert!(message.contains("unknown field `colour`"), "{message}");

    let not_json = send(reqwest::Method::POST, "/subscribers")
        .header("content-type", "text/plain")
        .body("a@example.org")
        .send()
        .await
        .unwrap();
    let (status, message) = error(not_json).await;
    assert_eq!(status, 415);
    assert!(message.contains("application/json"), "{message}");

    let (status, message) = error(send(reqwest::Method::GET, "/subscribers/abc").send().await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(message.contains("abc"), "{message}");

    let (status, message) = error(
        send(reqwest::Method::GET, "/subscribers?after=soon")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(message.contains("after"), "{message}");
}

#[tokio::test]
async fn console_errors_are_pages_with_the_right_status() {
    let app = spawn_app_with("").await;
    let session = admin_session(&app).await;
    let console = |method: reqwest::Method, path: &str| {
        app.client
            .request(method, app.url(&format!("/admin{path}")))
            .header("cookie", &session)
    };
    let page = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let kind = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(kind.starts_with("text/html"), "{status}: {kind}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        (status, response.text().await.unwrap())
    };

    let (status, body) = page(console(reqwest::Method::GET, "/editions/999").send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert!(
        body.contains("There is nothing at this address.") && body.contains("Back to the console"),
        "{body}"
    );

    let (status, body) = page(console(reqwest::Method::GET, "/editions/abc").send().await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(
        body.contains("This request could not be read") && body.contains("abc"),
        "{body}"
    );

    let (status, body) = page(
        console(reqwest::Method::POST, "/subscribers")
            .form(&[("name", "No Address")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422);
    assert!(body.contains("missing field `email`"), "{body}");

    let (status, body) = page(
        console(reqwest::Method::POST, "/editions/send")
            .form(&[("frequency", "hourly")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        body.contains("This could not be done") && body.contains("hourly"),
        "{body}"
    );

    // The reader's forms too, with a link to the site.
    let (status, body) = page(
        app.client
            .post(app.url("/subscribe"))
            .header("content-type", "text/plain")
            .body("email=a@example.org")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 415);
    assert!(
        body.contains("This request could not be read") && body.contains("See the latest posts"),
        "{body}"
    );
}

/// Logs in as a fresh admin and returns the `herald_session=...` cookie pair.
pub(crate) async fn admin_session(app: &crate::common::TestApp) -> String {
    herald::auth::create_user(&app.app.db, "ops@example.org", "the right passphrase")
        .await
        .unwrap();
    let ok = app
        .client
        .post(app.url("/admin/login"))
        .form(&[("email", "ops@example.org"), ("password", "the right passphrase")])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 303);
    let cookie = ok.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn cross_site_requests_riding_on_the_session_cookie_change_nothing() {
    let app = spawn_app_with("").await;
    let session = admin_session(&app).await;
    let token = herald::auth::create_token(&app.app.db, "script").await.unwrap();
    let evil = "https://evil.example";
    let count = || async {
        let all = herald::store::subscribers::ListFilter {
            limit: 1000,
            ..Default::default()
        };
        herald::store::subscribers::list(&app.app.db, &all).await.unwrap().len()
    };

    // What a page on another site can send without a preflight: text/plain and form posts;
    // and JSON, which a browser sends after a preflight Herald never grants.
    let attempts = [
        (
            "/admin/api/subscribers/import?confirmed=true",
            "text/plain",
            "email\nvictim@example.org\n".to_owned(),
        ),
        (
            "/admin/api/subscribers",
            "application/json",
            r#"{"email": "victim@example.org", "status": "confirmed"}"#.to_owned(),
        ),
        (
            "/admin/subscribers",
            "application/x-www-form-urlencoded",
            "email=victim%40example.org&frequency=weekly&confirmed=on".to_owned(),
        ),
        (
            "/admin/editions/send",
            "application/x-www-form-urlencoded",
            String::new(),
        ),
        ("/admin/logout", "application/x-www-form-urlencoded", String::new()),
    ];
    for (path, content_type, body) in &attempts {
        for (name, value) in [("origin", evil), ("sec-fetch-site", "cross-site")] {
            let response = app
                .client
                .post(app.url(path))
                .header("cookie", &session)
                .header("content-type", *content_type)
                .header(name, value)
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 403, "{path} with {name}: {value}");
            let kind = response.headers()["content-type"].to_str().unwrap().to_owned();
            let body = response.text().await.unwrap();
            if path.starts_with("/admin/api/") {
                assert!(kind.starts_with("application/json"), "{path}: {kind}");
                assert!(body.contains("cross-site request refused"), "{path}: {body}");
            } else {
                assert!(
                    kind.starts_with("text/html"),
                    "the console answers with a page: {path}: {kind}"
                );
                assert!(
                    body.contains("<h1>Refused</h1>") && body.contains("Cross-site request refused"),
                    "{path}: {body}"
                );
            }
        }
    }
    assert_eq!(count().await, 0, "no cross-site request added anyone");
    let login = app
        .client
        .post(app.url("/admin/login"))
        .header("origin", evil)
        .form(&[("email", "ops@example.org"), ("password", "the right passphrase")])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 403);
    assert!(login.headers().get("set-cookie").is_none(), "no session");
    let form = login.text().await.unwrap();
    assert!(
        form.contains("Log in from this site&#39;s own login page.") && form.contains("<form"),
        "the login form again, with the reason: {form}"
    );
    let still = app
        .client
        .get(app.url("/admin/subscribers"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), 200, "the cross-site logout did not end the session");

    // The same requests from the site's own pages work.
    let own = app
        .client
        .post(app.url("/admin/api/subscribers"))
        .header("cookie", &session)
        .header("origin", &app.address)
        .header("sec-fetch-site", "same-origin")
        .json(&serde_json::json!({"email": "one@example.org", "status": "confirmed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 201);
    let own_import = app
        .client
        .post(app.url("/admin/api/subscribers/import?confirmed=true"))
        .header("cookie", &session)
        .header("origin", &app.address)
        .header("content-type", "text/plain")
        .body("email\ntwo@example.org\n")
        .send()
        .await
        .unwrap();
    assert_eq!(own_import.status(), 200);
    let console = app
        .client
        .post(app.url("/admin/subscribers"))
        .header("cookie", &session)
        .header("sec-fetch-site", "same-origin")
        .form(&[
            ("email", "three@example.org"),
            ("frequency", "weekly"),
            ("confirmed", "on"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(console.status(), 200);
    assert_eq!(count().await, 3);

    // A bearer token is not a cookie: where the request comes from does not matter.
    let scripted = app
        .client
        .post(app.url("/admin/api/subscribers"))
        .header("authorization", format!("Bearer {token}"))
        .header("origin", evil)
        .json(&serde_json::json!({"email": "four@example.org", "status": "confirmed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(scripted.status(), 201);
    assert_eq!(count().await, 4);
}

#[tokio::test]
async fn a_device_cookie_lets_its_own_account_past_an_attackers_lockout_and_nothing_else() {
    let app = spawn_app_with("[admin]\nlogin_attempts_per_minute = 2\n").await;
    for email in ["ops@example.org", "other@example.org"] {
        herald::auth::create_user(&app.app.db, email, "the right passphrase")
            .await
            .unwrap();
    }
    let attempt = |email: &'static str, password: &'static str, cookie: Option<String>| {
        let mut request = app
            .client
            .post(app.url("/admin/login"))
            .form(&[("email", email), ("password", password)]);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send()
    };
    let first = attempt("ops@example.org", "the right passphrase", None).await.unwrap();
    assert_eq!(first.status(), 303);
    let device = first
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("herald_device="))
        .expect("a device cookie")
        .to_owned();
    assert!(
        device.contains("HttpOnly") && device.contains("SameSite=Strict") && device.contains("Path=/admin/login"),
        "{device}"
    );
    let device = device.split(';').next().unwrap().to_owned();

    // An attacker uses up both accounts' limits.
    for email in ["ops@example.org", "other@example.org"] {
        for _ in 0..2 {
            attempt(email, "wrong guess", None).await.unwrap();
        }
        let locked = attempt(email, "the right passphrase", None).await.unwrap();
        assert_eq!(locked.status(), 429, "{email} is locked for unknown browsers");
    }

    let known = attempt("ops@example.org", "the right passphrase", Some(device.clone()))
        .await
        .unwrap();
    assert_eq!(known.status(), 303, "the admin's own browser gets in");
    let elsewhere = attempt("other@example.org", "the right passphrase", Some(device.clone()))
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 429, "the cookie vouches for its own account only");
    // One character of the signature changed.
    let dot = device.find('.').unwrap();
    let flipped = if &device[dot + 1..dot + 2] == "A" { "B" } else { "A" };
    let altered = format!("{}{flipped}{}", &device[..=dot], &device[dot + 2..]);
    let forged = attempt("ops@example.org", "the right passphrase", Some(altered))
        .await
        .unwrap();
    assert_eq!(forged.status(), 429, "an altered cookie vouches for nobody");
}

#[tokio::test]
async fn removing_a_subscriber_in_the_console_asks_first_and_erases_only_when_confirmed() {
    let app = spawn_app_with("").await;
    let session = admin_session(&app).await;
    let new = herald::store::subscribers::NewSubscriber {
        email: herald::domain::EmailAddress::parse("leaving@example.org").unwrap(),
        name: None,
        status: SubscriberStatus::Confirmed,
        frequency: Frequency::Weekly,
        topics: Vec::new(),
        source: herald::domain::SubscriberSource::Cli,
        consent_at: None,
    };
    let (subscriber, _) = herald::store::subscribers::insert_or_get(&app.app.db, &new, chrono::Utc::now())
        .await
        .unwrap();
    let remove = app.url(&format!("/admin/subscribers/{}/remove", subscriber.id));

    // The Remove button's own post: a page that names who and what, and nothing erased.
    let response = app
        .client
        .post(&remove)
        .header("cookie", &session)
        .form(&[] as &[(&str, &str)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(
        body.contains("Remove leaving@example.org?") && body.contains("cannot be undone"),
        "{body}"
    );
    assert!(body.contains("name=\"confirm\" value=\"yes\""), "{body}");
    let still = herald::store::subscribers::find(&app.app.db, subscriber.id)
        .await
        .unwrap();
    assert!(still.is_some(), "nothing is erased before the confirmation");

    // Confirmed there: gone.
    let response = app
        .client
        .post(&remove)
        .header("cookie", &session)
        .form(&[("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Removed, with everything stored about them.")
    );
    let gone = herald::store::subscribers::find(&app.app.db, subscriber.id)
        .await
        .unwrap();
    assert!(gone.is_none());
}

#[tokio::test]
async fn the_console_previews_the_next_edition_without_storing_or_sending_it() {
    let app = spawn_app_with("").await;
    let session = admin_session(&app).await;
    let get = |path: &str| {
        app.client
            .get(app.url(&format!("/admin{path}")))
            .header("cookie", &session)
            .send()
    };
    app.sync().await;
    let empty = get("/next/weekly").await.unwrap();
    assert_eq!(empty.status(), 200);
    assert!(
        empty
            .text()
            .await
            .unwrap()
            .contains("Nothing new for the next weekly edition yet")
    );

    app.write_post(
        "otters.md",
        &post("Otters return", "2026-09-14", &["wildlife"], "Otters are back."),
    );
    app.sync().await;
    let preview = get("/next/weekly").await.unwrap();
    assert_eq!(preview.status(), 200);
    assert_eq!(preview.headers()["cache-control"], "no-store");
    let html = preview.text().await.unwrap();
    assert!(html.contains("Otters return"), "{html}");
    assert!(
        !html.contains("/editions/0"),
        "an edition not stored has no web view to link to"
    );
    let stored = herald::store::editions::list(&app.app.db, 10).await.unwrap();
    assert!(stored.is_empty(), "a preview stores no edition: {stored:?}");

    let unknown = get("/next/hourly").await.unwrap();
    assert_eq!(unknown.status(), 422);
    assert!(unknown.text().await.unwrap().contains("hourly"));
}
