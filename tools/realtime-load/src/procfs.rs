//! Memory and CPU time of a process, from `/proc` (Linux).

use anyhow::Context;

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ: 100 on Linux x86-64 and arm64).
const TICKS_PER_SEC: f64 = 100.0;

/// Resident memory in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// User plus system CPU time in seconds (`/proc/<pid>/stat`).
pub fn cpu_secs(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name may hold spaces: the fields after it start past the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime 14 and stime 15 (1-based over the whole line).
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .context("malformed stat")?
            .parse::<u64>()
            .context("malformed stat")? as f64)
    };
    Ok((ticks(11)? + ticks(12)?) / TICKS_PER_SEC)
}

/// A process's CPU use over an interval, in cores (1.0 = one core busy throughout).
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    pid: u32,
    cpu: f64,
    at: std::time::Instant,
}

impl CpuMeter {
    pub fn start(pid: u32) -> Option<Self> {
        Some(Self {
            pid,
            cpu: cpu_secs(pid).ok()?,
            at: std::time::Instant::now(),
        })
    }

    pub fn cores(&self) -> Option<f64> {
        let wall = self.at.elapsed().as_secs_f64();
        let used = cpu_secs(self.pid).ok()? - self.cpu;
        (wall > 0.0).then(|| used / wall)
    }
}
