//! `run`: warm-up conversations, then `message.received` notifications at a set rate, each
//! timed from its publish to its `message:new` on Redis.
//!
//! Conversation `k` of the run belongs to tenant `k % tenants`; message `i` goes to
//! conversation `i % conversations`, so consecutive messages go to different tenants and
//! conversations, and so to different consumer lanes. Both clocks (the publish stamp in the
//! message text and the arrival on Redis) are this process's, so no clock skew enters.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use tokio::time::Instant;

use crate::prepare::{Plan, Tenant};
use crate::procfs::{CpuMeter, MachineMeter};
use crate::publish::{self, Naming, Publisher, unix_ns};
use crate::subscribe::{Recording, Subscription};

/// How often progress is printed while waiting for events.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(
        long,
        env = "PORTAL__AMQP__URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true
    )]
    amqp_url: String,
    /// The queue the consumer consumes (`PORTAL__CONSUMER__QUEUE`); it must exist (the
    /// consumer declares it when it connects).
    #[arg(long, default_value = "agent.notifications.load")]
    queue: String,
    #[arg(
        long,
        env = "PORTAL__REDIS__URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    redis_url: String,
    /// The Redis pub/sub channel the consumer publishes events to (`PORTAL__EVENTS__CHANNEL`).
    #[arg(long, default_value = "portal:events")]
    channel: String,
    /// The plan written by `prepare`.
    #[arg(long, default_value = "notifications-load.json")]
    plan: PathBuf,
    /// `message.received` notifications to publish (after the warm-up).
    #[arg(long, default_value_t = 60_000)]
    events: u64,
    /// Target notifications per second; 0 publishes as fast as the broker confirms.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Publishing channels, each with its own task and share of the rate.
    #[arg(long, default_value_t = 2)]
    publishers: usize,
    /// Unconfirmed publishes per channel at most.
    #[arg(long, default_value_t = 256)]
    confirm_window: usize,
    /// Seconds the warm-up's `conversation:new` events may take to arrive.
    #[arg(long, default_value_t = 120)]
    warmup_timeout: u64,
    /// After publishing: give up when no event arrived for this many seconds ...
    #[arg(long, default_value_t = 15)]
    idle_timeout: u64,
    /// ... or after this many seconds in all.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// The consumer's process id: its CPU use is reported.
    #[arg(long)]
    consumer_pid: Option<u32>,
    /// Tokio worker threads of this load generator.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Names this run in the JSON summary (the consumer's settings, say).
    #[arg(long, default_value = "")]
    label: String,
    /// Appends the JSON summary line to this file too.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let plan = Plan::load(&args.plan)?;
    anyhow::ensure!(!plan.tenants.is_empty(), "the plan has no tenants");
    anyhow::ensure!(args.events > 0, "--events must be at least 1");
    let publishers = args.publishers.max(1);
    let tenants = Arc::new(plan.tenants);
    let conversations = tenants.len() * plan.conversations_per_tenant;
    anyhow::ensure!(conversations > 0, "the plan has no conversations");
    let naming = Naming::new();
    println!(
        "run {}: {} tenants x {} conversations; queue {}, channel {}",
        naming.run,
        tenants.len(),
        plan.conversations_per_tenant,
        args.queue,
        args.channel
    );

    let subscription = Subscription::start(
        &args.redis_url,
        &args.channel,
        naming.clone(),
        tenants.iter().map(|t| t.id).collect::<HashSet<_>>(),
        args.events,
    )
    .await?;
    let connection = publish::connect(&args.amqp_url).await?;

    // --- warm-up: the conversations, through the consumer like everything else.
    let warmup = Instant::now();
    let mut publisher = Publisher::open(&connection, &args.queue, args.confirm_window).await?;
    let mut body = String::with_capacity(1024);
    for k in 0..conversations {
        publish::conversation_created(&mut body, &naming, &tenants[k % tenants.len()], k);
        publisher.publish(body.as_bytes()).await?;
    }
    publisher.close().await?;
    let opened = wait_for(
        || subscription.progress.conversations.load(Ordering::Relaxed),
        conversations as u64,
        Duration::from_secs(args.warmup_timeout),
        Duration::from_secs(args.warmup_timeout),
        "conversations opened",
    )
    .await;
    let warmup_secs = warmup.elapsed().as_secs_f64();
    println!(
        "warm-up: {opened} of {conversations} conversations opened in {warmup_secs:.1} s ({:.0}/s)",
        opened as f64 / warmup_secs.max(1e-9)
    );
    if opened < conversations as u64 {
        let _ = subscription.finish().await;
        anyhow::bail!(
            "only {opened} of {conversations} conversation:new events arrived within {} s: is the \
             consumer running on queue {} and publishing to channel {}? (see its log)",
            args.warmup_timeout,
            args.queue,
            args.channel
        );
    }

    // --- measured: the messages.
    let meters = Meters::start(args.consumer_pid);
    println!(
        "publishing {} message.received notifications at {} with {publishers} publishers (confirm window {})",
        args.events,
        if args.rate == 0 {
            "full speed".to_string()
        } else {
            format!("{}/s", args.rate)
        },
        args.confirm_window
    );
    let first_publish_unix_ns = unix_ns();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(publishers);
    for p in 0..publishers {
        let publisher = Publisher::open(&connection, &args.queue, args.confirm_window).await?;
        let share = Share {
            first: p as u64,
            step: publishers as u64,
            events: args.events,
            rate: args.rate,
            conversations,
        };
        tasks.push(tokio::spawn(publish_share(
            publisher,
            share,
            naming.clone(),
            tenants.clone(),
            started,
        )));
    }
    let mut behind = Duration::ZERO;
    let mut published = 0u64;
    for task in tasks {
        let (count, late) = task.await.context("a publisher task")??;
        published += count;
        behind = behind.max(late);
    }
    let publish_secs = started.elapsed().as_secs_f64();
    println!(
        "published {published} in {publish_secs:.2} s ({:.0}/s{})",
        published as f64 / publish_secs.max(1e-9),
        if args.rate > 0 {
            format!(
                "; at worst {:.1} ms behind schedule",
                behind.as_secs_f64() * 1000.0
            )
        } else {
            String::new()
        }
    );

    wait_for(
        || subscription.progress.messages.load(Ordering::Relaxed),
        published,
        Duration::from_secs(args.idle_timeout),
        Duration::from_secs(args.timeout),
        "message:new events",
    )
    .await;
    let cpu = meters.finish();
    let recording = subscription.finish().await?;
    let _ = connection.close(200, "bye".into()).await;

    let report = Report::new(
        &args,
        &recording,
        published,
        publish_secs,
        behind,
        first_publish_unix_ns,
        cpu,
    );
    report.print();
    let line = report.to_json(&args, publishers).to_string();
    println!("{line}");
    if let Some(path) = &args.json_out {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(file, "{line}")?;
    }
    anyhow::ensure!(
        report.missing == 0,
        "{} of {published} events never arrived on {} (within {} s without progress / {} s in all)",
        report.missing,
        args.channel,
        args.idle_timeout,
        args.timeout
    );
    Ok(())
}

/// Which messages one publisher sends: `first`, `first + step`, ... below `events`.
#[derive(Debug, Clone, Copy)]
struct Share {
    first: u64,
    step: u64,
    events: u64,
    rate: u64,
    conversations: usize,
}

/// Publishes a share of the messages on schedule (message `i` is due `i / rate` seconds after
/// `started`); returns how many, and how far behind schedule it fell at worst.
async fn publish_share(
    mut publisher: Publisher,
    share: Share,
    naming: Naming,
    tenants: Arc<Vec<Tenant>>,
    started: Instant,
) -> anyhow::Result<(u64, Duration)> {
    let mut body = String::with_capacity(1024);
    let mut behind = Duration::ZERO;
    let mut count = 0u64;
    let mut index = share.first;
    while index < share.events {
        if share.rate > 0 {
            let due = started + Duration::from_secs_f64(index as f64 / share.rate as f64);
            let now = Instant::now();
            if due > now {
                tokio::time::sleep_until(due).await;
            } else {
                behind = behind.max(now - due);
            }
        }
        let conversation = usize::try_from(index % share.conversations as u64)?;
        let tenant = tenants[conversation % tenants.len()].id;
        publish::message_received(&mut body, &naming, tenant, conversation, index, unix_ns());
        publisher.publish(body.as_bytes()).await?;
        count += 1;
        index += share.step;
    }
    publisher.close().await?;
    Ok((count, behind))
}

/// Polls `count` until it reaches `want`, nothing arrives for `idle`, or `limit` passes;
/// prints progress meanwhile. Returns the last count.
async fn wait_for(
    count: impl Fn() -> u64,
    want: u64,
    idle: Duration,
    limit: Duration,
    what: &str,
) -> u64 {
    let started = Instant::now();
    let mut last = count();
    let mut last_progress = Instant::now();
    let mut last_print = Instant::now();
    let mut printed = last;
    while last < want && started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = count();
        if now > last {
            last = now;
            last_progress = Instant::now();
        } else if last_progress.elapsed() >= idle {
            break;
        }
        if last_print.elapsed() >= PROGRESS_EVERY {
            let secs = last_print.elapsed().as_secs_f64();
            println!(
                "  {last}/{want} {what} ({:.0}/s over the last {secs:.0} s)",
                (last - printed) as f64 / secs
            );
            printed = last;
            last_print = Instant::now();
        }
    }
    last
}

/// CPU use of the parts of the pipeline during the measured phase.
#[derive(Debug)]
struct Meters {
    machine: Option<MachineMeter>,
    consumer: Option<CpuMeter>,
    postgres: Option<CpuMeter>,
    rabbitmq: Option<CpuMeter>,
    redis: Option<CpuMeter>,
    load_tool: Option<CpuMeter>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    /// Of all cores, 0..1.
    machine_busy: Option<f64>,
    /// In cores.
    consumer: Option<f64>,
    postgres: Option<f64>,
    rabbitmq: Option<f64>,
    redis: Option<f64>,
    load_tool: Option<f64>,
}

impl Meters {
    fn start(consumer_pid: Option<u32>) -> Self {
        Self {
            machine: MachineMeter::start(),
            consumer: consumer_pid.and_then(CpuMeter::pid),
            postgres: CpuMeter::name("postgres"),
            rabbitmq: CpuMeter::name("beam.smp"),
            redis: CpuMeter::name("redis-server"),
            load_tool: CpuMeter::pid(std::process::id()),
        }
    }

    fn finish(&self) -> Cpu {
        let cores = |m: &Option<CpuMeter>| m.as_ref().and_then(CpuMeter::cores);
        Cpu {
            machine_busy: self.machine.and_then(|m| m.busy_fraction()),
            consumer: cores(&self.consumer),
            postgres: cores(&self.postgres),
            rabbitmq: cores(&self.rabbitmq),
            redis: cores(&self.redis),
            load_tool: cores(&self.load_tool),
        }
    }
}

#[derive(Debug)]
struct Report {
    rate: u64,
    published: u64,
    publish_rate: f64,
    behind: Duration,
    received: u64,
    missing: u64,
    duplicates: u64,
    stray: u64,
    /// From the first publish to the last event's arrival.
    span_secs: f64,
    applied_rate: f64,
    /// Arrivals per whole second between the first and last (ramp-up and tail left out).
    steady: Option<(u64, u64, u64)>,
    p50_us: u64,
    p95_us: u64,
    p99_us: u64,
    p999_us: u64,
    max_us: u64,
    cpu: Cpu,
}

impl Report {
    fn new(
        args: &Args,
        recording: &Recording,
        published: u64,
        publish_secs: f64,
        behind: Duration,
        first_publish_unix_ns: u128,
        cpu: Cpu,
    ) -> Self {
        let missing = recording
            .counts
            .iter()
            .take(usize::try_from(published).unwrap_or(usize::MAX))
            .filter(|c| **c == 0)
            .count() as u64;
        let span_secs = recording
            .last_receipt_unix_ns
            .saturating_sub(first_publish_unix_ns) as f64
            / 1e9;
        let first = u64::try_from(first_publish_unix_ns / 1_000_000_000).unwrap_or(u64::MAX);
        let last = u64::try_from(recording.last_receipt_unix_ns / 1_000_000_000).unwrap_or(0);
        let mut whole: Vec<u64> = (first + 1..last)
            .filter_map(|s| {
                let slot = usize::try_from(s.checked_sub(recording.first_second)?).ok()?;
                Some(recording.per_second.get(slot).copied().unwrap_or(0))
            })
            .collect();
        whole.sort_unstable();
        let steady =
            (!whole.is_empty()).then(|| (whole[0], whole[whole.len() / 2], whole[whole.len() - 1]));
        let h = &recording.latency_us;
        Self {
            rate: args.rate,
            published,
            publish_rate: published as f64 / publish_secs.max(1e-9),
            behind,
            received: recording.received,
            missing,
            duplicates: recording.duplicates,
            stray: recording.stray,
            span_secs,
            applied_rate: recording.received as f64 / span_secs.max(1e-9),
            steady,
            p50_us: h.value_at_quantile(0.50),
            p95_us: h.value_at_quantile(0.95),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            cpu,
        }
    }

    fn print(&self) {
        println!(
            "applied and fanned out: {} of {} events in {:.2} s -> {:.0} events/s{}",
            self.received,
            self.published,
            self.span_secs,
            self.applied_rate,
            self.steady
                .map(|(min, median, max)| format!(
                    " (per whole second: min {min}, median {median}, max {max})"
                ))
                .unwrap_or_default()
        );
        println!(
            "latency publish -> Redis, ms: p50 {} p95 {} p99 {} p99.9 {} max {}",
            ms(self.p50_us),
            ms(self.p95_us),
            ms(self.p99_us),
            ms(self.p999_us),
            ms(self.max_us)
        );
        let c = &self.cpu;
        println!(
            "CPU in cores ({} cores): consumer {}, postgres {}, rabbitmq {}, redis {}, load tool {}; machine {} busy",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            cores(c.consumer),
            cores(c.postgres),
            cores(c.rabbitmq),
            cores(c.redis),
            cores(c.load_tool),
            c.machine_busy
                .map_or_else(|| "-".to_string(), |b| format!("{:.0}%", b * 100.0)),
        );
        println!(
            "missing {}, duplicates {}, stray {}",
            self.missing, self.duplicates, self.stray
        );
    }

    fn to_json(&self, args: &Args, publishers: usize) -> serde_json::Value {
        json!({
            "label": args.label,
            "events": args.events,
            "rate_asked": self.rate,
            "publishers": publishers,
            "published": self.published,
            "publish_rate": round(self.publish_rate, 0),
            "publish_behind_ms": round(self.behind.as_secs_f64() * 1000.0, 1),
            "received": self.received,
            "missing": self.missing,
            "duplicates": self.duplicates,
            "stray": self.stray,
            "span_secs": round(self.span_secs, 3),
            "applied_rate": round(self.applied_rate, 0),
            "steady_min": self.steady.map(|s| s.0),
            "steady_median": self.steady.map(|s| s.1),
            "steady_max": self.steady.map(|s| s.2),
            "p50_ms": self.p50_us as f64 / 1000.0,
            "p95_ms": self.p95_us as f64 / 1000.0,
            "p99_ms": self.p99_us as f64 / 1000.0,
            "p999_ms": self.p999_us as f64 / 1000.0,
            "max_ms": self.max_us as f64 / 1000.0,
            "cpu": {
                "machine_busy": self.cpu.machine_busy.map(|v| round(v, 3)),
                "consumer": self.cpu.consumer.map(|v| round(v, 2)),
                "postgres": self.cpu.postgres.map(|v| round(v, 2)),
                "rabbitmq": self.cpu.rabbitmq.map(|v| round(v, 2)),
                "redis": self.cpu.redis.map(|v| round(v, 2)),
                "load_tool": self.cpu.load_tool.map(|v| round(v, 2)),
            },
        })
    }
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// Microseconds as milliseconds with two decimals.
fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn cores(c: Option<f64>) -> String {
    c.map_or_else(|| "-".into(), |c| format!("{c:.2}"))
}
