//! What can go wrong with a webhook call, and the JSON reading every provider shares.

use crate::bounces::BounceError;

/// Why a webhook call was not acted on.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The provider has no section in `[bounces]`.
    #[error("this provider is not configured")]
    NotConfigured,
    /// The call is not the provider's: a missing or wrong signature or password, a stale
    /// timestamp, a reused token, a topic or certificate that is not the configured one.
    /// The reason is for the log (it carries no secret).
    #[error("refused: {0}")]
    Unauthenticated(String),
    /// Authenticated, but not a payload Herald can read.
    #[error("{0}")]
    Malformed(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<BounceError> for WebhookError {
    fn from(e: BounceError) -> Self {
        match e {
            BounceError::Store(e) => WebhookError::Internal(e),
            other => WebhookError::Malformed(other.to_string()),
        }
    }
}

/// Parses a JSON body, as a malformed payload if it is not.
pub(super) fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, WebhookError> {
    serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(format!("not the expected JSON: {e}")))
}
