//! One way to call a platform service over HTTP, shared by every client (State Manager,
//! Genesys Cloud, Outbound Transformer):
//!
//! - connect and request timeouts from the service's settings;
//! - a circuit breaker per service ([`failsafe`]): after `circuit_failures` consecutive
//!   failures (timeouts, connection errors, 5xx, 408, 429) calls fail at once with
//!   [`CallError::CircuitOpen`] for `circuit_open_ms` (in whole seconds, doubling up to eight
//!   times that while the service stays down), then one call probes it; a 4xx is the service
//!   answering and does not count;
//! - retries, with backoff and jitter, only of calls the caller marks safe to repeat
//!   ([`Retry::Safe`]), honouring `Retry-After` when it fits in the call's budget;
//! - the W3C trace context on every request, and a client span per attempt;
//! - `integration_calls_total{service, operation, outcome}` and the duration of each call.
//!
//! Whether a failure is worth another attempt is decided here, once, by [`CallError`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::{Duration, Instant};

use bytes::Bytes;
use failsafe::futures::CircuitBreaker as _;
use failsafe::{Config, StateMachine, backoff, failure_policy};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use reqwest::{RequestBuilder, StatusCode, Url};
use tracing::Instrument as _;

/// How much of an error response body is kept in a failure reason.
const BODY_EXCERPT_CHARS: usize = 300;

/// How one service is called: its timeouts, retries of safe calls, and circuit breaker.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Attempts of a call marked [`Retry::Safe`], the first included.
    pub max_attempts: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Consecutive failures that open the circuit.
    pub circuit_failures: u32,
    /// How long the circuit stays open before a call may probe the service.
    pub circuit_open: Duration,
}

/// Why a call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The service refused the request (a 4xx other than 408 and 429): repeating it will not help.
    #[error("{reason}")]
    Rejected { status: u16, reason: String },
    /// A timeout, a connection failure, a 5xx, 408 or 429: worth another attempt later.
    #[error("{reason}")]
    Unavailable {
        reason: String,
        /// The service's `Retry-After`, when it gave one in seconds.
        retry_after: Option<Duration>,
    },
    /// Not attempted: the service failed repeatedly just now, and its circuit is open.
    #[error("{service} is failing; its circuit is open")]
    CircuitOpen { service: &'static str },
}

impl CallError {
    /// Another attempt later may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Rejected { .. })
    }

    /// The wait the service asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    fn outcome(&self) -> &'static str {
        match self {
            Self::Rejected { .. } => "rejected",
            Self::Unavailable { .. } => "unavailable",
            Self::CircuitOpen { .. } => "circuit_open",
        }
    }
}

/// Whether a call may be repeated within the same request when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Reads, and writes the service makes idempotent.
    Safe,
    /// Once; the caller retries later if it wants to (the outboxes do).
    Once,
}

/// A successful answer: its status and body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON; an empty or malformed body is the service breaking its contract.
    pub fn json<T: serde::de::DeserializeOwned>(&self, service: &str) -> Result<T, CallError> {
        serde_json::from_slice(&self.body).map_err(|e| CallError::Unavailable {
            reason: format!(
                "{service} answered {} with an unreadable body: {e}",
                self.status
            ),
            retry_after: None,
        })
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    service: &'static str,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: &'static str,
}

/// The clients' metrics, registered once per process and shared by every client in it.
#[derive(Debug, Clone)]
pub struct ClientMetrics {
    calls: Family<CallLabels, Counter>,
    duration: Family<ServiceLabels, Histogram>,
    circuit_open: Family<ServiceLabels, Gauge<i64, AtomicI64>>,
}

impl Default for ClientMetrics {
    fn default() -> Self {
        Self {
            calls: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new([
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
            }),
            circuit_open: Family::default(),
        }
    }
}

impl ClientMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "integration_calls",
            "Calls to platform services (state_manager, genesys, transformer) by operation and outcome: ok, rejected (4xx), unavailable (timeout, unreachable, 5xx, 408, 429), circuit_open (not attempted)",
            self.calls.clone(),
        );
        registry.register(
            "integration_call_duration_seconds",
            "How long calls to each platform service took, retries included",
            self.duration.clone(),
        );
        registry.register(
            "integration_circuit_open",
            "1 while a platform service's circuit breaker is open (calls fail at once), else 0",
            self.circuit_open.clone(),
        );
    }
}

/// Reports the breaker's transitions in the logs and the `integration_circuit_open` gauge.
#[derive(Debug, Clone)]
struct CircuitEvents {
    service: &'static str,
    open: Gauge<i64, AtomicI64>,
}

impl failsafe::Instrument for CircuitEvents {
    fn on_call_rejected(&self) {}

    fn on_open(&self) {
        self.open.set(1);
        tracing::warn!(
            service = self.service,
            "circuit opened: calls fail at once for a while"
        );
    }

    fn on_half_open(&self) {
        tracing::info!(
            service = self.service,
            "circuit half open: probing the service"
        );
    }

    fn on_closed(&self) {
        self.open.set(0);
        tracing::info!(
            service = self.service,
            "circuit closed: the service answers again"
        );
    }
}

type Breaker =
    StateMachine<failure_policy::ConsecutiveFailures<backoff::Exponential>, CircuitEvents>;

/// A client of one service. Cheap to clone; clones share the connection pool and the circuit.
#[derive(Clone)]
pub struct ServiceClient {
    service: &'static str,
    http: reqwest::Client,
    settings: Arc<ClientSettings>,
    breaker: Breaker,
    metrics: ClientMetrics,
}

impl fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceClient")
            .field("service", &self.service)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl ServiceClient {
    /// `service` names it in logs, errors and metrics (`state_manager`, `genesys`, `transformer`).
    pub fn new(
        service: &'static str,
        settings: ClientSettings,
        metrics: &ClientMetrics,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout.min(settings.timeout))
            .user_agent(concat!("agent-portal/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let open = metrics
            .circuit_open
            .get_or_create(&ServiceLabels { service })
            .clone();
        open.set(0);
        // failsafe's backoff refuses less than a second (the configuration says so too).
        let open_for = settings.circuit_open.max(Duration::from_secs(1));
        let breaker = Config::new()
            .failure_policy(failure_policy::consecutive_failures(
                settings.circuit_failures.max(1),
                backoff::exponential(open_for, open_for.saturating_mul(8)),
            ))
            .instrument(CircuitEvents { service, open })
            .build();
        Ok(Self {
            service,
            http,
            settings: Arc::new(settings),
            breaker,
            metrics: metrics.clone(),
        })
    }

    pub fn service(&self) -> &'static str {
        self.service
    }

    /// The longest one attempt can take.
    pub fn timeout(&self) -> Duration {
        self.settings.timeout
    }

    /// The longest a [`Retry::Safe`] call can take: every attempt and the waits between them.
    pub fn longest_read(&self) -> Duration {
        let attempts = self.settings.max_attempts.max(1);
        self.settings.timeout.saturating_mul(attempts)
            + self.settings.backoff_max.saturating_mul(attempts - 1)
    }

    /// Whether a call would be attempted now (the circuit is not open), for readiness.
    pub fn is_available(&self) -> bool {
        self.breaker.is_call_permitted()
    }

    /// Sends the request `build` makes (once per attempt) and answers its 2xx; `operation`
    /// names the call in spans and metrics.
    pub async fn call(
        &self,
        operation: &'static str,
        retry: Retry,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Answer, CallError> {
        let started = Instant::now();
        let attempts = match retry {
            Retry::Safe => self.settings.max_attempts.max(1),
            Retry::Once => 1,
        };
        let mut backoff =
            crate::backoff::Backoff::new(self.settings.backoff_initial, self.settings.backoff_max);
        let mut attempt = 1;
        let result = loop {
            let result = self.attempt(operation, attempt, &build).await;
            match &result {
                Err(err) if err.is_retryable() && attempt < attempts => {
                    let wait = backoff
                        .next_delay()
                        .max(err.retry_after().unwrap_or_default());
                    // A wait longer than the backoff allows is left to a later try by the caller.
                    if wait > self.settings.backoff_max {
                        break result;
                    }
                    tracing::debug!(service = self.service, operation, error = %err, retry_in_ms = wait.as_millis() as u64, "retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                _ => break result,
            }
        };
        let outcome = result.as_ref().map_or_else(CallError::outcome, |_| "ok");
        self.metrics
            .calls
            .get_or_create(&CallLabels {
                service: self.service,
                operation,
                outcome,
            })
            .inc();
        self.metrics
            .duration
            .get_or_create(&ServiceLabels {
                service: self.service,
            })
            .observe(started.elapsed().as_secs_f64());
        result
    }

    async fn attempt(
        &self,
        operation: &'static str,
        attempt: u32,
        build: &impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Answer, CallError> {
        let span = tracing::info_span!(
            "call",
            otel.name = format!("{} {operation}", self.service),
            otel.kind = "client",
            peer.service = self.service,
            attempt,
            http.response.status_code = tracing::field::Empty,
        );
        let service = self.service;
        let send = async {
            let mut trace = http::HeaderMap::new();
            crate::telemetry::inject_context(&mut trace);
            let response = build(&self.http).headers(trace).send().await.map_err(|e| {
                CallError::Unavailable {
                    reason: if e.is_timeout() {
                        format!("{service} did not answer in time")
                    } else {
                        format!("could not reach {service}: {e}")
                    },
                    retry_after: None,
                }
            })?;
            let status = response.status();
            tracing::Span::current().record("http.response.status_code", status.as_u16());
            let retry_after = retry_after(response.headers());
            let body = response.bytes().await.map_err(|e| CallError::Unavailable {
                reason: format!("{service} answered {status} but the body did not arrive: {e}"),
                retry_after: None,
            })?;
            if status.is_success() {
                return Ok(Answer { status, body });
            }
            let excerpt: String = String::from_utf8_lossy(&body)
                .chars()
                .take(BODY_EXCERPT_CHARS)
                .collect();
            let reason = format!("{service} answered {status}: {excerpt}");
            let retryable = status.is_server_error()
                || status == StatusCode::REQUEST_TIMEOUT
                || status == StatusCode::TOO_MANY_REQUESTS;
            Err(if retryable {
                CallError::Unavailable {
                    reason,
                    retry_after,
                }
            } else {
                CallError::Rejected {
                    status: status.as_u16(),
                    reason,
                }
            })
        };
        self.breaker
            .call_with(CallError::is_retryable, send)
            .instrument(span)
            .await
            .map_err(|err| match err {
                failsafe::Error::Inner(err) => err,
                failsafe::Error::Rejected => CallError::CircuitOpen { service },
            })
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from APIs and is ignored).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// A configured base URL, to which [`endpoint`] appends path segments.
pub fn base_url(url: &str) -> anyhow::Result<Url> {
    let url = Url::parse(url)?;
    anyhow::ensure!(!url.cannot_be_a_base(), "{url} cannot be a base URL");
    Ok(url)
}

/// `base` with `segments` appended, each percent-encoded as one segment (upstream ids are
/// opaque strings: `a/b` stays one segment).
pub fn endpoint(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_stays_one_path_segment() {
        let base = base_url("http://sm.local/v1/").unwrap();
        assert_eq!(
            endpoint(&base, &["customers", "a/../b c"]).as_str(),
            "http://sm.local/v1/customers/a%2F..%2Fb%20c"
        );
        let base = base_url("http://sm.local").unwrap();
        assert_eq!(
            endpoint(&base, &["conversations", "sm-1", "changes"]).as_str(),
            "http://sm.local/conversations/sm-1/changes"
        );
    }
}

#[cfg(test)]
mod calls {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;

    fn settings(circuit_failures: u32) -> ClientSettings {
        ClientSettings {
            timeout: Duration::from_millis(300),
            connect_timeout: Duration::from_millis(300),
            max_attempts: 3,
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_millis(2000),
            circuit_failures,
            circuit_open: Duration::from_millis(1000),
        }
    }

    fn client(circuit_failures: u32) -> ServiceClient {
        ServiceClient::new(
            "test",
            settings(circuit_failures),
            &ClientMetrics::default(),
        )
        .unwrap()
    }

    async fn get(
        client: &ServiceClient,
        server: &MockServer,
        retry: Retry,
    ) -> Result<Answer, CallError> {
        let url = server.uri();
        client.call("get", retry, |http| http.get(&url)).await
    }

    #[tokio::test]
    async fn a_safe_call_is_retried_after_a_5xx_and_a_refusal_is_not() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(503))
            .up_to_n_times(2)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
            .mount(&server)
            .await;
        let answer = get(&client(10), &server, Retry::Safe).await.unwrap();
        assert_eq!(&answer.body[..], b"ok");
        assert_eq!(server.received_requests().await.unwrap().len(), 3);

        let refusing = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(422).set_body_string("bad field"))
            .mount(&refusing)
            .await;
        let err = get(&client(10), &refusing, Retry::Safe).await.unwrap_err();
        assert!(
            matches!(err, CallError::Rejected { status: 422, ref reason } if reason.contains("bad field")),
            "{err:?}"
        );
        assert_eq!(refusing.received_requests().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_429_waits_for_its_retry_after_and_an_unsafe_call_is_made_once() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        let started = Instant::now();
        get(&client(10), &server, Retry::Safe).await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );

        let once = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "7"))
            .mount(&once)
            .await;
        let err = get(&client(10), &once, Retry::Once).await.unwrap_err();
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(once.received_requests().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_hanging_service_times_out() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
            .mount(&server)
            .await;
        let started = Instant::now();
        let err = get(&client(10), &server, Retry::Once).await.unwrap_err();
        assert!(
            matches!(err, CallError::Unavailable { ref reason, .. } if reason.contains("did not answer in time")),
            "{err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn the_circuit_opens_after_consecutive_failures_and_closes_when_the_service_answers() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(500))
            .up_to_n_times(3)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        let client = client(3);
        for _ in 0..3 {
            let err = get(&client, &server, Retry::Once).await.unwrap_err();
            assert!(matches!(err, CallError::Unavailable { .. }), "{err:?}");
        }
        // Open: the call fails at once, and the service is not called.
        assert!(!client.is_available());
        let err = get(&client, &server, Retry::Once).await.unwrap_err();
        assert_eq!(err, CallError::CircuitOpen { service: "test" });
        assert_eq!(server.received_requests().await.unwrap().len(), 3);
        // After the open period one call probes the service; its success closes the circuit.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !client.is_available() {
            assert!(Instant::now() < deadline, "the circuit never half-opened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        get(&client, &server, Retry::Once).await.unwrap();
        get(&client, &server, Retry::Once).await.unwrap();
        assert!(client.is_available());
        assert_eq!(server.received_requests().await.unwrap().len(), 5);
    }
}
