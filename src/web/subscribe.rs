//! The reader's side: subscribe, confirm, preferences, unsubscribe. Plain HTML forms.
//! Uses the `Subscriptions` service.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;

use super::AppState;
use super::Result;
use super::extract::{Form, Path};
use super::guard;
use crate::domain::{
    Actor, EmailAddress, Frequency, Subscriber, SubscriberSource, SubscriberStatus, Tag, parse_name, parse_topics,
};
use crate::site::SubscribeForm;
use crate::store;
use crate::subscribers::SubscribeRequest;

/// The fields of the subscribe and preferences forms; a missing one is empty.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Fields {
    email: String,
    name: String,
    frequency: String,
    /// A field people cannot see: only bots fill it.
    website: String,
    /// One value per ticked topic checkbox.
    topics: Vec<String>,
    /// The version of the consent wording the form showed.
    consent: String,
}

impl Fields {
    fn topics(&self) -> impl Iterator<Item = &str> {
        self.topics.iter().map(String::as_str)
    }
}

pub(super) async fn topics(app: &AppState) -> anyhow::Result<Vec<Tag>> {
    Ok(store::posts::public_tags(&app.db, Utc::now())
        .await?
        .into_iter()
        .map(|(t, _)| t)
        .collect())
}

fn html(status: StatusCode, body: String) -> Response {
    (status, [("cache-control", "no-store")], Html(body)).into_response()
}

/// A page with a heading, some lines and an optional link.
pub(super) fn message(
    app: &AppState,
    status: StatusCode,
    heading: &str,
    lines: &[&str],
    link: Option<(&str, String)>,
) -> Result<Response> {
    let mut ctx = tera::Context::new();
    ctx.insert("heading", heading);
    ctx.insert("lines", lines);
    ctx.insert("link_text", &link.as_ref().map(|(t, _)| *t));
    ctx.insert("link_url", &link.as_ref().map(|(_, u)| u.as_str()));
    Ok(html(status, app.site.page("web/message.html", "", ctx)?))
}

async fn subscribe_page(
    app: &AppState,
    status: StatusCode,
    form: &SubscribeForm,
    error: Option<&str>,
) -> Result<Response> {
    let ctx = app.site.subscribe_form(&topics(app).await?, form, error);
    Ok(html(status, app.site.page("web/subscribe.html", "subscribe", ctx)?))
}

pub async fn subscribe_form(State(app): State<AppState>) -> Result<Response> {
    subscribe_page(&app, StatusCode::OK, &SubscribeForm::default_for(&app.settings), None).await
}

/// The reader's forms' answer to a cross-site post (see [`guard::require_same_origin`]).
pub fn forbidden(app: &AppState) -> Result<Response> {
    message(
        app,
        StatusCode::FORBIDDEN,
        "This form was sent from another site",
        &["For your safety, forms are only accepted from this site's own pages. Please use the form here."],
        Some(("Go to the form", app.settings.url_for("subscribe"))),
    )
}

/// Parses and checks the form; the first problem found is shown on the form.
fn read_request(app: &AppState, fields: &Fields) -> std::result::Result<SubscribeRequest, String> {
    let email = EmailAddress::parse(&fields.email).map_err(|e| e.to_string())?;
    let name = parse_name(&fields.name).map_err(|e| format!("Name: {e}."))?;
    let frequency = match fields.frequency.as_str() {
        "" => app.settings.subscribers.default_frequency,
        f => f.parse::<Frequency>().map_err(|e| e.to_string())?,
    };
    let topics = parse_topics(fields.topics()).map_err(|e| format!("Topics: {e}."))?;
    Ok(SubscribeRequest {
        email,
        name,
        frequency,
        topics,
        source: SubscriberSource::Form,
    })
}

/// Same answer for a new, pending, confirmed or departed address: nothing here tells a
/// visitor whether an address is on the list.
pub async fn subscribe(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(fields): Form<Fields>,
) -> Result<Response> {
    let client = guard::client_ip(&app.settings, peer, &headers);
    if !app.limits.allow_subscribe(client) {
        return message(
            &app,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            &["Please wait a minute and try again."],
            None,
        );
    }
    let thanks = || {
        message(
            &app,
            StatusCode::OK,
            "Check your inbox",
            &[
                "If this address can receive mail from us, a message with a confirmation link is on its way.",
                "Open it and follow the link to start receiving the news. Nothing is sent until you do.",
            ],
            None,
        )
    };
    // A field people cannot see: only bots fill it. They get the usual answer and nothing happens.
    if !fields.website.is_empty() {
        return thanks();
    }
    let mut read = read_request(&app, &fields);
    if let Ok(request) = &read
        && !request.topics.is_empty()
    {
        // The form offers the public topics; another one would never bring mail.
        let public = topics(&app).await?.iter().map(|t| t.slug().to_owned()).collect();
        if let Err(e) = crate::domain::check_topics(&request.topics, &public) {
            read = Err(format!("Topics: {e}."));
        }
    }
    match read {
        Ok(request) => {
            // The wording the page showed, if it is one Herald has kept (a page rendered by an
            // earlier version of the site); otherwise the wording this site shows now.
            let shown = app.site.consent();
            let version = if fields.consent == shown.version
                || fields.consent.len() > 64
                || fields.consent.is_empty()
                || store::history::consent_text(&app.db, &fields.consent).await?.is_none()
            {
                shown.version.as_str()
            } else {
                fields.consent.as_str()
            };
            app.subscriptions.request(request, Some(version)).await?;
            thanks()
        }
        Err(problem) => {
            let form = SubscribeForm {
                email: fields.email.chars().take(254).collect(),
                name: fields.name.chars().take(100).collect(),
                frequency: fields.frequency,
                topics: fields.topics,
            };
            subscribe_page(&app, StatusCode::UNPROCESSABLE_ENTITY, &form, Some(&problem)).await
        }
    }
}

pub async fn confirm(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response> {
    // Kept with the confirmation as evidence, cut to its network (see `truncate_ip`).
    let client = guard::client_ip(&app.settings, peer, &headers);
    match app.subscriptions.confirm(&token, Some(client)).await? {
        store::subscribers::Confirmed::Confirmed(s) if s.status == SubscriberStatus::Confirmed => message(
            &app,
            StatusCode::OK,
            "You are subscribed",
            &["Thank you for confirming. The next news will reach you by email."],
            Some(("Choose how often and which topics", app.site.preferences_url(&s))),
        ),
        store::subscribers::Confirmed::Confirmed(_) => message(
            &app,
            StatusCode::OK,
            "This link has been used",
            &["This address is no longer waiting for confirmation. To subscribe again, use the form."],
            Some(("Subscribe", app.settings.url_for("subscribe"))),
        ),
        store::subscribers::Confirmed::Used => message(
            &app,
            StatusCode::OK,
            "This link has been used",
            &["Each confirmation link works once, and this one has done its job. To subscribe again, use the form."],
            Some(("Subscribe", app.settings.url_for("subscribe"))),
        ),
        store::subscribers::Confirmed::Superseded => message(
            &app,
            StatusCode::GONE,
            "This link has been replaced",
            &[
                "Only the newest confirmation link works. Please use the link in the latest message we sent, or subscribe again.",
            ],
            Some(("Subscribe", app.settings.url_for("subscribe"))),
        ),
        store::subscribers::Confirmed::Expired => message(
            &app,
            StatusCode::GONE,
            "This link has expired",
            &["Confirmation links work for a limited time. Subscribe again and we will send a fresh one."],
            Some(("Subscribe", app.settings.url_for("subscribe"))),
        ),
        store::subscribers::Confirmed::Unknown => unknown_link(&app),
    }
}

pub(super) fn unknown_link(app: &AppState) -> Result<Response> {
    message(
        app,
        StatusCode::NOT_FOUND,
        "We do not recognise this link",
        &["It may have been copied incompletely, or the subscription it belonged to was removed."],
        Some(("Subscribe", app.settings.url_for("subscribe"))),
    )
}

pub(super) async fn by_token(app: &AppState, token: &str) -> anyhow::Result<Option<Subscriber>> {
    store::subscribers::find_by_manage_token(&app.db, token).await
}

/// The preferences page; `feed_url` is the reader's private feed when it was made just now
/// (its token is stored hashed, so this is the one time it can be shown).
pub(super) async fn preferences_page(
    app: &AppState,
    s: &Subscriber,
    notice: Option<&str>,
    error: Option<&str>,
    feed_url: Option<&str>,
) -> Result<Response> {
    let form = SubscribeForm {
        email: s.email.to_string(),
        name: s.name.clone().unwrap_or_default(),
        frequency: s.frequency.as_str().to_owned(),
        topics: s.topics.clone(),
    };
    let mut ctx = app.site.subscribe_form(&topics(app).await?, &form, error);
    ctx.insert("notice", &notice);
    ctx.insert("email", s.email.as_str());
    ctx.insert("status", s.status.as_str());
    ctx.insert("action_url", &app.site.preferences_url(s));
    ctx.insert("unsubscribe_url", &app.site.unsubscribe_url(s));
    ctx.insert("feed_offered", &(s.status == SubscriberStatus::Confirmed));
    ctx.insert("feed_action", &format!("{}/feed", app.site.preferences_url(s)));
    ctx.insert("feed_url", &feed_url);
    let feed_made = store::reader_feeds::made_at(&app.db, s.id).await?;
    ctx.insert("feed_made", &feed_made.map(|d| d.format("%-d %B %Y").to_string()));
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(html(status, app.site.page("web/preferences.html", "", ctx)?))
}

pub async fn preferences(State(app): State<AppState>, Path(token): Path<String>) -> Result<Response> {
    match by_token(&app, &token).await? {
        Some(s) => preferences_page(&app, &s, None, None, None).await,
        None => unknown_link(&app),
    }
}

pub async fn save_preferences(
    State(app): State<AppState>,
    Path(token): Path<String>,
    Form(fields): Form<Fields>,
) -> Result<Response> {
    let Some(s) = by_token(&app, &token).await? else {
        return unknown_link(&app);
    };
    let frequency = match fields.frequency.parse::<Frequency>() {
        Ok(f) => f,
        Err(e) => return preferences_page(&app, &s, None, Some(&e.to_string()), None).await,
    };
    let topics = match parse_topics(fields.topics()) {
        Ok(t) => t,
        Err(e) => return preferences_page(&app, &s, None, Some(&format!("Topics: {e}.")), None).await,
    };
    let patch = store::subscribers::SubscriberPatch {
        frequency: Some(frequency),
        topics: Some(topics),
        ..Default::default()
    };
    let updated = app
        .subscriptions
        .update_preferences(s.id, &patch, &Actor::link())
        .await?
        .unwrap_or(s);
    preferences_page(&app, &updated, Some("Your preferences are saved."), None, None).await
}

pub async fn unsubscribe_page(State(app): State<AppState>, Path(token): Path<String>) -> Result<Response> {
    // RFC 8058 §3.1: a GET must not unsubscribe (link scanners prefetch); it only asks.
    let Some(s) = by_token(&app, &token).await? else {
        return unknown_link(&app);
    };
    let mut ctx = tera::Context::new();
    ctx.insert("email", s.email.as_str());
    ctx.insert("action_url", &app.site.unsubscribe_url(&s));
    ctx.insert("preferences_url", &app.site.preferences_url(&s));
    Ok(html(StatusCode::OK, app.site.page("web/unsubscribe.html", "", ctx)?))
}

/// RFC 8058 one-click: mail providers POST `List-Unsubscribe=One-Click` with no cookies
/// and no CSRF token, and not necessarily without an `Origin` of their own, so no
/// same-origin rule applies here; the unguessable token in the URL is the authority. Answers 200,
/// never a redirect. Idempotent.
pub async fn unsubscribe(State(app): State<AppState>, Path(token): Path<String>) -> Result<Response> {
    let Some(s) = by_token(&app, &token).await? else {
        return unknown_link(&app);
    };
    app.subscriptions.unsubscribe(&s).await?;
    message(
        &app,
        StatusCode::OK,
        "You are unsubscribed",
        &["We will not send you the news any more. If this was a mistake, you can subscribe again at any time."],
        Some(("Subscribe again", app.settings.url_for("subscribe"))),
    )
}
