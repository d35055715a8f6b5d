//! Postmark's bounce and spam complaint webhooks, authenticated by the HTTP Basic
//! credentials set on the webhook's URL (Postmark signs nothing).

use base64::Engine;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::error::{WebhookError, json};
use crate::bounces::BounceReport;
use crate::config::PostmarkSettings;
use crate::domain::{BounceKind, BounceSource};

pub(super) struct Postmark {
    username: String,
    password: SecretString,
}

impl Postmark {
    pub(super) fn new(settings: &PostmarkSettings) -> Self {
        Self {
            username: settings.username.clone(),
            password: settings.password.clone(),
        }
    }

    /// Checks `Authorization: Basic ...` against the configured credentials, in constant time.
    pub(super) fn authenticate(&self, authorization: Option<&str>) -> Result<(), WebhookError> {
        let refused = |why: &str| WebhookError::Unauthenticated(format!("postmark: {why}"));
        let header = authorization.ok_or_else(|| refused("no Authorization header"))?;
        let (scheme, encoded) = header
            .trim()
            .split_once(' ')
            .ok_or_else(|| refused("not Basic credentials"))?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(refused("not Basic credentials"));
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| refused("credentials are not base64"))?;
        let decoded = String::from_utf8(decoded).map_err(|_| refused("credentials are not UTF-8"))?;
        let (user, password) = decoded.split_once(':').ok_or_else(|| refused("no password"))?;
        // Both compared whatever the first gives, so the time taken tells nothing.
        let user_ok = constant_time_eq::constant_time_eq(user.as_bytes(), self.username.as_bytes());
        let password_ok =
            constant_time_eq::constant_time_eq(password.as_bytes(), self.password.expose_secret().as_bytes());
        if user_ok && password_ok {
            Ok(())
        } else {
            Err(refused("wrong username or password"))
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Payload {
    record_type: String,
    #[serde(rename = "ID")]
    id: Option<serde_json::Value>,
    #[serde(rename = "Type")]
    kind: Option<String>,
    email: Option<String>,
    description: Option<String>,
    details: Option<String>,
    bounced_at: Option<String>,
}

/// What a Postmark bounce type means here: hard (the address is bad), soft (it may work
/// later), or nothing to act on (auto-replies, subscription requests, ...).
fn kind_of(record_type: &str, bounce_type: &str) -> Option<BounceKind> {
    if record_type == "SpamComplaint" || bounce_type == "SpamComplaint" {
        return Some(BounceKind::Complaint);
    }
    match bounce_type {
        "HardBounce" | "BadEmailAddress" => Some(BounceKind::Hard),
        "Transient" | "SoftBounce" | "DnsError" => Some(BounceKind::Soft),
        _ => None,
    }
}

/// The reports in one call (Postmark sends one record per call), and how many records were
/// not bounces or complaints.
pub(super) fn read(body: &[u8]) -> Result<(Vec<BounceReport>, usize), WebhookError> {
    let payload: Payload = json(body)?;
    let Some(kind) = kind_of(&payload.record_type, payload.kind.as_deref().unwrap_or_default()) else {
        return Ok((Vec::new(), 1));
    };
    let address = payload
        .email
        .ok_or_else(|| WebhookError::Malformed("a Postmark bounce without Email".into()))?;
    let occurred_at = payload
        .bounced_at
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or_else(Utc::now, |t| t.with_timezone(&Utc));
    let diagnostic = [payload.description, payload.details]
        .into_iter()
        .flatten()
        .filter(|t| !t.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" — ");
    // Postmark's ID names a bounce record; the record type keeps a complaint's id apart from
    // a bounce's, whatever Postmark numbers them.
    let record = payload.record_type;
    let external_id = payload.id.map(|id| match id {
        serde_json::Value::String(s) => format!("postmark:{record}:{s}"),
        other => format!("postmark:{record}:{other}"),
    });
    Ok((
        vec![BounceReport {
            address,
            kind,
            diagnostic: (!diagnostic.is_empty()).then_some(diagnostic),
            source: BounceSource::Postmark,
            // Postmark's MessageID is its own, not the message's Message-ID header.
            message_id: None,
            external_id,
            occurred_at,
        }],
        0,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn postmark() -> Postmark {
        Postmark {
            username: "herald".into(),
            password: SecretString::from("s3cret".to_owned()),
        }
    }

    #[test]
    fn only_the_configured_credentials_pass() {
        let basic = |s: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(s));
        assert!(postmark().authenticate(Some(&basic("herald:s3cret"))).is_ok());
        for wrong in [
            Some(basic("herald:wrong")),
            Some(basic("other:s3cret")),
            Some(basic("herald")),
            Some("Bearer x".to_owned()),
            None,
        ] {
            assert!(matches!(
                postmark().authenticate(wrong.as_deref()),
                Err(WebhookError::Unauthenticated(_))
            ));
        }
    }

    #[test]
    fn bounce_types_map_to_kinds() {
        assert_eq!(kind_of("Bounce", "HardBounce"), Some(BounceKind::Hard));
        assert_eq!(kind_of("Bounce", "SoftBounce"), Some(BounceKind::Soft));
        assert_eq!(kind_of("SpamComplaint", "SpamComplaint"), Some(BounceKind::Complaint));
        assert_eq!(kind_of("Bounce", "AutoResponder"), None);
        assert_eq!(kind_of("Delivery", ""), None);
    }
}
