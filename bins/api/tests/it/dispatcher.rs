//! Delivery to the Outbound Transformer, a real HTTP server per test: success, retries,
//! refusals, timeouts, an outage, competing dispatchers, and a dispatcher killed mid-flight;
//! and WhatsApp's receipts, out of order or ahead of the message they refer to.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portal_shared::auth::Authenticator;
use portal_shared::config::Settings;
use portal_shared::integrations::client::ClientMetrics;
use portal_shared::integrations::transformer::TransformerClient;
use portal_shared::messages::receipts::{self, Receipt, ReceiptOutcome};
use portal_shared::messages::{DeliveryMetrics, Dispatcher};
use portal_shared::tenancy::Db;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::*;

/// Short timeouts and backoff so retries happen within a test.
const FAST: &[(&str, &str)] = &[
    ("PORTAL__TRANSFORMER__TIMEOUT_MS", "400"),
    ("PORTAL__TRANSFORMER__CONNECT_TIMEOUT_MS", "400"),
    // These tests are about the outbox: the circuit stays closed (it has tests of its own).
    ("PORTAL__TRANSFORMER__CIRCUIT_FAILURES", "1000"),
    ("PORTAL__DISPATCHER__LEASE_MS", "1500"),
    ("PORTAL__DISPATCHER__POLL_INTERVAL_MS", "50"),
    ("PORTAL__DISPATCHER__BACKOFF_INITIAL_MS", "20"),
    ("PORTAL__DISPATCHER__BACKOFF_MAX_MS", "100"),
    ("PORTAL__DISPATCHER__MAX_ATTEMPTS", "50"),
];

fn delivery_env<'a>(url: &'a str, overrides: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("PORTAL__DISPATCHER__ENABLED", "true"),
        ("PORTAL__TRANSFORMER__URL", url),
    ];
    env.extend_from_slice(FAST);
    env.extend_from_slice(overrides);
    env
}

/// The API with its dispatcher delivering to `url`.
async fn app_delivering_to(url: &str, overrides: &[(&str, &str)]) -> TestApp {
    TestApp::spawn_with(&delivery_env(url, overrides)).await
}

/// A dispatcher in a process of its own (as far as the database can tell).
fn start_dispatcher(
    app: &TestApp,
    url: &str,
    overrides: &[(&str, &str)],
) -> (JoinHandle<()>, CancellationToken) {
    let mut env: Vec<(String, String)> = delivery_env(url, overrides)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.push(("PORTAL__DATABASE__URL".into(), app.app_url.clone()));
    env.push(("PORTAL__AUTH__JWT_SECRET".into(), SECRET.into()));
    let settings = Settings::load_from(None, env).unwrap();
    let db = Db::new(portal_shared::db::pool(&settings.database).unwrap());
    let transformer =
        TransformerClient::new(&settings.transformer, &ClientMetrics::default()).unwrap();
    let dispatcher = Dispatcher::new(
        db,
        transformer,
        settings.dispatcher.clone(),
        Arc::new(Notify::new()),
        DeliveryMetrics::default(),
    );
    let stop = CancellationToken::new();
    (tokio::spawn(dispatcher.run(stop.clone())), stop)
}

async fn transformer() -> MockServer {
    MockServer::start().await
}

/// A transformer that answers its first request with `first` and accepts every later one.
async fn transformer_answering_first_with(first: impl Respond + 'static) -> MockServer {
    let server = transformer().await;
    Mock::given(method("POST"))
        .respond_with(first)
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(accept())
        .mount(&server)
        .await;
    server
}

/// Accepts after `delay`, answering WhatsApp's id as `wamid.<our message id>`.
fn accept_after(delay: Duration) -> impl Respond {
    move |request: &Request| {
        let key = request
            .headers
            .get("idempotency-key")
            .unwrap()
            .to_str()
            .unwrap();
        ResponseTemplate::new(200)
            .set_body_json(json!({"external_id": format!("wamid.{key}")}))
            .set_delay(delay)
    }
}

fn accept() -> impl Respond {
    accept_after(Duration::ZERO)
}

/// The Idempotency-Key of every request the transformer received, in order.
async fn keys(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            r.headers
                .get("idempotency-key")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

async fn wait_for_requests(server: &MockServer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while keys(server).await.len() < n {
        assert!(
            Instant::now() < deadline,
            "the transformer never got {n} requests"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn status_events(app: &TestApp, tenant: Uuid, message: Uuid) -> Vec<String> {
    app.events(tenant)
        .await
        .into_iter()
        .filter(|(_, kind, p)| kind == "message:status" && p["message"]["id"] == json!(message))
        .map(|(_, _, p)| p["message"]["status"].as_str().unwrap().to_string())
        .collect()
}

async fn metrics(app: &TestApp) -> String {
    app.client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn conversation(app: &TestApp, w: &World) -> Uuid {
    let c = app.customer(w.a, "Paula", "+34600000001").await;
    app.conversation(w.a, c, "active", Some(w.agent), 1).await
}

#[tokio::test]
async fn an_accepted_message_becomes_sent_with_whatsapps_id() {
    let server = transformer().await;
    Mock::given(method("POST"))
        .and(path("/messages"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"external_id": "wamid.HBgLMzQ2"})),
        )
        .mount(&server)
        .await;
    let app = app_delivering_to(&format!("{}/messages", server.uri()), &[]).await;
    let w = World::new(&app).await;
    let conv = conversation(&app, &w).await;
    let id = app
        .send_text(conv, &w.agent_token, "Your order ships today")
        .await;

    let row = app.wait_for_status(id, "sent").await;
    assert_eq!(row["external_id"], "wamid.HBgLMzQ2");
    assert!(row["sent_at"].is_string());
    assert_eq!(
        keys(&server).await,
        vec![id.to_string()],
        "our message id is the idempotency key"
    );
    let request: Value = server.received_requests().await.unwrap()[0]
        .body_json()
        .unwrap();
    assert_eq!(request["message_id"], json!(id));
    assert_eq!(request["tenant_id"], json!(w.a));
    assert_eq!(request["conversation_id"], json!(conv));
    assert_eq!(request["to"], "+34600000001");
    assert_eq!(
        request["content"],
        json!({"type": "text", "text": "Your order ships today"})
    );
    assert_eq!(app.outbox_len().await, 0);
    assert_eq!(status_events(&app, w.a, id).await, ["sent"]);
    let (_, message) = app
        .get(&format!("/api/messages/{id}"), &w.agent_token)
        .await;
    assert_eq!(message["status"], "sent");
    let text = metrics(&app).await;
    assert!(
        text.contains("portal_api_message_delivery_attempts_total{outcome=\"sent\"} 1"),
        "the attempt is counted: {text}"
    );
}

#[tokio::test]
async fn a_server_error_is_retried_and_the_message_sent_once() {
    let server = transformer_answering_first_with(
        ResponseTemplate::new(500).set_body_string("upstream hiccup"),
    )
    .await;
    let app = app_delivering_to(&format!("{}/messages", server.uri()), &[]).await;
    let w = World::new(&app).await;
    let conv = conversation(&app, &w).await;
    let id = app.send_text(conv, &w.agent_token, "retry me").await;

    app.wait_for_status(id, "sent").await;
    assert_eq!(keys(&server).await, vec![id.to_string(), id.to_string()]);
    assert_eq!(status_events(&app, w.a, id).await, ["sent"]);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&app.owner)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn a_refusal_fails_the_message_with_the_reason_and_is_not_retried() {
    let server = transformer().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(json!({"error": "recipient not on WhatsApp"})),
        )
        .mount(&server)
        .await;
    let app = app_delivering_to(&format!("{}/messages", server.uri()), &[]).await;
    let w = World::new(&app).await;
    let conv = conversation(&app, &w).await;
    let id = app.send_text(conv, &w.agent_token, "hello?").await;

    let row = app.wait_for_status(id, "failed").await;
    let reason = row["failure_reason"].as_str().unwrap();
    assert!(
        reason.contains("400") && reason.contains("recipient not on WhatsApp"),
        "{reason}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(keys(&server).await.len(), 1, "a 4xx is not retried");
    assert_eq!(app.outbox_len().await, 0);
    assert_eq!(status_events(&app, w.a, id).await, ["failed"]);
    assert!(
        metrics(&app)
            .await
            .contains("portal_api_message_delivery_attempts_total{outcome=\"rejected\"} 1")
    );
}

#[tokio::test]
async fn a_timeout_is_retried_under_the_same_idempotency_key() {
    let server = transformer_answering_first_with(accept_after(Duration::from_millis(1500))).await;
    let app = app_delivering_to(&format!("{}/messages", server.uri()), &[]).await;
    let w = World::new(&app).await;
    let conv = conversation(&app, &w).await;
    let id = app.send_text(conv, &w.agent_token, "slow lane").await;

    app.wait_for_status(id, "sent").await;
    let keys = keys(&server).await;
    assert_eq!(
        keys.len(),
        2,
        "one timed-out attempt, one accepted: {keys:?}"
    );
    assert!(keys.iter().all(|k| *k == id.to_string()));
    assert_eq!(status_events(&app, w.a, id).await, ["sent"]);
}

#[tokio::test]
async fn messages_sent_while_the_transformer_is_down_go_out_once_when_it_is_back() {
    // A port with nothing listening, until the transformer starts on it.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = reserved.local_addr().unwrap();
    drop(reserved);
    let app = app_delivering_to(&format!("http://{addr}/messages"), &[]).await;
    let w = World::new(&app).await;
    let conv = conversation(&app, &w).await;
    let mut sent = Vec::new();
    for i in 0..3 {
        sent.push(
            app.send_text(conv, &w.agent_token, &format!("during the outage {i}"))
                .await,
        );
    }

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (tried, errors): (Option<i32>, i64) = sqlx::query_as(
            "SELECT min(attempts), count(*) FILTER (WHERE last_error LIKE 'could not reach%') FROM message_outbox",
        )
        .fetch_one(&app.owner)
        .await
        .unwrap();
        if tried.unwrap_or(0) >= 2 && errors == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dispatcher did not keep retrying"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for id in &sent {
        assert_eq!(app.message_status(*id).await, "pending");
    }

    let server = MockServer::builder()
        .listener(std::net::TcpListener::bind(addr).unwrap())
        .start()
        .await;
    Mock::given(method("POST"))
        .respond_with(accept())
        .mount(&server)
        .await;
    for id in &sent {
        app.wait_for_status(*id, "sent").await;
    }
    let mut received = keys(&server).await;
    received.sort();
    let mut expected: Vec<String> = sent.iter().map(Uuid::to_string).collect();
    expected.sort();
    assert_eq!(received, expected, "each message exactly once");
}

#[tokio::test]
async fn two_dispatchers_deliver_each_message_exactly_once() {
    let server = transformer().await;
    Mock::given(method("POST"))
        .respond_with(accept_after(Duration::from_millis(30)))
        .mount(&server)
        .await;
    let url = format!("{}/messages", server.uri());
    let concurrency = [("PORTAL__DISPATCHER__CONCURRENCY", "4")];
    let app = app_delivering_to(&url, &concurrency).await;
    let (second, stop) = start_dispatcher(&app, &url, &concurrency);
    let w = World::new(&app).await;
    let conv = conversation(&app, &w).await;
    let mut sent = Vec::new();
    for i in 0..30 {
        sent.push(
            app.send_text(conv, &w.agent_token, &format!("message {i}"))
                .await,
        );
    }
    for id in &sent {
        let row = app.wait_for_status(*id, "sent").await;
        assert_eq!(row["external_id"], format!("wamid.{id}"));
    }
    let received = keys(&server).await;
    let unique: HashSet<&String> = received.iter().collect();
    assert_eq!(received.len(), 30, "no message delivered twice");
    assert_eq!(unique.len(), 30);
    stop.cancel();
    second.await.unwrap();
}

#[tokio::test]
async fn a_dispatcher_killed_mid_flight_is_taken_over_after_its_lease() {
    // The first attempt hangs long enough to kill its dispatcher while it waits.
    let server = transformer_answering_first_with(accept_after(Duration::from_millis(1500))).await;
    let url = format!("{}/messages", server.uri());
    let slow = [
        ("PORTAL__TRANSFORMER__TIMEOUT_MS", "2000"),
        ("PORTAL__DISPATCHER__LEASE_MS", "2500"),
    ];
    let app = TestApp::spawn().await; // no dispatcher of its own
    let (first, _) = start_dispatcher(&app, &url, &slow);
    let w = World::new(&app).await;
    let conv = conversation(&app, &w).await;
    let id = app.send_text(conv, &w.agent_token, "survive a crash").await;

    wait_for_requests(&server, 1).await;
    first.abort();
    let _ = first.await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(app.message_status(id).await, "pending");
    assert_eq!(app.outbox_len().await, 1, "the crash lost nothing");

    let (second, stop) = start_dispatcher(&app, &url, &slow);
    app.wait_for_status(id, "sent").await;
    assert_eq!(
        keys(&server).await,
        vec![id.to_string(), id.to_string()],
        "the retry carries the same key, so the transformer drops the duplicate"
    );
    assert_eq!(status_events(&app, w.a, id).await, ["sent"]);
    stop.cancel();
    second.await.unwrap();
}

#[tokio::test]
async fn a_message_that_keeps_failing_is_given_up_after_max_attempts() {
    let server = transformer().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let app = app_delivering_to(
        &format!("{}/messages", server.uri()),
        &[("PORTAL__DISPATCHER__MAX_ATTEMPTS", "3")],
    )
    .await;
    let w = World::new(&app).await;
    let conv = conversation(&app, &w).await;
    let id = app.send_text(conv, &w.agent_token, "doomed").await;

    let row = app.wait_for_status(id, "failed").await;
    let reason = row["failure_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("gave up after 3 attempts") && reason.contains("503"),
        "{reason}"
    );
    assert_eq!(keys(&server).await.len(), 3);
    assert_eq!(app.outbox_len().await, 0);
}

#[tokio::test]
async fn a_message_marked_failed_before_delivery_is_not_sent() {
    let server = transformer().await;
    Mock::given(method("POST"))
        .respond_with(accept())
        .mount(&server)
        .await;
    let url = format!("{}/messages", server.uri());
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let conv = conversation(&app, &w).await;
    let id = app.send_text(conv, &w.agent_token, "never mind").await;
    let (status, body) = app
        .patch(
            &format!("/api/messages/{id}/status"),
            &w.supervisor_token,
            json!({"status": "failed", "failure_reason": "cancelled"}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");

    let (dispatcher, stop) = start_dispatcher(&app, &url, &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.outbox_len().await > 0 {
        assert!(
            Instant::now() < deadline,
            "the outbox row was never dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(keys(&server).await.is_empty());
    assert_eq!(app.message_status(id).await, "failed");
    stop.cancel();
    dispatcher.await.unwrap();
}

/// Applies WhatsApp receipts as the queue consumer will, in a transaction of the agent's tenant.
async fn receipt(app: &TestApp, token: &str, wamid: &str, status: &str) -> ReceiptOutcome {
    let settings = Settings::load_from(
        None,
        [
            ("PORTAL__DATABASE__URL".to_string(), app.app_url.clone()),
            ("PORTAL__AUTH__JWT_SECRET".to_string(), SECRET.to_string()),
        ],
    )
    .unwrap();
    let db = Db::new(portal_shared::db::pool(&settings.database).unwrap());
    let ctx = Authenticator::new(&settings.auth, db.clone())
        .unwrap()
        .authenticate(token)
        .await
        .unwrap();
    let mut tx = db.begin(&ctx).await.unwrap();
    let outcome = receipts::apply(
        &mut tx,
        &Receipt {
            whatsapp_message_id: wamid.to_string(),
            status: serde_json::from_value(json!(status)).unwrap(),
            failure_reason: None,
            at: chrono::Utc::now(),
        },
        None,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    outcome
}

#[tokio::test]
async fn receipts_out_of_order_never_move_a_status_backwards() {
    let server = transformer_answering_first_with(accept()).await;
    let app = app_delivering_to(&format!("{}/messages", server.uri()), &[]).await;
    let w = World::new(&app).await;
    let conv = conversation(&app, &w).await;
    let id = app.send_text(conv, &w.agent_token, "hello").await;
    app.wait_for_status(id, "sent").await;
    let wamid = format!("wamid.{id}");

    assert_eq!(
        receipt(&app, &w.agent_token, &wamid, "read").await,
        ReceiptOutcome::Applied
    );
    // The late `delivered` changes nothing, and writes no event.
    assert_eq!(
        receipt(&app, &w.agent_token, &wamid, "delivered").await,
        ReceiptOutcome::Ignored
    );
    assert_eq!(app.message_status(id).await, "read");
    let statuses: Vec<String> = app
        .events(w.a)
        .await
        .into_iter()
        .filter(|(_, kind, _)| kind == "message:status")
        .map(|(_, _, p)| p["message"]["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(statuses, ["sent", "read"]);
}

#[tokio::test]
async fn a_receipt_before_its_message_is_known_is_kept_and_applied_when_it_is() {
    let server = transformer_answering_first_with(accept()).await;
    let url = format!("{}/messages", server.uri());
    // The API's own dispatcher is off: the message waits, without its WhatsApp id.
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let conv = conversation(&app, &w).await;
    let id = app.send_text(conv, &w.agent_token, "hello").await;
    let wamid = format!("wamid.{id}");

    assert_eq!(
        receipt(&app, &w.agent_token, &wamid, "delivered").await,
        ReceiptOutcome::Kept
    );
    assert_eq!(
        receipt(&app, &w.agent_token, &wamid, "delivered").await,
        ReceiptOutcome::Kept
    );
    assert_eq!(app.message_status(id).await, "pending");

    let (task, stop) = start_dispatcher(&app, &url, &[]);
    app.wait_for_status(id, "delivered").await;
    stop.cancel();
    task.await.unwrap();
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM pending_receipts")
        .fetch_one(&app.owner)
        .await
        .unwrap();
    assert_eq!(kept, 0, "applied once, then forgotten");
}
