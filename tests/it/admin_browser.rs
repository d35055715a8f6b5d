//! The admin console in a real browser: log in, dashboard, send now with live progress,
//! preview, test send, log out.

use std::time::Duration;

use fantoccini::Locator;
use herald::subscribers::csv::{ImportOptions, import_csv};

use crate::browser::{Chromedriver, assert_no_csp_violations, available, browser, click, find, viewport, wait_text};
use crate::common::{post, spawn_app_with};
use crate::smtp::SmtpServer;

const ADMIN: &str = "admin@example.org";
const PASSWORD: &str = "a long and private passphrase";

/// The editions page with "weekly" chosen in the send form.
async fn choose_weekly(client: &fantoccini::Client, app: &crate::common::TestApp) {
    client.goto(&app.url("/admin/editions")).await.unwrap();
    find(client, "select[name=frequency]")
        .await
        .select_by_value("weekly")
        .await
        .unwrap();
}

#[tokio::test]
async fn an_admin_logs_in_sends_an_edition_watches_it_finish_and_logs_out() {
    if !available() {
        return;
    }
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(&format!(
        "[mail]\ntransport = \"smtp\"\nfrom = \"News <news@example.org>\"\n[mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\nrate_per_second = 20\n",
        smtp.port
    ))
    .await;
    herald::auth::create_user(&app.app.db, ADMIN, PASSWORD).await.unwrap();
    app.write_post("archive.md", &post("Archive", "2026-01-01", &["news"], "Old."));
    app.sync().await;
    let mut csv = String::from("email,frequency\n");
    for i in 0..25 {
        csv.push_str(&format!("reader{i}@example.org,weekly\n"));
    }
    let options = ImportOptions {
        confirmed: true,
        force: false,
    };
    import_csv(
        &app.app.db,
        std::io::Cursor::new(csv.into_bytes()),
        options,
        herald::domain::Frequency::Weekly,
        |_| {},
    )
    .await
    .unwrap();
    app.write_post(
        "otters.md",
        &post("Otters are back", "2026-09-14", &["wildlife"], "Good news."),
    );
    app.sync().await;

    let api = reqwest::get(app.url("/admin/api/editions")).await.unwrap();
    assert_eq!(api.status(), 401, "the API wants a token or a session");

    let profile = tempfile::tempdir().unwrap();
    let driver = Chromedriver::start().await;
    let client = browser(&driver, profile.path()).await;

    client.goto(&app.url("/admin")).await.unwrap();
    assert!(
        client.current_url().await.unwrap().path().ends_with("/admin/login"),
        "no session: to the login page"
    );
    find(&client, "#email").await.send_keys(ADMIN).await.unwrap();
    find(&client, "#password")
        .await
        .send_keys("not the password")
        .await
        .unwrap();
    click(&client, "button[type=submit]").await;
    wait_text(&client, ".error", "Wrong email or password").await;

    find(&client, "#password").await.send_keys(PASSWORD).await.unwrap();
    click(&client, "button[type=submit]").await;
    wait_text(&client, "h1", "Dashboard").await;
    wait_text(&client, "main", "weekly").await;

    choose_weekly(&client, &app).await;
    click(&client, "form[action$='/admin/editions/send'] button").await;
    // This week's weekly edition is done (Herald started after its time, with nothing new):
    // "Send now" says so and sends nothing.
    wait_text(&client, "h1", "Send now").await;
    wait_text(&client, "main", "weekly edition").await;
    wait_text(&client, "main", "is done; the next is due").await;
    assert!(
        client.find(Locator::Css("input[name=confirm]")).await.is_err(),
        "nothing to confirm"
    );
    // An extra edition, asked for explicitly, is confirmed with the number of people first.
    choose_weekly(&client, &app).await;
    click(&client, "input[name=force]").await;
    click(&client, "form[action$='/admin/editions/send'] button").await;
    wait_text(&client, "#people", "25 people").await;
    assert_eq!(smtp.count(), 0, "nothing is sent before the confirmation");
    click(&client, "form[action$='/admin/editions/send'] button").await;
    wait_text(&client, "h1", "Otters are back").await;
    // The page updates itself while the worker sends (20 a second here): no reload.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let progress = find(&client, "#progress").await.text().await.unwrap();
        if progress == "100 %" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "progress stuck at {progress}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(find(&client, "#sent").await.text().await.unwrap(), "25");
    let bar = client
        .execute("return document.getElementById('progress-bar').value", vec![])
        .await
        .unwrap();
    assert_eq!(bar, 100, "the script moved the bar too");
    assert_no_csp_violations(&client).await;
    assert_eq!(smtp.wait_for(25, Duration::from_secs(5)).await.len(), 25);

    let edition_url = client.current_url().await.unwrap();
    find(&client, "input[name=to]")
        .await
        .send_keys("me@example.org")
        .await
        .unwrap();
    click(&client, "form[action$='/test'] button").await;
    wait_text(&client, ".notice", "A test went to me@example.org").await;
    let test = smtp
        .wait_for(26, Duration::from_secs(5))
        .await
        .into_iter()
        .find(|m| m.to == ["me@example.org"])
        .unwrap();
    let message = mail_parser::MessageParser::default().parse(&test.data).unwrap();
    assert_eq!(message.subject(), Some("[Test] Otters are back"));

    client.goto(&format!("{edition_url}/preview")).await.unwrap();
    wait_text(&client, "h1", "Otters are back").await;
    assert_no_csp_violations(&client).await;
    // The console's stylesheet applied (inline, allowed by its hash).
    client.goto(&app.url("/admin")).await.unwrap();
    let background = client
        .execute(
            "return getComputedStyle(document.querySelector('header')).backgroundColor",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(background, "rgb(18, 55, 42)");

    client.goto(&app.url("/admin")).await.unwrap();
    click(&client, "header form button").await;
    wait_text(&client, "h1", "admin").await;
    client.goto(&app.url("/admin/editions")).await.unwrap();
    assert!(
        client.current_url().await.unwrap().path().ends_with("/admin/login"),
        "logged out"
    );
    assert!(client.find(Locator::Css("#password")).await.is_ok());
    client.close().await.unwrap();
}

/// The page's scroll width, the viewport's width and the element sticking out furthest.
const WIDTHS: &str = r#"
let widest = null;
for (const el of document.body.querySelectorAll('*')) {
  const r = el.getBoundingClientRect();
  let clipped = false;
  for (let p = el.parentElement; p; p = p.parentElement) {
    if (getComputedStyle(p).overflowX !== 'visible') { clipped = true; break; }
  }
  if (!clipped && r.width > 0 && r.right > window.innerWidth + 0.5 && (!widest || r.right > widest.right)) {
    widest = {tag: el.tagName.toLowerCase() + (el.className ? '.' + el.className : ''), right: r.right};
  }
}
return {scroll: document.documentElement.scrollWidth, inner: window.innerWidth,
        widest: widest ? JSON.stringify(widest) : null};
"#;

async fn assert_fits(client: &fantoccini::Client, what: &str, width: u32) {
    let m = client.execute(WIDTHS, vec![]).await.unwrap();
    assert_eq!(m["inner"], width, "{what}: the viewport is {width} px");
    assert!(
        m["scroll"].as_f64().unwrap() <= m["inner"].as_f64().unwrap(),
        "{what} at {width} px scrolls sideways: {m}"
    );
    assert!(m["widest"].is_null(), "{what} at {width} px: {m}");
}

#[tokio::test]
async fn the_console_fits_a_phone_and_asks_before_removing_anyone() {
    if !available() {
        return;
    }
    let app = spawn_app_with("").await;
    herald::auth::create_user(&app.app.db, ADMIN, PASSWORD).await.unwrap();
    app.write_post(
        "otters.md",
        &post(
            "Otters are back",
            "2026-09-14",
            &["wildlife", "rivers", "conservation"],
            "Good news.",
        ),
    );
    app.sync().await;
    for i in 0..3 {
        crate::common::add_subscriber(
            &app,
            &format!("a.rather.long.address.for.reader{i}@newsletters.example.org"),
            herald::domain::SubscriberStatus::Confirmed,
            herald::domain::Frequency::Weekly,
            &["wildlife", "rivers"],
        )
        .await;
    }
    let profile = tempfile::tempdir().unwrap();
    let driver = Chromedriver::start().await;
    let client = browser(&driver, profile.path()).await;

    for width in [320, 390] {
        viewport(&client, width).await;
        client.goto(&app.url("/admin/login")).await.unwrap();
        wait_text(&client, "h1", "admin").await;
        assert_fits(&client, "the login page", width).await;
        let inside = client
            .execute(
                "const f = document.querySelector('form').getBoundingClientRect();
                 return [...document.querySelectorAll('form input, form button')].every(e => {
                   const r = e.getBoundingClientRect(); return r.left >= f.left && r.right <= f.right; });",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            inside, true,
            "the login form's inputs stay inside their card at {width} px"
        );
    }
    find(&client, "#email").await.send_keys(ADMIN).await.unwrap();
    find(&client, "#password").await.send_keys(PASSWORD).await.unwrap();
    click(&client, "button[type=submit]").await;
    wait_text(&client, "h1", "Dashboard").await;
    for width in [320, 390] {
        viewport(&client, width).await;
        for path in [
            "/admin",
            "/admin/subscribers",
            "/admin/posts",
            "/admin/editions",
            "/admin/insights",
        ] {
            client.goto(&app.url(path)).await.unwrap();
            wait_text(&client, "main", "").await;
            assert_fits(&client, path, width).await;
        }
        // The charts are images the browser drew, scaled down to the phone's width.
        let drawn = client
            .execute(
                "const imgs = [...document.querySelectorAll('figure.chart img')];
                 await Promise.all(imgs.map(i => i.decode().catch(() => null)));
                 return imgs.map(i => [i.naturalWidth, Math.round(i.getBoundingClientRect().width)]);",
                vec![],
            )
            .await
            .unwrap();
        let drawn: Vec<(u32, u32)> = serde_json::from_value(drawn).unwrap();
        assert_eq!(drawn.len(), 4, "four charts");
        for (natural, shown) in drawn {
            assert_eq!(natural, 760, "each chart loads as an SVG image at {width} px");
            assert!(
                shown > 0 && shown < width,
                "each chart fits the {width} px page: {shown} px"
            );
        }
    }

    // Remove asks first; only its confirmation erases.
    client.goto(&app.url("/admin/subscribers")).await.unwrap();
    click(&client, "#subscribers tr[data-id] form button").await;
    wait_text(&client, "h1", "Remove a.rather.long.address.for.reader0").await;
    assert_fits(&client, "the confirmation page", 390).await;
    let count = || async {
        herald::store::subscribers::count_by_status(&app.app.db)
            .await
            .unwrap()
            .iter()
            .map(|(_, n)| n)
            .sum::<i64>()
    };
    assert_eq!(count().await, 3, "nothing erased before the confirmation");
    click(&client, "main form button.danger").await;
    wait_text(&client, ".notice", "Removed, with everything stored about them.").await;
    assert_eq!(count().await, 2);

    // And so do the ticked rows: tick two, remove, confirm, back to the list with a message.
    click(&client, "#subscribers tr[data-id] input[type=checkbox]").await;
    let boxes = client
        .find_all(Locator::Css("#subscribers tr[data-id] input[type=checkbox]"))
        .await
        .unwrap();
    boxes[1].click().await.unwrap();
    find(&client, "#bulk-action")
        .await
        .select_by_value("remove")
        .await
        .unwrap();
    click(&client, "#bulk button").await;
    wait_text(&client, "h1", "Remove 2 people?").await;
    assert_eq!(count().await, 2, "nothing erased before the confirmation");
    click(&client, "main form button.danger").await;
    wait_text(&client, ".notice", "Removed 2 people").await;
    assert_eq!(count().await, 0);
    assert!(
        client
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/admin/subscribers")
    );
    client.refresh().await.unwrap();
    wait_text(&client, "h1", "Subscribers").await;
    assert!(
        client.find(Locator::Css(".notice")).await.is_err(),
        "the message is shown once"
    );
    assert_no_csp_violations(&client).await;
    client.close().await.unwrap();
}
