//! The HTTP face of Herald: public pages and feeds, health checks.

mod api;
mod cache;
mod error;
mod guard;
mod public;
mod subscribe;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tower_http::compression::CompressionLayer;
use tower_http::trace::TraceLayer;

pub use cache::{CachedDocument, DocumentCache};
pub use error::{Result, WebError};
pub use guard::Limits;

use crate::app::App;

/// Largest request body accepted (forms are small).
const MAX_BODY: usize = 64 * 1024;
/// Largest CSV accepted by the import API (larger lists: `herald subscribers import`).
const MAX_IMPORT: usize = 64 * 1024 * 1024;

/// Every route, with compression, body limits and request tracing.
pub fn router(app: Arc<App>) -> Router {
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
        .route("/editions/send", post(api::send_editions))
        .route("/editions/{id}", get(api::edition))
        .route_layer(axum::middleware::from_fn_with_state(app.clone(), api::require_token));
    Router::new()
        .nest("/admin/api", api)
        .route("/", get(public::home))
        .route("/page/{page}", get(public::home_page))
        .route("/page/{page}/", get(public::home_page))
        .route("/posts/{slug}", get(public::post))
        .route("/posts/{slug}/", get(public::post))
        .route("/tags/{tag}", get(public::tag))
        .route("/tags/{tag}/", get(public::tag))
        .route("/tags/{tag}/page/{page}", get(public::tag_page))
        .route("/tags/{tag}/page/{page}/", get(public::tag_page))
        .route("/tags/{tag}/{file}", get(public::tag_feed))
        .route("/editions/{id}", get(public::edition))
        .route("/feed.rss", get(public::feed_rss))
        .route("/feed.atom", get(public::feed_atom))
        .route("/feed.json", get(public::feed_json))
        .route("/subscribe", get(subscribe::subscribe_form).post(subscribe::subscribe))
        .route("/confirm/{token}", get(subscribe::confirm))
        .route(
            "/preferences/{token}",
            get(subscribe::preferences).post(subscribe::save_preferences),
        )
        .route(
            "/unsubscribe/{token}",
            get(subscribe::unsubscribe_page).post(subscribe::unsubscribe),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(public::ready))
        .route("/metrics", get(public::metrics))
        .fallback(public::fallback)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(CompressionLayer::new())
        .layer(TraceLayer::new_for_http())
        .with_state(app)
}
