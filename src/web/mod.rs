//! The HTTP face of Herald: public pages and feeds, the subscribe pages, the admin console
//! and its JSON API, health checks. Owns its state ([`AppState`], with axum sub-states);
//! uses the services `startup` builds and what they are made of.

mod api;
mod console;
mod doctor;
mod error;
mod extract;
mod files;
mod guard;
pub mod headers;
mod insights;
mod limits;
mod negotiate;
mod public;
mod reader_feed;
mod roster;
pub mod server;
mod state;
mod subscribe;
mod trace;
mod tracking;
mod webhooks;

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate};
use tower_http::trace::TraceLayer;

pub use error::{Result, WebError};
pub use limits::Limits;
pub use state::AppState;

use crate::startup::App;

/// Serves HTTP on `listener` and runs the scheduled jobs and workers until `shutdown` is
/// cancelled.
pub async fn serve(app: Arc<App>, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let address = listener.local_addr()?;
    tracing::info!(%address, base_url = %app.settings.site.base_url, "serving");
    for warning in app.settings.warnings() {
        tracing::warn!("{warning}");
    }
    let limits = server::ConnectionLimits::from_settings(&app.settings.server);
    let router = router(AppState::new(&app));
    let server = server::run(listener, router, limits, shutdown.clone());
    let server = async { server.await.context("The web server stopped") };
    crate::startup::run(app, server, shutdown).await
}

/// Largest request body accepted (forms are small).
const MAX_BODY: usize = 64 * 1024;
/// Largest CSV accepted by the import API (larger lists: `herald subscribers import`).
const MAX_IMPORT: usize = 64 * 1024 * 1024;

/// Lets the compression layer compress what the handlers did not negotiate themselves:
/// pages and feeds from the document cache come with their coding chosen and their variant
/// made once; console pages, static files and error pages are compressed per response.
#[derive(Debug, Clone, Copy)]
struct NotNegotiated;

impl Predicate for NotNegotiated {
    fn should_compress<B: axum::body::HttpBody>(&self, response: &axum::http::Response<B>) -> bool {
        response.extensions().get::<public::Negotiated>().is_none()
    }
}

/// Every route, with compression, body limits, request tracing and security headers.
pub fn router(app: AppState) -> Router {
    // Where a page on another site could post a form: only this site's own pages may.
    let same_origin = |refuse: guard::Refusal| {
        axum::middleware::from_fn_with_state(guard::SameOrigin::new(&app, refuse), guard::require_same_origin)
    };
    // Errors on HTML routes are pages; the API's stay JSON.
    let html_errors = |pages: error::Pages| {
        axum::middleware::map_response_with_state(error::HtmlErrors::new(&app, pages), error::html_pages)
    };
    let api = Router::new()
        .route("/subscribers", get(api::list).post(api::create))
        .route(
            "/subscribers/import",
            post(api::import).layer(DefaultBodyLimit::max(MAX_IMPORT)),
        )
        .route(
            "/subscribers/{id}",
            get(api::get_one).patch(api::update).delete(api::delete),
        )
        .route("/subscribers/{id}/bounces", get(api::bounce_events))
        .route("/subscribers/{id}/record", get(api::record))
        .route("/subscribers/{id}/reactivate", post(api::reactivate))
        .route("/subscribers/export", get(roster::export_subscribers))
        .route("/editions", get(api::editions))
        .route("/editions/send", post(api::send_editions))
        .route("/editions/{id}", get(api::edition))
        .route("/editions/{id}/test", post(api::test_edition))
        .route("/editions/{id}/retry", post(api::retry_edition))
        .route("/editions/{id}/resume", post(api::resume_edition))
        .route("/editions/{id}/cancel", post(api::cancel_edition))
        .route("/dashboard", get(api::dashboard))
        .route("/insights", get(insights::api))
        .route("/posts", get(api::posts))
        .route_layer(axum::middleware::from_fn_with_state(app.clone(), api::require_token))
        .route_layer(same_origin(guard::refuse));
    let console = Router::new()
        .route("/", get(console::dashboard))
        .route("/posts", get(console::posts))
        .route("/posts/{slug}/preview", get(console::preview_post))
        .route("/subscribers", get(roster::list).post(roster::add))
        .route("/subscribers/bulk", post(roster::bulk))
        .route("/subscribers/{id}", get(roster::detail).post(roster::edit))
        .route("/subscribers/{id}/remove", post(roster::remove_subscriber))
        .route("/subscribers/{id}/reactivate", post(roster::reactivate))
        .route(
            "/subscribers/import",
            post(roster::import_subscribers).layer(DefaultBodyLimit::max(MAX_IMPORT)),
        )
        .route("/subscribers/export.csv", get(roster::export_subscribers))
        .route("/editions", get(console::editions))
        .route("/editions/send", post(console::send_now))
        .route("/editions/{id}", get(console::edition))
        .route("/editions/{id}/preview", get(console::preview))
        .route("/next/{frequency}", get(console::preview_next))
        .route("/editions/{id}/test", post(console::test))
        .route("/editions/{id}/retry", post(console::retry))
        .route("/doctor", get(doctor::doctor))
        .route("/insights", get(insights::insights))
        .route("/insights/{file}", get(insights::chart))
        .route("/editions/{id}/resume", post(console::resume))
        .route("/editions/{id}/cancel", post(console::cancel))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            console::require_admin,
        ))
        // Added after that layer: open to everyone, but still same-origin only.
        .route("/logout", post(console::logout))
        .route_layer(same_origin(guard::refuse))
        // A cross-site login gets the form back, with the reason.
        .merge(
            Router::new()
                .route("/login", get(console::login_form).post(console::login))
                .route_layer(same_origin(console::login_refused)),
        )
        .layer(html_errors(error::Pages::Console));
    let forms = Router::new()
        .route("/subscribe", get(subscribe::subscribe_form).post(subscribe::subscribe))
        .route(
            "/preferences/{token}",
            get(subscribe::preferences).post(subscribe::save_preferences),
        )
        .route("/preferences/{token}/feed", post(reader_feed::change))
        .route_layer(same_origin(subscribe::forbidden));
    let pages = Router::new()
        .merge(forms)
        .route("/", get(public::home))
        .route("/page/{page}", get(public::home_page))
        .route("/page/{page}/", get(public::home_page))
        .route("/posts/{slug}", get(public::post))
        .route("/posts/{slug}/", get(public::post))
        .route("/posts/{slug}/{*file}", get(files::bundle_file))
        .route("/tags", get(public::tags))
        .route("/tags/", get(public::tags))
        .route("/tags/{tag}", get(public::tag))
        .route("/tags/{tag}/", get(public::tag))
        .route("/tags/{tag}/page/{page}", get(public::tag_page))
        .route("/tags/{tag}/page/{page}/", get(public::tag_page))
        .route("/tags/{tag}/{file}", get(public::tag_feed))
        .route("/editions", get(public::editions))
        .route("/editions/", get(public::editions))
        .route("/editions/feed.atom", get(public::editions_feed))
        .route("/editions/page/{page}", get(public::editions_page))
        .route("/editions/page/{page}/", get(public::editions_page))
        .route("/editions/{id}", get(public::edition))
        .route("/feed.rss", get(public::feed_rss))
        .route("/feed.atom", get(public::feed_atom))
        .route("/feed.json", get(public::feed_json))
        .route("/confirm/{token}", get(subscribe::confirm))
        .route("/feeds/{file}", get(reader_feed::feed))
        .route("/r/{token}", get(tracking::redirect))
        // Not same-origin only: one-click unsubscribe (RFC 8058) is posted by mail providers.
        .route(
            "/unsubscribe/{token}",
            get(subscribe::unsubscribe_page).post(subscribe::unsubscribe),
        )
        .layer(html_errors(error::Pages::Public));
    // Posted by the mail providers: not same-origin, authenticated by each provider's own
    // signature or credentials.
    let hooks = Router::new()
        .route("/ses", post(webhooks::ses))
        .route("/postmark", post(webhooks::postmark))
        .route("/mailgun", post(webhooks::mailgun))
        .route("/sendgrid", post(webhooks::sendgrid))
        .layer(DefaultBodyLimit::max(crate::bounces::webhooks::MAX_BODY));
    let mut routes = Router::new()
        .nest("/webhooks", hooks)
        .nest("/admin/api", api)
        .nest("/admin", console)
        .merge(pages)
        .route("/sitemap.xml", get(public::sitemap))
        .route("/robots.txt", get(public::robots))
        .route("/favicon.svg", get(public::favicon))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(public::ready))
        .route("/metrics", get(public::metrics))
        // Whatever no route answers may be a file of the static folder.
        .fallback(files::fallback);
    if app.settings.log.access {
        routes = routes.layer(axum::middleware::from_fn(trace::access_log));
    }
    routes
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(CompressionLayer::new().compress_when(DefaultPredicate::new().and(NotNegotiated)))
        .layer(TraceLayer::new_for_http().make_span_with(trace::RequestSpan))
        .layer(axum::middleware::map_response_with_state(
            headers::SecurityHeaders::new(app.site.inline_hashes()),
            headers::add,
        ))
        .with_state(app)
}
