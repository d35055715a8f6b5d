//! The error type of every handler and extractor, and how it is answered.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

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

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            WebError::NotFound => json(StatusCode::NOT_FOUND, "not found"),
            WebError::Validation(m) => json(StatusCode::UNPROCESSABLE_ENTITY, &m),
            WebError::Conflict(m) => json(StatusCode::CONFLICT, &m),
            WebError::Unauthorized => json(StatusCode::UNAUTHORIZED, "authentication required"),
            WebError::Forbidden(m) => json(StatusCode::FORBIDDEN, &m),
            WebError::Unreadable { status, message } => json(status, &message),
            WebError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "request failed");
                json(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL)
            }
        }
    }
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
