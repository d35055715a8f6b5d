//! Request guards: client address, per-client rate limits, same-origin checks for forms.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{AppState, Result, WebError};
use crate::config::Settings;

/// The client's address: the peer, or behind a trusted proxy the last `X-Forwarded-For` hop
/// (the one the proxy itself appended; earlier ones are whatever the client claimed).
pub fn client_ip(settings: &Settings, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    if settings.server.trust_forwarded_for
        && let Some(ip) = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .next_back()
    {
        return ip;
    }
    peer.ip()
}

/// CSRF defence for forms (see [`require_same_origin`]): a browser says where a request comes from (`Sec-Fetch-Site`,
/// `Origin`); a cross-site form post is refused. Requests without those headers do not come
/// from a browser page and cannot ride on a visitor's session.
pub fn same_origin(settings: &Settings, headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => {
            let base = &settings.site.base_url;
            let expected = base.origin().ascii_serialization();
            let host_origin = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(|host| format!("{}://{host}", base.scheme()));
            origin == expected || Some(origin) == host_origin.as_deref()
        }
    }
}

/// How a family of routes answers a cross-site request.
pub type Refusal = fn(&AppState) -> Result<Response>;

/// The state of [`require_same_origin`]: the app, and how its routes refuse.
#[derive(Clone)]
pub struct SameOrigin {
    app: AppState,
    refuse: Refusal,
}

impl SameOrigin {
    pub fn new(app: &AppState, refuse: Refusal) -> Self {
        Self {
            app: app.clone(),
            refuse,
        }
    }
}

/// The console's and the API's refusal: 403 with the reason (a page in the console, JSON in
/// the API).
pub fn refuse(_: &AppState) -> Result<Response> {
    Err(WebError::Forbidden(
        "cross-site request refused: use this site's own pages, or an API token".to_owned(),
    ))
}

/// The same-origin rule as a layer, for routes whose forms a page on another site could post
/// (the console, the API, the login form, the reader's forms): a state-changing request
/// (anything but GET, HEAD, OPTIONS) must come from this site's own pages, or it gets the
/// routes' refusal. A request with an `Authorization` header passes: it is authenticated by
/// that header, not by a cookie, and a page on another site cannot add one without a CORS
/// preflight, which Herald never grants.
pub async fn require_same_origin(State(guard): State<SameOrigin>, request: Request, next: Next) -> Response {
    let safe = request.method().is_safe();
    let bearer = request.headers().contains_key(header::AUTHORIZATION);
    if safe || bearer || same_origin(&guard.app.settings, request.headers()) {
        return next.run(request).await;
    }
    // Inside a nested router the URI has lost its prefix; the log names the whole path.
    let path = request
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| request.uri().path().to_owned(), |o| o.path().to_owned());
    tracing::warn!(method = %request.method(), %path, "cross-site request refused");
    (guard.refuse)(&guard.app).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn cross_site_form_posts_are_refused() {
        let settings = Settings::default();
        let mut h = HeaderMap::new();
        assert!(same_origin(&settings, &h), "no browser headers");
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(same_origin(&settings, &h));
        h.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!same_origin(&settings, &h));
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&settings, &h));
    }

    #[test]
    fn forwarded_for_is_used_only_when_trusted() {
        let mut settings = Settings::default();
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("1.1.1.1, 203.0.113.9"));
        assert_eq!(client_ip(&settings, peer, &h), peer.ip());
        settings.server.trust_forwarded_for = true;
        assert_eq!(client_ip(&settings, peer, &h), "203.0.113.9".parse::<IpAddr>().unwrap());
    }
}
