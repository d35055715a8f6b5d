//! Prometheus metrics, one registry per running Herald (no global state), served as text
//! at `/metrics`. Uses nothing else in Herald.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: String,
}

/// A paused edition and why it paused (`breaker` or `canary`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PausedEdition {
    pub edition: String,
    pub cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FeedRequest {
    pub format: String,
    pub status: String,
}

/// Every metric Herald keeps.
pub struct Metrics {
    registry: Registry,
    /// Digest deliveries by outcome: sent, failed, retried, skipped.
    pub deliveries: Family<Outcome, Counter>,
    /// Feed requests by format and status (200, 304): the 304 share is the cache hit ratio.
    pub feed_requests: Family<FeedRequest, Counter>,
    /// Remote source polls by outcome: changed, unchanged, failed.
    pub source_polls: Family<Outcome, Counter>,
    /// Seconds one SMTP transaction takes.
    pub smtp_seconds: Histogram,
    /// Seconds from an edition's creation to its last delivery.
    pub edition_seconds: Histogram,
    /// Deliveries not yet final (pending or being sent), read when scraped.
    pub queue_depth: Gauge,
    /// Transactional messages waiting, read when scraped.
    pub outbox_depth: Gauge,
    /// Times an edition's circuit breaker paused it.
    pub breaker_trips: Counter,
    /// Canary samples judged, by outcome: passed, paused.
    pub canaries: Family<Outcome, Counter>,
    /// 1 for each paused edition, labelled with its id and cause, read when scraped.
    pub paused_editions: Family<PausedEdition, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("herald");
        let m = Self {
            deliveries: Family::default(),
            feed_requests: Family::default(),
            source_polls: Family::default(),
            smtp_seconds: Histogram::new(exponential_buckets(0.0001, 2.5, 14)),
            edition_seconds: Histogram::new(exponential_buckets(0.5, 2.0, 16)),
            queue_depth: Gauge::default(),
            outbox_depth: Gauge::default(),
            breaker_trips: Counter::default(),
            canaries: Family::default(),
            paused_editions: Family::default(),
            registry: Registry::default(),
        };
        registry.register("deliveries", "Digest deliveries by outcome", m.deliveries.clone());
        registry.register(
            "feed_requests",
            "Feed requests by format and status",
            m.feed_requests.clone(),
        );
        registry.register("source_polls", "Remote source polls by outcome", m.source_polls.clone());
        registry.register(
            "smtp_send_seconds",
            "Seconds per SMTP transaction",
            m.smtp_seconds.clone(),
        );
        registry.register(
            "edition_send_seconds",
            "Seconds from an edition's creation to its last delivery",
            m.edition_seconds.clone(),
        );
        registry.register(
            "queue_depth",
            "Digest deliveries pending or being sent",
            m.queue_depth.clone(),
        );
        registry.register(
            "outbox_depth",
            "Transactional messages pending or being sent",
            m.outbox_depth.clone(),
        );
        registry.register(
            "breaker_trips",
            "Times a digest edition's circuit breaker paused it",
            m.breaker_trips.clone(),
        );
        registry.register("canaries", "Canary samples judged, by outcome", m.canaries.clone());
        registry.register(
            "edition_paused",
            "Paused digest editions (1 each), by edition and cause",
            m.paused_editions.clone(),
        );
        Self { registry, ..m }
    }

    pub fn count(family: &Family<Outcome, Counter>, outcome: &str, by: u64) {
        if by > 0 {
            family
                .get_or_create(&Outcome {
                    outcome: outcome.to_owned(),
                })
                .inc_by(by);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
