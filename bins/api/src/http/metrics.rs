//! Prometheus metrics: requests by route and status, latency, database pool usage, the
//! outbox of messages waiting for delivery, the changes waiting for propagation to the
//! platform, and the calls made to the platform's services.
//!
//! The route label is the operation id (bounded), never the raw path (unbounded: it holds ids).

use std::sync::Arc;
use std::time::Instant;

use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::OperationId;
use portal_shared::integrations::client::ClientMetrics;
use portal_shared::integrations::propagation::{self, PropagationMetrics};
use portal_shared::messages::{DeliveryMetrics, dispatcher};
use portal_shared::tenancy::Db;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: &'static str,
}

#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    pool: Family<PoolLabels, Gauge>,
    outbox_waiting: Gauge,
    outbox_oldest_age: Gauge,
    propagation_waiting: Family<TargetLabels, Gauge>,
    propagation_oldest_age: Family<TargetLabels, Gauge>,
    db: Db,
}

/// The metrics the API's parts keep themselves, registered with the API's.
#[derive(Debug, Clone, Default)]
pub struct PartMetrics {
    pub deliveries: DeliveryMetrics,
    pub propagation: PropagationMetrics,
    pub clients: ClientMetrics,
}

fn latency_histogram() -> Histogram {
    // 1 ms to ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Metrics {
    pub fn new(db: Db, parts: &PartMetrics) -> Self {
        let mut registry = Registry::with_prefix("portal_api");
        parts.deliveries.register(&mut registry);
        parts.propagation.register(&mut registry);
        parts.clients.register(&mut registry);
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let pool = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register(
            "db_pool_connections",
            "Postgres pool connections by state (idle, in_use, max)",
            pool.clone(),
        );
        let outbox_waiting = Gauge::default();
        let outbox_oldest_age = Gauge::default();
        registry.register(
            "outbox_messages",
            "Outbound messages waiting for delivery, all tenants",
            outbox_waiting.clone(),
        );
        registry.register(
            "outbox_oldest_age_seconds",
            "Age of the oldest message waiting for delivery (0 when none waits)",
            outbox_oldest_age.clone(),
        );
        let propagation_waiting = Family::<TargetLabels, Gauge>::default();
        let propagation_oldest_age = Family::<TargetLabels, Gauge>::default();
        registry.register(
            "propagation_outbox_changes",
            "Changes waiting for propagation to the platform, by target (state_manager, genesys), all tenants",
            propagation_waiting.clone(),
        );
        registry.register(
            "propagation_outbox_oldest_age_seconds",
            "Age of the oldest change waiting for propagation, by target (0 when none waits)",
            propagation_oldest_age.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                requests,
                latency,
                pool,
                outbox_waiting,
                outbox_oldest_age,
                propagation_waiting,
                propagation_oldest_age,
                db,
            }),
        }
    }

    fn observe(&self, route: String, method: String, status: u16, started: Instant) {
        let elapsed = started.elapsed().as_secs_f64();
        self.inner
            .latency
            .get_or_create(&RouteLabels {
                route: route.clone(),
                method: method.clone(),
            })
            .observe(elapsed);
        self.inner
            .requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
    }

    /// The text exposition, with pool and outbox gauges read at scrape time.
    pub async fn render(&self) -> String {
        match dispatcher::backlog(&self.inner.db).await {
            Ok(backlog) => {
                self.inner.outbox_waiting.set(backlog.waiting);
                self.inner.outbox_oldest_age.set(backlog.oldest_age_secs);
            }
            // Stale gauges are better than none; /readyz reports the database.
            Err(err) => tracing::debug!(error = %err, "could not read the outbox backlog"),
        }
        match propagation::backlog(&self.inner.db).await {
            Ok(backlogs) => {
                for backlog in backlogs {
                    let target = TargetLabels {
                        target: backlog.target.as_str(),
                    };
                    self.inner
                        .propagation_waiting
                        .get_or_create(&target)
                        .set(backlog.waiting);
                    self.inner
                        .propagation_oldest_age
                        .get_or_create(&target)
                        .set(backlog.oldest_age_secs);
                }
            }
            Err(err) => tracing::debug!(error = %err, "could not read the propagation backlog"),
        }
        let usage = self.inner.db.pool_usage();
        let in_use = usage.size.saturating_sub(usage.idle);
        for (state, value) in [("idle", usage.idle), ("in_use", in_use), ("max", usage.max)] {
            self.inner
                .pool
                .get_or_create(&PoolLabels { state })
                .set(i64::from(value));
        }
        let mut out = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry)
        {
            tracing::error!(error = %err, "encoding metrics failed");
        }
        out
    }
}

/// Middleware: counts and times every request.
pub async fn observe<E: Endpoint>(ep: E, req: Request) -> poem::Result<Response> {
    let metrics = req.data::<Metrics>().cloned();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let started = Instant::now();
    let result = ep.call(req).await.map(IntoResponse::into_response);
    if let Some(metrics) = metrics {
        let (status, operation) = match &result {
            Ok(resp) => (resp.status(), resp.data::<OperationId>().map(|o| o.0)),
            Err(err) => (err.status(), err.data::<OperationId>().map(|o| o.0)),
        };
        let route = operation
            .map(str::to_string)
            .unwrap_or_else(|| fixed_route(&path));
        metrics.observe(route, method, status.as_u16(), started);
    }
    result
}

/// Paths outside the OpenAPI operations: a fixed few, everything else lumped together.
fn fixed_route(path: &str) -> String {
    match path {
        "/healthz" | "/readyz" | "/metrics" | "/openapi.json" => path.to_string(),
        p if p.starts_with("/docs") => "/docs".to_string(),
        _ => "unmatched".to_string(),
    }
}
