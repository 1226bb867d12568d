//! Each tenant's usable templates in Redis (`templates:{tenant}`, a JSON array), refreshed by
//! template-sync and refilled by the API on a miss. Redis being down is never an error here:
//! a read misses, a write is skipped, and Postgres answers.

use std::time::Duration;

use redis::aio::ConnectionManager;

use super::repo::Template;
use crate::ids::TenantId;

/// A cache read or write gives up after this long (Postgres answers instead).
const TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct TemplateCache {
    redis: ConnectionManager,
    ttl: Duration,
}

pub fn key(tenant: TenantId) -> String {
    format!("templates:{tenant}")
}

impl TemplateCache {
    pub fn new(redis: ConnectionManager, ttl: Duration) -> Self {
        Self { redis, ttl }
    }

    pub async fn get(&self, tenant: TenantId) -> Option<Vec<Template>> {
        let mut redis = self.redis.clone();
        let mut cmd = redis::cmd("GET");
        cmd.arg(key(tenant));
        let read = cmd.query_async::<Option<String>>(&mut redis);
        match tokio::time::timeout(TIMEOUT, read).await {
            Ok(Ok(Some(json))) => serde_json::from_str(&json)
                .inspect_err(
                    |e| tracing::warn!(%tenant, error = %e, "unreadable template cache entry"),
                )
                .ok(),
            Ok(Ok(None)) => None,
            Ok(Err(err)) => {
                tracing::debug!(%tenant, error = %err, "template cache unavailable");
                None
            }
            Err(_) => {
                tracing::debug!(%tenant, "template cache read timed out");
                None
            }
        }
    }

    /// Stores the tenant's templates for `ttl`; false when Redis could not be reached.
    pub async fn put(&self, tenant: TenantId, templates: &[Template]) -> bool {
        let Ok(json) = serde_json::to_string(templates) else {
            return false;
        };
        let mut redis = self.redis.clone();
        let mut cmd = redis::cmd("SET");
        cmd.arg(key(tenant))
            .arg(json)
            .arg("EX")
            .arg(self.ttl.as_secs().max(1));
        let write = cmd.query_async::<()>(&mut redis);
        match tokio::time::timeout(TIMEOUT, write).await {
            Ok(Ok(())) => true,
            Ok(Err(err)) => {
                tracing::debug!(%tenant, error = %err, "template cache not refreshed");
                false
            }
            Err(_) => false,
        }
    }
}
