//! Bounce and complaint reports that arrive as mail: read from the bounce mailbox over IMAP
//! (`[bounces.imap]`, polled by `herald serve` and `herald bounces poll`) or handed over one
//! at a time (`herald bounces ingest`, for an MTA's pipe). Each finding goes through the one
//! policy ([`Bounces::record`]). Uses `mail`, `store` and `domain`.
//!
//! Which message a report is about, in order: the key in the address it was sent to (with
//! `[mail] return_path = "bounces+{token}@..."`), the Message-ID of the message it returns,
//! and failing both, the recipient's address alone.

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::{BounceReport, Bounces, Recorded};
use crate::config::ImapSettings;
use crate::domain::{BounceKind, BounceSource, OwnMessage, return_path_check};
use crate::mail::reports::{self, Severity};
use crate::mail::{Composer, imap};
use crate::store;

/// The longest one look at the bounce mailbox may take.
const LOOK_LIMIT: Duration = Duration::from_secs(600);

/// What reading one message did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Ingested {
    /// Findings kept (matched to a subscriber or not).
    pub kept: usize,
    /// Findings already kept from an earlier reading of the same report.
    pub duplicates: usize,
    /// Findings that named nobody Herald could find an address for.
    pub unaddressed: usize,
}

/// Why a message was not taken as a report.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    NotAReport(#[from] reports::ReportError),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Reads one message and records what it reports.
#[tracing::instrument(skip_all, fields(source = %source))]
pub async fn ingest(
    bounces: &Bounces,
    composer: &Composer,
    raw: &[u8],
    source: BounceSource,
) -> Result<Ingested, IngestError> {
    let report = reports::read(raw)?;
    let mut verp = None;
    for to in &report.sent_to {
        if let Some(token) = composer.token_in_return_path(to) {
            verp = sent_to(bounces, token).await?;
            if verp.is_none() {
                tracing::warn!(report = %report.id, "a report's return path names no delivery of Herald's; ignored");
            }
            break;
        }
    }
    let message_id = match &verp {
        Some((key, _)) => Some(composer.message_id(key)),
        None => report.original_message_id.as_ref().map(|id| format!("<{id}>")),
    };
    let mut ingested = Ingested::default();
    for (n, finding) in report.findings.iter().enumerate() {
        let mut diagnostic = finding.diagnostic.clone();
        let address = match (&verp, &finding.recipient) {
            // The return path names the delivery: the report is about that subscriber,
            // whatever address a forwarder's report gives.
            (Some((_, address)), reported) => {
                if let Some(reported) = reported.as_ref().filter(|r| *r != address) {
                    diagnostic = format!("reported for {reported}: {diagnostic}");
                }
                address.clone()
            }
            (None, Some(address)) => address.clone(),
            // A feedback loop that redacts the recipient: the message says who it was.
            (None, None) => match address_of(bounces, message_id.as_deref()).await? {
                Some(address) => address,
                None => {
                    tracing::warn!(report = %report.id, "a report names no recipient and no message of Herald's");
                    ingested.unaddressed += 1;
                    continue;
                }
            },
        };
        let recorded = bounces
            .record(BounceReport {
                address: address.clone(),
                kind: match finding.severity {
                    Severity::Hard => BounceKind::Hard,
                    Severity::Soft => BounceKind::Soft,
                    Severity::Complaint => BounceKind::Complaint,
                },
                diagnostic: Some(diagnostic).filter(|d| !d.is_empty()),
                source,
                message_id: message_id.clone(),
                // One report may name several recipients: each is its own event.
                external_id: Some(format!("{}#{n}:{address}", report.id)),
                occurred_at: report.arrived_at.unwrap_or_else(Utc::now),
            })
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        match recorded {
            Recorded::Duplicate => ingested.duplicates += 1,
            Recorded::Kept { .. } => ingested.kept += 1,
        }
    }
    Ok(ingested)
}

/// The message key and the subscriber's address a digest's return path token
/// (`edition.E.S.CHECK`) names, when its check is the one Herald wrote for that subscriber.
async fn sent_to(bounces: &Bounces, token: &str) -> anyhow::Result<Option<(String, String)>> {
    let Some((key, check)) = token.rsplit_once('.') else {
        return Ok(None);
    };
    let Some(id) = OwnMessage::from_key(key).and_then(|own| own.subscriber_id) else {
        return Ok(None);
    };
    let Some(subscriber) = store::subscribers::find(&bounces.db, id).await? else {
        return Ok(None);
    };
    let expected = return_path_check(&subscriber.manage_token, key);
    Ok(
        constant_time_eq::constant_time_eq(expected.as_bytes(), check.as_bytes())
            .then(|| (key.to_owned(), subscriber.email.as_str().to_lowercase())),
    )
}

/// The address of the subscriber one of Herald's Message-IDs was sent to.
async fn address_of(bounces: &Bounces, message_id: Option<&str>) -> anyhow::Result<Option<String>> {
    let Some(id) = message_id.and_then(OwnMessage::parse).and_then(|own| own.subscriber_id) else {
        return Ok(None);
    };
    Ok(store::subscribers::find(&bounces.db, id)
        .await?
        .map(|s| s.email.as_str().to_lowercase()))
}

/// One look at the bounce mailbox: every unseen message is read, and marked seen once what
/// it reports is kept. Mail that is not a report (a reply, spam) is logged and marked seen.
pub async fn poll_mailbox(bounces: &Bounces, composer: &Composer, settings: &ImapSettings) -> anyhow::Result<Ingested> {
    let total = std::sync::Mutex::new(Ingested::default());
    // A server that stops answering in the middle of a command must not stop the looks: one
    // is given up after LOOK_LIMIT, and what it had not marked seen is read the next time.
    let look = imap::read_unseen(settings, |raw| {
        let total = &total;
        async move {
            match ingest(bounces, composer, &raw, BounceSource::Imap).await {
                Ok(one) => {
                    let mut sum = total.lock().expect("not poisoned");
                    sum.kept += one.kept;
                    sum.duplicates += one.duplicates;
                    sum.unaddressed += one.unaddressed;
                    Ok(())
                }
                Err(IngestError::NotAReport(e)) => {
                    tracing::info!(error = %e, "bounce mailbox: a message that is not a report, marked seen");
                    Ok(())
                }
                Err(IngestError::Failed(e)) => Err(e),
            }
        }
    });
    let looked = tokio::time::timeout(LOOK_LIMIT, look)
        .await
        .map_err(|_| anyhow::anyhow!("the bounce mailbox: a look took over {LOOK_LIMIT:?} and was given up"))??;
    let total = *total.lock().expect("not poisoned");
    tracing::info!(
        read = looked.read,
        kept = total.kept,
        duplicates = total.duplicates,
        "bounce mailbox read"
    );
    Ok(total)
}

/// Looks at the bounce mailbox every `poll_seconds` until `stop`; a failed look is logged
/// and tried again at the next.
pub async fn poll_until(
    bounces: Bounces,
    composer: std::sync::Arc<Composer>,
    settings: ImapSettings,
    stop: CancellationToken,
) {
    let every = Duration::from_secs(settings.poll_seconds.get());
    loop {
        if let Err(e) = poll_mailbox(&bounces, &composer, &settings).await {
            tracing::warn!(
                error = format!("{e:#}"),
                "bounce mailbox: look failed; trying again later"
            );
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
