//! Prometheus metrics of the queue consumer (`portal_queue_consumer_*`).

use std::sync::Arc;
use std::time::Duration;

use portal_shared::integrations::client::ClientMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

/// Cheap to clone; every clone counts into the same registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    consumed: Counter,
    outcomes: Family<OutcomeLabels, Counter>,
    dead_lettered: Family<ReasonLabels, Counter>,
    retries: Counter,
    fetched: Counter,
    processing: Histogram,
    age: Histogram,
    batch: Histogram,
    queue_depth: Gauge,
    connected: Gauge,
}

impl Metrics {
    /// With the State Manager client's metrics (`clients`) registered beside the consumer's.
    pub fn new(clients: &ClientMetrics) -> Self {
        let mut registry = Registry::with_prefix("portal_queue_consumer");
        clients.register(&mut registry);
        let fetched = Counter::default();
        registry.register(
            "conversations_fetched",
            "Conversations a notification named that the tenant did not have, fetched from the State Manager and opened instead of waiting",
            fetched.clone(),
        );
        let consumed = Counter::default();
        let outcomes = Family::<OutcomeLabels, Counter>::default();
        let dead_lettered = Family::<ReasonLabels, Counter>::default();
        let retries = Counter::default();
        // 0.5 ms to ~16 s.
        let processing = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        // 5 ms to ~3 h.
        let age = Histogram::new(exponential_buckets(0.005, 2.0, 22));
        // 1 to 512.
        let batch = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        let queue_depth = Gauge::default();
        let connected = Gauge::default();
        registry.register(
            "consumed",
            "Messages received from the queue",
            consumed.clone(),
        );
        registry.register(
            "messages",
            "Messages finished, by outcome (applied, unchanged, receipt_kept, duplicate, dead_lettered, waiting)",
            outcomes.clone(),
        );
        registry.register(
            "dead_lettered",
            "Messages sent to the dead-letter queue, by reason",
            dead_lettered.clone(),
        );
        registry.register(
            "transient_retries",
            "Attempts repeated because Postgres was unavailable or a concurrent transaction won",
            retries.clone(),
        );
        registry.register(
            "processing_seconds",
            "From receiving a message to acknowledging it",
            processing.clone(),
        );
        registry.register(
            "event_age_seconds",
            "From a notification's occurred_at to its commit here: how far behind upstream the consumer is",
            age.clone(),
        );
        registry.register(
            "batch_messages",
            "Messages applied together in one transaction (those that were waiting together in a lane)",
            batch.clone(),
        );
        registry.register(
            "queue_messages",
            "Messages ready in the queue, not yet delivered to any consumer (sampled)",
            queue_depth.clone(),
        );
        registry.register(
            "broker_connected",
            "1 while connected to the broker and consuming",
            connected.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                consumed,
                outcomes,
                dead_lettered,
                retries,
                fetched,
                processing,
                age,
                batch,
                queue_depth,
                connected,
            }),
        }
    }
}

impl Metrics {
    pub fn consumed(&self) {
        self.inner.consumed.inc();
    }

    pub fn finished(&self, outcome: &'static str, took: Duration) {
        self.inner
            .outcomes
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        self.inner.processing.observe(took.as_secs_f64());
    }

    pub fn dead_lettered(&self, reason: &str) {
        self.inner
            .dead_lettered
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    pub fn retried(&self) {
        self.inner.retries.inc();
    }

    pub fn fetched(&self) {
        self.inner.fetched.inc();
    }

    pub fn applied_after(&self, age: Duration) {
        self.inner.age.observe(age.as_secs_f64());
    }

    pub fn batch(&self, messages: usize) {
        self.inner.batch.observe(messages as f64);
    }

    pub fn queue_depth(&self, messages: u32) {
        self.inner.queue_depth.set(i64::from(messages));
    }

    pub fn connected(&self, up: bool) {
        self.inner.connected.set(i64::from(up));
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry);
        out
    }
}
