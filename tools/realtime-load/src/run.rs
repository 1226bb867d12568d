//! `run`: N sockets, events published to Redis at set rates, each delivery timed.
//!
//! Every event is a `message:new` for an active conversation assigned to one connected agent
//! picked at random, so it reaches exactly that agent's socket (plus every connected
//! supervisor, when `--supervisors` connects some). Its payload carries the time it was
//! published (`load.t_ns`, nanoseconds on this process's monotonic clock); the socket's
//! handler reads the same clock on receipt, so publish and receipt share one clock.
//!
//! `seq`s continue the tenant's counter in Postgres (`tenant_event_counters`), which the
//! service reads as the tenant's head when the first socket connects; at the end the counter
//! is moved to the last `seq` published, so the next run continues from there.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{FutureExt, StreamExt};
use hdrhistogram::Histogram;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_socketio::asynchronous::{Client, ClientBuilder};
use rust_socketio::{Payload, TransportType};
use serde::Serialize;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::prepare::Plan;
use crate::procfs::{CpuMeter, rss_kib};
use crate::stats::{Recorder, Summary, bump, ms};

/// Events per Redis pipeline at most; a publisher running late catches up in such batches.
const MAX_BATCH: u64 = 1000;
/// How long to wait for the last deliveries of a phase once nothing more arrives.
const DRAIN_IDLE: Duration = Duration::from_secs(3);
const DRAIN_MAX: Duration = Duration::from_secs(15);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plan written by `prepare`.
    #[arg(long, default_value = "realtime-load.json")]
    plan: PathBuf,
    /// The realtime service (Socket.IO path `/socket.io/`).
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    url: String,
    /// The HS256 secret the service verifies tokens with.
    #[arg(long, env = "PORTAL__AUTH__JWT_SECRET", hide_env_values = true)]
    jwt_secret: String,
    #[arg(
        long,
        env = "PORTAL__AUTH__ISSUER",
        default_value = "agent-portal-auth"
    )]
    issuer: String,
    #[arg(long, env = "PORTAL__AUTH__AUDIENCE", default_value = "agent-portal")]
    audience: String,
    #[arg(
        long,
        env = "PORTAL__REDIS__URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    redis_url: String,
    /// The Redis pub/sub channel the service subscribes to.
    #[arg(long, env = "PORTAL__EVENTS__CHANNEL", default_value = "portal:events")]
    channel: String,
    /// Agent sockets to open (one per agent of the plan).
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Supervisor sockets to open as well; each receives every event (the tenant's room).
    #[arg(long, default_value_t = 0)]
    supervisors: usize,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    #[arg(long, value_enum, default_value_t = Transport::Websocket)]
    transport: Transport,
    /// Target deliveries per second, one phase each (comma-separated); 0 publishes nothing
    /// (connect and measure memory only).
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    rate: Vec<u64>,
    /// Seconds each phase publishes for.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds to wait after connecting before measuring memory and publishing.
    #[arg(long, default_value_t = 3)]
    settle: u64,
    /// The realtime server's process id: its resident memory and CPU use are reported.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Tokio worker threads of this load generator.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Appends one JSON line per phase (and one for the idle connections) to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Transport {
    /// WebSocket from the start.
    Websocket,
    /// HTTP long-polling, then upgraded to WebSocket (what browsers do).
    Upgrade,
    Polling,
}

impl From<Transport> for TransportType {
    fn from(t: Transport) -> Self {
        match t {
            Transport::Websocket => TransportType::Websocket,
            Transport::Upgrade => TransportType::WebsocketUpgrade,
            Transport::Polling => TransportType::Polling,
        }
    }
}

#[derive(Debug, Serialize)]
struct Claims<'a> {
    sub: Uuid,
    tenant_id: Uuid,
    roles: [&'a str; 1],
    exp: i64,
    iat: i64,
    nbf: i64,
    iss: &'a str,
    aud: &'a str,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let plan = Plan::load(&args.plan)?;
    anyhow::ensure!(
        args.connections <= plan.agents.len(),
        "--connections {} but the plan has {} agents (prepare --agents)",
        args.connections,
        plan.agents.len()
    );
    anyhow::ensure!(
        args.supervisors <= plan.supervisors.len(),
        "--supervisors {} but the plan has {} (prepare --supervisors)",
        args.supervisors,
        plan.supervisors.len()
    );
    let recorder = Arc::new(Recorder::new()?);
    let owner = PgPoolOptions::new()
        .max_connections(1)
        .connect(&plan.owner_url)
        .await
        .context("connecting to the load database as its owner")?;
    let head: i64 = sqlx::query_scalar(
        "SELECT coalesce((SELECT last_seq FROM tenant_event_counters WHERE tenant_id = $1), 0)",
    )
    .bind(plan.tenant_id)
    .fetch_one(&owner)
    .await?;

    // --- connect
    let server_rss_before = args.server_pid.map(rss_kib).transpose()?;
    let own_rss_before = rss_kib(std::process::id())?;
    let (sockets, connect) = connect_all(&args, &plan, &recorder).await?;
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    let server_rss_idle = args.server_pid.map(rss_kib).transpose()?;
    let own_rss_idle = rss_kib(std::process::id())?;
    let connected = sockets.agents.len() + sockets.supervisors;
    println!(
        "connected {connected} of {} sockets in {:.1} s ({:.0}/s, {} at once); per connection \
         p50 {} ms, p99 {} ms, max {} ms; failed {}{}",
        connect.attempted,
        connect.elapsed.as_secs_f64(),
        connected as f64 / connect.elapsed.as_secs_f64().max(1e-9),
        args.connect_concurrency,
        ms(connect.latency_us.value_at_quantile(0.5)),
        ms(connect.latency_us.value_at_quantile(0.99)),
        ms(connect.latency_us.max()),
        connect.failed,
        connect
            .first_error
            .as_deref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default(),
    );
    let per_conn_kib = match (server_rss_before, server_rss_idle) {
        (Some(before), Some(idle)) if connected > 0 => {
            let per = (idle as f64 - before as f64) / connected as f64;
            println!(
                "server RSS: {before} KiB before, {idle} KiB with {connected} idle connections \
                 -> {per:.2} KiB per idle connection"
            );
            Some(per)
        }
        _ => None,
    };
    println!(
        "load generator RSS: {own_rss_before} KiB before, {own_rss_idle} KiB connected ({:.1} KiB per client)",
        (own_rss_idle as f64 - own_rss_before as f64) / connected.max(1) as f64
    );
    append_json(
        args.json_out.as_deref(),
        &json!({
            "kind": "idle",
            "connections": connected,
            "failed": connect.failed,
            "connect_secs": connect.elapsed.as_secs_f64(),
            "connect_p99_ms": connect.latency_us.value_at_quantile(0.99) as f64 / 1000.0,
            "server_rss_before_kib": server_rss_before,
            "server_rss_idle_kib": server_rss_idle,
            "server_kib_per_connection": per_conn_kib,
        }),
    )?;

    // --- publish
    let mut redis = redis::Client::open(args.redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await
        .context("connecting to Redis")?;
    let targets: Vec<String> = sockets
        .agents
        .iter()
        .map(|agent| event_prefix(plan.tenant_id, *agent, Uuid::new_v4()))
        .collect();
    let per_event = u8::try_from(1 + sockets.supervisors).context("too many supervisors")?;
    let mut last_seq = head;
    let mut rows = Vec::new();
    let mut outcome = Ok(());
    for &rate in args.rate.iter().filter(|r| **r > 0) {
        if targets.is_empty() {
            outcome = Err(anyhow::anyhow!(
                "no agent socket connected: nothing to publish to"
            ));
            break;
        }
        let phase = Phase {
            rate,
            per_event,
            duration: Duration::from_secs(args.duration),
        };
        match run_phase(
            &args,
            &phase,
            &recorder,
            &mut redis,
            &targets,
            &mut last_seq,
        )
        .await
        {
            Ok(row) => {
                append_json(args.json_out.as_deref(), &row.to_json(connected))?;
                rows.push(row);
            }
            Err(err) => {
                outcome = Err(err);
                break;
            }
        }
        // Let the server drain its queues before the next phase.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    if last_seq > head {
        // The service reads the tenant's head from here when a tenant's first socket connects.
        sqlx::query(
            "INSERT INTO tenant_event_counters (tenant_id, last_seq) VALUES ($1, $2) \
             ON CONFLICT (tenant_id) DO UPDATE SET last_seq = EXCLUDED.last_seq",
        )
        .bind(plan.tenant_id)
        .bind(last_seq)
        .execute(&owner)
        .await?;
    }
    owner.close().await;

    if !rows.is_empty() {
        println!();
        println!(
            "| connections | asked deliveries/s | achieved deliveries/s | p50 ms | p95 ms | p99 ms | p99.9 ms | max ms | lost | dup | server CPU (cores) | load tool CPU (cores) |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
        for row in &rows {
            let s = &row.summary;
            println!(
                "| {connected} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                row.rate,
                row.achieved,
                ms(s.p50_us),
                ms(s.p95_us),
                ms(s.p99_us),
                ms(s.p999_us),
                ms(s.max_us),
                s.lost,
                s.duplicates,
                cores(row.server_cores),
                cores(row.own_cores),
            );
        }
    }

    // --- disconnect
    futures::stream::iter(sockets.clients)
        .for_each_concurrent(256, |client| async move {
            let _ = client.disconnect().await;
        })
        .await;
    outcome
}

fn cores(c: Option<f64>) -> String {
    c.map_or_else(|| "-".into(), |c| format!("{c:.2}"))
}

fn append_json(path: Option<&std::path::Path>, value: &serde_json::Value) -> anyhow::Result<()> {
    use std::io::Write;
    let Some(path) = path else { return Ok(()) };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(file, "{value}")?;
    Ok(())
}

// --- connecting

struct Sockets {
    clients: Vec<Client>,
    /// The agents whose socket is connected: the events' assignees.
    agents: Vec<Uuid>,
    supervisors: usize,
}

impl std::fmt::Debug for Sockets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sockets")
            .field("clients", &self.clients.len())
            .field("agents", &self.agents.len())
            .field("supervisors", &self.supervisors)
            .finish()
    }
}

#[derive(Debug)]
struct ConnectReport {
    attempted: usize,
    failed: usize,
    first_error: Option<String>,
    elapsed: Duration,
    latency_us: Histogram<u64>,
}

async fn connect_all(
    args: &Args,
    plan: &Plan,
    recorder: &Arc<Recorder>,
) -> anyhow::Result<(Sockets, ConnectReport)> {
    let who: Vec<(Uuid, &str)> = plan.agents[..args.connections]
        .iter()
        .map(|id| (*id, "agent"))
        .chain(
            plan.supervisors[..args.supervisors]
                .iter()
                .map(|id| (*id, "supervisor")),
        )
        .collect();
    let attempted = who.len();
    let key = EncodingKey::from_secret(args.jwt_secret.as_bytes());
    let now = chrono::Utc::now().timestamp();
    let mut tokens = Vec::with_capacity(who.len());
    for (id, role) in &who {
        let claims = Claims {
            sub: *id,
            tenant_id: plan.tenant_id,
            roles: [role],
            exp: now + 3600,
            iat: now,
            nbf: now,
            iss: &args.issuer,
            aud: &args.audience,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)?;
        tokens.push((*id, *role, token));
    }

    let started = Instant::now();
    let mut report = ConnectReport {
        attempted,
        failed: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        latency_us: Histogram::new_with_bounds(1, 60_000_000, 3)?,
    };
    let mut sockets = Sockets {
        clients: Vec::with_capacity(attempted),
        agents: Vec::with_capacity(attempted),
        supervisors: 0,
    };
    let transport = args.transport;
    let mut results = futures::stream::iter(tokens)
        .map(|(id, role, token)| {
            let recorder = recorder.clone();
            async move {
                let result = connect_one(&args.url, token, transport, recorder).await;
                (id, role, result)
            }
        })
        .buffer_unordered(args.connect_concurrency.max(1));
    let mut done = 0usize;
    while let Some((id, role, result)) = results.next().await {
        done += 1;
        match result {
            Ok((client, took)) => {
                report
                    .latency_us
                    .saturating_record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
                sockets.clients.push(client);
                if role == "agent" {
                    sockets.agents.push(id);
                } else {
                    sockets.supervisors += 1;
                }
            }
            Err(err) => {
                report.failed += 1;
                if report.first_error.is_none() {
                    report.first_error = Some(format!("{err:#}"));
                }
            }
        }
        if done.is_multiple_of(2000) {
            println!(
                "  {done}/{attempted} connections attempted ({} failed) after {:.1} s",
                report.failed,
                started.elapsed().as_secs_f64()
            );
        }
    }
    report.elapsed = started.elapsed();
    Ok((sockets, report))
}

type Opened = Arc<Mutex<Option<oneshot::Sender<Result<(), String>>>>>;

fn take(opened: &Opened) -> Option<oneshot::Sender<Result<(), String>>> {
    opened.lock().unwrap_or_else(PoisonError::into_inner).take()
}

/// Opens one socket and waits for the server to accept its handshake.
async fn connect_one(
    url: &str,
    token: String,
    transport: Transport,
    recorder: Arc<Recorder>,
) -> anyhow::Result<(Client, Duration)> {
    const TIMEOUT: Duration = Duration::from_secs(20);
    let started = Instant::now();
    let (tx, rx) = oneshot::channel();
    let opened: Opened = Arc::new(Mutex::new(Some(tx)));
    let (on_open, on_error) = (opened.clone(), opened);
    let (on_message, on_close, errors) = (recorder.clone(), recorder.clone(), recorder);
    let connecting = ClientBuilder::new(url)
        .transport_type(transport.into())
        .auth(json!({ "token": token }))
        .reconnect(false)
        .reconnect_on_disconnect(false)
        .on("open", move |_, _| {
            if let Some(tx) = take(&on_open) {
                let _ = tx.send(Ok(()));
            }
            async {}.boxed()
        })
        .on("error", move |payload, _| {
            match take(&on_error) {
                Some(tx) => {
                    let _ = tx.send(Err(describe(&payload)));
                }
                None => bump(&errors.errors),
            }
            async {}.boxed()
        })
        .on("close", move |_, _| {
            bump(&on_close.closed);
            async {}.boxed()
        })
        .on("message:new", move |payload, _| {
            match &payload {
                Payload::Text(values) => on_message.receipt(values.first()),
                _ => on_message.receipt(None),
            }
            async {}.boxed()
        })
        .connect();
    let client = tokio::time::timeout(TIMEOUT, connecting)
        .await
        .context("timed out opening the connection")??;
    let left = TIMEOUT.saturating_sub(started.elapsed());
    let accepted = match tokio::time::timeout(left, rx).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(refusal))) => Err(anyhow::anyhow!("refused: {refusal}")),
        Ok(Err(_)) => Err(anyhow::anyhow!("the client went away before the handshake")),
        Err(_) => Err(anyhow::anyhow!("timed out waiting for the handshake")),
    };
    match accepted {
        Ok(()) => Ok((client, started.elapsed())),
        Err(err) => {
            let _ = client.disconnect().await;
            Err(err)
        }
    }
}

fn describe(payload: &Payload) -> String {
    match payload {
        Payload::Text(values) => values
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" "),
        Payload::Binary(bytes) => format!("{} bytes of binary", bytes.len()),
        #[allow(deprecated)]
        Payload::String(s) => s.clone(),
    }
}

// --- publishing

#[derive(Debug)]
struct Phase {
    /// Deliveries per second asked for.
    rate: u64,
    /// Sockets each event reaches: its agent and every connected supervisor.
    per_event: u8,
    duration: Duration,
}

#[derive(Debug)]
struct Row {
    rate: u64,
    published: usize,
    publish_rate: f64,
    /// How far the publisher fell behind its schedule at worst.
    publish_behind: Duration,
    achieved: f64,
    summary: Summary,
    closed: u64,
    errors: u64,
    server_cores: Option<f64>,
    own_cores: Option<f64>,
    server_rss_kib: Option<u64>,
}

impl Row {
    fn to_json(&self, connections: usize) -> serde_json::Value {
        let s = &self.summary;
        json!({
            "kind": "phase",
            "connections": connections,
            "rate_asked": self.rate,
            "rate_achieved": self.achieved,
            "published": self.published,
            "publish_rate": self.publish_rate,
            "publish_behind_ms": self.publish_behind.as_secs_f64() * 1000.0,
            "received": s.received,
            "lost": s.lost,
            "duplicates": s.duplicates,
            "stray": s.stray,
            "p50_ms": s.p50_us as f64 / 1000.0,
            "p95_ms": s.p95_us as f64 / 1000.0,
            "p99_ms": s.p99_us as f64 / 1000.0,
            "p999_ms": s.p999_us as f64 / 1000.0,
            "max_ms": s.max_us as f64 / 1000.0,
            "sockets_closed": self.closed,
            "socket_errors": self.errors,
            "server_cpu_cores": self.server_cores,
            "load_tool_cpu_cores": self.own_cores,
            "server_rss_kib": self.server_rss_kib,
        })
    }
}

async fn run_phase(
    args: &Args,
    phase: &Phase,
    recorder: &Recorder,
    redis: &mut redis::aio::MultiplexedConnection,
    targets: &[String],
    last_seq: &mut i64,
) -> anyhow::Result<Row> {
    let events_per_sec = phase.rate as f64 / f64::from(phase.per_event);
    let planned = (events_per_sec * phase.duration.as_secs_f64()).ceil() as u64;
    let first_seq = *last_seq + 1;
    recorder.start_phase(first_seq, usize::try_from(planned)?);
    let closed_before = recorder.closed.load(std::sync::atomic::Ordering::Relaxed);
    let errors_before = recorder.errors.load(std::sync::atomic::Ordering::Relaxed);
    let server_cpu = args.server_pid.and_then(CpuMeter::start);
    let own_cpu = CpuMeter::start(std::process::id());
    println!(
        "phase: {} deliveries/s ({events_per_sec:.0} events/s x {} sockets each) for {} s, seq {first_seq}..",
        phase.rate,
        phase.per_event,
        phase.duration.as_secs()
    );

    let started_at = recorder.since_epoch();
    let started = tokio::time::Instant::now();
    let mut rng = StdRng::from_os_rng();
    let mut published = 0u64;
    let mut behind = Duration::ZERO;
    let mut line = String::with_capacity(1024);
    while started.elapsed() < phase.duration && published < planned {
        let elapsed = started.elapsed();
        let due = ((events_per_sec * elapsed.as_secs_f64()) as u64).min(planned);
        let n = due.saturating_sub(published).min(MAX_BATCH);
        if n == 0 {
            let next = Duration::from_secs_f64((published + 1) as f64 / events_per_sec);
            tokio::time::sleep_until(started + next).await;
            continue;
        }
        let scheduled = Duration::from_secs_f64(published as f64 / events_per_sec);
        behind = behind.max(elapsed.saturating_sub(scheduled));
        let created_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let mut pipe = redis::pipe();
        // Stamped before the batch is built: the latency includes building and sending it.
        let t_ns = recorder.now_ns();
        for _ in 0..n {
            *last_seq += 1;
            let target = &targets[rng.random_range(0..targets.len())];
            line.clear();
            line.push_str(target);
            event_suffix(&mut line, t_ns, *last_seq, &created_at);
            pipe.cmd("PUBLISH")
                .arg(&args.channel)
                .arg(line.as_str())
                .ignore();
        }
        pipe.query_async::<()>(redis)
            .await
            .context("publishing to Redis")?;
        published += n;
    }
    let publish_secs = started.elapsed().as_secs_f64();

    // Wait for the stragglers.
    let expected = published * u64::from(phase.per_event);
    let drain_started = Instant::now();
    let mut last_count = recorder.received();
    let mut last_progress = Instant::now();
    while last_count < expected && drain_started.elapsed() < DRAIN_MAX {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let count = recorder.received();
        if count > last_count {
            last_count = count;
            last_progress = Instant::now();
        } else if last_progress.elapsed() >= DRAIN_IDLE {
            break;
        }
    }
    let server_cores = server_cpu.and_then(|m| m.cores());
    let own_cores = own_cpu.and_then(|m| m.cores());
    let summary = recorder.summary(usize::try_from(published)?, phase.per_event);
    let span = summary
        .last_receipt
        .saturating_sub(started_at)
        .as_secs_f64()
        .max(1e-9);
    let row = Row {
        rate: phase.rate,
        published: usize::try_from(published)?,
        publish_rate: published as f64 / publish_secs.max(1e-9),
        publish_behind: behind,
        achieved: summary.received as f64 / span,
        closed: recorder.closed.load(std::sync::atomic::Ordering::Relaxed) - closed_before,
        errors: recorder.errors.load(std::sync::atomic::Ordering::Relaxed) - errors_before,
        summary,
        server_cores,
        own_cores,
        server_rss_kib: args.server_pid.and_then(|pid| rss_kib(pid).ok()),
    };
    let s = &row.summary;
    println!(
        "  published {} events ({:.0}/s; at worst {:.1} ms behind schedule); received {} deliveries \
         ({:.0}/s); lost {}, duplicates {}, stray {}; sockets closed {}, errors {}",
        row.published,
        row.publish_rate,
        row.publish_behind.as_secs_f64() * 1000.0,
        s.received,
        row.achieved,
        s.lost,
        s.duplicates,
        s.stray,
        row.closed,
        row.errors,
    );
    println!(
        "  latency ms: p50 {} p95 {} p99 {} p99.9 {} max {}; CPU: server {} cores, load tool {} cores; server RSS {} KiB",
        ms(s.p50_us),
        ms(s.p95_us),
        ms(s.p99_us),
        ms(s.p999_us),
        ms(s.max_us),
        cores(row.server_cores),
        cores(row.own_cores),
        row.server_rss_kib
            .map_or_else(|| "-".to_string(), |k| k.to_string()),
    );
    Ok(row)
}

/// The start of an event for `agent`, up to the publish stamp: a `message:new` of an active
/// conversation assigned to it, as the API publishes one.
fn event_prefix(tenant: Uuid, agent: Uuid, conversation: Uuid) -> String {
    let message = Uuid::new_v4();
    format!(
        concat!(
            r#"{{"tenant_id":"{tenant}","type":"message:new","payload":{{"#,
            r#""conversation":{{"id":"{conversation}","state":"active","assignee":{{"id":"{agent}"}}}},"#,
            r#""message":{{"id":"{message}","conversation_id":"{conversation}","direction":"inbound","#,
            r#""sender_type":"customer","content_type":"text","#,
            r#""body":"Hello, could you tell me where my order is? It was due yesterday.","status":"received"}},"#,
            r#""load":{{"t_ns":"#
        ),
        tenant = tenant,
        conversation = conversation,
        agent = agent,
        message = message,
    )
}

/// Completes an event begun by [`event_prefix`].
fn event_suffix(line: &mut String, t_ns: u64, seq: i64, created_at: &str) {
    use std::fmt::Write;
    let _ = write!(
        line,
        r#"{t_ns}}}}},"seq":{seq},"created_at":"{created_at}"}}"#
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use portal_shared::events::{Event, Room, rooms_for};
    use portal_shared::ids::{AgentId, TenantId};

    #[test]
    fn events_are_what_the_service_expects() {
        let (tenant, agent, conversation) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut line = event_prefix(tenant, agent, conversation);
        event_suffix(&mut line, 1234, 42, "2026-01-02T03:04:05.000006Z");
        let event: Event = serde_json::from_str(&line).unwrap();
        assert_eq!(event.seq, 42);
        assert_eq!(event.tenant_id, TenantId(tenant));
        assert_eq!(event.event_type, "message:new");
        assert_eq!(event.payload["load"]["t_ns"], 1234);
        let rooms = rooms_for(&event);
        assert!(rooms.contains(&Room::Agent(AgentId(agent))));
        assert!(rooms.contains(&Room::Tenant(TenantId(tenant))));
    }
}
