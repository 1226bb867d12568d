//! Prometheus metrics of the realtime service.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

/// Cheap to clone; every clone counts into the same registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    connections: Gauge,
    events: Family<OutcomeLabels, Counter>,
    deliveries: Family<KindLabels, Counter>,
    lag: Histogram,
    resyncs: Counter,
    slow_disconnects: Counter,
    subscribed: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("portal_realtime");
        let connections = Gauge::default();
        let events = Family::<OutcomeLabels, Counter>::default();
        let deliveries = Family::<KindLabels, Counter>::default();
        // 0.5 ms to ~8 s.
        let lag = Histogram::new(exponential_buckets(0.0005, 2.0, 15));
        let resyncs = Counter::default();
        let slow_disconnects = Counter::default();
        let subscribed = Gauge::default();
        registry.register(
            "connections",
            "Sockets connected to this process",
            connections.clone(),
        );
        registry.register(
            "events",
            "Events received from Redis or read from Postgres, by outcome (delivered, duplicate, gap_skipped)",
            events.clone(),
        );
        registry.register(
            "deliveries",
            "Events emitted to sockets, by kind (live, replay)",
            deliveries.clone(),
        );
        registry.register(
            "delivery_lag_seconds",
            "From the event's commit to its emission to a socket (live deliveries)",
            lag.clone(),
        );
        registry.register(
            "resyncs",
            "Reconnecting clients told to reload because their gap was too old or too long",
            resyncs.clone(),
        );
        registry.register(
            "slow_consumer_disconnects",
            "Sockets disconnected because their send buffer was full",
            slow_disconnects.clone(),
        );
        registry.register(
            "redis_subscribed",
            "1 while the Redis subscription is up",
            subscribed.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                connections,
                events,
                deliveries,
                lag,
                resyncs,
                slow_disconnects,
                subscribed,
            }),
        }
    }
}

impl Metrics {
    pub fn connected(&self) {
        self.inner.connections.inc();
    }

    pub fn disconnected(&self) {
        self.inner.connections.dec();
    }

    pub fn event(&self, outcome: &'static str) {
        self.inner
            .events
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub fn delivered(&self, kind: &'static str, sockets: u64) {
        self.inner
            .deliveries
            .get_or_create(&KindLabels { kind })
            .inc_by(sockets);
    }

    pub fn lag(&self, lag: Duration) {
        self.inner.lag.observe(lag.as_secs_f64());
    }

    pub fn resync(&self) {
        self.inner.resyncs.inc();
    }

    pub fn slow_disconnect(&self) {
        self.inner.slow_disconnects.inc();
    }

    pub fn subscribed(&self, up: bool) {
        self.inner.subscribed.set(i64::from(up));
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry);
        out
    }
}
