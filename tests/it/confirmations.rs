//! Confirmation links through the real form, mail and pages: each works once, only the
//! newest works, and nobody but the address's owner changes what the owner chose.

use std::time::Duration;

use herald::domain::{EmailAddress, Frequency, Subscriber, SubscriberStatus};

use crate::common::{TestApp, post, spawn_app_with};
use crate::smtp::SmtpServer;
use crate::subscribers::{confirm_link, requests_settled};

async fn app_with_smtp(smtp: &SmtpServer, resend_minutes: u32) -> TestApp {
    let app = spawn_app_with(&format!(
        "[mail]\ntransport = \"smtp\"\nfrom = \"News <news@example.org>\"\n\
         [mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\n\
         [subscribers]\nrate_per_minute = 1000\nconfirm_resend_minutes = {resend_minutes}\n",
        smtp.port
    ))
    .await;
    app.write_post("otters.md", &post("Otters", "2026-09-14", &["wildlife"], "Body."));
    app.write_post("water.md", &post("Water", "2026-09-15", &["water-quality"], "Body."));
    app.sync().await;
    app
}

async fn subscribe(app: &TestApp, form: &[(&str, &str)]) {
    let response = app.client.post(app.url("/subscribe")).form(form).send().await.unwrap();
    assert_eq!(response.status(), 200);
    requests_settled(app).await;
}

async fn stored(app: &TestApp, email: &str) -> Subscriber {
    herald::store::subscribers::find_by_email(&app.app.db, &EmailAddress::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap()
}

/// The confirmation link of the `n`-th mail (counting from 1) the server received.
async fn nth_link(smtp: &SmtpServer, n: usize) -> String {
    let mail = smtp.wait_for(n, Duration::from_secs(10)).await;
    assert!(mail.len() >= n, "mail number {n} arrived");
    confirm_link(&mail[n - 1].data)
}

async fn follow(app: &TestApp, link: &str) -> (u16, String) {
    let response = app.client.get(link).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_used_or_superseded_confirmation_link_confirms_nothing() {
    let smtp = SmtpServer::start().await;
    // No resend pause, so every request mails a new link at once.
    let app = app_with_smtp(&smtp, 0).await;
    let owner = "owner@example.org";

    // The owner subscribes and confirms, then leaves.
    subscribe(&app, &[("email", owner), ("frequency", "daily")]).await;
    let first = nth_link(&smtp, 1).await;
    assert_eq!(follow(&app, &first).await.0, 200);
    assert_eq!(stored(&app, owner).await.status, SubscriberStatus::Confirmed);
    let manage = stored(&app, owner).await.manage_token;
    app.client
        .post(app.url(&format!("/unsubscribe/{manage}")))
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(stored(&app, owner).await.status, SubscriberStatus::Unsubscribed);

    // A stranger asks for the address again: a new link goes to the owner's inbox, and the
    // old, used one (in the owner's inbox, or copied from it) brings nobody back.
    subscribe(&app, &[("email", owner), ("frequency", "immediate")]).await;
    let second = nth_link(&smtp, 2).await;
    let (status, page) = follow(&app, &first).await;
    assert_eq!(status, 200);
    assert!(page.contains("This link has been used"), "{page}");
    assert_eq!(
        stored(&app, owner).await.status,
        SubscriberStatus::Unsubscribed,
        "a used link confirms nothing"
    );

    // A third request supersedes the second link: only the newest one works.
    subscribe(&app, &[("email", owner), ("frequency", "weekly")]).await;
    let third = nth_link(&smtp, 3).await;
    let (status, page) = follow(&app, &second).await;
    assert_eq!(status, 410);
    assert!(page.contains("This link has been replaced"), "{page}");
    assert_eq!(stored(&app, owner).await.status, SubscriberStatus::Unsubscribed);

    let (status, page) = follow(&app, &third).await;
    assert_eq!(status, 200);
    assert!(page.contains("You are subscribed"), "{page}");
    let s = stored(&app, owner).await;
    assert_eq!(s.status, SubscriberStatus::Confirmed);
    assert_eq!(
        s.frequency,
        Frequency::Weekly,
        "the choices mailed with the link followed"
    );

    // Leaving voids a link still outstanding: one asked for after the owner left is
    // superseded by the owner leaving again.
    app.client
        .post(app.url(&format!("/unsubscribe/{manage}")))
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    subscribe(&app, &[("email", owner)]).await;
    let fourth = nth_link(&smtp, 4).await;
    app.client
        .post(app.url(&format!("/unsubscribe/{manage}")))
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(follow(&app, &fourth).await.0, 410);
    assert_eq!(stored(&app, owner).await.status, SubscriberStatus::Unsubscribed);
    for link in [&first, &second, &third] {
        follow(&app, link).await;
        assert_eq!(stored(&app, owner).await.status, SubscriberStatus::Unsubscribed);
    }
}

#[tokio::test]
async fn a_stranger_re_posting_the_form_changes_nothing_the_owner_chose() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(&smtp, 5).await;
    let pending = "pending@example.org";
    let confirmed = "confirmed@example.org";
    let owner_form = |email: &'static str| {
        vec![
            ("email", email),
            ("name", "Ana Owner"),
            ("frequency", "daily"),
            ("topics", "wildlife"),
        ]
    };
    let stranger_form = |email: &'static str| {
        vec![
            ("email", email),
            ("name", "Mallory"),
            ("frequency", "immediate"),
            ("topics", "water-quality"),
        ]
    };

    subscribe(&app, &owner_form(pending)).await;
    subscribe(&app, &owner_form(confirmed)).await;
    let mail = smtp.wait_for(2, Duration::from_secs(10)).await;
    let link_to = |email: &str| {
        mail.iter()
            .find(|m| m.to[0] == email)
            .map(|m| confirm_link(&m.data))
            .unwrap()
    };
    let (pending_link, confirmed_link) = (link_to(pending), link_to(confirmed));
    follow(&app, &confirmed_link).await;
    let before_pending = stored(&app, pending).await;
    let before_confirmed = stored(&app, confirmed).await;
    assert_eq!(before_confirmed.status, SubscriberStatus::Confirmed);

    subscribe(&app, &stranger_form(pending)).await;
    subscribe(&app, &stranger_form(confirmed)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        smtp.count(),
        2,
        "no new mail inside the resend pause, none to a confirmed address"
    );
    assert_eq!(
        stored(&app, pending).await,
        before_pending,
        "the pending row is untouched"
    );
    assert_eq!(
        stored(&app, confirmed).await,
        before_confirmed,
        "the confirmed row is untouched"
    );

    // The owner's link still confirms, with the owner's choices.
    follow(&app, &pending_link).await;
    let s = stored(&app, pending).await;
    assert_eq!(s.status, SubscriberStatus::Confirmed);
    assert_eq!(s.name.as_deref(), Some("Ana Owner"));
    assert_eq!(s.frequency, Frequency::Daily);
    assert_eq!(s.topics, ["wildlife"]);
}
