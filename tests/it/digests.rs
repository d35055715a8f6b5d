use std::collections::HashMap;
use std::time::Duration;

use herald::digest::{self, Trigger};
use herald::domain::{EmailAddress, Frequency, SubscriberStatus};
use mail_parser::{MessageParser, MimeHeaders};

use crate::common::{TestApp, post, spawn_app_with};
use crate::smtp::{Behaviour, Received, SmtpServer};

pub(crate) async fn app_with_smtp(smtp: &SmtpServer, extra: &str) -> TestApp {
    let app = spawn_app_with(&format!(
        "[mail]\ntransport = \"smtp\"\nfrom = \"Riverside News <news@example.org>\"\nretry_base_seconds = 1\n\
         [mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\n[admin]\napi_token = \"digest-token\"\n{extra}",
        smtp.port
    ))
    .await;
    // Herald's first sync: what is public now is the archive and is never mailed as new.
    app.write_post(
        "archive.md",
        &post("Archive post", "2026-01-10", &["wildlife"], "Old news."),
    );
    app.sync().await;
    app
}

async fn add(
    app: &TestApp,
    email: &str,
    status: SubscriberStatus,
    frequency: Frequency,
    topics: &[&str],
) -> herald::domain::Subscriber {
    crate::common::add_subscriber(app, email, status, frequency, topics).await
}

/// The scheduler's trigger for the current period.
fn scheduled(frequency: Frequency) -> Trigger {
    let tz: chrono_tz::Tz = "Europe/London".parse().unwrap();
    Trigger::Scheduled(digest::period_key(frequency, chrono::Utc::now(), tz))
}

/// Delivers until the queue is empty (the server's own worker may take part).
pub(crate) async fn drain(app: &TestApp) {
    for _ in 0..400 {
        herald::digest::send::deliver_batch(&app.app.sender).await.unwrap();
        if herald::store::editions::counts(&app.app.db, None)
            .await
            .unwrap()
            .remaining()
            == 0
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the queue did not drain");
}

fn by_recipient(received: &[Received]) -> HashMap<String, Vec<Received>> {
    let mut map: HashMap<String, Vec<Received>> = HashMap::new();
    for r in received {
        map.entry(r.to[0].clone()).or_default().push(r.clone());
    }
    map
}

#[tokio::test]
async fn digests_reach_the_right_subscribers_with_list_headers_and_their_own_links() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(&smtp, "").await;
    let all = add(
        &app,
        "all@example.org",
        SubscriberStatus::Confirmed,
        Frequency::Daily,
        &[],
    )
    .await;
    let wild = add(
        &app,
        "wild@example.org",
        SubscriberStatus::Confirmed,
        Frequency::Daily,
        &["wildlife"],
    )
    .await;
    add(
        &app,
        "knits@example.org",
        SubscriberStatus::Confirmed,
        Frequency::Daily,
        &["knitting"],
    )
    .await;
    add(
        &app,
        "pending@example.org",
        SubscriberStatus::Pending,
        Frequency::Daily,
        &[],
    )
    .await;
    add(
        &app,
        "left@example.org",
        SubscriberStatus::Unsubscribed,
        Frequency::Daily,
        &[],
    )
    .await;
    add(
        &app,
        "bounced@example.org",
        SubscriberStatus::Bounced,
        Frequency::Daily,
        &[],
    )
    .await;
    add(
        &app,
        "weekly@example.org",
        SubscriberStatus::Confirmed,
        Frequency::Weekly,
        &[],
    )
    .await;

    app.write_post(
        "otters.md",
        &post(
            "Otters & <friends> return",
            "2026-09-14",
            &["wildlife"],
            "Otters are back.",
        ),
    );
    app.write_post(
        "water.md",
        &post("Water results", "2026-10-21", &["water-quality"], "Readings are in."),
    );
    app.sync().await;
    let editions = app
        .app
        .digests
        .compose(Frequency::Daily, Trigger::Manual, None)
        .await
        .unwrap();
    assert_eq!(editions.len(), 1);
    let edition = &editions[0];
    assert_eq!(edition.recipients, 3, "confirmed daily subscribers only");
    assert_eq!(edition.subject, "Test & Trust: 2 new posts");
    drain(&app).await;

    let received = smtp.wait_for(2, Duration::from_secs(10)).await;
    let mail = by_recipient(&received);
    assert_eq!(mail.len(), 2, "{:?}", mail.keys());
    let counts = herald::store::editions::counts(&app.app.db, Some(edition.id))
        .await
        .unwrap();
    assert_eq!(
        (counts.sent, counts.skipped),
        (2, 1),
        "the knitter's topics match nothing: skipped"
    );

    for (subscriber, expect) in [
        (&all, vec!["Otters &amp; &lt;friends&gt; return", "Water results"]),
        (&wild, vec!["Otters &amp; &lt;friends&gt; return"]),
    ] {
        let raw = &mail[subscriber.email.as_str()][0].data;
        let message = MessageParser::default().parse(raw).unwrap();
        assert_eq!(message.content_type().unwrap().subtype(), Some("alternative"));
        let html = message.body_html(0).unwrap();
        let text = message.body_text(0).unwrap();
        for title in &expect {
            assert!(html.contains(title), "{title} in {}", subscriber.email);
        }
        assert!(!html.contains("Archive post"), "archive posts are never mailed as new");
        if expect.len() == 1 {
            assert!(
                !html.contains("Water results") && !text.contains("Water results"),
                "topic filter"
            );
            assert_eq!(message.subject(), Some("Otters & <friends> return"));
        }
        assert!(
            html.contains("width=\"600\"") && html.contains("role=\"presentation\""),
            "table layout"
        );
        assert!(html.contains(&format!("/editions/{}", edition.id)), "view in browser");
        let unsubscribe = app.url(&format!("/unsubscribe/{}", subscriber.manage_token));
        let preferences = app.url(&format!("/preferences/{}", subscriber.manage_token));
        assert!(
            html.contains(&unsubscribe) && text.contains(&unsubscribe),
            "their own unsubscribe link"
        );
        assert!(
            html.contains(&preferences) && text.contains(&preferences),
            "their own preferences link"
        );
        let header = |name: &str| message.header_raw(name).map(|v| v.trim().to_owned());
        assert_eq!(header("List-Unsubscribe"), Some(format!("<{unsubscribe}>")));
        assert_eq!(
            header("List-Unsubscribe-Post").as_deref(),
            Some("List-Unsubscribe=One-Click")
        );
        assert_eq!(
            header("List-Id").as_deref(),
            Some("\"Test & Trust\" <news.example.org>")
        );
        assert_eq!(
            message.message_id(),
            Some(format!("edition.{}.{}@example.org", edition.id, subscriber.id).as_str())
        );
        assert!(message.date().is_some());
        assert_eq!(
            message.from().unwrap().first().unwrap().address(),
            Some("news@example.org")
        );
    }

    // The one-click URL from the header works as a mail provider calls it.
    let one_click = app.url(&format!("/unsubscribe/{}", wild.manage_token));
    let response = reqwest::Client::new()
        .post(&one_click)
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let wild_now = herald::store::subscribers::find(&app.app.db, wild.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(wild_now.status, SubscriberStatus::Unsubscribed);

    // The web view shows the whole edition; sending again sends nothing new.
    let web = app.get_text(&format!("/editions/{}", edition.id)).await;
    assert!(web.contains("Water results") && web.contains("Otters"));
    assert_eq!(app.get("/editions/999").await.status(), 404);
    assert!(
        app.app
            .digests
            .compose(Frequency::Daily, Trigger::Manual, None)
            .await
            .unwrap()
            .is_empty()
    );
    drain(&app).await;
    assert_eq!(smtp.count(), 2);
}

#[tokio::test]
async fn a_post_published_between_two_daily_editions_goes_in_the_next_only() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(&smtp, "").await;
    add(
        &app,
        "reader@example.org",
        SubscriberStatus::Confirmed,
        Frequency::Daily,
        &[],
    )
    .await;
    app.write_post("first.md", &post("First news", "2026-09-14", &["news"], "One."));
    app.sync().await;
    let first = app
        .app
        .digests
        .compose(Frequency::Daily, scheduled(Frequency::Daily), None)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    app.write_post("second.md", &post("Second news", "2026-09-15", &["news"], "Two."));
    app.sync().await;
    let again = app
        .app
        .digests
        .compose(Frequency::Daily, scheduled(Frequency::Daily), None)
        .await
        .unwrap();
    assert!(again.is_empty(), "the scheduler makes one edition per period");
    let next = app
        .app
        .digests
        .compose(Frequency::Daily, Trigger::Manual, None)
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert!(next[0].period.ends_with("#2"), "{}", next[0].period);
    drain(&app).await;
    let received = smtp.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 2);
    // Two editions, sent by whichever worker is free: they may arrive in either order.
    let mut subjects: Vec<String> = received
        .iter()
        .map(|r| {
            MessageParser::default()
                .parse(&r.data)
                .unwrap()
                .subject()
                .unwrap()
                .to_owned()
        })
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        ["First news", "Second news"],
        "each post exactly once, in its own edition"
    );
}

#[tokio::test]
async fn composers_racing_for_the_same_period_create_one_edition() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(&smtp, "").await;
    add(
        &app,
        "reader@example.org",
        SubscriberStatus::Confirmed,
        Frequency::Weekly,
        &[],
    )
    .await;
    app.write_post("news.md", &post("News", "2026-09-14", &["news"], "One."));
    app.sync().await;
    let (a, b, c) = tokio::join!(
        app.app
            .digests
            .compose(Frequency::Weekly, scheduled(Frequency::Weekly), None),
        app.app
            .digests
            .compose(Frequency::Weekly, scheduled(Frequency::Weekly), None),
        app.app.digests.compose(Frequency::Weekly, Trigger::Manual, None),
    );
    let created = a.unwrap().len() + b.unwrap().len() + c.unwrap().len();
    assert_eq!(created, 1);
    drain(&app).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.count(), 1);
}

#[tokio::test]
async fn temporary_failures_are_retried_and_permanent_ones_bounce() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(&smtp, "").await;
    for name in ["ok1", "slow", "gone", "ok2"] {
        add(
            &app,
            &format!("{name}@example.org"),
            SubscriberStatus::Confirmed,
            Frequency::Immediate,
            &[],
        )
        .await;
    }
    smtp.set_behaviour(Behaviour::RejectRcptMatching(vec![
        ("slow".into(), 451, "4.7.1 Greylisted, try again".into()),
        ("gone".into(), 550, "5.1.1 No such mailbox".into()),
    ]));
    app.write_post("news.md", &post("News", "2026-09-14", &["news"], "One."));
    app.sync().await;
    assert_eq!(
        app.app
            .digests
            .compose(Frequency::Immediate, Trigger::Manual, None)
            .await
            .unwrap()
            .len(),
        1
    );
    herald::digest::send::deliver_batch(&app.app.sender).await.unwrap();
    smtp.wait_for(2, Duration::from_secs(5)).await;
    smtp.set_behaviour(Behaviour::Accept);
    drain(&app).await;
    let mail = by_recipient(&smtp.received());
    assert_eq!(mail.len(), 3, "{:?}", mail.keys());
    assert!(
        mail.contains_key("slow@example.org"),
        "the greylisted address got it on retry"
    );
    assert!(mail.values().all(|m| m.len() == 1));
    let gone =
        herald::store::subscribers::find_by_email(&app.app.db, &EmailAddress::parse("gone@example.org").unwrap())
            .await
            .unwrap()
            .unwrap();
    assert_eq!(gone.status, SubscriberStatus::Bounced, "5.1.1 suppresses the address");
    let counts = herald::store::editions::counts(&app.app.db, None).await.unwrap();
    assert_eq!((counts.sent, counts.failed), (3, 1));

    // A bounced address gets no later edition.
    app.write_post("more.md", &post("More news", "2026-09-15", &["news"], "Two."));
    app.sync().await;
    let next = app
        .app
        .digests
        .compose(Frequency::Immediate, Trigger::Manual, None)
        .await
        .unwrap();
    assert_eq!(next[0].recipients, 3);
}

#[tokio::test]
async fn a_connection_dropped_mid_session_is_retried() {
    let smtp = SmtpServer::start().await;
    smtp.set_behaviour(Behaviour::DropAfter(2));
    let app = app_with_smtp(&smtp, "[digest]\nconcurrency = 1\n").await;
    for i in 0..6 {
        add(
            &app,
            &format!("r{i}@example.org"),
            SubscriberStatus::Confirmed,
            Frequency::Weekly,
            &[],
        )
        .await;
    }
    app.write_post("news.md", &post("News", "2026-09-14", &["news"], "One."));
    app.sync().await;
    app.app
        .digests
        .compose(Frequency::Weekly, Trigger::Manual, None)
        .await
        .unwrap();
    herald::digest::send::deliver_batch(&app.app.sender).await.unwrap();
    smtp.set_behaviour(Behaviour::Accept);
    drain(&app).await;
    let mail = by_recipient(&smtp.received());
    assert_eq!(mail.len(), 6);
    assert!(mail.values().all(|m| m.len() == 1), "nobody twice");
}

#[tokio::test]
async fn editions_are_sent_from_the_api_in_the_background() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(&smtp, "").await;
    add(
        &app,
        "api@example.org",
        SubscriberStatus::Confirmed,
        Frequency::Daily,
        &[],
    )
    .await;
    app.write_post("news.md", &post("News", "2026-09-14", &["news"], "One."));
    app.sync().await;
    let unauthorised = app
        .client
        .post(app.url("/admin/api/editions/send"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorised.status(), 401);
    let send = |body: serde_json::Value| {
        app.client
            .post(app.url("/admin/api/editions/send"))
            .header("authorization", "Bearer digest-token")
            .json(&body)
            .send()
    };
    // Today's daily edition is done (the server started after its time with nothing new):
    // without `force` nothing goes out, and the answer says why.
    let response = send(serde_json::json!({"frequency": "daily"})).await.unwrap();
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["editions"], serde_json::json!([]));
    assert!(
        body["held_back"]["daily"].as_str().unwrap().contains("is done"),
        "{body}"
    );
    let response = send(serde_json::json!({"frequency": "daily", "force": true}))
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.unwrap();
    let id = body["editions"][0]["id"].as_i64().unwrap();
    // Nobody drains here: the server's own delivery worker sends it.
    assert_eq!(smtp.wait_for(1, Duration::from_secs(10)).await.len(), 1);
    for _ in 0..50 {
        let status: serde_json::Value = app
            .client
            .get(app.url(&format!("/admin/api/editions/{id}")))
            .header("authorization", "Bearer digest-token")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["deliveries"]["sent"] == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the edition's counts never showed the delivery");
}

#[tokio::test]
async fn since_mails_recent_archive_posts_on_request() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(&smtp, "").await;
    add(
        &app,
        "new@example.org",
        SubscriberStatus::Confirmed,
        Frequency::Weekly,
        &[],
    )
    .await;
    assert!(
        app.app
            .digests
            .compose(Frequency::Weekly, Trigger::Manual, None)
            .await
            .unwrap()
            .is_empty()
    );
    let since = herald::content::parse_date("2026-01-01").unwrap();
    let editions = app
        .app
        .digests
        .compose(Frequency::Weekly, Trigger::Manual, Some(since))
        .await
        .unwrap();
    assert_eq!(editions.len(), 1);
    assert_eq!(editions[0].subject, "Archive post");
}

#[tokio::test]
async fn full_digests_carry_the_whole_post_with_the_sites_footer_and_address() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(
        &smtp,
        "[digest]\ncontent = \"full\"\n[site]\nfooter = \"Registered charity no. 1000000\"\n\
         postal_address = \"The Riverside Trust\\n1 Mill Lane\\nBristol BS1 4AA\"\n",
    )
    .await;
    add(
        &app,
        "reader@example.org",
        SubscriberStatus::Confirmed,
        Frequency::Immediate,
        &[],
    )
    .await;
    let paragraph = "Volunteers walked the whole length of the river this autumn, counting \
                     spraints and footprints at forty-two sites, and found otters at thirty of them.";
    app.write_post(
        "otters.md",
        &format!(
            "---\ntitle: Otters are back\ndate: 2026-10-01\ntags: [wildlife]\nsummary: A short teaser.\n---\n\
             {paragraph}\n\n## What comes next\n\nRead the [survey method](https://example.org/method) -- it is open.\n"
        ),
    );
    app.sync().await;
    let editions = app
        .app
        .digests
        .compose(Frequency::Immediate, Trigger::NewPosts, None)
        .await
        .unwrap();
    assert_eq!(editions.len(), 1);
    drain(&app).await;
    let received = smtp.wait_for(1, Duration::from_secs(10)).await;
    let message = MessageParser::default().parse(&received[0].data).unwrap();
    let html = message.body_html(0).unwrap();
    let text = message.body_text(0).unwrap();

    assert!(html.contains(paragraph), "the whole post in HTML: {html}");
    assert!(html.contains("What comes next") && html.contains("https://example.org/method"));
    assert!(!html.contains("A short teaser."), "the post, not its teaser: {html}");
    assert!(text.contains("What comes next") && text.contains("https://example.org/method"));
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words(&text).contains(paragraph), "the whole post as text: {text}");
    for (what, body) in [("HTML", html.as_ref()), ("text", text.as_ref())] {
        for expected in [
            "Registered charity no. 1000000",
            "The Riverside Trust",
            "1 Mill Lane",
            "Bristol BS1 4AA",
        ] {
            assert!(body.contains(expected), "{what} part lacks {expected:?}: {body}");
        }
        assert!(!body.contains("HERALD0"), "{what}: every stand-in is filled");
    }
    assert_eq!(
        text.matches("Otters are back").count(),
        1,
        "one post, one title (the subject is the same): {text}"
    );
    for line in text.lines() {
        assert!(
            line.chars().count() <= 78 || !line.trim().contains(' '),
            "text lines wrap at 78 columns: {line:?}"
        );
    }
}

#[tokio::test]
async fn sent_editions_make_a_public_archive_with_its_own_feed() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(&smtp, "").await;
    let empty = app.get_text("/editions/").await;
    assert!(empty.contains("No emails have been sent yet."), "{empty}");

    add(
        &app,
        "daily@example.org",
        SubscriberStatus::Confirmed,
        Frequency::Daily,
        &[],
    )
    .await;
    app.write_post(
        "otters.md",
        &post("Otters & voles", "2026-10-01", &["wildlife"], "Back."),
    );
    app.write_post("weirs.md", &post("Weirs", "2026-10-02", &["rivers"], "Gone."));
    app.sync().await;
    // Nobody reads weekly digests: that edition goes to no one and is not in the archive.
    let weekly = app
        .app
        .digests
        .compose(Frequency::Weekly, Trigger::Manual, None)
        .await
        .unwrap();
    let daily = app
        .app
        .digests
        .compose(Frequency::Daily, Trigger::Manual, None)
        .await
        .unwrap();
    assert_eq!((weekly.len(), daily.len()), (1, 1));
    drain(&app).await;

    let page = app.get_text("/editions/").await;
    let daily_url = app.url(&format!("/editions/{}", daily[0].id));
    assert!(page.contains(&format!("href=\"{daily_url}\"")), "{page}");
    assert!(
        !page.contains(&format!("/editions/{}\"", weekly[0].id)),
        "an edition sent to nobody is not listed: {page}"
    );
    assert!(
        page.contains("Daily digest") && page.contains("Otters &amp; voles"),
        "{page}"
    );
    assert!(page.contains(&format!("href=\"{}\"", app.url("/posts/weirs/"))));
    assert_eq!(app.get(&format!("/editions/{}", daily[0].id)).await.status(), 200);
    assert_eq!(app.get("/editions/page/2/").await.status(), 404);
    assert_eq!(app.get("/editions/page/0/").await.status(), 404);

    let response = app.get("/editions/feed.atom").await;
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    let feed = crate::feed_check::parse_feed("/editions/feed.atom", &body);
    assert_eq!(feed.entries.len(), 1);
    let entry = &feed.entries[0];
    assert_eq!(entry.links[0].href, daily_url);
    assert_eq!(
        entry.title.as_ref().unwrap().content,
        daily[0].subject,
        "the entry is the email's subject"
    );
    let content = entry.content.as_ref().and_then(|c| c.body.clone()).unwrap();
    assert!(
        content.contains("Otters &amp; voles") && content.contains("/posts/otters/"),
        "{content}"
    );
    assert!(
        app.get_text("/")
            .await
            .contains(&format!("href=\"{}\"", app.url("/editions/")))
    );
}
