//! SendGrid's signed event webhook: `X-Twilio-Email-Event-Webhook-Signature` is a base64 DER
//! ECDSA P-256 / SHA-256 signature of the `X-Twilio-Email-Event-Webhook-Timestamp` header's
//! text followed by the raw body, checked with the verification key SendGrid shows (base64
//! DER SubjectPublicKeyInfo). The body is a JSON array of events; a retried batch is kept
//! once per event (`sg_event_id`).

use anyhow::Context;
use base64::Engine;
use chrono::{DateTime, Utc};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;

use super::error::{WebhookError, json};
use crate::bounces::BounceReport;
use crate::config::SendgridSettings;
use crate::domain::{BounceKind, BounceSource};

pub(super) struct Sendgrid {
    key: VerifyingKey,
}

impl Sendgrid {
    pub(super) fn new(settings: &SendgridSettings) -> anyhow::Result<Self> {
        let der = base64::engine::general_purpose::STANDARD
            .decode(settings.public_key.trim())
            .context("bounces.sendgrid.public_key is not base64")?;
        let key = VerifyingKey::from_public_key_der(&der)
            .map_err(|e| anyhow::anyhow!("bounces.sendgrid.public_key is not an ECDSA P-256 public key: {e}"))?;
        Ok(Self { key })
    }

    pub(super) fn verify(
        &self,
        signature: Option<&str>,
        timestamp: Option<&str>,
        body: &[u8],
    ) -> Result<(), WebhookError> {
        let refused = |why: &str| WebhookError::Unauthenticated(format!("sendgrid: {why}"));
        let signature = signature.ok_or_else(|| refused("no signature header"))?;
        let timestamp = timestamp.ok_or_else(|| refused("no timestamp header"))?;
        let der = base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .map_err(|_| refused("the signature is not base64"))?;
        let signature = Signature::from_der(&der).map_err(|_| refused("the signature is not a DER ECDSA signature"))?;
        let mut signed = Vec::with_capacity(timestamp.len() + body.len());
        signed.extend_from_slice(timestamp.as_bytes());
        signed.extend_from_slice(body);
        self.key
            .verify(&signed, &signature)
            .map_err(|_| refused("wrong signature"))
    }
}

#[derive(serde::Deserialize)]
struct Event {
    email: Option<String>,
    timestamp: Option<i64>,
    #[serde(rename = "smtp-id")]
    smtp_id: Option<String>,
    event: String,
    sg_event_id: Option<String>,
    reason: Option<String>,
    response: Option<String>,
    status: Option<String>,
    #[serde(rename = "type")]
    bounce_type: Option<String>,
}

/// A bounce is hard unless SendGrid calls it `blocked` (a refusal that may lift); a drop is
/// acted on when SendGrid dropped the message because the address bounced, is invalid or
/// complained before; a deferral is a soft bounce.
fn kind_of(event: &Event) -> Option<BounceKind> {
    match event.event.as_str() {
        "bounce" if event.bounce_type.as_deref() == Some("blocked") => Some(BounceKind::Soft),
        "bounce" => Some(BounceKind::Hard),
        "deferred" => Some(BounceKind::Soft),
        "spamreport" => Some(BounceKind::Complaint),
        "dropped" => match event.reason.as_deref().unwrap_or_default() {
            "Bounced Address" | "Invalid" | "Invalid SMTPAPI header" => Some(BounceKind::Hard),
            "Spam Reporting Address" => Some(BounceKind::Complaint),
            _ => None,
        },
        _ => None,
    }
}

pub(super) fn read(body: &[u8]) -> Result<(Vec<BounceReport>, usize), WebhookError> {
    let events: Vec<Event> = json(body)?;
    let mut reports = Vec::new();
    let mut ignored = 0;
    for event in events {
        let (Some(kind), Some(address)) = (kind_of(&event), event.email.clone()) else {
            ignored += 1;
            continue;
        };
        let diagnostic = [event.status.clone(), event.reason.clone(), event.response.clone()]
            .into_iter()
            .flatten()
            .filter(|t| !t.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        reports.push(BounceReport {
            address,
            kind,
            diagnostic: (!diagnostic.is_empty()).then_some(diagnostic),
            source: BounceSource::Sendgrid,
            message_id: event.smtp_id,
            external_id: event.sg_event_id.map(|id| format!("sendgrid:{id}")),
            occurred_at: event
                .timestamp
                .and_then(|t| DateTime::from_timestamp(t, 0))
                .unwrap_or_else(Utc::now),
        });
    }
    Ok((reports, ignored))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_events_map_to_kinds() {
        let body = br#"[
            {"email":"a@example.com","timestamp":1513299569,"event":"processed","sg_event_id":"p"},
            {"email":"a@example.com","timestamp":1513299569,"event":"bounce","type":"bounce","status":"5.0.0","reason":"500 unknown recipient","sg_event_id":"b"},
            {"email":"a@example.com","timestamp":1513299569,"event":"bounce","type":"blocked","sg_event_id":"bl"},
            {"email":"a@example.com","timestamp":1513299569,"event":"dropped","reason":"Bounced Address","status":"5.0.0","sg_event_id":"d"},
            {"email":"a@example.com","timestamp":1513299569,"event":"dropped","reason":"Unsubscribed Address","sg_event_id":"du"},
            {"email":"a@example.com","timestamp":1513299569,"event":"spamreport","sg_event_id":"s"},
            {"email":"a@example.com","timestamp":1513299569,"event":"deferred","response":"400 try again later","attempt":"5","sg_event_id":"df"}
        ]"#;
        let (reports, ignored) = read(body).unwrap();
        assert_eq!(ignored, 2);
        let kinds: Vec<_> = reports.iter().map(|r| r.kind).collect();
        use BounceKind::*;
        assert_eq!(kinds, [Hard, Soft, Hard, Complaint, Soft]);
        assert_eq!(reports[0].diagnostic.as_deref(), Some("5.0.0 500 unknown recipient"));
        assert_eq!(reports[0].external_id.as_deref(), Some("sendgrid:b"));
    }
}
