//! The admin JSON API, behind a bearer token.
//! Its handlers use the services in `web::AppState`.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use super::AppState;
use super::extract::{Json, Path, Query};
use super::{Result, WebError};
use crate::bounces::BounceError;
use crate::domain::{
    Actor, BounceSource, EmailAddress, Frequency, Subscriber, SubscriberSource, SubscriberStatus, parse_name,
    parse_topics,
};
use crate::store::{self, subscribers::ListFilter, subscribers::SubscriberPatch};
use crate::subscribers::csv::ImportOptions;
use crate::subscribers::{Added, SubscribeRequest};

/// Lets in requests with a valid bearer token (`herald admin create-token`, or `[admin]
/// api_token`) or an admin's session cookie (the console's own calls); 401 otherwise.
/// The request's caller is put in its extensions as an [`Actor`]: the API with the token's
/// name, or the console with the admin's address, for the history of what it changes.
pub async fn require_token(State(app): State<AppState>, jar: CookieJar, mut request: Request, next: Next) -> Response {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|v| v.trim().to_owned());
    let caller = match bearer {
        Some(token) => app
            .auth
            .token_name(&token)
            .await
            .ok()
            .flatten()
            .map(|name| Actor::api(Some(name))),
        None => match super::console::session_cookie(&jar) {
            Some(cookie) => app
                .auth
                .session(&cookie)
                .await
                .ok()
                .flatten()
                .map(|email| Actor::console(&email)),
            None => None,
        },
    };
    let Some(caller) = caller else {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(serde_json::json!({"error": "authentication required"})),
        )
            .into_response();
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

pub async fn dashboard(State(app): State<AppState>) -> Result<Response> {
    Ok(Json(super::console::dashboard_data(&app).await?).into_response())
}

pub async fn posts(State(app): State<AppState>) -> Result<Response> {
    Ok(Json(super::console::posts_data(&app).await?).into_response())
}

pub async fn editions(State(app): State<AppState>) -> Result<Response> {
    Ok(Json(store::editions::list(&app.db, 100).await?).into_response())
}

#[derive(Deserialize)]
pub struct TestBody {
    to: String,
}

pub async fn test_edition(
    State(app): State<AppState>,
    Path(id): Path<i64>,
    Json(body): Json<TestBody>,
) -> Result<Response> {
    store::editions::find(&app.db, id).await?.ok_or(WebError::NotFound)?;
    match super::console::send_test(&app, id, &body.to).await {
        Ok(message) => Ok(Json(serde_json::json!({"sent": true, "message": message})).into_response()),
        Err(e) => Err(WebError::Validation(e)),
    }
}

pub async fn retry_edition(State(app): State<AppState>, Path(id): Path<i64>) -> Result<Response> {
    store::editions::find(&app.db, id).await?.ok_or(WebError::NotFound)?;
    let queued = super::console::retry_failed(&app, id).await?;
    Ok(Json(serde_json::json!({"queued": queued})).into_response())
}

pub async fn resume_edition(State(app): State<AppState>, Path(id): Path<i64>) -> Result<Response> {
    store::editions::find(&app.db, id).await?.ok_or(WebError::NotFound)?;
    if !super::console::resume_edition(&app, id).await? {
        return Err(WebError::Conflict("the edition is not paused".to_owned()));
    }
    Ok(Json(serde_json::json!({"resumed": true})).into_response())
}

pub async fn cancel_edition(State(app): State<AppState>, Path(id): Path<i64>) -> Result<Response> {
    store::editions::find(&app.db, id).await?.ok_or(WebError::NotFound)?;
    match super::console::cancel_edition(&app, id).await? {
        Some(dropped) => Ok(Json(serde_json::json!({"cancelled": true, "dropped": dropped})).into_response()),
        None => Err(WebError::Conflict("the edition has finished already".to_owned())),
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    frequency: Option<String>,
    q: Option<String>,
    after: Option<i64>,
    limit: Option<u32>,
}

fn invalid(e: impl std::fmt::Display) -> WebError {
    WebError::Validation(e.to_string())
}

pub async fn list(State(app): State<AppState>, Query(q): Query<ListQuery>) -> Result<Response> {
    let filter = ListFilter {
        status: q
            .status
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .transpose()
            .map_err(invalid)?,
        frequency: q
            .frequency
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .transpose()
            .map_err(invalid)?,
        search: q.q.filter(|s| !s.trim().is_empty()),
        after_id: q.after.unwrap_or(0),
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
        ..Default::default()
    };
    let items = store::subscribers::list(&app.db, &filter).await?;
    let next_after = (items.len() == filter.limit as usize)
        .then(|| items.last().map(|s| s.id))
        .flatten();
    Ok(Json(serde_json::json!({ "items": items, "next_after": next_after })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBody {
    email: String,
    name: Option<String>,
    frequency: Option<String>,
    #[serde(default)]
    topics: Vec<String>,
    /// `pending` (the default: a confirmation mail is sent) or `confirmed`.
    status: Option<String>,
}

/// Adds a subscriber. `pending` ones get a confirmation mail; 409 if the address is on the list.
pub async fn create(
    State(app): State<AppState>,
    axum::Extension(caller): axum::Extension<Actor>,
    Json(body): Json<NewBody>,
) -> Result<Response> {
    let email = EmailAddress::parse(&body.email).map_err(invalid)?;
    let name = parse_name(body.name.as_deref().unwrap_or("")).map_err(invalid)?;
    let frequency = match body.frequency.as_deref() {
        None | Some("") => app.settings.subscribers.default_frequency,
        Some(f) => f.parse::<Frequency>().map_err(invalid)?,
    };
    let topics = parse_topics(body.topics.iter().map(String::as_str)).map_err(invalid)?;
    app.subscriptions.check_topics(&topics).await?.map_err(invalid)?;
    let status = match body.status.as_deref() {
        None | Some("") => SubscriberStatus::Pending,
        Some(s) => s.parse::<SubscriberStatus>().map_err(invalid)?,
    };
    let request = SubscribeRequest {
        email,
        name,
        frequency,
        topics,
        source: SubscriberSource::Api,
    };
    let email = request.email.clone();
    match app.subscriptions.add(request, status, &caller).await? {
        Added::New(subscriber) => Ok((StatusCode::CREATED, Json(subscriber)).into_response()),
        Added::Exists(subscriber) => Err(WebError::Conflict(format!(
            "{} is already on the list",
            subscriber.email
        ))),
        Added::Refused(_) => Err(invalid("a new subscriber is pending or confirmed")),
        Added::Erased(at) => Err(WebError::Conflict(format!(
            "{email} was erased at their request on {}; not added (only they can subscribe again, on the form)",
            at.format("%Y-%m-%d")
        ))),
    }
}

async fn found(app: &AppState, id: i64) -> Result<Subscriber> {
    store::subscribers::find(&app.db, id).await?.ok_or(WebError::NotFound)
}

pub async fn get_one(State(app): State<AppState>, Path(id): Path<i64>) -> Result<Json<Subscriber>> {
    Ok(Json(found(&app, id).await?))
}

/// Everything stored about a subscriber, with their history and the evidence of their
/// consent: what `herald subscribers show --format json` prints, for a subject access request.
pub async fn record(State(app): State<AppState>, Path(id): Path<i64>) -> Result<Response> {
    let subscriber = found(&app, id).await?;
    Ok(Json(app.subscriptions.record_of(subscriber).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    name: Option<String>,
    frequency: Option<String>,
    topics: Option<Vec<String>>,
    status: Option<String>,
}

pub async fn update(
    State(app): State<AppState>,
    axum::Extension(caller): axum::Extension<Actor>,
    Path(id): Path<i64>,
    Json(body): Json<PatchBody>,
) -> Result<Json<Subscriber>> {
    found(&app, id).await?;
    let status = body.status.as_deref().map(str::parse).transpose().map_err(invalid)?;
    let patch = SubscriberPatch {
        name: body.name.as_deref().map(parse_name).transpose().map_err(invalid)?,
        frequency: body.frequency.as_deref().map(str::parse).transpose().map_err(invalid)?,
        topics: body
            .topics
            .as_ref()
            .map(|t| parse_topics(t.iter().map(String::as_str)))
            .transpose()
            .map_err(invalid)?,
    };
    if let Some(topics) = &patch.topics {
        app.subscriptions.check_topics(topics).await?.map_err(invalid)?;
    }
    let updated = app
        .subscriptions
        .admin_update(id, &patch, status, &caller)
        .await?
        .ok_or(WebError::NotFound)?;
    Ok(Json(updated))
}

/// How many of a subscriber's bounce events the API lists (newest first).
const BOUNCE_EVENTS_LISTED: u32 = 500;

/// A subscriber's bounce events: every bounce, complaint and reactivation, newest first.
pub async fn bounce_events(State(app): State<AppState>, Path(id): Path<i64>) -> Result<Response> {
    found(&app, id).await?;
    let events = app.bounces.events(id, BOUNCE_EVENTS_LISTED).await?;
    Ok(Json(serde_json::json!({ "events": events })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReactivateBody {
    reason: String,
}

/// Puts a bounced or complained subscriber back on the list; the reason is kept with their
/// bounce events. 409 if they are not suppressed, 422 without a reason.
pub async fn reactivate(
    State(app): State<AppState>,
    axum::Extension(caller): axum::Extension<Actor>,
    Path(id): Path<i64>,
    Json(body): Json<ReactivateBody>,
) -> Result<Json<Subscriber>> {
    match app
        .bounces
        .reactivate(id, &body.reason, caller_source(&caller), caller.by.as_deref())
        .await
    {
        Ok(subscriber) => Ok(Json(subscriber)),
        Err(BounceError::NoSuchSubscriber(_)) => Err(WebError::NotFound),
        Err(e @ BounceError::NotSuppressed { .. }) => Err(WebError::Conflict(e.to_string())),
        Err(BounceError::Store(e)) => Err(WebError::Internal(e)),
        Err(e) => Err(WebError::Validation(e.to_string())),
    }
}

/// Whether the caller is an API token or an admin's session, as a bounce record names it.
fn caller_source(caller: &Actor) -> BounceSource {
    if caller.source == crate::domain::EventSource::Console {
        BounceSource::Console
    } else {
        BounceSource::Api
    }
}

/// Erases a person at their request: only a keyed hash of the address is kept, so no import
/// or admin adds them again by mistake.
pub async fn delete(
    State(app): State<AppState>,
    axum::Extension(caller): axum::Extension<Actor>,
    Path(id): Path<i64>,
) -> Result<StatusCode> {
    if app.subscriptions.erase(id, &caller).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(WebError::NotFound)
    }
}

#[derive(Deserialize, Default)]
pub struct ImportQuery {
    #[serde(default)]
    confirmed: bool,
    #[serde(default)]
    force: bool,
    /// The name of the file the body holds, for the subscribers' history.
    #[serde(default)]
    file: Option<String>,
}

/// Imports a CSV body (`email,name,frequency,topics,status`); answers with the report.
pub async fn import(
    State(app): State<AppState>,
    axum::Extension(caller): axum::Extension<Actor>,
    Query(q): Query<ImportQuery>,
    body: Bytes,
) -> Result<Response> {
    let who = match (caller.source, &caller.by) {
        (crate::domain::EventSource::Console, Some(by)) => format!("console: {by}"),
        (_, Some(by)) => format!("API token {by}"),
        (_, None) => "API".to_owned(),
    };
    let by = Actor::import(Some(format!(
        "{} ({who})",
        q.file.as_deref().unwrap_or("a request body")
    )));
    let options = ImportOptions {
        confirmed: q.confirmed,
        force: q.force,
    };
    let report = app
        .subscriptions
        .import(std::io::Cursor::new(body), options, &by, |_| {})
        .await
        .map_err(|e| {
            if e.to_string().starts_with("line ") || e.to_string().starts_with("the file") {
                WebError::Validation(format!("{e:#}"))
            } else {
                WebError::Internal(e)
            }
        })?;
    Ok(Json(report).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    frequency: Option<String>,
    since: Option<String>,
    /// An extra daily, weekly or monthly edition even if this period's has gone out or is not due.
    #[serde(default)]
    force: bool,
}

/// Composes what is due now (like `herald send`; with `force`, an extra daily, weekly or monthly
/// edition) and returns the editions at once, with the reason for each frequency that sent
/// nothing; the delivery worker sends them in the background.
pub async fn send_editions(State(app): State<AppState>, body: Option<Json<SendBody>>) -> Result<Response> {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let request = crate::schedule::SendRequest {
        frequency: match body.frequency.as_deref() {
            None | Some("") => None,
            Some(f) => Some(f.parse::<Frequency>().map_err(invalid)?),
        },
        force: body.force,
        since: body
            .since
            .as_deref()
            .map(crate::content::parse_date)
            .transpose()
            .map_err(invalid)?,
    };
    let held_back: serde_json::Map<String, serde_json::Value> = app
        .jobs
        .plan_send(request)
        .await?
        .into_iter()
        .filter_map(|p| p.held_back.map(|why| (p.frequency.to_string(), why.into())))
        .collect();
    let created = app.jobs.send_now(request).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "editions": created, "held_back": held_back })),
    )
        .into_response())
}

/// An edition with its deliveries counted by status.
pub async fn edition(State(app): State<AppState>, Path(id): Path<i64>) -> Result<Response> {
    let edition = store::editions::find(&app.db, id).await?.ok_or(WebError::NotFound)?;
    let counts = store::editions::counts(&app.db, Some(id)).await?;
    let clicks = super::tracking::ClickReport::load(&app, id, counts.sent).await?;
    Ok(Json(serde_json::json!({ "edition": edition, "deliveries": counts, "clicks": clicks })).into_response())
}
