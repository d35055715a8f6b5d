//! The admin console: server-rendered pages behind a login, with a little JavaScript for
//! live send progress. Everything here is also in the JSON API.
//! Its handlers use the services in `web::AppState`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::extract::{Form, Path};
use super::{Result, WebError, guard};
use crate::auth;
use crate::config::Settings;
use crate::digest::render::EditionContent;
use crate::domain::{EmailAddress, Frequency, PostState, SubscriberStatus};
use crate::schedule::SendRequest;
use crate::store;

const COOKIE: &str = "herald_session";
/// A known device (see [`auth::Logins`]); sent only to the login form.
const DEVICE_COOKIE: &str = "herald_device";

/// A message for the page an action redirects to, carried in a cookie for one request.
const FLASH_COOKIE: &str = "herald_flash";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Flash {
    Notice(String),
    Error(String),
}

fn write_flash(flash: &Flash) -> String {
    let (kind, text) = match flash {
        Flash::Notice(t) => ("n", t),
        Flash::Error(t) => ("e", t),
    };
    format!("{kind}{}", URL_SAFE_NO_PAD.encode(text))
}

fn read_flash(value: &str) -> Option<Flash> {
    let text = |rest: &str| {
        URL_SAFE_NO_PAD
            .decode(rest)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
    };
    match value.split_at_checked(1)? {
        ("n", rest) => text(rest).map(Flash::Notice),
        ("e", rest) => text(rest).map(Flash::Error),
        _ => None,
    }
}

/// The console's path on this site, for cookies that only it reads.
fn admin_path(settings: &Settings) -> String {
    format!("{}admin", settings.site.base_url.path())
}

/// The admin a request is made by (set by [`require_admin`]).
#[derive(Clone)]
pub struct Admin(pub String);

/// The session token in the request's cookies, if any.
pub fn session_cookie(jar: &CookieJar) -> Option<String> {
    jar.get(COOKIE).map(|c| c.value().to_owned())
}

/// A cookie only this site's own pages and scripts send back (HttpOnly, SameSite=Strict;
/// Secure when the site is served over HTTPS), for `max_age` (zero: remove it now).
fn strict_cookie(
    settings: &Settings,
    name: &'static str,
    value: String,
    path: String,
    max_age: i64,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .path(path)
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(time::Duration::seconds(max_age))
        .secure(settings.site.base_url.scheme() == "https")
        .build()
}

/// Lets in only requests with a live session; others go to the login page.
pub async fn require_admin(State(app): State<AppState>, jar: CookieJar, mut request: Request, next: Next) -> Response {
    let who = match session_cookie(&jar) {
        Some(token) => app.auth.session(&token).await.unwrap_or(None),
        None => None,
    };
    match who {
        Some(email) => {
            request.extensions_mut().insert(Admin(email));
            next.run(request).await
        }
        None => Redirect::to(&app.settings.url_for("admin/login")).into_response(),
    }
}

pub(super) fn page(
    app: &AppState,
    template: &str,
    section: &str,
    admin: &Admin,
    mut ctx: tera::Context,
) -> Result<Response> {
    ctx.insert("section", section);
    ctx.insert("admin", &admin.0);
    let body = app.site.page(template, "admin", ctx)?;
    Ok((StatusCode::OK, [(header::CACHE_CONTROL, "no-store")], Html(body)).into_response())
}

pub(super) fn with_message(notice: Option<&str>, error: Option<&str>) -> tera::Context {
    let mut ctx = tera::Context::new();
    ctx.insert("notice", &notice);
    ctx.insert("error", &error);
    ctx
}

// ---- login ----

fn login_page(app: &AppState, status: StatusCode, email: &str, error: Option<&str>) -> Result<Response> {
    let mut ctx = tera::Context::new();
    ctx.insert("email", email);
    ctx.insert("error", &error);
    let body = app.site.page("web/admin/login.html", "admin/login", ctx)?;
    Ok((status, [(header::CACHE_CONTROL, "no-store")], Html(body)).into_response())
}

pub async fn login_form(State(app): State<AppState>) -> Result<Response> {
    login_page(&app, StatusCode::OK, "", None)
}

/// The login form's answer to a cross-site post (see [`guard::require_same_origin`]): the
/// form again, with the reason.
pub fn login_refused(app: &AppState) -> Result<Response> {
    login_page(
        app,
        StatusCode::FORBIDDEN,
        "",
        Some("Log in from this site's own login page."),
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
}

pub async fn login(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Result<Response> {
    let device = jar.get(DEVICE_COOKIE).map(|c| c.value().to_owned());
    let known = device
        .as_deref()
        .and_then(|d| app.auth.logins().device_trusted(d, &form.email));
    let allowed = match known {
        Some(nonce) => app.limits.allow_device_login(nonce),
        None => {
            let client = guard::client_ip(&app.settings, peer, &headers);
            app.limits.allow_login(client, &form.email)
        }
    };
    if !allowed {
        return login_page(
            &app,
            StatusCode::TOO_MANY_REQUESTS,
            &form.email,
            Some("Too many attempts. Wait a minute."),
        );
    }
    let (session, device) = match app.auth.login(&form.email, &form.password, known.is_some()).await? {
        auth::LoginOutcome::Success { session, device } => (session, device),
        auth::LoginOutcome::Refused => {
            tracing::warn!(known_device = known.is_some(), "failed admin login");
            return login_page(
                &app,
                StatusCode::UNAUTHORIZED,
                &form.email,
                Some("Wrong email or password."),
            );
        }
        auth::LoginOutcome::Busy { retry_after } => {
            let mut response = login_page(
                &app,
                StatusCode::SERVICE_UNAVAILABLE,
                &form.email,
                Some("Too many people are logging in right now. Try again in a few seconds."),
            )?;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            return Ok(response);
        }
    };
    let max_age = i64::from(app.settings.admin.session_hours) * 3600;
    let session = strict_cookie(&app.settings, COOKIE, session, "/".to_owned(), max_age);
    // A year, renewed at each login; only the login form ever sees it.
    let login_path = format!("{}admin/login", app.settings.site.base_url.path());
    let device = strict_cookie(&app.settings, DEVICE_COOKIE, device, login_path, 31_536_000);
    // Two jars, so that the session cookie is always the first Set-Cookie (a jar's own
    // cookies go out in no set order).
    let redirect = Redirect::to(&app.settings.url_for("admin"));
    Ok((jar.add(session), CookieJar::new().add(device), redirect).into_response())
}

pub async fn logout(State(app): State<AppState>, jar: CookieJar) -> Result<Response> {
    if let Some(token) = session_cookie(&jar) {
        app.auth.logout(&token).await?;
    }
    let ended = strict_cookie(&app.settings, COOKIE, String::new(), "/".to_owned(), 0);
    Ok((jar.add(ended), Redirect::to(&app.settings.url_for("admin/login"))).into_response())
}

// ---- dashboard ----

#[derive(Serialize)]
struct FrequencyLine {
    frequency: &'static str,
    confirmed: i64,
    last: Option<store::editions::Edition>,
    next: String,
}

/// Everything the dashboard shows (also `GET /admin/api/dashboard`).
pub async fn dashboard_data(app: &AppState) -> anyhow::Result<serde_json::Value> {
    let counts = store::accounts::subscriber_counts(&app.db).await?;
    let mut statuses: Vec<serde_json::Value> = Vec::new();
    for status in SubscriberStatus::ALL {
        let n: i64 = counts.iter().filter(|(s, _, _)| s == status).map(|(_, _, n)| n).sum();
        statuses.push(serde_json::json!({"status": status.as_str(), "count": n}));
    }
    let editions = store::editions::list(&app.db, 200).await?;
    let tz = app.settings.schedule.timezone;
    let mut frequencies = Vec::new();
    for f in Frequency::ALL {
        let next = match app.settings.schedule.digest_time(*f) {
            Some(cron) => cron
                .cron()
                .find_next_occurrence(&Utc::now().with_timezone(&tz), false)
                .map(|d| d.format("%a %-d %b %Y %H:%M %Z").to_string())
                .unwrap_or_default(),
            None => "after each new post".to_owned(),
        };
        frequencies.push(FrequencyLine {
            frequency: f.as_str(),
            confirmed: counts
                .iter()
                .filter(|(s, fr, _)| *s == SubscriberStatus::Confirmed && fr == f)
                .map(|(_, _, n)| n)
                .sum(),
            last: editions.iter().find(|e| e.frequency == *f).cloned(),
            next,
        });
    }
    Ok(serde_json::json!({
        "statuses": statuses,
        "frequencies": frequencies,
        "queue": store::editions::counts(&app.db, None).await?,
        "paused": editions.iter().filter(|e| e.status == crate::domain::EditionStatus::Paused).collect::<Vec<_>>(),
        "outbox": store::outbox::pending(&app.db).await?,
        "failures": store::accounts::recent_failures(&app.db, 10).await?,
    }))
}

pub async fn dashboard(
    State(app): State<AppState>,
    axum::Extension(admin): axum::Extension<Admin>,
) -> Result<Response> {
    let ctx = tera::Context::from_value(dashboard_data(&app).await?).map_err(anyhow::Error::from)?;
    let mut full = with_message(None, None);
    full.extend(ctx);
    page(&app, "web/admin/dashboard.html", "dashboard", &admin, full)
}

// ---- posts ----

/// Every post with its state (also `GET /admin/api/posts`).
pub async fn posts_data(app: &AppState) -> anyhow::Result<Vec<serde_json::Value>> {
    let now = Utc::now();
    Ok(store::accounts::posts(&app.db, 1000)
        .await?
        .into_iter()
        .map(|p| {
            let state = PostState::of(p.draft, p.removed, p.published_at, now);
            serde_json::json!({"slug": p.slug, "title": p.title, "date": p.published_at.format("%Y-%m-%d %H:%M").to_string(),
                "published_at": p.published_at, "state": state, "source": p.source})
        })
        .collect())
}

pub async fn posts(State(app): State<AppState>, axum::Extension(admin): axum::Extension<Admin>) -> Result<Response> {
    let mut ctx = with_message(None, None);
    ctx.insert("posts", &posts_data(&app).await?);
    page(&app, "web/admin/posts.html", "posts", &admin, ctx)
}

/// A post as its public page will show it, drafts and posts dated in the future included;
/// only for a logged-in admin, never cached, never indexed.
pub async fn preview_post(State(app): State<AppState>, Path(slug): Path<String>) -> Result<Response> {
    let slug = crate::domain::Slug::parse(&slug).map_err(|_| WebError::NotFound)?;
    let post = store::posts::find_for_preview(&app.db, &slug)
        .await?
        .ok_or(WebError::NotFound)?;
    let document = app.site.post_document(&post, None, None)?;
    let headers = [
        (header::CACHE_CONTROL, "no-store"),
        (header::HeaderName::from_static("x-robots-tag"), "noindex"),
    ];
    Ok((headers, Html(document.body)).into_response())
}

// The subscriber pages are in `roster`.

// ---- editions ----

pub async fn editions(State(app): State<AppState>, axum::Extension(admin): axum::Extension<Admin>) -> Result<Response> {
    let mut ctx = with_message(None, None);
    ctx.insert("editions", &store::editions::list(&app.db, 100).await?);
    page(&app, "web/admin/editions.html", "editions", &admin, ctx)
}

#[derive(Deserialize)]
pub struct SendForm {
    #[serde(default)]
    frequency: String,
    /// "on" when the admin asks for an extra daily, weekly or monthly edition.
    #[serde(default)]
    force: Option<String>,
    /// Set by the confirmation page's button; without it nothing is sent yet.
    #[serde(default)]
    confirm: Option<String>,
}

/// "Send now": first a page that says what would go out and to how many people, then,
/// once confirmed there, the send.
pub async fn send_now(
    State(app): State<AppState>,
    axum::Extension(admin): axum::Extension<Admin>,
    Form(form): Form<SendForm>,
) -> Result<Response> {
    let request = SendRequest {
        frequency: match form.frequency.as_str() {
            "" => None,
            f => Some(
                f.parse::<Frequency>()
                    .map_err(|e| WebError::Validation(e.to_string()))?,
            ),
        },
        force: form.force.is_some_and(|v| !v.is_empty()),
        since: None,
    };
    if form.confirm.is_none() {
        let plans = app.jobs.plan_send(request).await?;
        let people: i64 = plans.iter().filter(|p| p.editions > 0).map(|p| p.recipients).sum();
        // Which posts each edition carries, by title.
        let all_posts = store::accounts::posts(&app.db, 1000).await?;
        let mut lines = Vec::new();
        for plan in &plans {
            let titles: Vec<&str> = all_posts
                .iter()
                .filter(|line| plan.posts.contains(&line.id))
                .map(|line| line.title.as_str())
                .collect();
            let mut line = serde_json::to_value(plan).map_err(anyhow::Error::from)?;
            line["titles"] = serde_json::json!(titles);
            lines.push(line);
        }
        let mut ctx = with_message(None, None);
        ctx.insert("plans", &lines);
        ctx.insert("people", &people);
        ctx.insert("editions", &plans.iter().map(|p| p.editions).sum::<usize>());
        ctx.insert("frequency", &form.frequency);
        ctx.insert("force", &request.force);
        return page(&app, "web/admin/send.html", "editions", &admin, ctx);
    }
    let created = app.jobs.send_now(request).await?;
    match created.first() {
        Some(edition) => {
            Ok(Redirect::to(&app.settings.url_for(&format!("admin/editions/{}", edition.id))).into_response())
        }
        None => {
            let mut ctx = with_message(Some("Nothing was due: no edition was created."), None);
            ctx.insert("editions", &store::editions::list(&app.db, 100).await?);
            page(&app, "web/admin/editions.html", "editions", &admin, ctx)
        }
    }
}

async fn edition_page(app: &AppState, admin: &Admin, id: i64, ctx: tera::Context) -> Result<Response> {
    let edition = store::editions::find(&app.db, id).await?.ok_or(WebError::NotFound)?;
    let counts = store::editions::counts(&app.db, Some(id)).await?;
    let total = counts.total();
    let percent = if total == 0 {
        100
    } else {
        (total - counts.remaining()) * 100 / total
    };
    let mut ctx = ctx;
    ctx.insert("edition", &edition);
    ctx.insert("counts", &counts);
    ctx.insert("percent", &percent);
    ctx.insert(
        "clicks",
        &super::tracking::ClickReport::load(app, id, counts.sent).await?,
    );
    page(app, "web/admin/edition.html", "editions", admin, ctx)
}

pub async fn edition(
    State(app): State<AppState>,
    axum::Extension(admin): axum::Extension<Admin>,
    Path(id): Path<i64>,
    jar: CookieJar,
) -> Result<Response> {
    // The outcome of the action that redirected here, shown once.
    let flash = jar.get(FLASH_COOKIE).and_then(|c| read_flash(c.value()));
    let ctx = match &flash {
        Some(Flash::Notice(m)) => with_message(Some(m), None),
        Some(Flash::Error(m)) => with_message(None, Some(m)),
        None => with_message(None, None),
    };
    let page = edition_page(&app, &admin, id, ctx).await?;
    if flash.is_none() {
        return Ok(page);
    }
    let spent = strict_cookie(&app.settings, FLASH_COOKIE, String::new(), admin_path(&app.settings), 0);
    Ok((jar.add(spent), page).into_response())
}

/// The message an action left for this page, and the jar that spends it (the page answers
/// with both).
pub(super) fn take_flash(app: &AppState, jar: CookieJar) -> (tera::Context, CookieJar) {
    match jar.get(FLASH_COOKIE).and_then(|c| read_flash(c.value())) {
        None => (with_message(None, None), jar),
        Some(flash) => {
            let ctx = match &flash {
                Flash::Notice(m) => with_message(Some(m), None),
                Flash::Error(m) => with_message(None, Some(m)),
            };
            let spent = strict_cookie(&app.settings, FLASH_COOKIE, String::new(), admin_path(&app.settings), 0);
            (ctx, jar.add(spent))
        }
    }
}

/// Redirect-after-post: to `path` (under the site), carrying `flash` for the page there.
pub(super) fn redirect_with_flash(app: &AppState, jar: CookieJar, flash: &Flash, path: &str) -> Response {
    let cookie = strict_cookie(
        &app.settings,
        FLASH_COOKIE,
        write_flash(flash),
        admin_path(&app.settings),
        60,
    );
    (jar.add(cookie), Redirect::to(&app.settings.url_for(path))).into_response()
}

/// An email shown in the console: never cached, framed only by the console itself.
fn email_preview(html: String) -> Response {
    let headers = [
        (header::CACHE_CONTROL, "no-store"),
        (header::CONTENT_SECURITY_POLICY, super::headers::EMAIL_PREVIEW_CSP),
        (header::X_FRAME_OPTIONS, "SAMEORIGIN"),
    ];
    (headers, Html(html)).into_response()
}

/// The edition as a subscriber who chose no topics receives it.
pub async fn preview(State(app): State<AppState>, Path(id): Path<i64>) -> Result<Response> {
    store::editions::find(&app.db, id).await?.ok_or(WebError::NotFound)?;
    let content = app.digests.edition_content(id).await?;
    let html = content.web_html(app.digests.renderer())?.ok_or(WebError::NotFound)?;
    Ok(email_preview(html))
}

/// The next edition of a frequency as it would go out now, with the posts not yet mailed
/// (the console's `herald preview`). Nothing is stored or sent.
pub async fn preview_next(
    State(app): State<AppState>,
    axum::Extension(admin): axum::Extension<Admin>,
    Path(frequency): Path<String>,
) -> Result<Response> {
    let frequency: Frequency = frequency
        .parse()
        .map_err(|e: crate::domain::UnknownValue| WebError::Validation(e.to_string()))?;
    let mut plan = app.digests.plan(frequency, None).await?;
    if plan.post_ids.is_empty() {
        let message = format!("Nothing new for the next {frequency} edition yet: there is nothing to preview.");
        let mut ctx = with_message(Some(&message), None);
        ctx.insert("editions", &store::editions::list(&app.db, 100).await?);
        return page(&app, "web/admin/editions.html", "editions", &admin, ctx);
    }
    if frequency == Frequency::Immediate {
        plan.post_ids.truncate(1);
    }
    let content = EditionContent::preview(app.digests.renderer(), frequency, &plan.post_ids).await?;
    let html = content.web_html(app.digests.renderer())?.ok_or(WebError::NotFound)?;
    Ok(email_preview(html))
}

/// Sends the edition to one address as a test (also `POST /admin/api/editions/{id}/test`).
pub async fn send_test(app: &AppState, id: i64, to: &str) -> std::result::Result<String, String> {
    let email = EmailAddress::parse(to).map_err(|e| e.to_string())?;
    let content: Arc<EditionContent> = app.digests.edition_content(id).await.map_err(|e| format!("{e:#}"))?;
    let (envelope, message) = content
        .test_message(app.digests.renderer(), &email)
        .map_err(|e| format!("{e:#}"))?;
    app.mailer.send(&envelope, &message).await.map_err(|e| e.to_string())?;
    Ok(format!("A test went to {email}."))
}

#[derive(Deserialize)]
pub struct TestForm {
    to: String,
}

/// Sends the test, then redirects to the edition's page, which says how it went (so a reload
/// does not send it again).
pub async fn test(
    State(app): State<AppState>,
    Path(id): Path<i64>,
    jar: CookieJar,
    Form(form): Form<TestForm>,
) -> Result<Response> {
    let flash = match send_test(&app, id, &form.to).await {
        Ok(m) => Flash::Notice(m),
        Err(e) => Flash::Error(format!("The test was not sent: {e}")),
    };
    let cookie = strict_cookie(
        &app.settings,
        FLASH_COOKIE,
        write_flash(&flash),
        admin_path(&app.settings),
        60,
    );
    let to = app.settings.url_for(&format!("admin/editions/{id}"));
    Ok((jar.add(cookie), Redirect::to(&to)).into_response())
}

/// Queues an edition's failed deliveries again (also `POST /admin/api/editions/{id}/retry`).
pub async fn retry_failed(app: &AppState, id: i64) -> anyhow::Result<u64> {
    let n = store::accounts::retry_failed(&app.db, id, Utc::now()).await?;
    if n > 0 {
        store::editions::reopen(&app.db, id).await?;
        app.digests.wake_senders();
    }
    Ok(n)
}

/// Lets a paused edition go on (also `POST /admin/api/editions/{id}/resume`); false when it
/// was not paused.
pub async fn resume_edition(app: &AppState, id: i64) -> anyhow::Result<bool> {
    let resumed = store::pauses::resume(&app.db, id, Utc::now()).await?;
    if resumed {
        tracing::info!(edition = id, "edition resumed by an admin");
        app.digests.wake_senders();
    }
    Ok(resumed)
}

/// Stops an edition for good (also `POST /admin/api/editions/{id}/cancel`): how many
/// deliveries were dropped, or `None` when it had finished already.
pub async fn cancel_edition(app: &AppState, id: i64) -> anyhow::Result<Option<u64>> {
    let cancelled = store::pauses::cancel(&app.db, id, Utc::now()).await?;
    if let Some(n) = cancelled {
        tracing::info!(edition = id, dropped = n, "edition cancelled by an admin");
    }
    Ok(cancelled)
}

/// The Resume button: redirects to the edition's page, which says what happened.
pub async fn resume(State(app): State<AppState>, Path(id): Path<i64>, jar: CookieJar) -> Result<Response> {
    store::editions::find(&app.db, id).await?.ok_or(WebError::NotFound)?;
    let flash = if resume_edition(&app, id).await? {
        Flash::Notice("Resumed: the rest of the edition is being sent.".to_owned())
    } else {
        Flash::Error("The edition was not paused, so there was nothing to resume.".to_owned())
    };
    Ok(redirect_with_flash(&app, jar, &flash, &format!("admin/editions/{id}")))
}

/// The Cancel button: redirects to the edition's page, which says what happened.
pub async fn cancel(State(app): State<AppState>, Path(id): Path<i64>, jar: CookieJar) -> Result<Response> {
    store::editions::find(&app.db, id).await?.ok_or(WebError::NotFound)?;
    let flash = match cancel_edition(&app, id).await? {
        Some(n) => Flash::Notice(format!("Cancelled: {n} reader(s) who had not got it yet will not.")),
        None => Flash::Error("The edition had finished already, so there was nothing to cancel.".to_owned()),
    };
    Ok(redirect_with_flash(&app, jar, &flash, &format!("admin/editions/{id}")))
}

pub async fn retry(
    State(app): State<AppState>,
    axum::Extension(admin): axum::Extension<Admin>,
    Path(id): Path<i64>,
) -> Result<Response> {
    let n = retry_failed(&app, id).await?;
    edition_page(
        &app,
        &admin,
        id,
        with_message(Some(&format!("{n} failed deliveries queued again.")), None),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flash_message_survives_its_cookie_and_nothing_else_reads_as_one() {
        for flash in [
            Flash::Notice("A test went to me@example.org; \"quoted\", é".into()),
            Flash::Error("The test was not sent: 550 5.1.1 no such user".into()),
        ] {
            let value = write_flash(&flash);
            assert!(
                value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{value}"
            );
            assert_eq!(read_flash(&value), Some(flash));
        }
        assert_eq!(read_flash(""), None);
        assert_eq!(read_flash("x414243"), None);
        assert_eq!(read_flash("n%%%"), None);
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_over_https() {
        let mut settings = Settings::default();
        let plain = strict_cookie(&settings, COOKIE, "abc".into(), "/".into(), 3600).to_string();
        assert_eq!(
            plain,
            "herald_session=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=3600"
        );
        settings.site.base_url = "https://news.example.org/blog/".parse().unwrap();
        let device = strict_cookie(
            &settings,
            DEVICE_COOKIE,
            "n.m".into(),
            "/blog/admin/login".into(),
            31_536_000,
        );
        assert_eq!(
            device.to_string(),
            "herald_device=n.m; HttpOnly; SameSite=Strict; Secure; Path=/blog/admin/login; Max-Age=31536000"
        );
        let ended = strict_cookie(&settings, COOKIE, String::new(), "/".into(), 0).to_string();
        assert_eq!(
            ended,
            "herald_session=; HttpOnly; SameSite=Strict; Secure; Path=/; Max-Age=0"
        );
    }
}
