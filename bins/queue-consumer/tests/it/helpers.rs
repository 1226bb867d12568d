//! The harness: a running API and its database, a queue of the test's own, consumers started
//! on demand, a publisher, a reader of the dead-letter queue, the Redis events, and a TCP proxy
//! between a consumer and the broker that a test can stall or cut.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeDeleteOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use portal_shared::config::Settings;
use serde_json::{Value, json};
use testkit::{TestApp, World};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;
use uuid::Uuid;

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

pub struct Harness {
    pub app: TestApp,
    pub world: World,
    pub queue: String,
    channel: Channel,
    _connection: Connection,
    events: Mutex<mpsc::UnboundedReceiver<Value>>,
    _subscriber: JoinHandle<()>,
}

/// A message from the dead-letter queue.
#[derive(Debug)]
pub struct DeadLetter {
    pub reason: String,
    pub detail: String,
    pub body: Vec<u8>,
    pub headers: FieldTable,
}

pub struct Running {
    pub base: String,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    /// As SIGTERM does: stop taking messages, finish those in flight, return.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(20), handle)
                .await
                .expect("the consumer did not stop")
                .unwrap()
                .unwrap();
        }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    pub async fn wait_ready(&self, ready: bool) {
        let want = if ready { 200 } else { 503 };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, body) = self.get("/readyz").await;
            if status == want {
                return;
            }
            assert!(Instant::now() < deadline, "readyz stayed {status}: {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A counter or gauge from `/metrics`, 0 when absent.
    pub async fn metric(&self, name_and_labels: &str) -> f64 {
        let (_, body) = self.get("/metrics").await;
        body.lines()
            .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

impl Harness {
    pub async fn new() -> Self {
        Self::with_api(&[]).await
    }

    /// With extra `PORTAL__*` settings for the API (a dispatcher, say).
    pub async fn with_api(api: &[(&str, &str)]) -> Self {
        // RUST_LOG=queue_consumer=debug shows the consumer's log in a failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let app = TestApp::spawn_with(api).await;
        let world = World::new(&app).await;
        let queue = format!("agent.notifications.test-{}", Uuid::new_v4().simple());
        let connection = Connection::connect(AMQP_URL, ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        // The consumer declares the topology; the test declares it too so it can publish first.
        queue_consumer::topology::declare(
            &channel,
            &queue_consumer::topology::Names::new(&queue),
            20,
        )
        .await
        .unwrap();

        let (tx, rx) = mpsc::unbounded_channel();
        let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        pubsub.subscribe(&app.channel).await.unwrap();
        let subscriber = tokio::spawn(async move {
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                let payload: String = message.get_payload().unwrap();
                if tx.send(serde_json::from_str(&payload).unwrap()).is_err() {
                    return;
                }
            }
        });
        Self {
            app,
            world,
            queue,
            channel,
            _connection: connection,
            events: Mutex::new(rx),
            _subscriber: subscriber,
        }
    }

    pub fn settings(&self, amqp_url: &str, extra: &[(&str, &str)]) -> Settings {
        let mut env: Vec<(String, String)> = [
            ("PORTAL__DATABASE__URL", self.app.app_url.as_str()),
            ("PORTAL__DATABASE__MAX_CONNECTIONS", "8"),
            ("PORTAL__AMQP__URL", amqp_url),
            ("PORTAL__AUTH__JWT_SECRET", testkit::SECRET),
            ("PORTAL__EVENTS__CHANNEL", self.app.channel.as_str()),
            ("PORTAL__CONSUMER__QUEUE", self.queue.as_str()),
            ("PORTAL__CONSUMER__CONCURRENCY", "4"),
            ("PORTAL__CONSUMER__RECONNECT_INITIAL_MS", "100"),
            ("PORTAL__CONSUMER__RECONNECT_MAX_MS", "500"),
            ("PORTAL__HTTP__SHUTDOWN_GRACE_SECS", "10"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Settings::load_from(None, env).unwrap()
    }

    /// Starts a consumer and waits until it is consuming.
    pub async fn start(&self, extra: &[(&str, &str)]) -> Running {
        let running = self.start_via(AMQP_URL, extra).await;
        running.wait_ready(true).await;
        running
    }

    /// Starts a consumer connecting to `amqp_url` (a proxy, say), without waiting.
    pub async fn start_via(&self, amqp_url: &str, extra: &[(&str, &str)]) -> Running {
        let settings = self.settings(amqp_url, extra);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(queue_consumer::run(settings, listener, async {
            let _ = rx.await;
        }));
        Running {
            base,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    pub async fn publish_raw(&self, body: &[u8], headers: FieldTable) {
        let confirm = self
            .channel
            .basic_publish(
                "".into(),
                self.queue.as_str().into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default()
                    .with_content_type("application/json".into())
                    .with_delivery_mode(2)
                    .with_headers(headers),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
    }

    /// Publishes a v1 notification and returns its `event_id`.
    pub async fn publish(&self, tenant: Uuid, kind: &str, data: Value) -> Uuid {
        let event_id = Uuid::now_v7();
        self.publish_envelope(&envelope(event_id, tenant, kind, data))
            .await;
        event_id
    }

    pub async fn publish_envelope(&self, envelope: &Value) {
        let mut headers = FieldTable::default();
        headers.insert(
            "traceparent".into(),
            AMQPValue::LongString(LongString::from(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )),
        );
        self.publish_raw(envelope.to_string().as_bytes(), headers)
            .await;
    }

    /// Waits for `n` messages in the dead-letter queue and takes them.
    pub async fn dead_letters(&self, n: usize) -> Vec<DeadLetter> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut letters = Vec::new();
        while letters.len() < n {
            let got = self
                .channel
                .basic_get(
                    format!("{}.dlq", self.queue).as_str().into(),
                    BasicGetOptions::default(),
                )
                .await
                .unwrap();
            match got {
                Some(message) => {
                    let delivery = message.delivery;
                    delivery.ack(BasicAckOptions::default()).await.unwrap();
                    let headers = delivery.properties.headers().clone().unwrap_or_default();
                    letters.push(DeadLetter {
                        reason: queue_consumer::forward::header_text(
                            &headers,
                            queue_consumer::forward::REASON_HEADER,
                        )
                        .unwrap_or_default(),
                        detail: queue_consumer::forward::header_text(
                            &headers,
                            queue_consumer::forward::DETAIL_HEADER,
                        )
                        .unwrap_or_default(),
                        body: delivery.data,
                        headers,
                    });
                }
                None => {
                    assert!(
                        Instant::now() < deadline,
                        "only {} of {n} dead letters arrived: {letters:?}",
                        letters.len()
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        letters
    }

    /// Messages ready in a queue (`""` the main one, or a suffix such as `".dlq"`).
    pub async fn depth(&self, suffix: &str) -> u32 {
        let queue = self
            .channel
            .queue_declare(
                format!("{}{suffix}", self.queue).as_str().into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        queue.message_count()
    }

    /// The next event published to Redis whose type is `event_type` (others are skipped).
    pub async fn next_event(&self, event_type: &str) -> Value {
        let mut events = self.events.lock().await;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = tokio::time::timeout(left, events.recv())
                .await
                .unwrap_or_else(|_| panic!("no {event_type} event arrived"))
                .unwrap();
            if event["type"] == event_type {
                return event;
            }
        }
    }

    /// Waits until `sql` (a count, as the owner) returns `want`.
    pub async fn wait_count(&self, sql: &str, want: i64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.count(sql).await;
            if got == want {
                return;
            }
            assert!(Instant::now() < deadline, "{sql}: {got}, waited for {want}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(&self.app.owner)
            .await
            .unwrap()
    }

    /// The texts of the conversation upstream knows as `state_manager_id`, oldest first.
    pub async fn texts(&self, state_manager_id: &str) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT m.body FROM messages m JOIN conversations c ON c.id = m.conversation_id \
             WHERE c.state_manager_id = $1 ORDER BY m.created_at, m.id",
        )
        .bind(state_manager_id)
        .fetch_all(&self.app.owner)
        .await
        .unwrap()
    }

    /// The tenant's event types in sequence order, once the sequence is checked to be
    /// numbered from 1 without gaps.
    pub async fn event_types(&self, tenant: Uuid) -> Vec<String> {
        let events = self.app.events(tenant).await;
        let seqs: Vec<i64> = events.iter().map(|(seq, _, _)| *seq).collect();
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
        events.into_iter().map(|(_, kind, _)| kind).collect()
    }

    /// The conversation upstream knows as `state_manager_id`, as a supervisor sees it.
    pub async fn conversation(&self, state_manager_id: &str) -> Value {
        let id: Uuid =
            sqlx::query_scalar("SELECT id FROM conversations WHERE state_manager_id = $1")
                .bind(state_manager_id)
                .fetch_one(&self.app.owner)
                .await
                .unwrap();
        let (status, body) = self
            .app
            .get(
                &format!("/api/conversations/{id}"),
                &self.world.supervisor_token,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Removes the test's queues and exchange.
    pub async fn finish(self) {
        for suffix in ["", ".dlq", ".wait"] {
            let _ = self
                .channel
                .queue_delete(
                    format!("{}{suffix}", self.queue).as_str().into(),
                    QueueDeleteOptions::default(),
                )
                .await;
        }
        let _ = self
            .channel
            .exchange_delete(
                format!("{}.dlx", self.queue).as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await;
        self.app.stop().await.unwrap();
    }
}

pub fn envelope(event_id: Uuid, tenant: Uuid, kind: &str, data: Value) -> Value {
    json!({
        "version": 1,
        "event_id": event_id,
        "type": kind,
        "tenant_id": tenant,
        "occurred_at": chrono::Utc::now().to_rfc3339(),
        "data": data,
    })
}

pub fn created(state_manager_id: &str, phone: &str, name: &str) -> Value {
    json!({
        "conversation": { "state_manager_id": state_manager_id },
        "customer": { "phone_e164": phone, "display_name": name },
    })
}

pub fn received(state_manager_id: &str, wamid: &str, text: &str) -> Value {
    json!({
        "state_manager_id": state_manager_id,
        "whatsapp_message_id": wamid,
        "sent_at": chrono::Utc::now().to_rfc3339(),
        "text": text,
    })
}

/// A TCP proxy in front of the broker. `stall` holds everything the consumer sends (its acks,
/// say) without passing it on; `cut` drops every connection, as a broker restart or a network
/// failure would; while `down`, new connections are dropped at once.
pub struct Proxy {
    pub url: String,
    stalled: Arc<AtomicBool>,
    down: Arc<AtomicBool>,
    connections: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("amqp://guest:guest@{}/%2f", listener.local_addr().unwrap());
        let stalled = Arc::new(AtomicBool::new(false));
        let down = Arc::new(AtomicBool::new(false));
        let connections: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = {
            let stalled = stalled.clone();
            let down = down.clone();
            let connections = connections.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    if down.load(Ordering::SeqCst) {
                        continue;
                    }
                    let stalled = stalled.clone();
                    let task = tokio::spawn(async move {
                        let Ok(broker) = TcpStream::connect("127.0.0.1:5672").await else {
                            return;
                        };
                        pipe(client, broker, stalled).await;
                    });
                    connections.lock().unwrap().push(task);
                }
            })
        };
        Self {
            url,
            stalled,
            down,
            connections,
            accept,
        }
    }

    pub fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }

    /// Cuts every connection and refuses new ones until [`Proxy::up`].
    pub fn down(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut();
    }

    pub fn up(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    pub fn cut(&self) {
        self.stalled.store(false, Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn pipe(client: TcpStream, broker: TcpStream, stalled: Arc<AtomicBool>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_read, mut client_write) = client.into_split();
    let (mut broker_read, mut broker_write) = broker.into_split();
    let upstream = async {
        let mut buf = vec![0u8; 64 * 1024];
        let mut held = Vec::new();
        loop {
            let n = client_read.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            if stalled.load(Ordering::SeqCst) {
                held.extend_from_slice(&buf[..n]);
                continue;
            }
            if !held.is_empty()
                && broker_write
                    .write_all(&std::mem::take(&mut held))
                    .await
                    .is_err()
            {
                return;
            }
            if broker_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let downstream = async {
        let _ = tokio::io::copy(&mut broker_read, &mut client_write).await;
    };
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
    }
}
