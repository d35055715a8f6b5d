//! The error type of every handler and extractor, and how it is answered: JSON in the API,
//! a page on the HTML routes.

use axum::body::Body;
use axum::extract::State;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;

/// Every way a request can fail. 5xx answers say nothing of the cause; the full
/// error chain is logged once, here.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    Conflict(String),
    #[error("authentication required")]
    Unauthorized,
    /// Refused for where the request comes from (a form posted from another site).
    #[error("{0}")]
    Forbidden(String),
    /// A request that cannot be read: a malformed body, path or query, a body of the wrong
    /// content type or too large. The status and message are the extractor's.
    #[error("{message}")]
    Unreadable { status: StatusCode, message: String },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = WebError> = std::result::Result<T, E>;

/// All a client learns of a failure on Herald's side.
const INTERNAL: &str = "Something went wrong on our side. Please try again later.";

fn json(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

impl WebError {
    /// The status, a heading for a page, and what the client is told.
    fn parts(&self) -> (StatusCode, &'static str, &str) {
        match self {
            WebError::NotFound => (StatusCode::NOT_FOUND, "Not found", "not found"),
            WebError::Validation(m) => (StatusCode::UNPROCESSABLE_ENTITY, "This could not be done", m),
            WebError::Conflict(m) => (StatusCode::CONFLICT, "This could not be done", m),
            WebError::Unauthorized => (StatusCode::UNAUTHORIZED, "Log in first", "authentication required"),
            WebError::Forbidden(m) => (StatusCode::FORBIDDEN, "Refused", m),
            WebError::Unreadable { status, message } => (*status, "This request could not be read", message),
            WebError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", INTERNAL),
        }
    }
}

/// A JSON body `{"error": message}`, carrying an [`ErrorPage`] for [`html_pages`].
impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        if let WebError::Internal(e) = &self {
            tracing::error!(error = format!("{e:#}"), "request failed");
        }
        let (status, heading, message) = self.parts();
        let mut response = json(status, message);
        response.extensions_mut().insert(ErrorPage {
            heading,
            message: message.to_owned(),
        });
        response
    }
}

/// What an error response says, kept in its extensions so that the routes of an HTML family
/// can answer with a page instead of JSON (see [`html_pages`]).
#[derive(Debug, Clone)]
pub struct ErrorPage {
    heading: &'static str,
    message: String,
}

/// Which pages a family of HTML routes shows its errors on.
#[derive(Debug, Clone, Copy)]
pub enum Pages {
    /// The public site: its own "not found" page, and a link home.
    Public,
    /// The admin console: a link back to its dashboard.
    Console,
}

/// The state of [`html_pages`].
#[derive(Clone)]
pub struct HtmlErrors {
    app: AppState,
    pages: Pages,
}

impl HtmlErrors {
    pub fn new(app: &AppState, pages: Pages) -> Self {
        Self {
            app: app.clone(),
            pages,
        }
    }
}

/// Answers the errors of HTML routes (handlers' and extractors' [`WebError`]s, refusals) with
/// an HTML page, keeping the status and headers; other responses pass unchanged. Should the
/// page fail to render, the JSON answer goes out.
pub async fn html_pages(State(errors): State<HtmlErrors>, response: Response) -> Response {
    let Some(page) = response.extensions().get::<ErrorPage>().cloned() else {
        return response;
    };
    let (mut parts, body) = response.into_parts();
    let html = match render(&errors, parts.status, &page) {
        Ok(html) => html,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "the error page failed to render");
            return Response::from_parts(parts, body);
        }
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    parts
        .headers
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Response::from_parts(parts, Body::from(html))
}

fn render(errors: &HtmlErrors, status: StatusCode, page: &ErrorPage) -> anyhow::Result<String> {
    let app = &errors.app;
    let (link_text, link_url) = match errors.pages {
        Pages::Public if status == StatusCode::NOT_FOUND => return app.site.not_found(),
        Pages::Public => ("See the latest posts", app.settings.url_for("")),
        Pages::Console => ("Back to the console", app.settings.url_for("admin")),
    };
    let message = if status == StatusCode::NOT_FOUND {
        "There is nothing at this address."
    } else {
        &page.message
    };
    let mut message = message.chars();
    let line: String = message
        .next()
        .map(|c| c.to_uppercase().chain(message).collect())
        .unwrap_or_default();
    let mut ctx = tera::Context::new();
    ctx.insert("heading", page.heading);
    ctx.insert("lines", &[line]);
    ctx.insert("link_text", link_text);
    ctx.insert("link_url", &link_url);
    app.site.page("web/message.html", "", ctx)
}

/// Extractor rejections, with the status and message the extractor chose.
macro_rules! unreadable {
    ($($rejection:ty),*) => {$(
        impl From<$rejection> for WebError {
            fn from(rejection: $rejection) -> Self {
                WebError::Unreadable {
                    status: rejection.status(),
                    message: rejection.body_text(),
                }
            }
        }
    )*};
}

unreadable!(
    JsonRejection,
    PathRejection,
    QueryRejection,
    axum_extra::extract::FormRejection
);
