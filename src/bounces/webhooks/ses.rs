//! Amazon SES bounce and complaint notifications, delivered by SNS over HTTP(S).
//!
//! Every SNS message is checked before anything is done with it, as AWS documents
//! ("Verifying the signatures of Amazon SNS messages"): its `TopicArn` must be the
//! configured one; its `SigningCertURL` must be https on `sns.<region>.amazonaws.com` (or
//! start with `[bounces.ses] certificate_url_prefix`, for tests); the certificate there
//! (fetched once per URL, then cached) must verify `Signature` over the canonical string of
//! the message's fields, with SHA1withRSA for `SignatureVersion` 1 and SHA256withRSA for 2.
//! A verified `SubscriptionConfirmation` is confirmed by fetching its `SubscribeURL` (which
//! must pass the same host rule).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use chrono::{DateTime, Utc};
use rsa::RsaPublicKey;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use url::Url;

use super::error::{WebhookError, json};
use crate::bounces::BounceReport;
use crate::config::SesSettings;
use crate::domain::{BounceKind, BounceSource};

/// Certificates kept at most (SNS rotates them rarely; one URL per region in practice).
const CERTIFICATE_CACHE: usize = 16;
/// Largest certificate read.
const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;

pub(super) struct Ses {
    topic_arn: String,
    certificate_url_prefix: Option<Url>,
    http: reqwest::Client,
    certificates: Mutex<HashMap<String, RsaPublicKey>>,
}

/// An SNS message, as posted.
#[derive(Debug, serde::Deserialize)]
struct SnsMessage {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "MessageId")]
    message_id: String,
    #[serde(rename = "Token")]
    token: Option<String>,
    #[serde(rename = "TopicArn")]
    topic_arn: String,
    #[serde(rename = "Subject")]
    subject: Option<String>,
    #[serde(rename = "Message")]
    message: String,
    #[serde(rename = "Timestamp")]
    timestamp: String,
    #[serde(rename = "SignatureVersion")]
    signature_version: String,
    #[serde(rename = "Signature")]
    signature: String,
    #[serde(rename = "SigningCertURL")]
    signing_cert_url: String,
    #[serde(rename = "SubscribeURL")]
    subscribe_url: Option<String>,
}

impl SnsMessage {
    /// The text SNS signs: each field's name and value on their own lines, in this order,
    /// `Subject` only when present.
    fn canonical(&self) -> Result<String, WebhookError> {
        let mut fields: Vec<(&str, &str)> = vec![("Message", &self.message), ("MessageId", &self.message_id)];
        match self.kind.as_str() {
            "Notification" => {
                if let Some(subject) = &self.subject {
                    fields.push(("Subject", subject));
                }
                fields.push(("Timestamp", &self.timestamp));
            }
            "SubscriptionConfirmation" | "UnsubscribeConfirmation" => {
                let url = self.subscribe_url.as_deref().unwrap_or_default();
                let token = self.token.as_deref().unwrap_or_default();
                fields.extend([("SubscribeURL", url), ("Timestamp", &self.timestamp), ("Token", token)]);
            }
            other => {
                return Err(WebhookError::Unauthenticated(format!(
                    "ses: unknown SNS message type {other:?}"
                )));
            }
        }
        fields.extend([("TopicArn", self.topic_arn.as_str()), ("Type", self.kind.as_str())]);
        Ok(fields
            .iter()
            .map(|(name, value)| format!("{name}\n{value}\n"))
            .collect())
    }
}

impl Ses {
    pub(super) fn new(settings: &SesSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("Failed to build the HTTP client for SNS")?;
        Ok(Self {
            topic_arn: settings.topic_arn.clone(),
            certificate_url_prefix: settings.certificate_url_prefix.clone(),
            http,
            certificates: Mutex::new(HashMap::new()),
        })
    }

    /// Whether SNS could have sent Herald to `url`: https on `sns.<region>.amazonaws.com`,
    /// or under the configured prefix.
    fn allowed(&self, url: &str) -> Option<Url> {
        let parsed = Url::parse(url).ok()?;
        if let Some(prefix) = &self.certificate_url_prefix {
            return parsed.as_str().starts_with(prefix.as_str()).then_some(parsed);
        }
        let host = parsed.host_str()?;
        let region = host.strip_prefix("sns.")?.strip_suffix(".amazonaws.com")?;
        let region_ok = !region.is_empty()
            && region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        (parsed.scheme() == "https"
            && region_ok
            && parsed.port().is_none()
            && parsed.username().is_empty()
            && parsed.password().is_none())
        .then_some(parsed)
    }

    /// The public key of the certificate at `url` (an allowed one), from the cache if seen.
    async fn public_key(&self, url: Url) -> Result<RsaPublicKey, WebhookError> {
        if let Some(key) = self.lock().get(url.as_str()) {
            return Ok(key.clone());
        }
        let fetch = async {
            let response = self.http.get(url.clone()).send().await?.error_for_status()?;
            if response
                .content_length()
                .is_some_and(|n| n > MAX_CERTIFICATE_BYTES as u64)
            {
                anyhow::bail!("the certificate is larger than {MAX_CERTIFICATE_BYTES} bytes");
            }
            let bytes = response.bytes().await?;
            anyhow::ensure!(bytes.len() <= MAX_CERTIFICATE_BYTES, "the certificate is too large");
            Ok(bytes)
        };
        // Not reachable now: SNS retries, so this is a failure on Herald's side, not a refusal.
        let pem = fetch
            .await
            .with_context(|| format!("Failed to fetch the SNS signing certificate {url}"))?;
        let spki = certificate_key(&pem)
            .ok_or_else(|| WebhookError::Unauthenticated(format!("ses: {url} is not a PEM certificate")))?;
        let key = RsaPublicKey::from_public_key_der(&spki)
            .map_err(|_| WebhookError::Unauthenticated("ses: the certificate's key is not RSA".into()))?;
        let mut cache = self.lock();
        if cache.len() >= CERTIFICATE_CACHE {
            cache.clear();
        }
        cache.insert(url.to_string(), key.clone());
        Ok(key)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, RsaPublicKey>> {
        self.certificates.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks an SNS message as the module describes; returns it once verified.
    async fn verify(&self, body: &[u8]) -> Result<SnsMessage, WebhookError> {
        let refused = |why: String| WebhookError::Unauthenticated(format!("ses: {why}"));
        let message: SnsMessage =
            serde_json::from_slice(body).map_err(|e| refused(format!("not an SNS message ({e})")))?;
        if message.topic_arn != self.topic_arn {
            return Err(refused(format!(
                "topic {} is not the configured one",
                message.topic_arn
            )));
        }
        let canonical = message.canonical()?;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(message.signature.trim())
            .map_err(|_| refused("the signature is not base64".into()))?;
        let signature =
            Signature::try_from(signature.as_slice()).map_err(|_| refused("unreadable signature".into()))?;
        let url = self
            .allowed(&message.signing_cert_url)
            .ok_or_else(|| refused(format!("certificate URL {} is not SNS's", message.signing_cert_url)))?;
        let key = self.public_key(url).await?;
        let verified = match message.signature_version.as_str() {
            "1" => VerifyingKey::<sha1::Sha1>::new(key).verify(canonical.as_bytes(), &signature),
            "2" => VerifyingKey::<sha2::Sha256>::new(key).verify(canonical.as_bytes(), &signature),
            other => return Err(refused(format!("unknown signature version {other:?}"))),
        };
        verified.map_err(|_| refused("wrong signature".into()))?;
        Ok(message)
    }

    /// A verified message's reports (none for a handshake), and how many were not bounces or
    /// complaints.
    pub(super) async fn handle(&self, body: &[u8]) -> Result<(Vec<BounceReport>, usize), WebhookError> {
        let message = self.verify(body).await?;
        match message.kind.as_str() {
            "SubscriptionConfirmation" => {
                let url = message.subscribe_url.as_deref().unwrap_or_default();
                let url = self
                    .allowed(url)
                    .ok_or_else(|| WebhookError::Unauthenticated(format!("ses: SubscribeURL {url} is not SNS's")))?;
                self.http
                    .get(url)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .context("Failed to confirm the SNS subscription")?;
                tracing::info!(topic = %message.topic_arn, "SNS subscription confirmed");
                Ok((Vec::new(), 0))
            }
            "Notification" => read(&message.message),
            _ => Ok((Vec::new(), 1)),
        }
    }
}

/// The DER SubjectPublicKeyInfo of the certificate in a PEM text. Only the key is needed:
/// the certificate is trusted for where it comes from (SNS's host over https), as AWS's own
/// SDKs do, so its chain and dates are not looked at.
fn certificate_key(pem: &[u8]) -> Option<Vec<u8>> {
    use x509_cert::der::{DecodePem, Encode};
    let certificate = x509_cert::Certificate::from_pem(pem).ok()?;
    certificate.tbs_certificate.subject_public_key_info.to_der().ok()
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Notification {
    notification_type: Option<String>,
    event_type: Option<String>,
    mail: Option<Mail>,
    bounce: Option<Bounce>,
    complaint: Option<Complaint>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Mail {
    headers: Option<Vec<Header>>,
    common_headers: Option<CommonHeaders>,
}

#[derive(serde::Deserialize)]
struct Header {
    name: String,
    value: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct CommonHeaders {
    message_id: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bounce {
    bounce_type: String,
    bounce_sub_type: Option<String>,
    bounced_recipients: Vec<BouncedRecipient>,
    timestamp: Option<DateTime<Utc>>,
    feedback_id: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct BouncedRecipient {
    email_address: String,
    status: Option<String>,
    diagnostic_code: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Complaint {
    complained_recipients: Vec<ComplainedRecipient>,
    complaint_feedback_type: Option<String>,
    timestamp: Option<DateTime<Utc>>,
    feedback_id: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ComplainedRecipient {
    email_address: String,
}

/// The reports in an SES notification (`Message` of the SNS message): one per recipient.
fn read(message: &str) -> Result<(Vec<BounceReport>, usize), WebhookError> {
    let notification: Notification = json(message.as_bytes())?;
    let message_id = notification.mail.and_then(|mail| {
        mail.headers
            .and_then(|headers| {
                headers
                    .into_iter()
                    .find(|h| h.name.eq_ignore_ascii_case("Message-ID"))
                    .map(|h| h.value)
            })
            .or(mail.common_headers.and_then(|c| c.message_id))
    });
    // One event per recipient: the feedback id names the notification, the address the row.
    let external_id = |feedback: &Option<String>, address: &str| {
        feedback
            .as_ref()
            .map(|id| format!("ses:{id}:{}", address.trim().to_lowercase()))
    };
    let kind = notification
        .notification_type
        .or(notification.event_type)
        .unwrap_or_default();
    match (kind.as_str(), notification.bounce, notification.complaint) {
        ("Bounce", Some(bounce), _) => {
            let kind = if bounce.bounce_type == "Permanent" {
                BounceKind::Hard
            } else {
                // Transient, or Undetermined: counted, not acted on at once.
                BounceKind::Soft
            };
            let reports = bounce
                .bounced_recipients
                .iter()
                .map(|r| BounceReport {
                    address: r.email_address.clone(),
                    kind,
                    diagnostic: r.diagnostic_code.clone().or_else(|| r.status.clone()).or_else(|| {
                        Some(format!(
                            "{} {}",
                            bounce.bounce_type,
                            bounce.bounce_sub_type.clone().unwrap_or_default()
                        ))
                    }),
                    source: BounceSource::Ses,
                    message_id: message_id.clone(),
                    external_id: external_id(&bounce.feedback_id, &r.email_address),
                    occurred_at: bounce.timestamp.unwrap_or_else(Utc::now),
                })
                .collect();
            Ok((reports, 0))
        }
        ("Complaint", _, Some(complaint)) => {
            let reports = complaint
                .complained_recipients
                .iter()
                .map(|r| BounceReport {
                    address: r.email_address.clone(),
                    kind: BounceKind::Complaint,
                    diagnostic: complaint.complaint_feedback_type.clone(),
                    source: BounceSource::Ses,
                    message_id: message_id.clone(),
                    external_id: external_id(&complaint.feedback_id, &r.email_address),
                    occurred_at: complaint.timestamp.unwrap_or_else(Utc::now),
                })
                .collect();
            Ok((reports, 0))
        }
        _ => Ok((Vec::new(), 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ses(prefix: Option<&str>) -> Ses {
        Ses::new(&SesSettings {
            topic_arn: "arn:aws:sns:us-east-1:123456789012:ses".into(),
            certificate_url_prefix: prefix.map(|p| Url::parse(p).unwrap()),
        })
        .unwrap()
    }

    #[test]
    fn only_sns_hosts_over_https_serve_certificates() {
        let ses = ses(None);
        assert!(
            ses.allowed("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem")
                .is_some()
        );
        for bad in [
            "http://sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com.evil.example/x.pem",
            "https://evil.example/sns.us-east-1.amazonaws.com/x.pem",
            "https://sns..amazonaws.com/x.pem",
            "https://s3.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com:8443/x.pem",
            "https://user@sns.us-east-1.amazonaws.com/x.pem",
            "not a url",
        ] {
            assert!(ses.allowed(bad).is_none(), "{bad}");
        }
        let test = super::tests::ses(Some("http://127.0.0.1:9999/certs/"));
        assert!(test.allowed("http://127.0.0.1:9999/certs/a.pem").is_some());
        assert!(test.allowed("http://127.0.0.1:9999/other/a.pem").is_none());
        assert!(
            test.allowed("https://sns.us-east-1.amazonaws.com/x.pem").is_none(),
            "the prefix replaces the rule"
        );
    }

    #[test]
    fn anything_but_a_certificate_has_no_key() {
        let pem = |der: &[u8]| {
            format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                base64::engine::general_purpose::STANDARD.encode(der)
            )
        };
        for bad in [
            b"not pem".to_vec(),
            pem(b"").into_bytes(),
            pem(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).into_bytes(),
            pem(&[0x30, 0x03, 0x30, 0x01, 0x02]).into_bytes(),
            pem(&[0x30, 0x80]).into_bytes(),
        ] {
            assert_eq!(certificate_key(&bad), None);
        }
    }

    #[test]
    fn the_canonical_string_follows_the_type() {
        let mut message = SnsMessage {
            kind: "Notification".into(),
            message_id: "m".into(),
            token: None,
            topic_arn: "t".into(),
            subject: None,
            message: "body".into(),
            timestamp: "2012-04-25T21:49:25.719Z".into(),
            signature_version: "1".into(),
            signature: String::new(),
            signing_cert_url: String::new(),
            subscribe_url: None,
        };
        assert_eq!(
            message.canonical().unwrap(),
            "Message\nbody\nMessageId\nm\nTimestamp\n2012-04-25T21:49:25.719Z\nTopicArn\nt\nType\nNotification\n"
        );
        message.subject = Some("s".into());
        assert!(
            message
                .canonical()
                .unwrap()
                .contains("MessageId\nm\nSubject\ns\nTimestamp")
        );
        message.kind = "SubscriptionConfirmation".into();
        message.token = Some("tok".into());
        message.subscribe_url = Some("https://u".into());
        assert_eq!(
            message.canonical().unwrap(),
            "Message\nbody\nMessageId\nm\nSubscribeURL\nhttps://u\nTimestamp\n2012-04-25T21:49:25.719Z\n\
             Token\ntok\nTopicArn\nt\nType\nSubscriptionConfirmation\n"
        );
    }
}
