//! One user action is one trace across the processes. The api, realtime and queue-consumer
//! binaries run as processes of their own, each exporting OTLP/HTTP to a receiver the test
//! runs (a real HTTP server, decoding the protobuf the exporter sends); a PATCH through the
//! api and a notification through RabbitMQ must each reach a supervisor's socket as one trace,
//! every hop the child of the one before; a message's delivery attempt, later and in a trace
//! of its own, links to the request that stored it and passes its context to the transformer.
//!
//! The api and realtime binaries are found beside this package's own: the workspace's test
//! run builds all of them (`cargo build --bins` first when running this package alone).

use std::collections::HashMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;
use rust_socketio::asynchronous::ClientBuilder;
use rust_socketio::{Event, Payload};
use serde_json::json;
use tokio::sync::mpsc;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{AMQP_URL, Harness, created};

/// A trace the test starts, as a caller with its own tracing would.
const PATCH_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const PATCH_PARENT: &str = "b7ad6b7169203331";
const SEND_TRACE: &str = "5b8aa5a2d2c872e8321cf37308d69df2";
const SEND_PARENT: &str = "051581bf3cb55c13";
/// The `traceparent` every notification the harness publishes carries.
const NOTIFICATION_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const NOTIFICATION_PARENT: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn a_patch_and_a_notification_are_each_one_trace_from_the_caller_to_the_socket() {
    let h = Harness::new().await;
    let otlp = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/traces"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&otlp)
        .await;
    // The same server stands in for the Outbound Transformer.
    Mock::given(method("POST"))
        .and(path("/messages"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"external_id": "wamid.traced"})),
        )
        .mount(&otlp)
        .await;
    let env: Vec<(&str, String)> = vec![
        ("PORTAL__DATABASE__URL", h.app.app_url.clone()),
        ("PORTAL__DATABASE__MAX_CONNECTIONS", "5".into()),
        ("PORTAL__AUTH__JWT_SECRET", testkit::SECRET.into()),
        ("PORTAL__EVENTS__CHANNEL", h.app.channel.clone()),
        ("PORTAL__AMQP__URL", AMQP_URL.into()),
        ("PORTAL__CONSUMER__QUEUE", h.queue.clone()),
        (
            "PORTAL__TRANSFORMER__URL",
            format!("{}/messages", otlp.uri()),
        ),
        ("PORTAL__HTTP__HOST", "127.0.0.1".into()),
        ("PORTAL__HTTP__SHUTDOWN_GRACE_SECS", "1".into()),
        ("PORTAL__TELEMETRY__LOG_FILTER", "warn,api=info".into()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.uri()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
    ];
    let api = Service::start("api", &env);
    let realtime = Service::start("realtime", &env);
    let consumer = Service::start("queue-consumer", &env);
    for service in [&api, &realtime, &consumer] {
        service.wait_ready().await;
    }
    let (_socket, mut events) = supervisor_socket(&realtime.base, &h.world.supervisor_token).await;
    let client = reqwest::Client::new();

    // A PATCH by a caller that traces: the api continues its trace.
    let customer = h
        .app
        .customer(h.world.a, "Tess Trace", "+4915112340001")
        .await;
    let conversation = h
        .app
        .conversation(h.world.a, customer, "waiting", None, 5)
        .await;
    let status = client
        .patch(format!("{}/api/conversations/{conversation}", api.base))
        .bearer_auth(&h.world.supervisor_token)
        .header("traceparent", format!("00-{PATCH_TRACE}-{PATCH_PARENT}-01"))
        .json(&json!({ "assigned_agent_id": h.world.supervisor }))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    assert_eq!(events.next().await, "conversation:updated");

    // A message sent in another traced request, delivered by the dispatcher.
    let sent = client
        .post(format!(
            "{}/api/conversations/{conversation}/messages",
            api.base
        ))
        .bearer_auth(&h.world.supervisor_token)
        .header("traceparent", format!("00-{SEND_TRACE}-{SEND_PARENT}-01"))
        .json(&json!({ "type": "text", "text": "Hello from a traced request" }))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202);
    let message: serde_json::Value = sent.json().await.unwrap();
    let message = message["id"].as_str().unwrap().parse().unwrap();
    h.app.wait_for_status(message, "sent").await;
    assert_eq!(events.next().await, "message:new");
    assert_eq!(events.next().await, "message:status");

    // A notification whose publisher traces: the consumer continues its trace.
    h.publish(
        h.world.a,
        "conversation.created",
        created("sm-traced-1", "+4915112340002", "Nora Notified"),
    )
    .await;
    assert_eq!(events.next().await, "conversation:new");

    let spans = Spans::collect(&otlp, |spans| {
        spans
            .delivered("conversation:updated", PATCH_TRACE)
            .is_some()
            && spans
                .delivered("conversation:new", NOTIFICATION_TRACE)
                .is_some()
            && spans.find(|s| s.name == "deliver message").is_some()
            // Each process exports on its own schedule: wait for the spans asserted below too.
            && spans
                .find(|s| s.service == "api" && s.trace_id == PATCH_TRACE && s.parent == PATCH_PARENT)
                .is_some()
            && spans
                .find(|s| {
                    s.service == "queue-consumer"
                        && s.trace_id == NOTIFICATION_TRACE
                        && s.parent == NOTIFICATION_PARENT
                })
                .is_some()
    })
    .await;

    // api: the request continues the caller's span; the realtime delivery descends from it.
    let request = spans
        .find(|s| s.service == "api" && s.trace_id == PATCH_TRACE && s.parent == PATCH_PARENT)
        .unwrap_or_else(|| panic!("no api span continues the caller's: {spans:#?}"));
    assert_eq!(request.name, "PATCH /api/conversations/{id}");
    let delivery = spans
        .delivered("conversation:updated", PATCH_TRACE)
        .unwrap();
    spans.assert_descends(delivery, request, "api");

    // queue-consumer: its span continues the message's; the realtime delivery descends from it.
    let notification = spans
        .find(|s| {
            s.service == "queue-consumer"
                && s.trace_id == NOTIFICATION_TRACE
                && s.parent == NOTIFICATION_PARENT
        })
        .unwrap_or_else(|| panic!("no queue-consumer span continues the message's: {spans:#?}"));
    let delivery = spans
        .delivered("conversation:new", NOTIFICATION_TRACE)
        .unwrap();
    spans.assert_descends(delivery, notification, "queue-consumer");

    // The delivery attempt is a trace of its own, linked to the request that stored the
    // message; the transformer hears of the attempt's trace.
    let attempt = spans
        .find(|s| s.service == "api" && s.name == "deliver message")
        .unwrap();
    assert_ne!(attempt.trace_id, SEND_TRACE);
    assert!(
        attempt.links.iter().any(|(trace, _)| trace == SEND_TRACE),
        "{attempt:?} links to the sending request's trace"
    );
    let delivered = otlp
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .find(|r| r.url.path() == "/messages")
        .unwrap();
    let traceparent = delivered
        .headers
        .get("traceparent")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(
        traceparent.split('-').nth(1),
        Some(attempt.trace_id.as_str())
    );

    // Neither the message's text nor the token is in any span or log line.
    let secret_words: [&[u8]; 2] = [
        b"Hello from a traced request",
        h.world.supervisor_token.as_bytes(),
    ];
    for request in otlp.received_requests().await.unwrap_or_default() {
        if request.url.path() == "/v1/traces" {
            for word in secret_words {
                assert!(
                    !request.body.windows(word.len()).any(|w| w == word),
                    "a span carries {}",
                    String::from_utf8_lossy(word)
                );
            }
        }
    }
    for service in [&api, &realtime, &consumer] {
        for line in service.log.lock().unwrap().iter() {
            for word in secret_words {
                assert!(
                    !line.as_bytes().windows(word.len()).any(|w| w == word),
                    "logged: {line}"
                );
            }
        }
    }

    // The api's log line of the request carries the ids of its trace and a request id.
    let line = api
        .log_line(|line| line["message"] == "request" && line["trace_id"] == PATCH_TRACE)
        .await;
    assert_eq!(line["span_id"], request.span_id.as_str(), "{line}");
    assert!(
        line["request_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{line}"
    );
    assert_eq!(line["tenant_id"], h.world.a.to_string(), "{line}");
    assert_eq!(line["agent_id"], h.world.supervisor.to_string(), "{line}");
    h.finish().await;
}

/// One of the service binaries, killed when dropped; its stdout (JSON log lines) is kept.
struct Service {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Service {
    fn start(name: &str, env: &[(&str, String)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(binary(name))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("PORTAL__HTTP__PORT", port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                lines.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = reqwest::get(format!("{}/readyz", self.base))
                .await
                .is_ok_and(|r| r.status() == 200);
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "{} is not ready", self.base);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn log_line(&self, wanted: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self
                .log
                .lock()
                .unwrap()
                .iter()
                .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
                .find(|line| wanted(line));
            if let Some(line) = found {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no such log line: {:#?}",
                self.log
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_queue-consumer")).with_file_name(name);
    assert!(
        path.exists(),
        "{} is not built: run the workspace's tests, or `cargo build --bins` first",
        path.display()
    );
    path
}

/// The names of the events a supervisor's socket receives, in order.
struct Events(mpsc::UnboundedReceiver<String>);

impl Events {
    async fn next(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(10), self.0.recv())
            .await
            .expect("no event within 10 s")
            .unwrap()
    }
}

async fn supervisor_socket(
    base: &str,
    token: &str,
) -> (rust_socketio::asynchronous::Client, Events) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (connected_tx, connected) = tokio::sync::oneshot::channel();
    let connected_tx = Mutex::new(Some(connected_tx));
    let socket = ClientBuilder::new(base)
        .auth(json!({ "token": token }))
        .reconnect(false)
        .on(Event::Connect, move |_, _| {
            if let Some(tx) = connected_tx.lock().unwrap().take() {
                let _ = tx.send(());
            }
            async {}.boxed()
        })
        .on_any(move |event, _: Payload, _| {
            let name = String::from(event);
            if name != "agent:presence" {
                let _ = tx.send(name);
            }
            async {}.boxed()
        })
        .connect()
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), connected)
        .await
        .expect("the socket was not accepted")
        .unwrap();
    // A join is answered once the socket is caught up and live: what happens from here on is
    // delivered live (a "deliver" span), not by its replay.
    let (acked_tx, acked) = tokio::sync::oneshot::channel();
    let acked_tx = Mutex::new(Some(acked_tx));
    socket
        .emit_with_ack(
            "conversation:join",
            json!(uuid::Uuid::nil()),
            Duration::from_secs(10),
            move |_, _| {
                if let Some(tx) = acked_tx.lock().unwrap().take() {
                    let _ = tx.send(());
                }
                async {}.boxed()
            },
        )
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), acked)
        .await
        .expect("the socket never became live")
        .unwrap();
    (socket, Events(rx))
}

#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    /// (trace id, span id) of each link.
    links: Vec<(String, String)>,
}

#[derive(Debug)]
struct Spans(Vec<Span>);

impl Spans {
    /// Everything exported so far, once `complete` says it is all there (20 s at most).
    async fn collect(otlp: &MockServer, complete: impl Fn(&Spans) -> bool) -> Spans {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut spans = Vec::new();
            let exports = otlp.received_requests().await.unwrap_or_default();
            for request in exports.iter().filter(|r| r.url.path() == "/v1/traces") {
                let export = ExportTraceServiceRequest::decode(request.body.as_slice())
                    .expect("the exporter sends OTLP protobuf");
                for resource in export.resource_spans {
                    let service = resource
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|kv| kv.key == "service.name")
                        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                        .map(|v| match v {
                            AnyValue::StringValue(s) => s.clone(),
                            other => format!("{other:?}"),
                        })
                        .unwrap_or_default();
                    for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                        spans.push(Span {
                            service: service.clone(),
                            name: span.name,
                            trace_id: hex(&span.trace_id),
                            span_id: hex(&span.span_id),
                            parent: hex(&span.parent_span_id),
                            links: span
                                .links
                                .iter()
                                .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                                .collect(),
                        });
                    }
                }
            }
            let spans = Spans(spans);
            if complete(&spans) {
                return spans;
            }
            assert!(Instant::now() < deadline, "spans missing: {spans:#?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn find(&self, wanted: impl Fn(&Span) -> bool) -> Option<&Span> {
        self.0.iter().find(|s| wanted(s))
    }

    fn delivered(&self, event: &str, trace: &str) -> Option<&Span> {
        let name = format!("{event} deliver");
        self.find(|s| s.service == "realtime" && s.name == name && s.trace_id == trace)
    }

    /// `span`'s parent is a span of `service`, which descends from `ancestor`.
    fn assert_descends(&self, span: &Span, ancestor: &Span, service: &str) {
        let by_id: HashMap<&str, &Span> = self.0.iter().map(|s| (s.span_id.as_str(), s)).collect();
        let parent = by_id
            .get(span.parent.as_str())
            .unwrap_or_else(|| panic!("{span:?} has no exported parent: {self:#?}"));
        assert_eq!(parent.service, service, "{span:?} comes from {parent:?}");
        let mut current = *parent;
        while current.span_id != ancestor.span_id {
            current = by_id.get(current.parent.as_str()).unwrap_or_else(|| {
                panic!("{span:?} does not descend from {ancestor:?}: {self:#?}")
            });
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
