//! Clicks on digest links (`[tracking] clicks`): the redirect leads only to a link of the
//! token's edition and records who clicked (nobody when anonymous), the figures per edition
//! in the API and the console, and digests untouched when clicks are off. Real SMTP, a real
//! database, requests over HTTP.

use std::time::Duration;

use herald::digest::Trigger;
use herald::domain::{Frequency, Subscriber, SubscriberStatus};
use mail_parser::MessageParser;

use crate::common::{TestApp, add_subscriber, post};
use crate::smtp::SmtpServer;

const BODY: &str = "Otters are back. Read [the survey](https://survey.example.org/otters?year=2026&river=wey), \
                    or [write to us](mailto:otters@example.org).";

/// A site mailing through `smtp` whose digests carry whole posts, with `tracking` settings.
async fn app(smtp: &SmtpServer, tracking: &str) -> TestApp {
    crate::digests::app_with_smtp(smtp, &format!("[digest]\ncontent = \"full\"\n{tracking}")).await
}

async fn reader(app: &TestApp, email: &str) -> Subscriber {
    add_subscriber(app, email, SubscriberStatus::Confirmed, Frequency::Daily, &[]).await
}

/// Publishes a post, makes the daily edition and sends it; returns the edition's id.
async fn send_edition(app: &TestApp, file: &str, title: &str) -> i64 {
    app.write_post(file, &post(title, "2026-09-14", &["wildlife"], BODY));
    app.sync().await;
    let editions = app
        .app
        .digests
        .compose(Frequency::Daily, Trigger::Manual, None)
        .await
        .unwrap();
    assert_eq!(editions.len(), 1);
    crate::digests::drain(app).await;
    editions[0].id
}

/// The HTML and text parts of the message `to` got in edition `edition`.
fn message_of(smtp: &SmtpServer, to: &str, edition: i64) -> (String, String, String) {
    let received = smtp.received();
    let mail = received
        .iter()
        .find(|r| {
            r.to[0] == to && {
                let m = MessageParser::default().parse(&r.data).unwrap();
                m.message_id()
                    .is_some_and(|id| id.starts_with(&format!("edition.{edition}.")))
            }
        })
        .unwrap_or_else(|| panic!("no edition {edition} for {to}"));
    let message = MessageParser::default().parse(&mail.data).unwrap();
    let unsubscribe = message.header_raw("List-Unsubscribe").unwrap().trim().to_owned();
    (
        message.body_html(0).unwrap().into_owned(),
        message.body_text(0).unwrap().into_owned(),
        unsubscribe,
    )
}

/// The distinct tracked links (`{base}/r/...`) in `doc`, in order.
fn tracked_links(app: &TestApp, doc: &str) -> Vec<String> {
    let prefix = app.url("/r/");
    let mut out: Vec<String> = Vec::new();
    for (i, _) in doc.match_indices(&prefix) {
        let link: String = doc[i..]
            .chars()
            .take_while(|c| !c.is_whitespace() && !matches!(c, '"' | '<' | '>' | ']' | ')'))
            .collect();
        if !out.contains(&link) {
            out.push(link);
        }
    }
    out
}

async fn click(app: &TestApp, url: &str) -> reqwest::Response {
    app.client.get(url).send().await.unwrap()
}

async fn api_edition(app: &TestApp, id: i64) -> serde_json::Value {
    app.client
        .get(app.url(&format!("/admin/api/editions/{id}")))
        .header("authorization", "Bearer digest-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn assert_refused(response: &reqwest::Response, what: &str) {
    assert_eq!(response.status(), 404, "{what}");
    assert!(response.headers().get("location").is_none(), "{what}: no redirect");
}

#[tokio::test]
async fn tracked_links_lead_only_to_the_editions_links_and_record_who_clicked() {
    let smtp = SmtpServer::start().await;
    let app = app(&smtp, "[tracking]\nclicks = true\n").await;
    let ana = reader(&app, "ana@example.org").await;
    let ben = reader(&app, "ben@example.org").await;
    let first = send_edition(&app, "otters.md", "Otters return").await;
    smtp.wait_for(2, Duration::from_secs(10)).await;

    let (html, text, list_unsubscribe) = message_of(&smtp, "ana@example.org", first);
    let post_url = app.url("/posts/otters/");
    let survey = "https://survey.example.org/otters?year=2026&river=wey";
    // The reader's own links and mailto: are left as they are, in both parts and the header.
    let unsubscribe = app.url(&format!("/unsubscribe/{}", ana.manage_token));
    let preferences = app.url(&format!("/preferences/{}", ana.manage_token));
    for part in [&html, &text] {
        assert!(part.contains(&unsubscribe) && part.contains(&preferences), "{part}");
        assert!(part.contains("mailto:otters@example.org"), "{part}");
        assert!(
            !part.contains(&format!("{post_url}\"")) && !part.contains("survey.example.org"),
            "{part}"
        );
    }
    assert_eq!(list_unsubscribe, format!("<{unsubscribe}>"));
    assert!(html.contains(&format!("/editions/{first}")), "the web view link stays");

    let links = tracked_links(&app, &html);
    assert_eq!(links.len(), 2, "the post and the survey: {links:?}");
    let mut in_text = tracked_links(&app, &text);
    in_text.sort();
    let mut sorted = links.clone();
    sorted.sort();
    assert_eq!(in_text, sorted, "the text part has the same links");
    let token = |link: &str| link.rsplit('/').next().unwrap().to_owned();
    assert!(
        links
            .iter()
            .all(|l| token(l).split('.').nth(1) == Some(ana.id.to_string().as_str())),
        "each names its reader: {links:?}"
    );
    assert!(links.iter().all(|l| token(l).len() < 40), "short: {links:?}");

    // Each redirects to its link, and is recorded; a HEAD (a link checker) is not counted.
    let mut targets = Vec::new();
    for link in &links {
        let response = click(&app, link).await;
        assert_eq!(response.status(), 302);
        assert_eq!(response.headers()["cache-control"], "no-store");
        targets.push(response.headers()["location"].to_str().unwrap().to_owned());
    }
    targets.sort();
    assert_eq!(targets, [post_url.clone(), survey.to_owned()]);
    let head = app.client.head(&links[0]).send().await.unwrap();
    assert_eq!(head.status(), 302);
    click(&app, &links[1]).await;
    // Ben clicks once; the web view of the edition tracks nobody.
    let (ben_html, _, _) = message_of(&smtp, "ben@example.org", first);
    let ben_links = tracked_links(&app, &ben_html);
    assert_ne!(ben_links, links, "each reader's links are their own");
    assert_eq!(click(&app, &ben_links[0]).await.status(), 302);
    let web = app.get_text(&format!("/editions/{first}")).await;
    assert!(
        !web.contains("/r/") && web.contains(&post_url),
        "the web view is not tracked"
    );

    let figures = herald::store::clicks::for_edition(&app.app.db, first).await.unwrap();
    assert_eq!((figures.clicks, figures.unique_clickers), (4, 2));
    assert_eq!(figures.links.iter().map(|l| l.clicks).sum::<i64>(), 4);
    assert_eq!(figures.links.len(), 2);
    assert!(figures.links.iter().all(|l| l.unique_clickers >= 1));

    // Refused, with a page and no redirect: forged, tampered, another reader's or another
    // edition's signature, and anything that is not a token.
    let second = send_edition(&app, "water.md", "Water results").await;
    smtp.wait_for(4, Duration::from_secs(10)).await;
    let (second_html, _, _) = message_of(&smtp, "ana@example.org", second);
    let second_links = tracked_links(&app, &second_html);
    assert_eq!(second_links.len(), 2);
    let (link_part, reader_part) = token(&links[0])
        .split_once('.')
        .map(|(l, r)| (l.to_owned(), r.to_owned()))
        .unwrap();
    let (second_link_part, _) = token(&second_links[0])
        .split_once('.')
        .map(|(l, r)| (l.to_owned(), r.to_owned()))
        .unwrap();
    let mut tampered_signature = token(&links[0]);
    let last = tampered_signature.pop().unwrap();
    tampered_signature.push(if last == 'A' { 'B' } else { 'A' });
    let mut tampered_link = token(&links[0]);
    tampered_link.replace_range(0..1, if tampered_link.starts_with('A') { "B" } else { "A" });
    let signature = reader_part.split('.').nth(1).unwrap();
    for (token, what) in [
        ("AAAAAAAAAAAA".to_owned(), "a forged link token"),
        (
            format!("AAAAAAAAAAAA.{reader_part}"),
            "a forged link token with a real signature",
        ),
        (tampered_signature, "a tampered signature"),
        (tampered_link, "a tampered link token"),
        (format!("{link_part}.{}.{signature}", ben.id), "another reader's id"),
        (
            format!("{second_link_part}.{reader_part}"),
            "another edition's link with this one's signature",
        ),
        ("https:%2F%2Fevil.example%2F".to_owned(), "a URL"),
        (format!("{link_part}.{reader_part}.x"), "extra parts"),
    ] {
        let response = click(&app, &app.url(&format!("/r/{token}"))).await;
        assert_refused(&response, what);
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("This link does not lead anywhere"),
            "{what}"
        );
    }
    let after = herald::store::clicks::for_edition(&app.app.db, first).await.unwrap();
    assert_eq!(after.clicks, 4, "refused tokens record nothing");

    // The API and the console show the edition's figures.
    let json = api_edition(&app, first).await;
    let clicks = &json["clicks"];
    assert_eq!(clicks["tracking"], "named");
    assert_eq!(clicks["clicks"], 4);
    assert_eq!(clicks["unique_clickers"], 2);
    assert_eq!(clicks["delivered"], 2);
    assert_eq!(clicks["click_rate"], 1.0);
    let per_link: Vec<(String, i64)> = clicks["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["url"].as_str().unwrap().to_owned(), l["clicks"].as_i64().unwrap()))
        .collect();
    assert_eq!(per_link.len(), 2);
    assert_eq!(per_link.iter().map(|(_, n)| n).sum::<i64>(), 4);
    assert!(per_link.iter().any(|(url, _)| url == survey) && per_link.iter().any(|(url, _)| *url == post_url));
    let console = crate::console::Console::new(&app).await;
    let page = console.page(&format!("/admin/editions/{first}")).await;
    assert!(
        page.contains("<strong id=\"unique-clickers\">2</strong> readers clicked"),
        "{page}"
    );
    assert!(
        page.contains("<strong id=\"click-rate\">100.0 %</strong> of 2 delivered"),
        "{page}"
    );
    assert!(
        page.contains("survey.example.org/otters?year=2026&amp;river=wey"),
        "{page}"
    );
    // The insight page charts each edition's readers who clicked.
    let insight: serde_json::Value = console.get("/admin/api/insights").await.json().await.unwrap();
    assert_eq!(insight["tracking"], "named");
    let figures: Vec<(i64, i64, i64, f64)> = insight["editions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let n = |k: &str| e[k].as_i64().unwrap();
            (
                n("id"),
                n("clicks"),
                n("clickers"),
                e["rates"]["clicked"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(figures, [(first, 4, 2, 100.0), (second, 0, 0, 0.0)]);
    let svg = console.page("/admin/insights/clicks.svg").await;
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let clicked = herald::insight::charts::palette::CLICKED;
    let colour = format!("#{:02X}{:02X}{:02X}", clicked.0, clicked.1, clicked.2);
    let bars = doc
        .descendants()
        .filter(|n| n.has_tag_name("rect") && n.attribute("fill").is_some_and(|f| f.eq_ignore_ascii_case(&colour)))
        .count();
    assert_eq!(bars, 1 + 1, "one edition was clicked, and the legend's box: {svg}");
    assert!(
        console
            .page("/admin/insights")
            .await
            .contains("/admin/insights/clicks.svg")
    );
    let untouched = herald::store::clicks::per_edition(&app.app.db, &[first, second])
        .await
        .unwrap();
    assert_eq!(
        untouched
            .iter()
            .map(|e| (e.edition_id, e.clicks, e.unique_clickers))
            .collect::<Vec<_>>(),
        [(first, 4, 2), (second, 0, 0)]
    );
}

#[tokio::test]
async fn anonymous_clicks_are_counted_without_their_reader() {
    let smtp = SmtpServer::start().await;
    let app = app(&smtp, "[tracking]\nclicks = true\nanonymous = true\n").await;
    reader(&app, "ana@example.org").await;
    let edition = send_edition(&app, "otters.md", "Otters return").await;
    smtp.wait_for(1, Duration::from_secs(10)).await;
    let (html, _, _) = message_of(&smtp, "ana@example.org", edition);
    let links = tracked_links(&app, &html);
    assert_eq!(links.len(), 2);
    for link in &links {
        let token = link.rsplit('/').next().unwrap();
        assert_eq!(token.len(), 12, "a link's token alone, nothing of the reader: {token}");
        assert_eq!(click(&app, link).await.status(), 302);
    }
    let figures = herald::store::clicks::for_edition(&app.app.db, edition).await.unwrap();
    assert_eq!(figures.clicks, 2);
    assert_eq!(figures.unique_clickers, 0, "no click names a reader");
    let json = api_edition(&app, edition).await;
    assert_eq!(json["clicks"]["tracking"], "anonymous");
    assert!(json["clicks"]["unique_clickers"].is_null() && json["clicks"]["click_rate"].is_null());
    assert_eq!(json["clicks"]["clicks"], 2);
    let page = app.get_text("/subscribe").await;
    assert!(page.contains("We count clicks on their links without recording who clicked."));
}

#[tokio::test]
async fn with_clicks_off_digest_links_are_left_as_they_are() {
    let smtp = SmtpServer::start().await;
    let app = app(&smtp, "").await;
    reader(&app, "ana@example.org").await;
    let edition = send_edition(&app, "otters.md", "Otters return").await;
    smtp.wait_for(1, Duration::from_secs(10)).await;
    let (html, text, _) = message_of(&smtp, "ana@example.org", edition);
    let post_url = app.url("/posts/otters/");
    assert!(html.contains(&format!("href=\"{post_url}\"")), "{html}");
    assert!(html.contains("href=\"https://survey.example.org/otters?year=2026&amp;river=wey\""));
    assert!(text.contains(&post_url) && text.contains("https://survey.example.org/otters?year=2026&river=wey"));
    assert!(!html.contains("/r/") && !text.contains("/r/"));
    let figures = herald::store::clicks::for_edition(&app.app.db, edition).await.unwrap();
    assert!(figures.links.is_empty(), "no links stored");
    assert_eq!(api_edition(&app, edition).await["clicks"]["tracking"], "off");
    let page = app.get_text("/subscribe").await;
    assert!(page.contains("We never record whether you open our emails. We do not record which links you click."));
}
