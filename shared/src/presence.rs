//! Which agents are connected to the realtime service, on any of its pods.
//!
//! Each connection is a member of the Redis sorted set `presence:{tenant}:{agent}`, scored by
//! the time (ms since the epoch) it stops counting unless refreshed. The realtime pod holding
//! the connection refreshes it well within the TTL and removes it on disconnect; a pod that
//! dies leaves members that simply expire. An agent is online while its set has a member whose
//! expiry is still ahead.

use std::collections::HashSet;
use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::ids::{AgentId, TenantId};
use crate::{Error, Result};

#[derive(Debug, Clone)]
pub struct Presence {
    redis: ConnectionManager,
    ttl: Duration,
}

fn key(tenant: TenantId, agent: AgentId) -> String {
    format!("presence:{tenant}:{agent}")
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn unavailable(err: redis::RedisError) -> Error {
    Error::Unavailable(format!("redis: {err}"))
}

impl Presence {
    pub fn new(redis: ConnectionManager, ttl: Duration) -> Self {
        Self { redis, ttl }
    }

    /// Records a connection, or refreshes it; call again before `ttl` runs out.
    pub async fn connected(
        &self,
        tenant: TenantId,
        agent: AgentId,
        connection: &str,
    ) -> Result<()> {
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let key = key(tenant, agent);
        redis::pipe()
            .atomic()
            // Expired members of connections that died with their pod.
            .zrembyscore(&key, "-inf", now_ms())
            .ignore()
            .zadd(&key, connection, now_ms() + ttl_ms)
            .ignore()
            .pexpire(&key, ttl_ms)
            .ignore()
            .query_async::<()>(&mut self.redis.clone())
            .await
            .map_err(unavailable)
    }

    pub async fn disconnected(
        &self,
        tenant: TenantId,
        agent: AgentId,
        connection: &str,
    ) -> Result<()> {
        redis::cmd("ZREM")
            .arg(key(tenant, agent))
            .arg(connection)
            .query_async::<()>(&mut self.redis.clone())
            .await
            .map_err(unavailable)
    }

    /// Which of `agents` have a live connection, in one round trip.
    pub async fn online(&self, tenant: TenantId, agents: &[AgentId]) -> Result<HashSet<AgentId>> {
        if agents.is_empty() {
            return Ok(HashSet::new());
        }
        let now = now_ms();
        let mut pipe = redis::pipe();
        for agent in agents {
            pipe.zcount(key(tenant, *agent), now, "+inf");
        }
        let counts: Vec<i64> = pipe
            .query_async(&mut self.redis.clone())
            .await
            .map_err(unavailable)?;
        Ok(agents
            .iter()
            .zip(counts)
            .filter(|(_, n)| *n > 0)
            .map(|(a, _)| *a)
            .collect())
    }
}
