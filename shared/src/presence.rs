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

    /// Records a connection; true when it brought the agent online (no other live connection).
    pub async fn connected(
        &self,
        tenant: TenantId,
        agent: AgentId,
        connection: &str,
    ) -> Result<bool> {
        let key = key(tenant, agent);
        let now = now_ms();
        let (live_before,): (i64,) = redis::pipe()
            .atomic()
            // Expired members of connections that died with their pod.
            .zrembyscore(&key, "-inf", now)
            .ignore()
            .zcount(&key, now, "+inf")
            .zadd(&key, connection, now + self.ttl_ms())
            .ignore()
            .pexpire(&key, self.ttl_ms())
            .ignore()
            .query_async(&mut self.redis.clone())
            .await
            .map_err(unavailable)?;
        Ok(live_before == 0)
    }

    /// Extends the given connections' expiry, in one round trip; call well within `ttl`.
    pub async fn refresh(&self, connections: &[(TenantId, AgentId, String)]) -> Result<()> {
        if connections.is_empty() {
            return Ok(());
        }
        let expiry = now_ms() + self.ttl_ms();
        let mut pipe = redis::pipe();
        for (tenant, agent, connection) in connections {
            let key = key(*tenant, *agent);
            pipe.zadd(&key, connection, expiry)
                .ignore()
                .pexpire(&key, self.ttl_ms())
                .ignore();
        }
        pipe.query_async::<()>(&mut self.redis.clone())
            .await
            .map_err(unavailable)
    }

    /// Removes a connection; true when it took the agent offline (no live connection left).
    pub async fn disconnected(
        &self,
        tenant: TenantId,
        agent: AgentId,
        connection: &str,
    ) -> Result<bool> {
        let key = key(tenant, agent);
        let (live_after,): (i64,) = redis::pipe()
            .atomic()
            .zrem(&key, connection)
            .ignore()
            .zcount(&key, now_ms(), "+inf")
            .query_async(&mut self.redis.clone())
            .await
            .map_err(unavailable)?;
        Ok(live_after == 0)
    }

    /// The agent's live connections, on every pod.
    pub async fn live_connections(&self, tenant: TenantId, agent: AgentId) -> Result<u64> {
        let live: u64 = redis::cmd("ZCOUNT")
            .arg(key(tenant, agent))
            .arg(now_ms())
            .arg("+inf")
            .query_async(&mut self.redis.clone())
            .await
            .map_err(unavailable)?;
        Ok(live)
    }

    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX)
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
