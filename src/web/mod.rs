//! The HTTP face of Herald: public pages and feeds, health checks.

mod cache;
mod error;
mod guard;
mod public;
mod subscribe;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

pub use cache::{CachedDocument, DocumentCache};
pub use error::{Result, WebError};
pub use guard::Limits;

use crate::app::App;

/// Largest request body accepted anywhere (forms are small).
const MAX_BODY: usize = 64 * 1024;

/// Every route, with compression, body limits and request tracing.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
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
        .fallback(public::fallback)
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .layer(CompressionLayer::new())
        .layer(TraceLayer::new_for_http())
        .with_state(app)
}
