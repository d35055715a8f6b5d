//! The error type handlers return, and how it becomes a response. Uses nothing else in Herald.

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
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = WebError> = std::result::Result<T, E>;

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
            WebError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong on our side. Please try again later.",
                )
                    .into_response()
            }
        }
    }
}
