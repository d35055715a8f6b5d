//! Mailgun's webhooks (JSON): `signature.signature` is the hex HMAC-SHA256 of
//! `timestamp + token` under the webhook signing key. A timestamp more than five minutes
//! away from now is refused, and so is a token already seen within that window, so a
//! captured call cannot be replayed.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use super::error::WebhookError;
use crate::bounces::BounceReport;
use crate::config::MailgunSettings;
use crate::domain::{BounceKind, BounceSource};

/// How far a call's timestamp may be from now, either way.
const MAX_SKEW_SECONDS: i64 = 300;

pub(super) struct Mailgun {
    signing_key: SecretString,
    /// Tokens of accepted calls, with their timestamps, for as long as those are fresh.
    seen: Mutex<HashMap<String, i64>>,
}

#[derive(serde::Deserialize)]
struct Payload {
    signature: Signature,
    #[serde(rename = "event-data")]
    event_data: EventData,
}

#[derive(serde::Deserialize)]
struct Signature {
    timestamp: String,
    token: String,
    signature: String,
}

#[derive(serde::Deserialize)]
struct EventData {
    event: String,
    id: Option<String>,
    timestamp: Option<f64>,
    severity: Option<String>,
    reason: Option<String>,
    recipient: Option<String>,
    message: Option<Message>,
    #[serde(rename = "delivery-status")]
    delivery_status: Option<DeliveryStatus>,
}

#[derive(serde::Deserialize)]
struct Message {
    headers: Option<HashMap<String, serde_json::Value>>,
}

#[derive(serde::Deserialize)]
struct DeliveryStatus {
    code: Option<serde_json::Value>,
    message: Option<String>,
    description: Option<String>,
}

impl Mailgun {
    pub(super) fn new(settings: &MailgunSettings) -> Self {
        Self {
            signing_key: settings.signing_key.clone(),
            seen: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn handle(&self, body: &[u8]) -> Result<(Vec<BounceReport>, usize), WebhookError> {
        // The signature sits inside the body: read just enough to check it first.
        let payload: Payload = serde_json::from_slice(body)
            .map_err(|_| WebhookError::Unauthenticated("mailgun: no signature object in a JSON body".into()))?;
        self.verify(&payload.signature, Utc::now().timestamp())?;
        read(payload.event_data)
    }

    fn verify(&self, signature: &Signature, now: i64) -> Result<(), WebhookError> {
        let refused = |why: &str| WebhookError::Unauthenticated(format!("mailgun: {why}"));
        let expected = hex::decode(signature.signature.trim()).map_err(|_| refused("the signature is not hex"))?;
        let mut mac = Hmac::<Sha256>::new_from_slice(self.signing_key.expose_secret().as_bytes())
            .map_err(|_| refused("unusable signing key"))?;
        mac.update(signature.timestamp.as_bytes());
        mac.update(signature.token.as_bytes());
        mac.verify_slice(&expected).map_err(|_| refused("wrong signature"))?;
        let timestamp: i64 = signature
            .timestamp
            .trim()
            .parse()
            .map_err(|_| refused("the timestamp is not a number"))?;
        if (now - timestamp).abs() > MAX_SKEW_SECONDS {
            return Err(refused("stale timestamp"));
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|_, at| (now - *at).abs() <= MAX_SKEW_SECONDS);
        if seen.insert(signature.token.clone(), timestamp).is_some() {
            return Err(refused("token already used"));
        }
        Ok(())
    }
}

fn read(event: EventData) -> Result<(Vec<BounceReport>, usize), WebhookError> {
    let kind = match (event.event.as_str(), event.severity.as_deref()) {
        ("failed", Some("permanent")) => BounceKind::Hard,
        ("failed", _) => BounceKind::Soft,
        ("complained", _) => BounceKind::Complaint,
        _ => return Ok((Vec::new(), 1)),
    };
    let address = event
        .recipient
        .ok_or_else(|| WebhookError::Malformed("a Mailgun event without recipient".into()))?;
    let occurred_at = event
        .timestamp
        .and_then(|t| DateTime::from_timestamp_micros((t * 1_000_000.0) as i64))
        .unwrap_or_else(Utc::now);
    let message_id = event
        .message
        .and_then(|m| m.headers)
        .and_then(|h| h.get("message-id").and_then(|v| v.as_str().map(str::to_owned)));
    let mut diagnostic: Vec<String> = Vec::new();
    if let Some(status) = event.delivery_status {
        if let Some(code) = status.code {
            diagnostic.push(code.to_string().trim_matches('"').to_owned());
        }
        diagnostic.extend(status.message.into_iter().chain(status.description));
    }
    diagnostic.extend(event.reason.map(|r| format!("({r})")));
    let diagnostic = diagnostic
        .into_iter()
        .filter(|t| !t.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    Ok((
        vec![BounceReport {
            address,
            kind,
            diagnostic: (!diagnostic.is_empty()).then_some(diagnostic),
            source: BounceSource::Mailgun,
            message_id,
            external_id: event.id.map(|id| format!("mailgun:{id}")),
            occurred_at,
        }],
        0,
    ))
}

/// Parses a payload that is not checked again (tests of the reading alone).
#[cfg(test)]
fn read_body(body: &[u8]) -> Result<(Vec<BounceReport>, usize), WebhookError> {
    let payload: Payload = super::error::json(body)?;
    read(payload.event_data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailgun() -> Mailgun {
        Mailgun::new(&MailgunSettings {
            signing_key: SecretString::from("key-test".to_owned()),
        })
    }

    fn signed(timestamp: i64, token: &str) -> Signature {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key-test").unwrap();
        mac.update(timestamp.to_string().as_bytes());
        mac.update(token.as_bytes());
        Signature {
            timestamp: timestamp.to_string(),
            token: token.to_owned(),
            signature: hex::encode(mac.finalize().into_bytes()),
        }
    }

    #[test]
    fn a_signature_passes_once_while_fresh() {
        let now = 1_700_000_000;
        let mailgun = mailgun();
        assert!(mailgun.verify(&signed(now, "t1"), now).is_ok());
        assert!(mailgun.verify(&signed(now, "t1"), now + 1).is_err(), "a reused token");
        assert!(
            mailgun.verify(&signed(now - 301, "t2"), now).is_err(),
            "a stale timestamp"
        );
        let mut forged = signed(now, "t3");
        forged.token = "t4".into();
        assert!(
            mailgun.verify(&forged, now).is_err(),
            "a token that is not the signed one"
        );
        // Once its timestamp is stale, the token is forgotten (a stale call is refused anyway).
        assert!(mailgun.verify(&signed(now + 400, "t5"), now + 400).is_ok());
        assert!(mailgun.seen.lock().unwrap().len() == 1);
    }

    #[test]
    fn failed_and_complained_events_become_reports() {
        let body = br#"{"signature":{"timestamp":"1","token":"t","signature":"00"},
            "event-data":{"event":"failed","id":"G9Bn5sl1TC6nu79C8C0bwg","timestamp":1521233195.375624,
            "severity":"temporary","reason":"generic","recipient":"Alice@Example.com",
            "message":{"headers":{"message-id":"edition.1.2@news.example"}},
            "delivery-status":{"code":452,"message":"mailbox full","description":""}}}"#;
        let (reports, ignored) = read_body(body).unwrap();
        assert_eq!(ignored, 0);
        assert_eq!(reports[0].kind, BounceKind::Soft);
        assert_eq!(reports[0].message_id.as_deref(), Some("edition.1.2@news.example"));
        assert_eq!(reports[0].diagnostic.as_deref(), Some("452 mailbox full (generic)"));
        assert_eq!(
            reports[0].external_id.as_deref(),
            Some("mailgun:G9Bn5sl1TC6nu79C8C0bwg")
        );
    }
}
