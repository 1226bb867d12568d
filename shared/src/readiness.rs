//! What every service's `/readyz` reports of a dependency.

use std::time::Duration;

/// How long a readiness probe may wait for a dependency.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs one probe: `"ok"`, the error, or `"timed out"` after [`PROBE_TIMEOUT`].
pub async fn check(probe: impl Future<Output = crate::Result<()>>) -> String {
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok(())) => "ok".to_string(),
        Ok(Err(err)) => err.to_string(),
        Err(_) => "timed out".to_string(),
    }
}
