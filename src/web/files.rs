//! Static files and page bundles' files over HTTP: `site::files` says which file a path
//! names, tower-http's `ServeFile` sends it (HEAD, Range, If-Modified-Since) and this adds
//! the validators and caching a browser and a proxy need: ETag, If-None-Match (304),
//! Cache-Control. Uses `site`, `store` and the web state.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use mime_guess::mime::Mime;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::{AppState, Result, public};
use crate::domain::Slug;
use crate::site::files::{self, Folder};

/// How long a browser or proxy may use a file before asking again (with its ETag, which
/// usually gets a 304): files change rarely, but keep their names when they do.
const CACHE_CONTROL: &str = "public, max-age=3600";

/// What no route answers: a file of the static folder, or the 404 page.
pub async fn fallback(
    State(app): State<AppState>,
    OriginalUri(uri): OriginalUri,
    request: Request,
) -> Result<Response> {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        let root = app.settings.static_dir();
        let path = uri.path().to_owned();
        if let Some(file) = find(root, path, Folder::Static).await {
            return Ok(send(&file, request).await);
        }
    }
    public::not_found(&app)
}

/// `/posts/{slug}/{file}`: a file beside a public post that is a page bundle.
pub async fn bundle_file(
    State(app): State<AppState>,
    OriginalUri(uri): OriginalUri,
    request: Request,
) -> Result<Response> {
    let Some((raw_slug, rest)) = uri.path().strip_prefix("/posts/").and_then(|p| p.split_once('/')) else {
        return public::not_found(&app);
    };
    let Some(slug) = files::url_segments(raw_slug)
        .and_then(|s| s.into_iter().next())
        .and_then(|s| Slug::parse(&s).ok())
    else {
        return public::not_found(&app);
    };
    let Some(source) = crate::store::posts::public_source(&app.db, &slug, Utc::now()).await? else {
        return public::not_found(&app);
    };
    let Some(root) = files::bundle_folder(&app.settings.posts_dir(), &source) else {
        return public::not_found(&app);
    };
    match find(root, rest.to_owned(), Folder::Bundle).await {
        Some(file) => Ok(send(&file, request).await),
        None => public::not_found(&app),
    }
}

async fn find(root: PathBuf, url_path: String, folder: Folder) -> Option<PathBuf> {
    tokio::task::spawn_blocking(move || files::find(&root, &url_path, folder))
        .await
        .ok()
        .flatten()
}

/// The file's content type; text is UTF-8.
fn content_type(path: &Path) -> Mime {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let textual = mime.type_() == "text" || matches!(mime.essence_str(), "application/javascript" | "application/json");
    if textual
        && mime.get_param("charset").is_none()
        && let Ok(utf8) = format!("{mime}; charset=utf-8").parse()
    {
        return utf8;
    }
    mime
}

/// Whether an `If-None-Match` header names `etag` (weak comparison, RFC 9110 §13.1.2).
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match.trim() == "*"
        || if_none_match
            .split(',')
            .any(|tag| tag.trim().trim_start_matches("W/") == etag)
}

/// Sends `file`: 304 when the client's ETag is current, else what `ServeFile` answers,
/// with the ETag and Cache-Control added.
async fn send(file: &Path, mut request: Request) -> Response {
    let Ok(meta) = tokio::fs::metadata(file).await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    let etag = format!(
        "\"{:x}-{:x}-{:x}\"",
        meta.len(),
        modified.as_secs(),
        modified.subsec_nanos()
    );
    let mut validators = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        validators.insert(header::ETAG, value);
    }
    validators.insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL));

    let if_none_match = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(tags) = if_none_match {
        if etag_matches(&tags, &etag) {
            if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(UNIX_EPOCH + modified)) {
                validators.insert(header::LAST_MODIFIED, value);
            }
            return (StatusCode::NOT_MODIFIED, validators).into_response();
        }
        // RFC 9110 §13.1.3: with If-None-Match, If-Modified-Since is ignored.
        request.headers_mut().remove(header::IF_MODIFIED_SINCE);
    }

    let response = match ServeFile::new_with_mime(file, &content_type(file))
        .oneshot(request)
        .await
    {
        Ok(response) => response.map(Body::new),
        Err(error) => {
            tracing::warn!(file = %file.display(), %error, "failed to send a file");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let (mut parts, body) = response.into_parts();
    if parts.status.is_success() || parts.status == StatusCode::NOT_MODIFIED {
        parts.headers.extend(validators);
    }
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_match_strongly_weakly_in_lists_and_by_star() {
        assert!(etag_matches("\"a\"", "\"a\""));
        assert!(etag_matches("W/\"a\"", "\"a\""));
        assert!(etag_matches("\"b\", \"a\"", "\"a\""));
        assert!(etag_matches("*", "\"a\""));
        assert!(!etag_matches("\"b\"", "\"a\""));
    }

    #[test]
    fn text_is_utf_8_and_images_are_images() {
        assert_eq!(content_type(Path::new("a.css")).as_ref(), "text/css; charset=utf-8");
        assert_eq!(content_type(Path::new("a.png")).as_ref(), "image/png");
        assert_eq!(content_type(Path::new("a.svg")).as_ref(), "image/svg+xml");
        assert_eq!(content_type(Path::new("a")).as_ref(), "application/octet-stream");
    }
}
