//! The emails and the public pages in a real browser: the digest and the confirmation fit
//! narrow screens without horizontal scrolling, and every text on the emails and the pages
//! is readable (WCAG AA contrast) in both the light and the dark colour scheme.

use std::time::Duration;

use fantoccini::Client;
use herald::digest::Trigger;
use herald::domain::{Frequency, SubscriberStatus};
use mail_parser::MessageParser;

use crate::browser::{Chromedriver, available, browser, find, scheme, viewport, wait_text};
use crate::common::{TestApp, add_subscriber, post, spawn_app_with};
use crate::smtp::SmtpServer;

/// Shows an email's HTML as a mail client would: the whole document, its styles and all.
async fn show_html(client: &Client, html: &str) {
    client.goto("about:blank").await.unwrap();
    client
        .execute(
            "document.open(); document.write(arguments[0]); document.close();",
            vec![serde_json::Value::String(html.to_owned())],
        )
        .await
        .unwrap();
}

/// The HTML part of a received message.
fn html_of(data: &[u8]) -> String {
    let message = MessageParser::default().parse(data).expect("the mail parses");
    message.body_html(0).expect("an HTML part").into_owned()
}

/// A digest with two posts (one with a wide lead image and a long title) and a confirmation mail.
async fn mails(app: &TestApp, smtp: &SmtpServer) -> (String, String) {
    add_subscriber(
        app,
        "all@example.org",
        SubscriberStatus::Confirmed,
        Frequency::Daily,
        &[],
    )
    .await;
    app.write_post(
        "otters.md",
        "---\ntitle: \"Otters are back on the river after an absence of nearly thirty years\"\n\
         date: 2026-09-14\nauthor: Ana Author\ntags: [wildlife]\nimage: /img/otters-wide.jpg\n\
         image_alt: Two otters on a bank\nsummary: \"Volunteers counted them along the whole length of the river.\"\n---\nBody.\n",
    );
    app.write_post(
        "water.md",
        &post(
            "Water results",
            "2026-10-21",
            &["water-quality"],
            "Readings are in.\n\n\
             | Site | Nitrate | Phosphate | Oxygen | Temperature | Verdict |\n\
             |---|---:|---:|---:|---:|:---:|\n\
             | Mill weir upstream of the old tannery | 12.5 | 0.31 | 94% | 11.2 | Improving |\n\n\
             The full dataset is at https://data.example.org/rivers/readings/2026/october/all-sites-including-tributaries.csv\n\n\
             - One\n- Two\n",
        ),
    );
    app.sync().await;
    let editions = app
        .app
        .digests
        .compose(Frequency::Daily, Trigger::Manual, None)
        .await
        .unwrap();
    assert_eq!(editions.len(), 1);
    for _ in 0..400 {
        herald::digest::send::deliver_batch(&app.app.sender).await.unwrap();
        if smtp.count() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let digest = html_of(&smtp.wait_for(1, Duration::from_secs(10)).await[0].data);
    assert!(digest.contains("Water results"), "{digest}");

    let response = app
        .client
        .post(app.url("/subscribe"))
        .form(&[("email", "new.reader@example.org"), ("frequency", "weekly")])
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let received = smtp.wait_for(2, Duration::from_secs(15)).await;
    let confirm = received
        .iter()
        .find(|m| m.to == ["new.reader@example.org"])
        .expect("a confirmation mail");
    let confirm = html_of(&confirm.data);
    assert!(confirm.contains("/confirm/"), "{confirm}");
    (digest, confirm)
}

/// Design settings that make the layout and the colours work hardest: a pale accent that
/// is unreadable as it is, a logo, a footer, a postal address and whole posts in digests.
const DESIGN: &str = "[site]\naccent_color = \"#ffdd00\"\nlogo = \"favicon.svg\"\n\
    footer = \"Registered charity no. 1000000\"\npostal_address = \"1 Mill Lane\\nBristol BS1 4AA\"\n\
    [digest]\ncontent = \"full\"\n";

/// The app (with `extra` settings, TOML sections) and its digest and confirmation mails.
async fn app_and_mails(extra: &str) -> (SmtpServer, TestApp, String, String) {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(&format!(
        "{extra}[mail]\ntransport = \"smtp\"\nfrom = \"News <news@example.org>\"\n\
         [mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\n",
        smtp.port
    ))
    .await;
    app.write_post("archive.md", &post("Archive", "2026-01-01", &["news"], "Old."));
    app.sync().await;
    let (digest, confirm) = mails(&app, &smtp).await;
    (smtp, app, digest, confirm)
}

/// The page's width, the viewport's and the widest element's, measured in the browser.
const WIDTHS: &str = r#"
const card = document.querySelector('.card');
const rect = card.getBoundingClientRect();
let widest = null;
for (const el of document.body.querySelectorAll('*')) {
  const r = el.getBoundingClientRect();
  if (r.width > 0 && r.right > window.innerWidth + 0.5 && (!widest || r.right > widest.right)) {
    widest = {tag: el.tagName.toLowerCase() + (el.className ? '.' + el.className : ''), right: r.right};
  }
}
return {scroll: document.documentElement.scrollWidth, inner: window.innerWidth,
        card: rect.width, cardRight: rect.right, widest: widest ? JSON.stringify(widest) : null};
"#;

#[tokio::test]
async fn the_digest_and_the_confirmation_fit_narrow_screens() {
    if !available() {
        return;
    }
    let (_smtp, _app, teaser, confirm) = app_and_mails("").await;
    let (_smtp, _app, full, designed) = app_and_mails(DESIGN).await;
    assert!(
        full.contains("Mill weir upstream"),
        "the whole post is in the digest: {full}"
    );
    let mails = [
        ("digest", &teaser),
        ("confirmation", &confirm),
        ("full digest", &full),
        ("designed confirmation", &designed),
    ];
    for (name, html) in mails {
        assert!(
            html.contains("<!--[if mso]>"),
            "{name}: a fixed-width table for Outlook"
        );
    }
    let profile = tempfile::tempdir().unwrap();
    let driver = Chromedriver::start().await;
    let client = browser(&driver, profile.path()).await;
    for width in [320, 390, 600] {
        viewport(&client, width).await;
        for (name, html) in mails {
            show_html(&client, html).await;
            find(&client, ".card").await;
            let m = client.execute(WIDTHS, vec![]).await.unwrap();
            let number = |key: &str| m[key].as_f64().unwrap_or_else(|| panic!("{key} in {m}"));
            assert_eq!(number("inner"), f64::from(width), "{name}: the viewport is {width} px");
            eprintln!(
                "{name} at {width} px: page {} px, text container {} px",
                number("scroll"),
                number("card")
            );
            assert!(
                number("scroll") <= number("inner"),
                "{name} at {width} px: the page is {} px wide; widest element {}",
                number("scroll"),
                m["widest"]
            );
            assert!(
                number("card") <= number("inner") && number("cardRight") <= number("inner") + 0.5,
                "{name} at {width} px: the text container is {} px wide, ending at {}",
                number("card"),
                number("cardRight")
            );
            if width == 600 {
                assert!(number("card") >= 560.0, "{name}: the card still uses the width it has");
            }
        }
    }
    client.close().await.unwrap();
}

/// Every element with text of its own: its colour, its effective background (the first
/// ancestor with an opaque-enough background, composited), and the WCAG contrast ratio;
/// returns the ones under AA (4.5:1, or 3:1 for large text) and the lowest ratio seen.
const CONTRAST: &str = r#"
const parse = (c) => {
  const m = c.match(/rgba?\(([^)]+)\)/);
  if (!m) return null;
  const p = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number);
  return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
};
const over = (top, under) => {
  const a = top[3];
  return [0, 1, 2].map((i) => top[i] * a + under[i] * (1 - a)).concat([1]);
};
const canvas = arguments[0] === 'dark' ? [18, 18, 18, 1] : [255, 255, 255, 1];
const background = (el) => {
  const layers = [];
  for (let e = el; e; e = e.parentElement) {
    const bg = parse(getComputedStyle(e).backgroundColor);
    if (bg && bg[3] > 0) { layers.push(bg); if (bg[3] >= 1) break; }
  }
  let colour = canvas;
  for (const layer of layers.reverse()) colour = over(layer, colour);
  return colour;
};
const luminance = (c) => {
  const [r, g, b] = c.slice(0, 3).map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
};
const hex = (c) => '#' + c.slice(0, 3).map((v) => Math.round(v).toString(16).padStart(2, '0')).join('');
const bad = [];
let worst = null;
for (const el of document.body.querySelectorAll('*')) {
  const own = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
  if (!own || el.getClientRects().length === 0) continue;
  const style = getComputedStyle(el);
  if (style.visibility === 'hidden' || style.display === 'none') continue;
  const r = el.getBoundingClientRect();
  if (r.right <= 0 || r.bottom <= 0 || r.width <= 1 || r.height <= 1) continue;
  const bg = background(el);
  const fg = over(parse(style.color), bg);
  const [l1, l2] = [luminance(fg), luminance(bg)].sort((a, b) => b - a);
  const ratio = (l1 + 0.05) / (l2 + 0.05);
  const size = parseFloat(style.fontSize);
  const large = size >= 24 || (parseInt(style.fontWeight, 10) >= 700 && size >= 18.66);
  const text = el.textContent.trim().replace(/\s+/g, ' ').slice(0, 40);
  const entry = {element: el.tagName.toLowerCase() + (el.className ? '.' + el.className : ''), text,
    color: hex(fg), background: hex(bg), ratio: Math.round(ratio * 100) / 100, large};
  if (!worst || ratio < worst.ratio) worst = entry;
  if (ratio < (large ? 3 : 4.5)) bad.push(entry);
}
return JSON.stringify({bad, worst});
"#;

async fn assert_readable(client: &Client, scheme_name: &str, what: &str, report: &mut Vec<String>) {
    let found = client
        .execute(CONTRAST, vec![serde_json::Value::String(scheme_name.to_owned())])
        .await
        .unwrap();
    let found: serde_json::Value = serde_json::from_str(found.as_str().unwrap()).unwrap();
    eprintln!("{what} ({scheme_name}): lowest contrast {}", found["worst"]);
    for bad in found["bad"].as_array().unwrap() {
        report.push(format!("{what} ({scheme_name}): {bad}"));
    }
}

#[tokio::test]
async fn every_text_on_the_emails_and_the_pages_is_readable_in_light_and_dark() {
    if !available() {
        return;
    }
    let profile = tempfile::tempdir().unwrap();
    let driver = Chromedriver::start().await;
    let client = browser(&driver, profile.path()).await;
    let mut failures = Vec::new();
    for (design, extra) in [("default design", ""), ("pale accent", DESIGN)] {
        let (_smtp, app, digest, confirm) = app_and_mails(extra).await;
        assert_pages_and_mails_readable(&client, &app, &digest, &confirm, design, &mut failures).await;
        if !extra.is_empty() {
            // The theme's own style applies (the Content-Security-Policy allows it): links
            // take the accent, darkened until readable.
            let accent: herald::domain::Colour = "#ffdd00".parse().unwrap();
            let expected = accent.for_light();
            scheme(&client, "light").await;
            client.goto(&app.url("/subscribe")).await.unwrap();
            let colour = client
                .execute(
                    "return getComputedStyle(document.querySelector('header.site nav a')).color",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(
                colour.as_str(),
                Some(format!("rgb({}, {}, {})", expected.r, expected.g, expected.b).as_str()),
                "links take the site's accent"
            );
        }
    }
    client.close().await.unwrap();
    assert!(failures.is_empty(), "under WCAG AA contrast:\n{}", failures.join("\n"));
}

async fn assert_pages_and_mails_readable(
    client: &Client,
    app: &TestApp,
    digest: &str,
    confirm: &str,
    design: &str,
    failures: &mut Vec<String>,
) {
    client.goto(&app.url("/")).await.unwrap();
    let post_url = client
        .execute("return document.querySelector('article.summary h2 a').href", vec![])
        .await
        .unwrap();
    let post_url = post_url.as_str().expect("a post on the home page").to_owned();
    for scheme_name in ["light", "dark"] {
        scheme(client, scheme_name).await;
        for (name, html) in [("digest", digest), ("confirmation", confirm)] {
            show_html(client, html).await;
            find(client, ".card").await;
            assert_readable(client, scheme_name, &format!("{name}, {design}"), failures).await;
        }
        for (name, url) in [
            ("home", app.url("/")),
            ("post", post_url.clone()),
            ("subscribe", app.url("/subscribe")),
        ] {
            client.goto(&url).await.unwrap();
            find(client, "footer.site").await;
            assert_readable(client, scheme_name, &format!("{name}, {design}"), failures).await;
        }
        // The form's error message, shown after a refused address.
        client.goto(&app.url("/subscribe")).await.unwrap();
        find(client, "form.subscribe input[name=email]")
            .await
            .send_keys("not an address")
            .await
            .unwrap();
        client
            .execute(
                "document.querySelector('form.subscribe input[name=email]').type = 'text'; \
                 document.querySelector('form.subscribe').noValidate = true; \
                 document.querySelector('form.subscribe').submit();",
                vec![],
            )
            .await
            .unwrap();
        wait_text(client, "p.error", "").await;
        assert_readable(client, scheme_name, &format!("subscribe error, {design}"), failures).await;
    }
}
