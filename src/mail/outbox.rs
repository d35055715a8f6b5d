//! The transactional outbox worker: sends stored messages, retries temporary failures
//! with exponential backoff and jitter, and gives up (suppressing a bad address) on
//! permanent ones.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use lettre::Address;
use lettre::address::Envelope;

use super::Composer;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Mailer, RetryPolicy, SendError};
use crate::domain::{BounceKind, BounceSource, SubscriberEvent};
use crate::store::{self, Db};
use crate::worker::{self, Pass};

/// How long a claimed message is reserved for its worker; after that another may take it.
const LEASE: Duration = Duration::from_secs(300);
const BATCH: u32 = 50;
/// Longest wait between two passes when nothing wakes the worker.
const IDLE: Duration = Duration::from_secs(5);

/// Sends what the outbox holds.
#[derive(Clone)]
pub struct Outbox {
    db: Db,
    mailer: Arc<dyn Mailer>,
    /// Gives each message's envelope sender (`[mail] return_path`).
    composer: Arc<Composer>,
    retry: RetryPolicy,
    wake: Arc<Notify>,
}

impl Outbox {
    pub fn new(db: Db, mailer: Arc<dyn Mailer>, composer: Arc<Composer>, retry: RetryPolicy) -> Self {
        Self {
            db,
            mailer,
            composer,
            retry,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Asks the worker to look now (after a message was queued).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// One pass: claims due messages and sends them. Returns how many were attempted.
    #[tracing::instrument(skip_all)]
    pub async fn deliver_due(&self) -> anyhow::Result<usize> {
        let now = Utc::now();
        let lease_until = now + chrono::Duration::from_std(LEASE)?;
        let claimed = store::outbox::claim_due(&self.db, now, lease_until, BATCH).await?;
        for mail in &claimed {
            let outcome = match mail.recipient.parse::<Address>() {
                Ok(to) => match Envelope::new(Some(self.composer.envelope_sender(None)), vec![to]) {
                    Ok(envelope) => self.mailer.send(&envelope, &mail.message).await,
                    Err(e) => Err(SendError::Permanent {
                        reply: format!("no envelope: {e}"),
                        bad_mailbox: true,
                    }),
                },
                Err(e) => Err(SendError::Permanent {
                    reply: format!("invalid recipient: {e}"),
                    bad_mailbox: true,
                }),
            };
            let now = Utc::now();
            let retry = match &outcome {
                Err(SendError::Transient(_)) => self.retry.retry_after(mail.attempts as u32),
                _ => None,
            };
            match (outcome, retry) {
                (Ok(()), _) => store::outbox::mark_sent(&self.db, mail.id, now).await?,
                (Err(SendError::Transient(reason)), Some(delay)) => {
                    tracing::warn!(message = mail.id, attempts = mail.attempts, %reason, retry_in = ?delay, "mail deferred");
                    store::outbox::retry_at(&self.db, mail.id, now + chrono::Duration::from_std(delay)?, &reason)
                        .await?;
                }
                (Err(e), _) => {
                    tracing::warn!(message = mail.id, attempts = mail.attempts, error = %e, "mail given up");
                    store::outbox::mark_failed(&self.db, mail.id, &e.to_string()).await?;
                    if let (SendError::Permanent { bad_mailbox: true, .. }, Some(id)) = (&e, mail.subscriber_id) {
                        // The state machine decides what a bounce does to the address; the
                        // bounce is kept either way.
                        let smtp = crate::domain::Actor::new(crate::domain::EventSource::Smtp, None);
                        store::subscribers::apply(
                            &self.db,
                            id,
                            SubscriberEvent::Bounced,
                            &smtp,
                            Some("confirmation mail"),
                            now,
                        )
                        .await?;
                        let diagnostic = crate::domain::clean_diagnostic(&e.to_string());
                        let address = mail.recipient.to_lowercase();
                        let event = store::bounces::NewBounceEvent {
                            subscriber_id: Some(id),
                            address: &address,
                            kind: BounceKind::Hard,
                            diagnostic: diagnostic.as_deref(),
                            source: BounceSource::Smtp,
                            edition_id: None,
                            external_id: None,
                            occurred_at: now,
                            recorded_at: now,
                        };
                        store::bounces::insert(&self.db, &event).await?;
                    }
                }
            }
        }
        Ok(claimed.len())
    }

    /// Runs passes until `shutdown`: at once when woken, else every few seconds.
    pub async fn run(self, shutdown: CancellationToken) {
        worker::run("outbox pass", &self.wake, &shutdown, || async {
            Ok(match self.deliver_due().await? {
                0 => Pass::Idle(IDLE),
                _ => Pass::Busy,
            })
        })
        .await
    }

    /// Sends what is due now, for commands that run without `herald serve`.
    pub async fn flush(&self) -> anyhow::Result<()> {
        while self.deliver_due().await? > 0 {}
        Ok(())
    }
}
