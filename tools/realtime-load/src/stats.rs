//! What the sockets received: latency of each delivery, and which `seq`s arrived how often.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::Value;

/// Latencies are recorded in microseconds, up to a minute, to 3 significant figures.
const MAX_LATENCY_US: u64 = 60_000_000;

/// Shared by every socket's `message:new` handler and the driver of a run.
#[derive(Debug)]
pub struct Recorder {
    /// The one clock of the run: publish stamps and receipts are both read from it.
    epoch: Instant,
    phase: Mutex<Phase>,
    /// Socket.IO `close` and `error` events after connecting (server disconnects, say).
    pub closed: AtomicU64,
    pub errors: AtomicU64,
}

#[derive(Debug)]
struct Phase {
    latency_us: Histogram<u64>,
    /// The first `seq` of the phase; `counts[i]` is how often `base + i` arrived.
    base: i64,
    counts: Vec<u8>,
    received: u64,
    /// Receipts of events from before the phase (late stragglers) or malformed.
    stray: u64,
    last_receipt_ns: u64,
}

/// The outcome of one phase.
#[derive(Debug, Clone)]
pub struct Summary {
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub stray: u64,
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// When the last delivery arrived, on the run's clock.
    pub last_receipt: Duration,
}

impl Recorder {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            epoch: Instant::now(),
            phase: Mutex::new(Phase {
                latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?,
                base: 0,
                counts: Vec::new(),
                received: 0,
                stray: 0,
                last_receipt_ns: 0,
            }),
            closed: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        })
    }

    /// Nanoseconds since the run started: the publish stamp.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub fn since_epoch(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn lock(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a phase whose events are `first_seq` and up.
    pub fn start_phase(&self, first_seq: i64, events: usize) {
        let mut phase = self.lock();
        phase.latency_us.reset();
        phase.base = first_seq;
        phase.counts = vec![0; events];
        phase.received = 0;
        phase.stray = 0;
        phase.last_receipt_ns = 0;
    }

    /// A `message:new` payload arrived: `{ seq, ..., load: { t_ns } }`.
    pub fn receipt(&self, payload: Option<&Value>) {
        let now = self.now_ns();
        let seq = payload.and_then(|p| p.get("seq")).and_then(Value::as_i64);
        let sent = payload
            .and_then(|p| p.get("load"))
            .and_then(|l| l.get("t_ns"))
            .and_then(Value::as_u64);
        let mut phase = self.lock();
        let (Some(seq), Some(sent)) = (seq, sent) else {
            phase.stray += 1;
            return;
        };
        let Some(index) = seq
            .checked_sub(phase.base)
            .and_then(|i| usize::try_from(i).ok())
        else {
            phase.stray += 1;
            return;
        };
        if index >= phase.counts.len() {
            phase.counts.resize(index + 1, 0);
        }
        phase.counts[index] = phase.counts[index].saturating_add(1);
        phase.received += 1;
        phase.last_receipt_ns = phase.last_receipt_ns.max(now);
        let latency_us = now.saturating_sub(sent) / 1000;
        phase
            .latency_us
            .saturating_record(latency_us.clamp(1, MAX_LATENCY_US));
    }

    pub fn received(&self) -> u64 {
        self.lock().received
    }

    /// `published` events went out, each for `per_event` sockets.
    pub fn summary(&self, published: usize, per_event: u8) -> Summary {
        let phase = self.lock();
        let (mut lost, mut duplicates) = (0u64, 0u64);
        for i in 0..published.max(phase.counts.len()) {
            let got = phase.counts.get(i).copied().unwrap_or(0);
            let want = if i < published { per_event } else { 0 };
            lost += u64::from(want.saturating_sub(got));
            duplicates += u64::from(got.saturating_sub(want));
        }
        let h = &phase.latency_us;
        Summary {
            received: phase.received,
            lost,
            duplicates,
            stray: phase.stray,
            p50_us: h.value_at_quantile(0.50),
            p95_us: h.value_at_quantile(0.95),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            last_receipt: Duration::from_nanos(phase.last_receipt_ns),
        }
    }
}

/// Microseconds as milliseconds with two decimals.
pub fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

/// Counts once per call site, for handler closures that only get `&Recorder`.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
