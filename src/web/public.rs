//! Public pages and feeds, answered from the document cache in the coding the client
//! accepts. Uses `site` and its cache.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;

use super::AppState;
use super::Result;
use super::extract::Path;
use super::negotiate;
use crate::feeds::FeedFormat;
use crate::site::{CachedDocument, Document, Encoding};

/// Marks a response whose content coding was chosen here, so the compression layer leaves
/// it alone (even when it went out as identity: the client's Accept-Encoding was weighed).
#[derive(Debug, Clone, Copy)]
pub(super) struct Negotiated;

/// The representation of a cached document the client accepts best (its compressed
/// variants are made once per content change), or 304 when its validators say it holds an
/// acceptable one already. HEAD gets the same headers (axum drops the body).
pub(super) async fn respond(doc: &CachedDocument, request: &HeaderMap) -> Result<Response> {
    let header_text = |name| request.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let mut accepted = negotiate::accepted(request.get_all(header::ACCEPT_ENCODING), doc.encodings());
    if accepted.is_empty() {
        // Nothing acceptable: identity anyway (the compression layer answers 406 to such a
        // request whatever the route).
        accepted.push(Encoding::Identity);
    }
    let held = doc.held_by_client(
        &accepted,
        header_text(header::IF_NONE_MATCH),
        header_text(header::IF_MODIFIED_SINCE),
    );
    let encoding = held.unwrap_or(accepted[0]);
    let mut headers = HeaderMap::with_capacity(7);
    if let Ok(v) = HeaderValue::from_str(doc.etag_of(encoding)) {
        headers.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&doc.last_modified_text) {
        headers.insert(header::LAST_MODIFIED, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
    if doc.varies() {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if encoding != Encoding::Identity {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding.token()));
    }
    let mut response = if held.is_some() {
        (StatusCode::NOT_MODIFIED, headers).into_response()
    } else {
        let body = doc.body_of(encoding).await?;
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(doc.content_type));
        (StatusCode::OK, headers, body).into_response()
    };
    response.extensions_mut().insert(Negotiated);
    Ok(response)
}

/// What a request asks the site for.
enum Wanted<'a> {
    Listing { tag: Option<&'a str>, page: u32 },
    Post(&'a str),
    Feed(FeedFormat, Option<&'a str>),
    Sitemap,
    Tags,
}

/// WebSub §4: `Link: <hub>; rel="hub", <feed>; rel="self"` on a feed's response, for
/// clients that look at the headers rather than the document.
fn websub_links(app: &AppState, format: FeedFormat, tag: Option<&str>) -> Option<HeaderValue> {
    let hubs = &app.settings.feeds.websub_hubs;
    if hubs.is_empty() {
        return None;
    }
    let slug = tag.map(|t| crate::domain::Tag::parse(t).map_or_else(|_| t.to_owned(), |t| t.slug().to_owned()));
    let mut links: Vec<String> = hubs.iter().map(|hub| format!("<{hub}>; rel=\"hub\"")).collect();
    links.push(format!(
        "<{}>; rel=\"self\"",
        app.site.feed_url(slug.as_deref(), format)
    ));
    HeaderValue::from_str(&links.join(", ")).ok()
}

/// Serves a document, counting feed requests by format and status.
async fn serve(app: &AppState, key: String, wanted: Wanted<'_>, headers: &HeaderMap) -> Result<Response> {
    let (format, links) = match &wanted {
        Wanted::Feed(format, tag) => (Some(format.file_name()), websub_links(app, *format, *tag)),
        _ => (None, None),
    };
    let mut response = serve_document(app, key, wanted, headers).await?;
    if let Some(links) = links
        && response.status() != StatusCode::NOT_FOUND
    {
        response.headers_mut().insert(header::LINK, links);
    }
    if let Some(format) = format {
        let label = crate::metrics::FeedRequest {
            format: format.trim_start_matches("feed.").to_owned(),
            status: response.status().as_u16().to_string(),
        };
        app.metrics.feed_requests.get_or_create(&label).inc();
    }
    Ok(response)
}

/// Serves a document from the cache, rendering it on a miss; 404 page when there is none.
async fn serve_document(app: &AppState, key: String, wanted: Wanted<'_>, headers: &HeaderMap) -> Result<Response> {
    let now = Utc::now();
    if app.cache.is_due(now) {
        app.cache.refresh(&app.db).await?;
    }
    if let Some(doc) = app.cache.get(&key) {
        return respond(&doc, headers).await;
    }
    let generation = app.cache.generation();
    let rendered: Option<Document> = match wanted {
        Wanted::Listing { tag, page } => app.site.listing(&app.db, tag, page, now).await?,
        Wanted::Post(slug) => app.site.post(&app.db, slug, now).await?,
        Wanted::Feed(format, tag) => app.site.feed(&app.db, format, tag, now).await?,
        Wanted::Sitemap => Some(app.site.sitemap(&app.db, now).await?),
        Wanted::Tags => Some(app.site.tags_index(&app.db, now).await?),
    };
    let Some(doc) = rendered else {
        return not_found(app);
    };
    let doc = Arc::new(CachedDocument::new(doc));
    app.cache.put(key, generation, doc.clone());
    respond(&doc, headers).await
}

pub(super) fn not_found(app: &AppState) -> Result<Response> {
    let page = app.site.not_found()?;
    Ok((StatusCode::NOT_FOUND, Html(page)).into_response())
}

fn page_number(raw: &str) -> Option<u32> {
    raw.parse().ok().filter(|n| *n >= 1)
}

pub async fn home(State(app): State<AppState>, headers: HeaderMap) -> Result<Response> {
    serve(&app, "/".into(), Wanted::Listing { tag: None, page: 1 }, &headers).await
}

pub async fn home_page(State(app): State<AppState>, Path(page): Path<String>, headers: HeaderMap) -> Result<Response> {
    let Some(page) = page_number(&page) else {
        return not_found(&app);
    };
    serve(
        &app,
        format!("/page/{page}/"),
        Wanted::Listing { tag: None, page },
        &headers,
    )
    .await
}

pub async fn post(State(app): State<AppState>, Path(slug): Path<String>, headers: HeaderMap) -> Result<Response> {
    serve(&app, format!("/posts/{slug}/"), Wanted::Post(&slug), &headers).await
}

pub async fn tag(State(app): State<AppState>, Path(tag): Path<String>, headers: HeaderMap) -> Result<Response> {
    let key = format!("/tags/{tag}/");
    serve(
        &app,
        key,
        Wanted::Listing {
            tag: Some(&tag),
            page: 1,
        },
        &headers,
    )
    .await
}

pub async fn tag_page(
    State(app): State<AppState>,
    Path((tag, page)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let Some(page) = page_number(&page) else {
        return not_found(&app);
    };
    let key = format!("/tags/{tag}/page/{page}/");
    serve(&app, key, Wanted::Listing { tag: Some(&tag), page }, &headers).await
}

pub async fn tag_feed(
    State(app): State<AppState>,
    Path((tag, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let Some(format) = FeedFormat::from_file_name(&file) else {
        return not_found(&app);
    };
    let key = format!("/tags/{tag}/{file}");
    serve(&app, key, Wanted::Feed(format, Some(&tag)), &headers).await
}

async fn site_feed(app: &AppState, format: FeedFormat, headers: &HeaderMap) -> Result<Response> {
    serve(
        app,
        format!("/{}", format.file_name()),
        Wanted::Feed(format, None),
        headers,
    )
    .await
}

pub async fn feed_rss(State(app): State<AppState>, headers: HeaderMap) -> Result<Response> {
    site_feed(&app, FeedFormat::Rss, &headers).await
}

pub async fn feed_atom(State(app): State<AppState>, headers: HeaderMap) -> Result<Response> {
    site_feed(&app, FeedFormat::Atom, &headers).await
}

pub async fn feed_json(State(app): State<AppState>, headers: HeaderMap) -> Result<Response> {
    site_feed(&app, FeedFormat::Json, &headers).await
}

/// Every topic, with its page and feed.
pub async fn tags(State(app): State<AppState>, headers: HeaderMap) -> Result<Response> {
    serve(&app, "/tags/".into(), Wanted::Tags, &headers).await
}

/// Every public address, for search engines.
pub async fn sitemap(State(app): State<AppState>, headers: HeaderMap) -> Result<Response> {
    serve(&app, "/sitemap.xml".into(), Wanted::Sitemap, &headers).await
}

/// Crawlers may read everything but the console; the sitemap is named.
pub async fn robots(State(app): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], app.site.robots()).into_response()
}

/// The generated icon (when `[site] favicon` names none): cached for a day.
pub async fn favicon(State(app): State<AppState>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        app.site.favicon_svg().to_owned(),
    )
        .into_response()
}

/// Ready when the database is the one opened, takes a write and has every migration; the
/// body says why not.
pub async fn ready(State(app): State<AppState>) -> Response {
    match app.readiness.check(&app.db).await {
        Ok(()) => (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")], "ready").into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5"), (header::CACHE_CONTROL, "no-store")],
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}

/// The web view of a sent digest, with links for a visitor rather than a subscriber.
pub async fn edition(State(app): State<AppState>, Path(id): Path<String>) -> Result<Response> {
    let Ok(id) = id.parse::<i64>() else {
        return not_found(&app);
    };
    if crate::store::editions::find(&app.db, id).await?.is_none() {
        return not_found(&app);
    }
    let content = app.digests.edition_content(id).await?;
    match content.web_html(app.digests.renderer())? {
        Some(html) => Ok((
            [(header::CONTENT_SECURITY_POLICY, super::headers::EMAIL_VIEW_CSP)],
            Html(html),
        )
            .into_response()),
        None => not_found(&app),
    }
}

/// A document rendered for this request (not kept: it changes with sends, not posts),
/// still answering conditional GETs, compressed quickly since it is made for one response.
async fn respond_fresh(app: &AppState, doc: Option<Document>, headers: &HeaderMap) -> Result<Response> {
    match doc {
        Some(doc) => respond(&CachedDocument::fresh(doc), headers).await,
        None => not_found(app),
    }
}

/// `/editions/`: the emails sent, newest first.
pub async fn editions(State(app): State<AppState>, headers: HeaderMap) -> Result<Response> {
    let doc = app.site.edition_archive(&app.db, 1).await?;
    respond_fresh(&app, doc, &headers).await
}

pub async fn editions_page(
    State(app): State<AppState>,
    Path(page): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let Some(page) = page_number(&page) else {
        return not_found(&app);
    };
    let doc = app.site.edition_archive(&app.db, page).await?;
    respond_fresh(&app, doc, &headers).await
}

/// `/editions/feed.atom`: the archive as a feed.
pub async fn editions_feed(State(app): State<AppState>, headers: HeaderMap) -> Result<Response> {
    let doc = app.site.edition_feed(&app.db).await?;
    respond_fresh(&app, Some(doc), &headers).await
}

/// Prometheus text format; the queue depths are read now.
pub async fn metrics(State(app): State<AppState>) -> Result<Response> {
    let queue = crate::store::editions::counts(&app.db, None).await?;
    app.metrics.queue_depth.set(queue.remaining());
    app.metrics
        .outbox_depth
        .set(crate::store::outbox::pending(&app.db).await?);
    // Only the editions paused now: one resumed or cancelled drops out.
    app.metrics.paused_editions.clear();
    for (id, cause) in crate::store::pauses::paused(&app.db).await? {
        let labels = crate::metrics::PausedEdition {
            edition: id.to_string(),
            cause: cause.map_or_else(|| "unknown".to_owned(), |c| c.to_string()),
        };
        app.metrics.paused_editions.get_or_create(&labels).set(1);
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        app.metrics.encode(),
    )
        .into_response())
}
