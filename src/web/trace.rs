//! Request spans that never carry a secret. A request's URI can hold a confirmation,
//! preferences or unsubscribe token (the whole authority of those links), so the span
//! names the route (`/confirm/{token}`) instead of the path, and never the query string.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath};
use axum::http::Request;
use axum::middleware::Next;
use axum::response::Response;
use tower_http::trace::MakeSpan;
use tracing::Span;

/// Makes the `request` span with the method, the route or a redacted path, and the version.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let path = logged_path(request);
        tracing::debug_span!("request", method = %request.method(), %path, version = ?request.version())
    }
}

/// The route a request matched, or its path with any token cut out.
fn logged_path<B>(request: &Request<B>) -> String {
    match request.extensions().get::<MatchedPath>() {
        Some(route) => route.as_str().to_owned(),
        None => redact(request.uri().path()),
    }
}

/// The access log (`[log] access`): one line per request, once it is answered.
pub async fn access_log(request: axum::extract::Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = logged_path(&request);
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip().to_string())
        .unwrap_or_default();
    let response = next.run(request).await;
    tracing::info!(
        target: "herald::access",
        %client,
        %method,
        %path,
        status = response.status().as_u16(),
        ms = format!("{:.1}", started.elapsed().as_secs_f64() * 1000.0),
        "request"
    );
    response
}

/// Route segments whose next segment is a secret.
const TOKEN_ROUTES: [&str; 5] = ["confirm", "preferences", "unsubscribe", "feeds", "r"];

/// A path fit for a log line: what follows a token route is replaced, and so is any
/// segment long and random enough to be a token, whatever route it came in on (a link
/// pasted with a trailing slash or a typo matches no route).
pub fn redact(path: &str) -> String {
    let mut out = Vec::new();
    let mut secret_follows = false;
    for segment in path.split('/') {
        if secret_follows && !segment.is_empty() {
            out.push("{token}");
            secret_follows = false;
            continue;
        }
        if looks_like_token(segment) {
            out.push("{redacted}");
        } else {
            secret_follows = TOKEN_ROUTES.contains(&segment);
            out.push(segment);
        }
    }
    out.join("/")
}

/// 20 or more characters of the base64url alphabet (or percent-escapes), with a digit or
/// a mix of cases: not a word a person would put in a slug.
fn looks_like_token(segment: &str) -> bool {
    segment.len() >= 20
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '%' | '.' | '='))
        && (segment.chars().any(|c| c.is_ascii_digit())
            || (segment.chars().any(|c| c.is_ascii_uppercase()) && segment.chars().any(|c| c.is_ascii_lowercase())))
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn tokens_are_cut_out_of_paths() {
        let token = "tOHK9b5qpg8TYq6nQhsVCkiveR5TN5NkG6xv_bZLQD8";
        for (path, logged) in [
            (format!("/confirm/{token}"), "/confirm/{token}"),
            (format!("/confirm/{token}/"), "/confirm/{token}/"),
            (format!("/preferences/{token}/extra"), "/preferences/{token}/extra"),
            (format!("/unsubscribe/{token}"), "/unsubscribe/{token}"),
            ("/unsubscribe/short".to_owned(), "/unsubscribe/{token}"),
            (format!("/somewhere/{token}"), "/somewhere/{redacted}"),
            (
                "/posts/a-long-slug-about-the-river-otters".to_owned(),
                "/posts/a-long-slug-about-the-river-otters",
            ),
            ("/tags/wildlife/feed.atom".to_owned(), "/tags/wildlife/feed.atom"),
            ("/".to_owned(), "/"),
        ] {
            assert_eq!(redact(&path), logged, "{path}");
        }
    }
}
