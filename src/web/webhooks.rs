//! `POST /webhooks/{ses,postmark,mailgun,sendgrid}`: the providers' bounce and complaint
//! calls, handed to `bounces::webhooks` with their raw bodies and signature headers.
//! Unconfigured: 404. Failing authentication: 401, logged with the reason (never a secret),
//! and nothing changes. Not readable once authenticated: 400 (a provider retries only 5xx
//! and timeouts, so a payload Herald cannot read is not sent again and again).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::bounces::webhooks::{Handled, WebhookError, Webhooks};

fn answer(provider: &'static str, outcome: Result<Handled, WebhookError>) -> Response {
    match outcome {
        Ok(handled) => {
            tracing::info!(
                provider,
                recorded = handled.recorded,
                duplicates = handled.duplicates,
                ignored = handled.ignored,
                "webhook handled"
            );
            (StatusCode::OK, axum::Json(handled)).into_response()
        }
        Err(WebhookError::NotConfigured) => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"error": "not found"})),
        )
            .into_response(),
        Err(WebhookError::Unauthenticated(reason)) => {
            tracing::warn!(provider, %reason, "webhook call refused");
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({"error": "authentication failed"})),
            )
                .into_response()
        }
        Err(WebhookError::Malformed(reason)) => {
            tracing::warn!(provider, %reason, "webhook payload not understood");
            (
                StatusCode::BAD_REQUEST,
                axum::Json(serde_json::json!({"error": reason})),
            )
                .into_response()
        }
        Err(WebhookError::Internal(e)) => super::WebError::Internal(e).into_response(),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub async fn ses(State(webhooks): State<Webhooks>, body: Bytes) -> Response {
    answer("ses", webhooks.ses(&body).await)
}

pub async fn postmark(State(webhooks): State<Webhooks>, headers: HeaderMap, body: Bytes) -> Response {
    answer(
        "postmark",
        webhooks.postmark(header(&headers, "authorization"), &body).await,
    )
}

pub async fn mailgun(State(webhooks): State<Webhooks>, body: Bytes) -> Response {
    answer("mailgun", webhooks.mailgun(&body).await)
}

pub async fn sendgrid(State(webhooks): State<Webhooks>, headers: HeaderMap, body: Bytes) -> Response {
    let signature = header(&headers, "x-twilio-email-event-webhook-signature");
    let timestamp = header(&headers, "x-twilio-email-event-webhook-timestamp");
    answer("sendgrid", webhooks.sendgrid(signature, timestamp, &body).await)
}
