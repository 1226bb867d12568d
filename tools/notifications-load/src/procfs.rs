//! CPU use from `/proc` (Linux): the whole machine, one process, and all processes of a name
//! (Postgres forks a backend per connection; RabbitMQ is one `beam.smp`).

use std::time::Instant;

use anyhow::Context;

/// Clock ticks per second of `/proc` times (USER_HZ: 100 on Linux x86-64 and arm64).
const TICKS_PER_SEC: f64 = 100.0;

/// User plus system CPU seconds of a process (`/proc/<pid>/stat`).
fn cpu_secs(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name may hold spaces: the fields after it start past the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .context("malformed stat")?
            .parse::<u64>()
            .context("malformed stat")? as f64)
    };
    // utime and stime: fields 14 and 15 of the line, 11 and 12 after the name.
    Ok((ticks(11)? + ticks(12)?) / TICKS_PER_SEC)
}

/// CPU seconds of every process whose `comm` is `name`.
fn cpu_secs_of_name(name: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
        })
        .filter_map(|pid| cpu_secs(pid).ok())
        .sum()
}

/// Busy and total jiffies of all CPUs (`/proc/stat`).
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let values: Vec<u64> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().take(8).sum();
    // idle and iowait.
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

#[derive(Debug, Clone)]
enum Target {
    Pid(u32),
    Name(String),
}

impl Target {
    fn secs(&self) -> Option<f64> {
        match self {
            Self::Pid(pid) => cpu_secs(*pid).ok(),
            Self::Name(name) => Some(cpu_secs_of_name(name)),
        }
    }
}

/// CPU use over an interval, in cores (1.0 = one core busy throughout).
#[derive(Debug, Clone)]
pub struct CpuMeter {
    target: Target,
    cpu: f64,
    at: Instant,
}

impl CpuMeter {
    pub fn pid(pid: u32) -> Option<Self> {
        Self::start(Target::Pid(pid))
    }

    pub fn name(name: &str) -> Option<Self> {
        Self::start(Target::Name(name.to_string()))
    }

    fn start(target: Target) -> Option<Self> {
        Some(Self {
            cpu: target.secs()?,
            target,
            at: Instant::now(),
        })
    }

    pub fn cores(&self) -> Option<f64> {
        let wall = self.at.elapsed().as_secs_f64();
        let used = self.target.secs()? - self.cpu;
        (wall > 0.0).then(|| used / wall)
    }
}

/// The whole machine's CPU use over an interval, as a fraction of all its cores.
#[derive(Debug, Clone, Copy)]
pub struct MachineMeter {
    busy: u64,
    total: u64,
}

impl MachineMeter {
    pub fn start() -> Option<Self> {
        let (busy, total) = machine_ticks()?;
        Some(Self { busy, total })
    }

    pub fn busy_fraction(&self) -> Option<f64> {
        let (busy, total) = machine_ticks()?;
        let total = total.checked_sub(self.total)?;
        (total > 0).then(|| (busy.saturating_sub(self.busy)) as f64 / total as f64)
    }
}
