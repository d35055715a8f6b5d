//! The providers' bounce and complaint webhooks: each call authenticated the way its
//! provider signs it, then read into [`BounceReport`]s for the one policy
//! ([`Bounces::record`]). A call that fails authentication changes nothing.
//!
//! | provider | authenticated by |
//! |----------|------------------|
//! | Amazon SES (SNS) | the SNS message signature (versions 1 and 2) with the certificate at `SigningCertURL`, on `sns.<region>.amazonaws.com` over https; the topic ARN |
//! | Postmark | HTTP Basic credentials |
//! | Mailgun | HMAC-SHA256 of timestamp and token with the signing key; fresh timestamp, unused token |
//! | SendGrid | ECDSA P-256 signature of timestamp and body with the verification key |

mod error;
mod mailgun;
mod postmark;
mod sendgrid;
mod ses;

use std::sync::Arc;

pub use error::WebhookError;

use super::{BounceError, BounceReport, Bounces, Recorded};
use crate::config::BounceSettings;

/// Largest webhook body read (a SendGrid batch or a Postmark bounce with its dump).
pub const MAX_BODY: usize = 1024 * 1024;

/// What a call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Handled {
    /// Events kept now.
    pub recorded: usize,
    /// Events already kept by an earlier call (a retry).
    pub duplicates: usize,
    /// Events of other kinds (deliveries, opens, ...), not kept.
    pub ignored: usize,
}

impl Handled {
    async fn record_all(bounces: &Bounces, reports: Vec<BounceReport>, ignored: usize) -> Result<Self, WebhookError> {
        let mut handled = Handled {
            ignored,
            ..Handled::default()
        };
        for report in reports {
            match bounces.record(report).await {
                Ok(Recorded::Kept { .. }) => handled.recorded += 1,
                Ok(Recorded::Duplicate) => handled.duplicates += 1,
                Err(BounceError::NoAddress) => handled.ignored += 1,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(handled)
    }
}

/// The configured providers' webhooks. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    bounces: Bounces,
    ses: Option<Arc<ses::Ses>>,
    postmark: Option<Arc<postmark::Postmark>>,
    mailgun: Option<Arc<mailgun::Mailgun>>,
    sendgrid: Option<Arc<sendgrid::Sendgrid>>,
}

impl Webhooks {
    /// The providers configured in `settings`; a SendGrid key that is not one fails here,
    /// naming its key.
    pub fn new(bounces: Bounces, settings: &BounceSettings) -> anyhow::Result<Self> {
        Ok(Self {
            bounces,
            ses: settings.ses.as_ref().map(ses::Ses::new).transpose()?.map(Arc::new),
            postmark: settings.postmark.as_ref().map(postmark::Postmark::new).map(Arc::new),
            mailgun: settings.mailgun.as_ref().map(mailgun::Mailgun::new).map(Arc::new),
            sendgrid: settings
                .sendgrid
                .as_ref()
                .map(sendgrid::Sendgrid::new)
                .transpose()?
                .map(Arc::new),
        })
    }

    /// An SNS message from SES: a notification, or the subscription handshake.
    pub async fn ses(&self, body: &[u8]) -> Result<Handled, WebhookError> {
        let ses = self.ses.as_ref().ok_or(WebhookError::NotConfigured)?;
        let (reports, ignored) = ses.handle(body).await?;
        Handled::record_all(&self.bounces, reports, ignored).await
    }

    /// A Postmark webhook call with its `Authorization` header.
    pub async fn postmark(&self, authorization: Option<&str>, body: &[u8]) -> Result<Handled, WebhookError> {
        let postmark = self.postmark.as_ref().ok_or(WebhookError::NotConfigured)?;
        postmark.authenticate(authorization)?;
        let (reports, ignored) = postmark::read(body)?;
        Handled::record_all(&self.bounces, reports, ignored).await
    }

    /// A Mailgun webhook call (JSON, with its `signature` object).
    pub async fn mailgun(&self, body: &[u8]) -> Result<Handled, WebhookError> {
        let mailgun = self.mailgun.as_ref().ok_or(WebhookError::NotConfigured)?;
        let (reports, ignored) = mailgun.handle(body)?;
        Handled::record_all(&self.bounces, reports, ignored).await
    }

    /// A SendGrid signed event webhook call with its signature and timestamp headers.
    pub async fn sendgrid(
        &self,
        signature: Option<&str>,
        timestamp: Option<&str>,
        body: &[u8],
    ) -> Result<Handled, WebhookError> {
        let sendgrid = self.sendgrid.as_ref().ok_or(WebhookError::NotConfigured)?;
        sendgrid.verify(signature, timestamp, body)?;
        let (reports, ignored) = sendgrid::read(body)?;
        Handled::record_all(&self.bounces, reports, ignored).await
    }
}
