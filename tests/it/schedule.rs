use std::time::Duration;

use herald::domain::{Frequency, SubscriberStatus};

use crate::common::{post, spawn_app_with};
use crate::smtp::SmtpServer;

async fn confirmed(app: &crate::common::TestApp, email: &str, frequency: Frequency) {
    crate::common::add_subscriber(app, email, SubscriberStatus::Confirmed, frequency, &[]).await;
}

fn smtp_config(smtp: &SmtpServer) -> String {
    format!(
        "[mail]\ntransport = \"smtp\"\nfrom = \"News <news@example.org>\"\n[mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\n",
        smtp.port
    )
}

#[tokio::test]
async fn a_post_file_dropped_in_reaches_feeds_and_immediate_subscribers_on_its_own() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(&format!("{}[schedule]\nsync = \"*/1 * * * * *\"\n", smtp_config(&smtp))).await;
    app.write_post("archive.md", &post("Archive", "2026-01-01", &["news"], "Old."));
    app.sync().await;
    confirmed(&app, "quick@example.org", Frequency::Immediate).await;
    confirmed(&app, "slow@example.org", Frequency::Weekly).await;

    // No command from here on: the scheduler syncs, composes and the worker delivers.
    app.write_post(
        "breaking.md",
        &post("Breaking news", "2026-09-14", &["news"], "Just in."),
    );
    let received = smtp.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(received.len(), 1, "delivered within the wait");
    assert_eq!(received[0].to, ["quick@example.org"]);
    let message = mail_parser::MessageParser::default().parse(&received[0].data).unwrap();
    assert_eq!(message.subject(), Some("Breaking news"));
    assert!(app.get_feed_text("/feed.atom").await.contains("Breaking news"));
}

#[tokio::test]
async fn an_edition_missed_while_down_is_sent_once_on_catch_up() {
    let smtp = SmtpServer::start().await;
    // Due every day at midnight: today's time has always passed when the test runs.
    let app = spawn_app_with(&format!("{}[schedule]\ndaily = \"0 0 0 * * *\"\n", smtp_config(&smtp))).await;
    app.write_post("archive.md", &post("Archive", "2026-01-01", &["news"], "Old."));
    app.sync().await;
    confirmed(&app, "daily@example.org", Frequency::Daily).await;
    app.write_post(
        "news.md",
        &post("News from yesterday", "2026-09-14", &["news"], "While we were down."),
    );
    app.sync().await;
    // As if Herald had last run yesterday, and was down when today's edition came due.
    herald::store::meta_set(&app.app.db, "schedule.daily.period", "2000-01-01")
        .await
        .unwrap();

    // Three instances (or restarts) catch up at once: one edition.
    let now = chrono::Utc::now();
    let (a, b, c) = tokio::join!(
        app.app.jobs.compose_due_editions(now),
        app.app.jobs.compose_due_editions(now),
        app.app.jobs.compose_due_editions(now),
    );
    assert_eq!(a.unwrap().len() + b.unwrap().len() + c.unwrap().len(), 1);
    assert!(
        app.app.jobs.compose_due_editions(now).await.unwrap().is_empty(),
        "and never again"
    );
    let received = smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.count(), 1, "exactly one message");
}

/// A time on London's clock (GMT in the months these tests use).
fn london(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono_tz::Europe::London
        .with_ymd_and_hms(y, m, d, h, min, s)
        .unwrap()
        .with_timezone(&chrono::Utc)
}

/// The titles of an edition's posts, in order.
async fn titles(app: &crate::common::TestApp, edition: &herald::store::editions::Edition) -> Vec<String> {
    let ids = herald::store::editions::post_ids(&app.app.db, edition.id)
        .await
        .unwrap();
    let posts = herald::store::posts::find_by_ids(&app.app.db, &ids).await.unwrap();
    posts.into_iter().map(|p| p.title).collect()
}

fn monthly_of(editions: Vec<herald::store::editions::Edition>) -> Vec<herald::store::editions::Edition> {
    editions
        .into_iter()
        .filter(|e| e.frequency == Frequency::Monthly)
        .collect()
}

/// Every message received so far, by recipient.
fn mail_by_recipient(smtp: &SmtpServer) -> std::collections::HashMap<String, Vec<String>> {
    let mut by: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    for r in smtp.received() {
        let message = mail_parser::MessageParser::default().parse(&r.data).unwrap();
        let text = message.body_text(0).unwrap_or_default().into_owned();
        for to in &r.to {
            by.entry(to.clone()).or_default().push(text.clone());
        }
    }
    by
}

#[tokio::test]
async fn a_monthly_reader_gets_the_months_posts_in_one_edition_at_the_monthly_time() {
    let smtp = SmtpServer::start().await;
    // The defaults: daily at 08:00, weekly on Mondays at 08:00, monthly on the 1st at 08:00.
    let app = spawn_app_with(&smtp_config(&smtp)).await;
    app.write_post("archive.md", &post("Archive", "2026-01-01", &["news"], "Old."));
    app.sync().await;
    for (email, frequency) in [
        ("monthly@example.org", Frequency::Monthly),
        ("weekly@example.org", Frequency::Weekly),
        ("daily@example.org", Frequency::Daily),
    ] {
        confirmed(&app, email, frequency).await;
    }
    let jobs = &app.app.jobs;
    // The clock is the scheduler's `now`, in months to come. Herald ran in February with
    // nothing new: every period up to then is done.
    let february = jobs.compose_due_editions(london(2099, 2, 15, 12, 0, 0)).await.unwrap();
    assert!(february.is_empty(), "{february:?}");
    app.write_post("otters.md", &post("Otters return", "2026-09-03", &["news"], "Spotted."));
    app.write_post(
        "weir.md",
        &post("The weir reopens", "2026-09-20", &["news"], "At last."),
    );
    app.sync().await;

    // 1 March 2099 is a Sunday. A minute before the monthly time: the daily and weekly editions go, the monthly waits.
    let before = jobs.compose_due_editions(london(2099, 3, 1, 7, 59, 0)).await.unwrap();
    let mut frequencies: Vec<_> = before.iter().map(|e| e.frequency).collect();
    frequencies.sort_by_key(|f| f.as_str());
    assert_eq!(frequencies, [Frequency::Daily, Frequency::Weekly]);

    // At the monthly time: one monthly edition, named for the month, with both posts.
    let at = jobs.compose_due_editions(london(2099, 3, 1, 8, 0, 30)).await.unwrap();
    assert_eq!(at.len(), 1, "nothing else is due: {at:?}");
    let march = &at[0];
    assert_eq!(
        (march.frequency, march.period.as_str()),
        (Frequency::Monthly, "2099-03")
    );
    assert_eq!(march.recipients, 1);
    assert_eq!(titles(&app, march).await, ["Otters return", "The weir reopens"]);
    // Later in the month, however often the ticker looks: nothing more.
    for day in [1, 2, 15, 31] {
        let later = jobs.compose_due_editions(london(2099, 3, day, 9, 0, 0)).await.unwrap();
        assert!(monthly_of(later).is_empty(), "one monthly edition in March");
    }

    let received = smtp.wait_for(3, Duration::from_secs(20)).await;
    assert_eq!(received.len(), 3, "one message per reader");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mail = mail_by_recipient(&smtp);
    assert_eq!(mail.len(), 3, "{:?}", mail.keys());
    for (reader, messages) in &mail {
        assert_eq!(messages.len(), 1, "{reader} got one message");
        assert!(
            messages[0].contains("Otters return") && messages[0].contains("The weir reopens"),
            "{reader}: {}",
            messages[0]
        );
    }

    // April's edition holds only what was published since March's.
    app.write_post("heron.md", &post("A heron nests", "2026-10-02", &["news"], "Tall."));
    app.sync().await;
    let early = jobs.compose_due_editions(london(2099, 3, 31, 23, 0, 0)).await.unwrap();
    assert!(monthly_of(early).is_empty(), "April's time has not come");
    let april = monthly_of(jobs.compose_due_editions(london(2099, 4, 1, 8, 1, 0)).await.unwrap());
    assert_eq!(april.len(), 1);
    assert_eq!(april[0].period, "2099-04");
    assert_eq!(titles(&app, &april[0]).await, ["A heron nests"]);
}

#[tokio::test]
async fn a_month_missed_while_down_is_sent_once_on_catch_up() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(&smtp_config(&smtp)).await;
    app.write_post("archive.md", &post("Archive", "2026-01-01", &["news"], "Old."));
    app.sync().await;
    confirmed(&app, "monthly@example.org", Frequency::Monthly).await;
    confirmed(&app, "weekly@example.org", Frequency::Weekly).await;
    confirmed(&app, "daily@example.org", Frequency::Daily).await;
    app.write_post(
        "news.md",
        &post("News from last month", "2026-09-14", &["news"], "While we were down."),
    );
    app.sync().await;
    // As if Herald had last run months ago and was down when this month's edition came due
    // (the default monthly time, the 1st at 08:00, has always passed in the current month
    // unless the test runs in its first eight hours: then last month's is the one missed).
    herald::store::meta_set(&app.app.db, "schedule.monthly.period", "2000-01")
        .await
        .unwrap();

    // Three instances (or restarts) catch up at once: one edition, the monthly one.
    let now = chrono::Utc::now();
    let (a, b, c) = tokio::join!(
        app.app.jobs.compose_due_editions(now),
        app.app.jobs.compose_due_editions(now),
        app.app.jobs.compose_due_editions(now),
    );
    let created: Vec<_> = [a, b, c].into_iter().flat_map(Result::unwrap).collect();
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0].frequency, Frequency::Monthly);
    let tz: chrono_tz::Tz = "Europe/London".parse().unwrap();
    let due = herald::schedule::last_due(app.app.settings.schedule.monthly.cron(), tz, now).unwrap();
    assert_eq!(
        created[0].period,
        herald::digest::period_key(Frequency::Monthly, due, tz)
    );
    assert!(
        app.app.jobs.compose_due_editions(now).await.unwrap().is_empty(),
        "and never again"
    );
    let received = smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].to, ["monthly@example.org"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.count(), 1, "exactly one message");

    // The daily and weekly readers' periods were done already: the post waits for their next
    // editions, untouched by the monthly one.
    for frequency in [Frequency::Daily, Frequency::Weekly] {
        let plan = app.app.digests.plan(frequency, None).await.unwrap();
        assert_eq!(plan.post_ids.len(), 1, "{frequency} still has the post to send");
    }
}

#[tokio::test]
async fn monthly_is_offered_wherever_a_frequency_is_chosen() {
    let app = spawn_app_with("[admin]\napi_token = \"monthly-token\"\n").await;
    app.sync().await;
    let form = app.get_text("/subscribe").await;
    assert!(
        form.contains("name=\"frequency\" value=\"monthly\""),
        "the form offers monthly: {form}"
    );

    // The API takes it.
    let added = app
        .client
        .post(app.url("/admin/api/subscribers"))
        .bearer_auth("monthly-token")
        .json(&serde_json::json!({"email": "api@example.org", "frequency": "monthly", "status": "confirmed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    assert_eq!(added.json::<serde_json::Value>().await.unwrap()["frequency"], "monthly");

    // An import takes it, and an export gives it back.
    let report = herald::subscribers::csv::import_csv(
        &app.app.db,
        std::io::Cursor::new(b"email,name,frequency\ncsv@example.org,Cy,Monthly\n".to_vec()),
        herald::subscribers::csv::ImportOptions::default(),
        Frequency::Weekly,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(report.added, 1, "{report:#?}");
    let mut exported = Vec::new();
    herald::subscribers::csv::export_csv(&app.app.db, None, &mut exported)
        .await
        .unwrap();
    let exported = String::from_utf8(exported).unwrap();
    assert_eq!(exported.matches("\"monthly\"").count(), 2, "{exported}");

    // The console previews the next monthly edition.
    let session = crate::admin_api::admin_session(&app).await;
    let preview = app
        .client
        .get(app.url("/admin/next/monthly"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(preview.status(), 200);
    assert!(
        preview
            .text()
            .await
            .unwrap()
            .contains("Nothing new for the next monthly edition yet")
    );
}
