//! The digest delivery worker: claims a batch of deliveries under a lease, sends them with
//! bounded concurrency and an optional rate limit, and records each outcome as it completes.
//!
//! Exactly once, and the bound on a crash: a send holds one of the instance's
//! `[digest] concurrency` send slots from the moment it starts until its outcome is
//! committed. A kill -9 at any instant can therefore leave at most `concurrency` messages
//! handed to the SMTP server but not recorded; those are sent again (same Message-ID) once
//! their lease runs out. Nothing is lost and nothing else is repeated. Outcomes that complete
//! while another write commits go in the next write together (BENCHMARKS.md gives what the
//! bookkeeping costs against a loopback sink).
//!
//! Nothing that takes longer than expected causes a repeat: while a batch is worked on, its
//! lease is extended every third of `[digest] lease_seconds`, outcomes are written only while
//! the claim's token still holds the row, and a send does not start once the lease could no
//! longer be extended (the database went away) and has less than half its length left.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use tokio::sync::{Notify, Semaphore};

use super::Digests;
use super::render::{self, EditionContent};
use crate::config::Settings;
use crate::domain::{PauseCause, Subscriber, SubscriberStatus};
use crate::mail::{Mailer, RetryPolicy, SendError};
use crate::metrics::Metrics;
use crate::store::{
    self, Db,
    deliveries::{Claimed, Outcome, Recorded},
};
use crate::worker::{self, Pass};

/// Longest a delivery worker waits between looks when nothing wakes it.
const IDLE_WAIT: Duration = Duration::from_secs(5);
/// How many outcomes one write takes at most.
const RECORD_GROUP: usize = 512;
/// How long the outcome writer keeps its connection without anything to write.
const IDLE: Duration = Duration::from_millis(100);

type Reply = oneshot::Sender<Result<bool, String>>;

/// Writes delivery outcomes as they complete, grouping those that arrive together into one
/// transaction. One per instance.
pub struct OutcomeWriter {
    queue: mpsc::UnboundedSender<(Recorded, Reply)>,
}

impl OutcomeWriter {
    /// Starts the writer on the current runtime; it stops when the writer is dropped.
    pub fn start(db: Db) -> Self {
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(write_outcomes(db, pending));
        Self { queue }
    }

    /// Records one outcome and returns once it is committed: `Ok(true)` when written,
    /// `Ok(false)` when the claim was lost (another worker holds the delivery now).
    pub async fn record(&self, recorded: Recorded) -> anyhow::Result<bool> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((recorded, reply))
            .map_err(|_| anyhow::anyhow!("the outcome writer has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the outcome writer has stopped"))?
            .map_err(|e| anyhow::anyhow!("cannot record a delivery: {e}"))
    }
}

async fn write_outcomes(db: Db, mut pending: mpsc::UnboundedReceiver<(Recorded, Reply)>) {
    let mut group = Vec::with_capacity(RECORD_GROUP);
    // Held while outcomes keep coming; given back after an error or a moment without any
    // (so closing the pool at shutdown never waits for it).
    let mut connection = None;
    loop {
        let received = match tokio::time::timeout(IDLE, pending.recv_many(&mut group, RECORD_GROUP)).await {
            Ok(received) => received,
            Err(_) => {
                connection = None;
                continue;
            }
        };
        if received == 0 {
            break;
        }
        let (records, replies): (Vec<Recorded>, Vec<Reply>) = group.drain(..).unzip();
        let written = async {
            let conn = match &mut connection {
                Some(conn) => conn,
                None => connection.insert(store::deliveries::outcome_connection(&db).await?),
            };
            store::deliveries::record_on(conn, &records, Utc::now()).await
        }
        .await;
        if written.is_err() {
            connection = None;
        }
        match written {
            Ok(lost) => {
                for (r, reply) in records.iter().zip(replies) {
                    let _ = reply.send(Ok(!lost.contains(&r.delivery.id)));
                }
            }
            Err(e) => {
                let error = format!("{e:#}");
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// Sends the editions' deliveries: the delivery workers of one instance share one.
pub struct DigestSender {
    db: Db,
    digests: Arc<Digests>,
    mailer: Arc<dyn Mailer>,
    /// `[mail.smtp] rate_per_second` for digests, per instance.
    rate_limiter: Option<governor::DefaultDirectRateLimiter>,
    /// `[digest] concurrency` slots shared by this instance's delivery workers; a send holds
    /// one until its outcome is committed.
    send_slots: Arc<Semaphore>,
    outcomes: OutcomeWriter,
    metrics: Arc<Metrics>,
    retry: RetryPolicy,
    batch_size: u32,
    lease: chrono::Duration,
    /// Rung when an edition is created.
    wake: Arc<Notify>,
    breaker: Breaker,
    canary: store::pauses::CanaryLimits,
}

impl DigestSender {
    /// Starts the outcome writer on the current runtime.
    pub fn new(
        settings: &Settings,
        db: Db,
        digests: Arc<Digests>,
        mailer: Arc<dyn Mailer>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let rate = settings.mail.smtp.rate_per_second;
        Self {
            outcomes: OutcomeWriter::start(db.clone()),
            wake: digests.created(),
            db,
            digests,
            mailer,
            // A small burst (a tenth of a second's worth) keeps the rate even from the start.
            rate_limiter: std::num::NonZeroU32::new(rate).map(|r| {
                let burst = std::num::NonZeroU32::new(r.get() / 10).unwrap_or(std::num::NonZeroU32::MIN);
                governor::RateLimiter::direct(governor::Quota::per_second(r).allow_burst(burst))
            }),
            send_slots: Arc::new(Semaphore::new(settings.digest.concurrency.get() as usize)),
            metrics,
            retry: RetryPolicy::new(
                settings.mail.max_attempts.get(),
                Duration::from_secs(settings.mail.retry_base_seconds),
            ),
            batch_size: settings.digest.batch_size.get(),
            lease: chrono::Duration::seconds(settings.digest.lease_seconds as i64),
            breaker: Breaker::new(settings.digest.breaker_window, settings.digest.breaker_failure_rate),
            canary: store::pauses::CanaryLimits {
                wait: chrono::Duration::minutes(i64::from(settings.digest.canary_minutes)),
                max_bounce_rate: settings.digest.max_bounce_rate,
                max_complaint_rate: settings.digest.max_complaint_rate,
            },
        }
    }
}

impl DigestSender {
    /// What a canary sample is allowed (`[digest]`).
    pub fn canary_limits(&self) -> store::pauses::CanaryLimits {
        self.canary
    }
}

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub claimed: usize,
    pub sent: usize,
    pub skipped: usize,
    pub retried: usize,
    pub failed: usize,
    /// Not sent or not recorded by this worker (its lease could not be kept); another
    /// worker takes these over when the lease runs out.
    pub unfinished: usize,
    /// Not sent, back in the queue: their edition paused or was cancelled meanwhile.
    pub released: usize,
}

impl BatchReport {
    fn count(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Sent => self.sent += 1,
            Outcome::Skipped => self.skipped += 1,
            Outcome::Retry { error, .. } => {
                self.retried += 1;
                tracing::debug!(%error, "delivery deferred");
            }
            Outcome::Failed { error, .. } => {
                self.failed += 1;
                tracing::warn!(%error, "delivery failed for good");
            }
            Outcome::Released => self.released += 1,
        }
    }
}

/// What a send tells the circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The server took the message.
    Accepted,
    /// Refused for good (a 5xx), or the message could not be built.
    Refused,
    /// Says nothing about the edition: skipped, or a temporary failure (backs off instead).
    Neither,
}

impl Verdict {
    fn of(outcome: &Outcome, permanent: bool) -> Self {
        match outcome {
            Outcome::Sent => Verdict::Accepted,
            Outcome::Failed { .. } if permanent => Verdict::Refused,
            _ => Verdict::Neither,
        }
    }
}

async fn send_one(
    app: &DigestSender,
    delivery: &Claimed,
    content: Option<&EditionContent>,
    subscriber: Option<&Subscriber>,
    lease: &Lease,
) -> Option<(Outcome, Verdict)> {
    let outcome = send_message(app, delivery, content, subscriber, lease).await?;
    Some(match outcome {
        Ok(outcome) => {
            let verdict = Verdict::of(&outcome, false);
            (outcome, verdict)
        }
        Err(refused) => (refused, Verdict::Refused),
    })
}

/// Sends one delivery: `Err` holds a permanent failure (the server refused, or the message
/// could not be built), `None` a send not started because the lease could not be kept.
async fn send_message(
    app: &DigestSender,
    delivery: &Claimed,
    content: Option<&EditionContent>,
    subscriber: Option<&Subscriber>,
    lease: &Lease,
) -> Option<Result<Outcome, Outcome>> {
    let (Some(content), Some(subscriber)) = (content, subscriber) else {
        return Some(Ok(Outcome::Skipped));
    };
    // Left, or bounced on another edition, since this edition was composed.
    if subscriber.status != SubscriberStatus::Confirmed {
        return Some(Ok(Outcome::Skipped));
    }
    let built = content
        .variant(app.digests.renderer(), &subscriber.topics)
        .and_then(|v| {
            v.map(|v| render::message(app.digests.renderer(), content, &v, subscriber))
                .transpose()
        });
    let (envelope, message) = match built {
        Ok(Some(m)) => m,
        Ok(None) => return Some(Ok(Outcome::Skipped)),
        Err(e) => {
            return Some(Err(Outcome::Failed {
                error: format!("cannot build the message: {e:#}"),
                bounce: false,
            }));
        }
    };
    if let Some(limiter) = &app.rate_limiter {
        limiter.until_ready().await;
    }
    if !lease.may_start_send() {
        return None;
    }
    // Paused (here or by another instance) or cancelled since the claim: not sent.
    if app.breaker.stopped(delivery.edition_id) {
        return Some(Ok(Outcome::Released));
    }
    let started = std::time::Instant::now();
    let result = app.mailer.send(&envelope, &message).await;
    app.metrics.smtp_seconds.observe(started.elapsed().as_secs_f64());
    Some(match result {
        Ok(()) => Ok(Outcome::Sent),
        Err(SendError::Transient(error)) => Ok(match app.retry.retry_after(delivery.attempts as u32) {
            Some(delay) => Outcome::Retry {
                at: Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1)),
                error,
            },
            None => Outcome::Failed { error, bounce: false },
        }),
        Err(SendError::Permanent { reply, bad_mailbox }) => Err(Outcome::Failed {
            error: reply,
            bounce: bad_mailbox,
        }),
    })
}

/// The lease of one batch: its token, and until when a send may still start under it.
struct Lease {
    token: i64,
    length: chrono::Duration,
    /// Milliseconds since the epoch after which no send starts.
    start_sends_until: AtomicI64,
}

impl Lease {
    fn new(token: i64, length: chrono::Duration, until: DateTime<Utc>) -> Self {
        let lease = Self {
            token,
            length,
            start_sends_until: AtomicI64::new(0),
        };
        lease.held_until(until);
        lease
    }

    /// Notes that the lease now runs until `until`: sends may start during its first half.
    fn held_until(&self, until: DateTime<Utc>) {
        let cutoff = until - self.length / 2;
        self.start_sends_until
            .store(cutoff.timestamp_millis(), Ordering::Relaxed);
    }

    fn may_start_send(&self) -> bool {
        Utc::now().timestamp_millis() < self.start_sends_until.load(Ordering::Relaxed)
    }

    /// Extends the lease every third of its length until the task is aborted.
    fn keep_alive(self: &Arc<Self>, db: Db) -> tokio::task::JoinHandle<()> {
        let lease = self.clone();
        tokio::spawn(async move {
            let every = (lease.length / 3).to_std().unwrap_or(Duration::from_secs(10));
            loop {
                tokio::time::sleep(every).await;
                let until = Utc::now() + lease.length;
                match store::deliveries::extend_lease(&db, lease.token, until).await {
                    Ok(_) => lease.held_until(until),
                    Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot extend a delivery lease"),
                }
            }
        })
    }
}

/// Claims and sends one batch. Tests and `herald send` call this step by step.
#[tracing::instrument(skip_all)]
pub async fn deliver_batch(app: &Arc<DigestSender>) -> anyhow::Result<BatchReport> {
    let began = std::time::Instant::now();
    let now = Utc::now();
    // Pauses and cancellations made anywhere.
    app.breaker.refresh(store::pauses::stopped(&app.db).await?);
    let length = app.lease;
    let token = rand::random::<i64>();
    let claimed = store::deliveries::claim(&app.db, now, now + length, app.batch_size, token).await?;
    if claimed.is_empty() {
        judge_canaries(app).await?;
        return Ok(BatchReport::default());
    }
    let lease = Arc::new(Lease::new(token, length, now + length));
    let heartbeat = lease.keep_alive(app.db.clone());
    let result = send_batch(app, claimed, &lease).await;
    heartbeat.abort();
    let report = result?;
    let now = Utc::now();
    for created in store::editions::complete_finished(&app.db, now).await? {
        app.metrics
            .edition_seconds
            .observe((now - created).num_milliseconds() as f64 / 1000.0);
    }
    judge_canaries(app).await?;
    let m = &app.metrics;
    Metrics::count(&m.deliveries, "sent", report.sent as u64);
    Metrics::count(&m.deliveries, "failed", report.failed as u64);
    Metrics::count(&m.deliveries, "retried", report.retried as u64);
    Metrics::count(&m.deliveries, "skipped", report.skipped as u64);
    tracing::debug!(claimed = report.claimed, total = ?began.elapsed(), "batch delivered");
    Ok(report)
}

/// Starts the wait of canary samples that are out, and judges those whose wait is over.
async fn judge_canaries(app: &DigestSender) -> anyhow::Result<()> {
    for verdict in store::pauses::judge_canaries(&app.db, app.canary, Utc::now()).await? {
        let outcome = if verdict.paused.is_some() { "paused" } else { "passed" };
        Metrics::count(&app.metrics.canaries, outcome, 1);
        match &verdict.paused {
            None => tracing::info!(
                edition = verdict.edition_id,
                sample = verdict.sample,
                bounced = verdict.bounced,
                complained = verdict.complained,
                "canary sample passed: the rest of the edition goes out"
            ),
            Some(reason) => tracing::warn!(edition = verdict.edition_id, %reason, "edition paused"),
        }
    }
    Ok(())
}

async fn send_batch(app: &Arc<DigestSender>, claimed: Vec<Claimed>, lease: &Arc<Lease>) -> anyhow::Result<BatchReport> {
    let ids: Vec<i64> = claimed.iter().map(|d| d.subscriber_id).collect();
    // Shared: one batch may hold several editions for the same subscriber.
    let subscribers: HashMap<i64, Arc<Subscriber>> = store::subscribers::find_many(&app.db, &ids)
        .await?
        .into_iter()
        .map(|s| (s.id, Arc::new(s)))
        .collect();
    let mut contents: HashMap<i64, Arc<EditionContent>> = HashMap::new();
    for d in &claimed {
        if let std::collections::hash_map::Entry::Vacant(slot) = contents.entry(d.edition_id) {
            slot.insert(app.digests.edition_content(d.edition_id).await?);
        }
    }
    let mut report = BatchReport {
        claimed: claimed.len(),
        ..Default::default()
    };
    // Each send is its own task, so building messages uses every core. A send slot is held
    // until the outcome is committed: that bounds both the SMTP connections in use and
    // what a crash can repeat.
    let mut tasks = tokio::task::JoinSet::new();
    for d in claimed {
        let slot = app.send_slots.clone().acquire_owned().await?;
        let (app, lease) = (app.clone(), lease.clone());
        let content = contents.get(&d.edition_id).cloned();
        let subscriber = subscribers.get(&d.subscriber_id).cloned();
        tasks.spawn(async move {
            let started = Utc::now();
            let outcome = send_one(&app, &d, content.as_deref(), subscriber.as_deref(), &lease).await;
            let Some((outcome, verdict)) = outcome else {
                return Ok(None);
            };
            let (id, edition_id) = (d.id, d.edition_id);
            let recorded = Recorded {
                delivery: d,
                token: lease.token,
                outcome,
            };
            let kept = app.outcomes.record(recorded.clone()).await?;
            drop(slot);
            if !kept {
                tracing::warn!(delivery = id, "delivery lease lost before its outcome was recorded");
                return Ok(None);
            }
            let error = match &recorded.outcome {
                Outcome::Failed { error, .. } => Some(error.as_str()),
                _ => None,
            };
            if let Some(trip) = app.breaker.observe(edition_id, verdict, started, error) {
                let paused = store::pauses::pause(
                    &app.db,
                    edition_id,
                    PauseCause::Breaker,
                    &trip.reason,
                    Some(trip.since),
                    Utc::now(),
                )
                .await?;
                app.breaker.stop(edition_id);
                app.metrics.breaker_trips.inc();
                tracing::warn!(edition = edition_id, reason = %trip.reason, put_back = paused.put_back,
                    unbounced = paused.unbounced, "edition paused by the circuit breaker");
            }
            Ok::<_, anyhow::Error>(Some(recorded.outcome))
        });
    }
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined? {
            Ok(Some(outcome)) => report.count(&outcome),
            Ok(None) => report.unfinished += 1,
            Err(e) => {
                report.unfinished += 1;
                failure.get_or_insert(e);
            }
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// Delivers until `shutdown`: batch after batch while there is work, then waits to be woken
/// (a new edition) or for the next retry to come due. A batch in flight is finished first.
pub async fn run(app: Arc<DigestSender>, shutdown: CancellationToken) {
    worker::run("delivery batch", &app.wake, &shutdown, || async {
        if deliver_batch(&app).await?.claimed > 0 {
            return Ok(Pass::Busy);
        }
        let wait = match store::deliveries::next_due(&app.db).await? {
            Some(due) => (due - Utc::now()).to_std().unwrap_or(Duration::ZERO),
            None => IDLE_WAIT,
        };
        Ok(Pass::Idle(wait.clamp(Duration::from_millis(50), IDLE_WAIT)))
    })
    .await
}

/// The circuit breaker of one instance: per edition, the verdicts of its last `window` sends
/// here. Once refusals make `trip_at` of them, the edition pauses itself (a database state all
/// instances respect) instead of burning through the list: a dead relay account, a blocked IP
/// or a broken template refuses every reader alike. The window is per instance; the pause
/// is not.
struct Breaker {
    window: usize,
    trip_at: usize,
    editions: Mutex<HashMap<i64, Window>>,
    /// Editions paused or cancelled as far as this instance knows: what it claimed of them
    /// is released unsent.
    stopped: Mutex<HashSet<i64>>,
}

/// Editions whose windows an instance keeps at most.
const MAX_WINDOWS: usize = 64;

/// One edition's last sends here, oldest first: whether each was refused, and when it started.
type Window = VecDeque<(bool, DateTime<Utc>)>;

/// Why and since when a breaker tripped.
struct Trip {
    reason: String,
    /// When the oldest send in the window started: the failures from then on are put back.
    since: DateTime<Utc>,
}

impl Breaker {
    fn new(window: u32, failure_rate: f64) -> Self {
        let window = window as usize;
        Self {
            window,
            trip_at: ((window as f64 * failure_rate).ceil() as usize).max(1),
            editions: Mutex::new(HashMap::new()),
            stopped: Mutex::new(HashSet::new()),
        }
    }

    fn stopped(&self, edition_id: i64) -> bool {
        self.stopped.lock().map(|s| s.contains(&edition_id)).unwrap_or(false)
    }

    fn stop(&self, edition_id: i64) {
        if let Ok(mut stopped) = self.stopped.lock() {
            stopped.insert(edition_id);
        }
    }

    /// Takes the editions stopped as the database says now. An edition that left the set
    /// (resumed) starts with an empty window.
    fn refresh(&self, now_stopped: Vec<i64>) {
        let now_stopped: HashSet<i64> = now_stopped.into_iter().collect();
        // The same order as `observe`: the windows, then the stopped set.
        let (Ok(mut editions), Ok(mut stopped)) = (self.editions.lock(), self.stopped.lock()) else {
            return;
        };
        for resumed in stopped.difference(&now_stopped) {
            editions.remove(resumed);
        }
        *stopped = now_stopped;
    }

    /// Notes one send of an edition, started at `started`; returns the trip when this send
    /// makes the window's refusals reach the threshold. The window then starts afresh.
    fn observe(&self, edition_id: i64, verdict: Verdict, started: DateTime<Utc>, error: Option<&str>) -> Option<Trip> {
        if self.window == 0 || verdict == Verdict::Neither {
            return None;
        }
        let mut editions = self.editions.lock().ok()?;
        // Finished editions' windows are never looked at again: a long-running instance
        // forgets them rather than keep one per edition it ever sent.
        if editions.len() >= MAX_WINDOWS && !editions.contains_key(&edition_id) {
            editions.clear();
        }
        let window = editions.entry(edition_id).or_default();
        window.push_back((verdict == Verdict::Refused, started));
        if window.len() > self.window {
            window.pop_front();
        }
        let refused = window.iter().filter(|(refused, _)| *refused).count();
        let mut stopped = self.stopped.lock().ok()?;
        if verdict != Verdict::Refused || refused < self.trip_at || stopped.contains(&edition_id) {
            return None;
        }
        let since = window.iter().map(|(_, at)| *at).min().unwrap_or(started);
        let reason = format!(
            "circuit breaker: {refused} of the last {} sends were refused for good (the last: {})",
            window.len(),
            error.unwrap_or("unknown").chars().take(300).collect::<String>()
        );
        window.clear();
        stopped.insert(edition_id);
        Some(Trip { reason, since })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(second)
    }

    #[test]
    fn the_breaker_trips_once_refusals_make_the_rate_of_the_window_and_only_then() {
        let breaker = Breaker::new(10, 0.5);
        // Five sent, then refusals: the fifth refusal makes 5 of the last 10.
        for s in 0..5 {
            assert!(breaker.observe(1, Verdict::Accepted, at(s), None).is_none());
        }
        for s in 5..9 {
            assert!(breaker.observe(1, Verdict::Refused, at(s), Some("550 no")).is_none());
            // Temporary failures and skips say nothing.
            assert!(breaker.observe(1, Verdict::Neither, at(s), None).is_none());
        }
        // Another edition's window is its own.
        assert!(breaker.observe(2, Verdict::Refused, at(9), Some("550 no")).is_none());
        let trip = breaker
            .observe(1, Verdict::Refused, at(9), Some("554 5.7.1 blocked"))
            .unwrap();
        assert_eq!(trip.since, at(0), "the window's oldest send");
        assert_eq!(
            trip.reason,
            "circuit breaker: 5 of the last 10 sends were refused for good (the last: 554 5.7.1 blocked)"
        );
        assert!(breaker.stopped(1) && !breaker.stopped(2));
        // Tripped once: later refusals of the stopped edition do not trip it again.
        for s in 10..20 {
            assert!(breaker.observe(1, Verdict::Refused, at(s), Some("550 no")).is_none());
        }
        // Resumed (no longer stopped in the database): it starts with an empty window.
        breaker.refresh(Vec::new());
        assert!(!breaker.stopped(1));
        for s in 20..24 {
            assert!(breaker.observe(1, Verdict::Refused, at(s), Some("550 no")).is_none());
        }
        assert!(breaker.observe(1, Verdict::Refused, at(24), Some("550 no")).is_some());
    }

    #[test]
    fn refusals_spread_thinner_than_the_rate_never_trip_and_a_window_of_zero_is_off() {
        let breaker = Breaker::new(10, 0.5);
        for s in 0..1000 {
            let verdict = if s % 3 == 0 {
                Verdict::Refused
            } else {
                Verdict::Accepted
            };
            assert!(breaker.observe(1, verdict, at(s), Some("550 no")).is_none(), "send {s}");
        }
        let off = Breaker::new(0, 0.5);
        for s in 0..100 {
            assert!(off.observe(1, Verdict::Refused, at(s), Some("550 no")).is_none());
        }
    }
}
