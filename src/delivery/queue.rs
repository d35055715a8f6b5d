//! The digest delivery worker: claims a batch of deliveries under a lease, sends them with
//! bounded concurrency and an optional rate limit, and records the outcomes in one write.
//!
//! What a crash (kill -9) at any instant can cause: the deliveries of the batch in flight
//! that were handed to the SMTP server but not yet recorded as sent are sent again once
//! their lease runs out (`[digest] lease_seconds`), by this or another instance, with the
//! same Message-ID. At most `[digest] batch_size` messages per worker; nothing is lost,
//! and nothing outside that batch is repeated.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::SendError;
use super::outbox::backoff;
use crate::app::App;
use crate::digest::render::{self, EditionContent};
use crate::domain::{Subscriber, SubscriberStatus};
use crate::metrics::Metrics;
use crate::store::{self, deliveries::Claimed, deliveries::Outcome};

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub claimed: usize,
    pub sent: usize,
    pub skipped: usize,
    pub retried: usize,
    pub failed: usize,
}

async fn send_one(
    app: &App,
    delivery: &Claimed,
    content: Option<&EditionContent>,
    subscriber: Option<&Subscriber>,
) -> Outcome {
    let (Some(content), Some(subscriber)) = (content, subscriber) else {
        return Outcome::Skipped;
    };
    // Left, or bounced on another edition, since this edition was composed.
    if subscriber.status != SubscriberStatus::Confirmed {
        return Outcome::Skipped;
    }
    let built = content
        .variant(app, &subscriber.topics)
        .and_then(|v| v.map(|v| render::message(app, content, &v, subscriber)).transpose());
    let (envelope, message) = match built {
        Ok(Some(m)) => m,
        Ok(None) => return Outcome::Skipped,
        Err(e) => {
            return Outcome::Failed {
                error: format!("cannot build the message: {e:#}"),
                bounce: false,
            };
        }
    };
    if let Some(limiter) = &app.rate_limiter {
        limiter.until_ready().await;
    }
    let started = std::time::Instant::now();
    let result = app.mailer.send(&envelope, &message).await;
    app.metrics.smtp_seconds.observe(started.elapsed().as_secs_f64());
    match result {
        Ok(()) => Outcome::Sent,
        Err(SendError::Transient(error)) if (delivery.attempts as u32) < app.settings.mail.max_attempts => {
            let delay = backoff(
                Duration::from_secs(app.settings.mail.retry_base_seconds),
                delivery.attempts as u32,
            );
            Outcome::Retry {
                at: Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1)),
                error,
            }
        }
        Err(SendError::Transient(error)) => Outcome::Failed { error, bounce: false },
        Err(SendError::Permanent { reply, bad_mailbox }) => Outcome::Failed {
            error: reply,
            bounce: bad_mailbox,
        },
    }
}

/// Claims and sends one batch. Tests and `herald send` call this step by step.
#[tracing::instrument(skip_all)]
pub async fn deliver_batch(app: &Arc<App>) -> anyhow::Result<BatchReport> {
    let digest = &app.settings.digest;
    let began = std::time::Instant::now();
    let now = Utc::now();
    let lease_until = now + chrono::Duration::seconds(digest.lease_seconds as i64);
    let claimed = store::deliveries::claim(&app.db, now, lease_until, digest.batch_size).await?;
    if claimed.is_empty() {
        return Ok(BatchReport::default());
    }
    let ids: Vec<i64> = claimed.iter().map(|d| d.subscriber_id).collect();
    let subscribers: HashMap<i64, Subscriber> = store::subscribers::find_many(&app.db, &ids)
        .await?
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    let mut contents: HashMap<i64, Arc<EditionContent>> = HashMap::new();
    for d in &claimed {
        if let std::collections::hash_map::Entry::Vacant(slot) = contents.entry(d.edition_id) {
            slot.insert(app.edition_content(d.edition_id).await?);
        }
    }
    // Each send is its own task, so building messages uses every core; the semaphore
    // bounds how many are in flight (and so how many SMTP connections are open).
    let permits = Arc::new(tokio::sync::Semaphore::new(digest.concurrency as usize));
    let mut tasks = tokio::task::JoinSet::new();
    let mut subscribers = subscribers;
    for d in claimed {
        let app = app.clone();
        let content = contents.get(&d.edition_id).cloned();
        let subscriber = subscribers.remove(&d.subscriber_id);
        let permit = permits.clone().acquire_owned().await?;
        tasks.spawn(async move {
            let outcome = send_one(&app, &d, content.as_deref(), subscriber.as_ref()).await;
            drop(permit);
            (d, outcome)
        });
    }
    let prepared = began.elapsed();
    let mut outcomes: Vec<(Claimed, Outcome)> = Vec::with_capacity(tasks.len());
    while let Some(joined) = tasks.join_next().await {
        outcomes.push(joined?);
    }
    let sent = began.elapsed();
    let mut report = BatchReport {
        claimed: outcomes.len(),
        ..Default::default()
    };
    for (d, outcome) in &outcomes {
        match outcome {
            Outcome::Sent => report.sent += 1,
            Outcome::Skipped => report.skipped += 1,
            Outcome::Retry { error, .. } => {
                report.retried += 1;
                tracing::debug!(delivery = d.id, %error, "delivery deferred");
            }
            Outcome::Failed { error, .. } => {
                report.failed += 1;
                tracing::warn!(delivery = d.id, %error, "delivery failed for good");
            }
        }
    }
    let now = Utc::now();
    store::deliveries::record(&app.db, &outcomes, now).await?;
    for created in store::editions::complete_finished(&app.db, now).await? {
        app.metrics
            .edition_seconds
            .observe((now - created).num_milliseconds() as f64 / 1000.0);
    }
    let m = &app.metrics;
    Metrics::count(&m.deliveries, "sent", report.sent as u64);
    Metrics::count(&m.deliveries, "failed", report.failed as u64);
    Metrics::count(&m.deliveries, "retried", report.retried as u64);
    Metrics::count(&m.deliveries, "skipped", report.skipped as u64);
    tracing::debug!(claimed = report.claimed, ?prepared, ?sent, total = ?began.elapsed(), "batch delivered");
    Ok(report)
}

/// Delivers until `shutdown`: batch after batch while there is work, then waits to be woken
/// (a new edition) or for the next retry to come due. A batch in flight is finished first.
pub async fn run(app: Arc<App>, shutdown: CancellationToken) {
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        match deliver_batch(&app).await {
            Ok(report) if report.claimed > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::error!(error = format!("{e:#}"), "delivery batch failed"),
        }
        let wait = match store::deliveries::next_due(&app.db).await {
            Ok(Some(due)) => (due - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(Duration::from_secs(5)),
            _ => Duration::from_secs(5),
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = app.delivery_wake.notified() => {}
            _ = tokio::time::sleep(wait.max(Duration::from_millis(50))) => {}
        }
    }
}
