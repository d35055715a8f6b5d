//! The console's subscriber list over HTTP: a page per subscriber, sorting, paging and
//! totals, actions on ticked rows confirmed first, dates in the site's zone, "Send now"
//! confirmed first, and drafts previewed by admins only.

use chrono::{DateTime, Utc};
use herald::domain::{Frequency, Subscriber, SubscriberStatus};

use crate::admin_api::admin_session;
use crate::common::{TestApp, add_subscriber, post, spawn_app_with};

/// A logged-in admin's requests (the bounce tests use it too).
pub(crate) struct Console<'a> {
    app: &'a TestApp,
    pub(crate) session: String,
}

impl<'a> Console<'a> {
    pub(crate) async fn new(app: &'a TestApp) -> Console<'a> {
        Console {
            app,
            session: admin_session(app).await,
        }
    }

    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.app
            .client
            .get(self.app.url(path))
            .header("cookie", &self.session)
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn page(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.text().await.unwrap()
    }

    pub(crate) async fn post(&self, path: &str, form: &[(&str, String)]) -> reqwest::Response {
        self.app
            .client
            .post(self.app.url(path))
            .header("cookie", &self.session)
            .header("origin", &self.app.address)
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Follows a redirect-after-post with its one-time message: the page it lands on.
    pub(crate) async fn follow(&self, response: reqwest::Response) -> String {
        assert_eq!(response.status(), 303);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let flash = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|c| c.starts_with("herald_flash="))
            .expect("a message for the next page");
        let flash = flash.split(';').next().unwrap().to_owned();
        let page = self
            .app
            .client
            .get(&location)
            .header("cookie", format!("{}; {flash}", self.session))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "{location}");
        let spent = page
            .headers()
            .get_all("set-cookie")
            .iter()
            .any(|v| v.to_str().unwrap().starts_with("herald_flash=;"));
        assert!(spent, "the message is shown once");
        page.text().await.unwrap()
    }
}

async fn find(app: &TestApp, id: i64) -> Option<Subscriber> {
    herald::store::subscribers::find(&app.app.db, id).await.unwrap()
}

/// The addresses in a list page, in the order shown.
fn emails(page: &str) -> Vec<String> {
    page.split("<td class=\"email\"><a href=\"")
        .skip(1)
        .map(|rest| {
            let start = rest.find('>').unwrap() + 1;
            let end = rest.find("</a>").unwrap();
            rest[start..end].to_owned()
        })
        .collect()
}

/// The address of a link with `rel` in a page, unescaped.
fn link(page: &str, rel: &str) -> Option<String> {
    let at = page.find(&format!("<a rel=\"{rel}\" href=\""))?;
    let rest = &page[at + rel.len() + 16..];
    Some(rest[..rest.find('"').unwrap()].replace("&amp;", "&"))
}

fn path_of(url: &str) -> String {
    let url = url::Url::parse(url).unwrap();
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

#[tokio::test]
async fn an_admin_changes_a_subscribers_choices_on_their_page_and_the_list_shows_them() {
    let app = spawn_app_with("").await;
    app.write_post(
        "otters.md",
        &post("Otters", "2026-01-02", &["wildlife", "rivers"], "Otters."),
    );
    app.sync().await;
    let console = Console::new(&app).await;
    let ana = add_subscriber(
        &app,
        "ana@example.org",
        SubscriberStatus::Pending,
        Frequency::Weekly,
        &[],
    )
    .await;
    let path = format!("/admin/subscribers/{}", ana.id);

    let detail = console.page(&path).await;
    assert!(detail.contains("<dd id=\"status\">pending</dd>"), "{detail}");
    assert!(
        detail.contains("name=\"topics\" value=\"wildlife\""),
        "topics as checkboxes: {detail}"
    );
    assert!(detail.contains("name=\"topics\" value=\"rivers\""), "{detail}");
    assert!(detail.contains("not yet"), "not confirmed yet: {detail}");

    let form = [
        ("name", "Ana Reader".to_owned()),
        ("frequency", "daily".to_owned()),
        ("topics", "wildlife".to_owned()),
        ("topics", "rivers".to_owned()),
    ];
    let saved = console.post(&path, &form).await;
    assert_eq!(saved.headers()["location"], app.url(&path));
    let shown = console.follow(saved).await;
    assert!(shown.contains("Saved the choices of ana@example.org."), "{shown}");
    assert!(shown.contains("value=\"wildlife\" checked"), "{shown}");
    let stored = find(&app, ana.id).await.unwrap();
    assert_eq!(stored.name.as_deref(), Some("Ana Reader"));
    assert_eq!(stored.frequency, Frequency::Daily);
    assert_eq!(stored.topics, ["wildlife", "rivers"]);
    assert_eq!(
        stored.status,
        SubscriberStatus::Pending,
        "choices never change a status"
    );

    let list = console.page("/admin/subscribers").await;
    let row = &list[list.find("ana@example.org").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains("Ana Reader") && row.contains("daily") && row.contains("wildlife, rivers"),
        "{row}"
    );

    // A bad topic saves nothing and says why.
    let bad = [
        ("name", "Someone Else".to_owned()),
        ("frequency", "weekly".to_owned()),
        ("topics", "knitting".to_owned()),
    ];
    let shown = console.follow(console.post(&path, &bad).await).await;
    assert!(
        shown.contains("Nothing was saved: Topics: unknown topic &quot;knitting&quot; (known topics: "),
        "{shown}"
    );
    assert_eq!(find(&app, ana.id).await.unwrap(), stored);

    assert_eq!(console.get("/admin/subscribers/999999").await.status(), 404);
}

#[tokio::test]
async fn the_list_sorts_by_each_column_and_pages_both_ways_with_its_totals() {
    let app = spawn_app_with("").await;
    let console = Console::new(&app).await;
    let people = [
        ("carol@example.org", SubscriberStatus::Confirmed),
        ("alice@example.org", SubscriberStatus::Pending),
        ("erin@example.org", SubscriberStatus::Unsubscribed),
        ("bob@example.org", SubscriberStatus::Confirmed),
        ("dave@example.org", SubscriberStatus::Pending),
    ];
    for (email, status) in people {
        add_subscriber(&app, email, status, Frequency::Weekly, &[]).await;
    }
    let by_id: Vec<String> = people.iter().map(|(e, _)| e.to_string()).collect();
    let mut by_email = by_id.clone();
    by_email.sort();
    // Status words sort as text; ties in id order.
    let by_status = [
        "carol@example.org",
        "bob@example.org",
        "alice@example.org",
        "dave@example.org",
        "erin@example.org",
    ];

    let first = console.page("/admin/subscribers").await;
    assert!(first.contains("<strong id=\"total\">5</strong> in all"), "{first}");
    for (status, n) in [("confirmed", 2), ("pending", 2), ("unsubscribed", 1), ("bounced", 0)] {
        assert!(
            first.contains(&format!("data-status=\"{status}\">{status} {n}</span>")),
            "{status} {n}: {first}"
        );
    }
    assert_eq!(emails(&first), by_id);

    let cases: [(&str, Vec<String>); 5] = [
        ("sort=email", by_email.clone()),
        ("sort=email&dir=desc", by_email.iter().rev().cloned().collect()),
        ("sort=status", by_status.iter().map(|s| s.to_string()).collect()),
        ("sort=created", by_id.clone()),
        ("sort=created&dir=desc", by_id.iter().rev().cloned().collect()),
    ];
    for (sort, expected) in cases {
        // Forward a page at a time: the sort is kept, the page says where it is.
        let mut seen = Vec::new();
        let mut path = format!("/admin/subscribers?{sort}&per=2");
        let mut pages = Vec::new();
        loop {
            let page = console.page(&path).await;
            assert!(page.contains(" of 5 · page "), "{page}");
            seen.extend(emails(&page));
            pages.push(path.clone());
            match link(&page, "next") {
                Some(next) => {
                    assert!(next.contains(sort), "{next} keeps {sort}");
                    path = path_of(&next);
                }
                None => break,
            }
        }
        assert_eq!(seen, expected, "{sort}");
        assert_eq!(pages.len(), 3, "5 rows, 2 a page");
        let last = console.page(&pages[2]).await;
        assert!(last.contains("5–5 of 5 · page 3 of 3"), "{last}");
        // And back.
        let mut back = Vec::new();
        let mut path = pages[2].clone();
        loop {
            let page = console.page(&path).await;
            back.splice(0..0, emails(&page));
            match link(&page, "prev") {
                Some(prev) => {
                    assert!(prev.contains(sort), "{prev} keeps {sort}");
                    path = path_of(&prev);
                }
                None => break,
            }
        }
        assert_eq!(back, expected, "{sort}, backwards");
    }

    // The sort links: a column's second click reverses it.
    let sorted = console.page("/admin/subscribers?sort=email").await;
    assert!(
        sorted.contains("sort=email&amp;dir=desc\" data-sort=\"email\">Address ▲"),
        "{sorted}"
    );

    // Search and status filters page too, with their own totals.
    let page = console.page("/admin/subscribers?q=I&sort=email&per=1").await;
    assert!(page.contains("1–1 of 2 · page 1 of 2"), "alice and erin: {page}");
    assert!(page.contains("<strong id=\"total\">2</strong> in all"), "{page}");
    assert_eq!(emails(&page), ["alice@example.org"]);
    let next = link(&page, "next").unwrap();
    assert!(next.contains("q=I") && next.contains("per=1"), "{next}");
    assert_eq!(emails(&console.page(&path_of(&next)).await), ["erin@example.org"]);
    let pending = console
        .page("/admin/subscribers?status=pending&sort=email&dir=desc")
        .await;
    assert_eq!(emails(&pending), ["dave@example.org", "alice@example.org"]);
    assert!(pending.contains("1–2 of 2 · page 1 of 1"), "{pending}");
    assert!(link(&pending, "next").is_none() && link(&pending, "prev").is_none());

    // An unknown sort is id order, not an error (nor SQL).
    let odd = console
        .page("/admin/subscribers?sort=email_key;drop%20table%20subscribers")
        .await;
    assert_eq!(emails(&odd), by_id);
}

#[tokio::test]
async fn each_bulk_action_asks_first_then_acts_on_exactly_the_ticked_rows() {
    let app = spawn_app_with("").await;
    let console = Console::new(&app).await;
    let a = add_subscriber(&app, "a@example.org", SubscriberStatus::Pending, Frequency::Weekly, &[]).await;
    let b = add_subscriber(&app, "b@example.org", SubscriberStatus::Pending, Frequency::Weekly, &[]).await;
    let c = add_subscriber(
        &app,
        "c@example.org",
        SubscriberStatus::Confirmed,
        Frequency::Weekly,
        &[],
    )
    .await;
    let d = add_subscriber(
        &app,
        "d@example.org",
        SubscriberStatus::Confirmed,
        Frequency::Weekly,
        &[],
    )
    .await;
    let ids = |list: &[&Subscriber]| -> Vec<(&'static str, String)> {
        list.iter().map(|s| ("id", s.id.to_string())).collect()
    };
    let form = |action: &str, chosen: &[&Subscriber], confirm: bool| {
        let mut form = ids(chosen);
        form.push(("action", action.to_owned()));
        form.push(("frequency", "daily".to_owned()));
        if confirm {
            form.push(("confirm", "yes".to_owned()));
        }
        form
    };
    let frequencies = || async {
        let mut out = Vec::new();
        for s in [&a, &b, &c, &d] {
            out.push(find(&app, s.id).await.map(|s| s.frequency));
        }
        out
    };

    // Change frequency: the page first, nothing changed.
    let ask = console
        .post("/admin/subscribers/bulk", &form("frequency", &[&a, &c], false))
        .await;
    assert_eq!(ask.status(), 200);
    let ask = ask.text().await.unwrap();
    assert!(ask.contains("Change 2 people to daily?"), "{ask}");
    assert!(ask.contains("a@example.org") && ask.contains("c@example.org") && !ask.contains("b@example.org"));
    assert!(ask.contains("name=\"confirm\" value=\"yes\""), "{ask}");
    assert_eq!(frequencies().await, [Some(Frequency::Weekly); 4]);
    // A cross-site post riding on the session changes nothing.
    let evil = app
        .client
        .post(app.url("/admin/subscribers/bulk"))
        .header("cookie", &console.session)
        .header("origin", "https://evil.example")
        .form(&form("frequency", &[&a, &c], true))
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), 403);
    let evil = app
        .client
        .post(app.url("/admin/subscribers/bulk"))
        .header("cookie", &console.session)
        .header("sec-fetch-site", "cross-site")
        .form(&form("remove", &[&a, &c], true))
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), 403);
    let anonymous = app
        .client
        .post(app.url("/admin/subscribers/bulk"))
        .form(&form("remove", &[&a, &c], true))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 303, "to the login page");
    assert_eq!(frequencies().await, [Some(Frequency::Weekly); 4]);
    // Confirmed: exactly those two, then back to the list with what was done.
    let done = console
        .post("/admin/subscribers/bulk", &form("frequency", &[&a, &c], true))
        .await;
    assert_eq!(done.headers()["location"], app.url("/admin/subscribers"));
    let shown = console.follow(done).await;
    assert!(shown.contains("2 people now get mail once a day"), "{shown}");
    assert_eq!(
        frequencies().await,
        [
            Some(Frequency::Daily),
            Some(Frequency::Weekly),
            Some(Frequency::Daily),
            Some(Frequency::Weekly)
        ]
    );

    // Resend: only the pending one of those ticked is mailed, and once per throttle period.
    let sent_at = |id: i64| {
        let db = app.app.db.clone();
        async move { herald::store::subscribers::confirmation_sent_at(&db, id).await.unwrap() }
    };
    let ask = console
        .post("/admin/subscribers/bulk", &form("resend", &[&b, &c], false))
        .await;
    let ask = ask.text().await.unwrap();
    assert!(ask.contains("Send the confirmation link again to 1 person?"), "{ask}");
    assert!(ask.contains("1 of the 2 ticked is pending"), "{ask}");
    assert_eq!(sent_at(b.id).await, None, "nothing before the confirmation");
    let shown = console
        .follow(
            console
                .post("/admin/subscribers/bulk", &form("resend", &[&b, &c], true))
                .await,
        )
        .await;
    assert!(shown.contains("A new confirmation link went to 1 person."), "{shown}");
    assert!(shown.contains("1 person not pending: left alone."), "{shown}");
    let first = sent_at(b.id).await.expect("b was mailed");
    assert_eq!(sent_at(c.id).await, None, "a confirmed reader is not mailed");
    assert_eq!(sent_at(a.id).await, None, "a pending reader not ticked is not mailed");
    let again = console
        .follow(
            console
                .post("/admin/subscribers/bulk", &form("resend", &[&b], true))
                .await,
        )
        .await;
    assert!(again.contains("A new confirmation link went to 0 people."), "{again}");
    assert!(again.contains("less than 5 minutes ago"), "{again}");
    assert_eq!(sent_at(b.id).await, Some(first), "the throttle holds");
    // A confirmation page with nobody pending offers no button.
    let nobody = console
        .post("/admin/subscribers/bulk", &form("resend", &[&c, &d], false))
        .await;
    let nobody = nobody.text().await.unwrap();
    assert!(!nobody.contains("type=\"submit\">Send to"), "{nobody}");

    // Remove: the page first, then exactly those two are gone.
    let ask = console
        .post("/admin/subscribers/bulk", &form("remove", &[&a, &d], false))
        .await;
    let ask = ask.text().await.unwrap();
    assert!(
        ask.contains("Remove 2 people?") && ask.contains("cannot be undone"),
        "{ask}"
    );
    assert!(find(&app, a.id).await.is_some() && find(&app, d.id).await.is_some());
    let shown = console
        .follow(
            console
                .post("/admin/subscribers/bulk", &form("remove", &[&a, &d], true))
                .await,
        )
        .await;
    assert!(
        shown.contains("Removed 2 people, with everything stored about them."),
        "{shown}"
    );
    assert!(find(&app, a.id).await.is_none() && find(&app, d.id).await.is_none());
    assert!(find(&app, b.id).await.is_some() && find(&app, c.id).await.is_some());

    // Nothing ticked, or no action: a message, nothing done.
    let shown = console
        .follow(
            console
                .post("/admin/subscribers/bulk", &[("action", "remove".to_owned())])
                .await,
        )
        .await;
    assert!(shown.contains("Tick at least one subscriber first."), "{shown}");
    let shown = console
        .follow(console.post("/admin/subscribers/bulk", &ids(&[&b])).await)
        .await;
    assert!(shown.contains("Choose an action"), "{shown}");
    assert!(find(&app, b.id).await.is_some());
}

#[tokio::test]
async fn an_admin_adds_a_subscriber_with_topics() {
    let app = spawn_app_with("").await;
    app.write_post(
        "otters.md",
        &post("Otters", "2026-01-02", &["wildlife", "rivers"], "Otters."),
    );
    app.sync().await;
    let console = Console::new(&app).await;
    let list = console.page("/admin/subscribers").await;
    assert!(list.contains("name=\"topics\" value=\"rivers\""), "{list}");
    let added = console
        .post(
            "/admin/subscribers",
            &[
                ("email", "new@example.org".to_owned()),
                ("frequency", "daily".to_owned()),
                ("confirmed", "1".to_owned()),
                ("topics", "rivers".to_owned()),
            ],
        )
        .await;
    assert_eq!(added.status(), 200);
    let stored = herald::store::subscribers::find_by_email(
        &app.app.db,
        &herald::domain::EmailAddress::parse("new@example.org").unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(stored.topics, ["rivers"]);
    assert_eq!(stored.status, SubscriberStatus::Confirmed);
}

/// `t` as the console shows it in `zone`, and as its `datetime` attribute holds it.
fn shown(t: DateTime<Utc>, zone: chrono_tz::Tz) -> (String, String) {
    let iso = serde_json::to_value(t).unwrap().as_str().unwrap().to_owned();
    (t.with_timezone(&zone).format("%-d %b %Y, %H:%M").to_string(), iso)
}

#[tokio::test]
async fn console_dates_read_as_people_read_them_in_the_sites_time_zone() {
    // Kolkata is UTC+05:30 all year: the minutes prove the conversion.
    let app = spawn_app_with("[schedule]\ntimezone = \"Asia/Kolkata\"\n").await;
    let zone = chrono_tz::Asia::Kolkata;
    let console = Console::new(&app).await;
    let ana = add_subscriber(
        &app,
        "ana@example.org",
        SubscriberStatus::Confirmed,
        Frequency::Weekly,
        &[],
    )
    .await;
    // The first sync is the archive; the next one's posts are news.
    app.write_post("archive.md", &post("Archive", "2025-01-01", &["news"], "Old."));
    app.sync().await;
    app.write_post(
        "otters.md",
        &post("Otters", "2026-01-02T09:15:00Z", &["wildlife"], "Otters."),
    );
    app.sync().await;

    let (human, iso) = shown(ana.created_at, zone);
    let utc = ana.created_at.format("%-d %b %Y, %H:%M").to_string();
    assert_ne!(human, utc);
    for path in [
        format!("/admin/subscribers/{}", ana.id),
        "/admin/subscribers".to_owned(),
    ] {
        let page = console.page(&path).await;
        let element = format!("<time datetime=\"{iso}\" title=\"{iso}\">{human}</time>");
        assert!(page.contains(&element), "{element} in {path}: {page}");
        assert!(!page.contains(&format!(">{iso}")), "no raw timestamp as text in {path}");
    }
    let detail = console.page(&format!("/admin/subscribers/{}", ana.id)).await;
    let (confirmed, _) = shown(ana.confirmed_at.unwrap(), zone);
    assert!(detail.contains(&confirmed), "{detail}");

    let posts = console.page("/admin/posts").await;
    assert!(
        posts.contains(">2 Jan 2026, 14:45</time>"),
        "09:15 UTC in Kolkata: {posts}"
    );

    // Editions too.
    let send = console
        .post(
            "/admin/editions/send",
            &[
                ("frequency", "weekly".to_owned()),
                ("force", "on".to_owned()),
                ("confirm", "yes".to_owned()),
            ],
        )
        .await;
    assert_eq!(send.status(), 303);
    let edition = herald::store::editions::list(&app.app.db, 1).await.unwrap().remove(0);
    let (human, iso) = shown(edition.created_at, zone);
    for path in [format!("/admin/editions/{}", edition.id), "/admin/editions".to_owned()] {
        let page = console.page(&path).await;
        assert!(page.contains(&format!("datetime=\"{iso}\"")), "{path}: {page}");
        assert!(page.contains(&human), "{path}: {page}");
        assert!(!page.contains(&format!(">{iso}")), "no raw timestamp as text in {path}");
    }
}

#[tokio::test]
async fn send_now_says_who_gets_which_posts_before_it_sends() {
    let app = spawn_app_with("").await;
    let console = Console::new(&app).await;
    add_subscriber(
        &app,
        "one@example.org",
        SubscriberStatus::Confirmed,
        Frequency::Weekly,
        &[],
    )
    .await;
    add_subscriber(
        &app,
        "two@example.org",
        SubscriberStatus::Confirmed,
        Frequency::Weekly,
        &[],
    )
    .await;
    add_subscriber(
        &app,
        "later@example.org",
        SubscriberStatus::Pending,
        Frequency::Weekly,
        &[],
    )
    .await;
    // The first sync is the archive; the next one's posts are news.
    app.write_post("archive.md", &post("Archive", "2025-01-01", &["news"], "Old."));
    app.sync().await;
    app.write_post(
        "otters.md",
        &post("Otters are back", "2026-09-14", &["wildlife"], "Good news."),
    );
    app.write_post(
        "herons.md",
        &post("Herons nest", "2026-09-15", &["wildlife"], "More news."),
    );
    app.sync().await;

    let form = |confirm: bool| {
        let mut form = vec![("frequency", "weekly".to_owned()), ("force", "on".to_owned())];
        if confirm {
            form.push(("confirm", "yes".to_owned()));
        }
        form
    };
    let ask = console.post("/admin/editions/send", &form(false)).await;
    assert_eq!(ask.status(), 200);
    let ask = ask.text().await.unwrap();
    assert!(
        ask.contains("2 confirmed weekly readers</strong> get an edition of 2 posts"),
        "{ask}"
    );
    assert!(
        ask.contains("“Otters are back”") && ask.contains("“Herons nest”"),
        "{ask}"
    );
    assert!(ask.contains("<strong id=\"people\">2 people</strong>"), "{ask}");
    let editions = herald::store::editions::list(&app.app.db, 10).await.unwrap();
    assert!(
        editions.iter().all(|e| e.frequency != Frequency::Weekly),
        "nothing sent before the confirmation"
    );

    let sent = console.post("/admin/editions/send", &form(true)).await;
    assert_eq!(sent.status(), 303);
    let weekly: Vec<_> = herald::store::editions::list(&app.app.db, 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.frequency == Frequency::Weekly)
        .collect();
    assert_eq!(weekly.len(), 1);
    assert_eq!(weekly[0].recipients, 2);
    assert_eq!(
        sent.headers()["location"],
        app.url(&format!("/admin/editions/{}", weekly[0].id))
    );
}

#[tokio::test]
async fn a_draft_is_previewed_by_an_admin_and_by_nobody_else() {
    let app = spawn_app_with("").await;
    app.write_post(
        "secret.md",
        "---\ntitle: \"Secret plans\"\ndate: 2026-03-01\ndraft: true\ntags: [news]\n---\nNot yet.\n",
    );
    app.write_post("public.md", &post("Public news", "2026-03-02", &["news"], "Out."));
    app.sync().await;
    let console = Console::new(&app).await;

    let posts = console.page("/admin/posts").await;
    let row = &posts[posts[..posts.find("Secret plans").unwrap()].rfind("<tr>").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains("href=\"") && row.contains("/admin/posts/secret/preview\""),
        "{row}"
    );
    assert!(row.contains("<span class=\"draft\">draft</span>"), "{row}");

    let preview = console.get("/admin/posts/secret/preview").await;
    assert_eq!(preview.status(), 200);
    assert_eq!(preview.headers()["cache-control"], "no-store");
    let html = preview.text().await.unwrap();
    assert!(html.contains("Secret plans") && html.contains("Not yet."), "{html}");

    let anonymous = app.get("/admin/posts/secret/preview").await;
    assert_eq!(anonymous.status(), 303);
    assert!(
        anonymous.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("/admin/login")
    );
    assert_eq!(app.get("/posts/secret/").await.status(), 404, "never public");
    assert_eq!(app.get("/posts/secret").await.status(), 404, "never public");
    assert!(!app.get_text("/feed.atom").await.contains("Secret plans"));
    assert_eq!(console.get("/admin/posts/nothing-here/preview").await.status(), 404);
    assert_eq!(console.get("/admin/posts/..%2F..%2Fetc/preview").await.status(), 404);
}
