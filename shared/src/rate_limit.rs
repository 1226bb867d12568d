//! Rate limits on the REST API, per tenant and per agent, shared by every api pod through Redis.
//!
//! The algorithm is GCRA (the generic cell rate algorithm): a key stores its theoretical arrival
//! time (TAT); a request is allowed when the TAT is at most `burst` emission intervals ahead of
//! now, and moves it one interval on. One Lua script checks the tenant's and the agent's key and
//! moves both only when both allow, so a refused request costs neither quota; time comes from
//! Redis (`TIME`), so the pods' clocks do not matter.
//!
//! When Redis does not answer within [`REDIS_TIMEOUT`], each pod falls back to limiting on its
//! own with the same quotas ([`governor`]): the API keeps answering (Redis is not a hard
//! dependency of it for anything else either), at the price of a limit that is, for as long as
//! Redis is away, per pod rather than for the whole deployment.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota as GovernorQuota, clock::DefaultClock};
use moka::sync::Cache;
use redis::aio::ConnectionManager;

use crate::Result;
use crate::config::RateLimitSettings;
use crate::ids::{AgentId, TenantId};
use crate::tenancy::{Db, TenantTx};

/// How long a request waits for Redis before the local limiter decides.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(50);

/// Requests per second, and how many may come at once above that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    pub per_sec: u32,
    pub burst: u32,
}

impl Quota {
    /// Milliseconds between requests at the steady rate.
    fn interval_ms(self) -> f64 {
        1000.0 / f64::from(self.per_sec.max(1))
    }
}

/// The quotas that apply to one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub tenant: Quota,
    pub agent: Quota,
}

/// Which quota decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Tenant,
    Agent,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::Agent => "agent",
        }
    }
}

/// The answer for one request, with what the `RateLimit` headers say: the tighter quota.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    pub limits: Limits,
    /// The quota closest to its limit (the one that refused, when refused).
    pub policy: Policy,
    /// Requests that quota still allows at once.
    pub remaining: u32,
    /// Until that quota is full again; for a refusal, until one request is allowed.
    pub reset: Duration,
}

impl Decision {
    pub fn quota(&self) -> Quota {
        match self.policy {
            Policy::Tenant => self.limits.tenant,
            Policy::Agent => self.limits.agent,
        }
    }
}

/// Both keys, atomically. Returns, for the tenant's key then the agent's: allowed (0/1),
/// remaining, and reset in ms (for a refused key, the wait until it allows one). The keys move
/// only when both allow.
const GCRA: &str = r"
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + tonumber(now_parts[2]) / 1000
local out = {}
local all = true
local tats = {}
for i = 1, 2 do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - burst * interval
  if now < allow_at then
    all = false
    out[3 * i - 2] = 0
    out[3 * i - 1] = 0
    out[3 * i] = math.ceil(allow_at - now)
  else
    out[3 * i - 2] = 1
    out[3 * i - 1] = math.floor((now - allow_at) / interval)
    out[3 * i] = math.ceil(new_tat - now)
  end
  tats[i] = new_tat
end
if all then
  for i = 1, 2 do
    redis.call('SET', KEYS[i], tostring(tats[i]), 'PX', math.max(1, math.ceil(tats[i] - now)))
  end
end
return out
";

#[derive(Clone)]
pub struct RateLimiter {
    db: Db,
    redis: ConnectionManager,
    script: Arc<redis::Script>,
    settings: RateLimitSettings,
    /// Each tenant's limits, read from `tenants` at most once a minute.
    limits: Cache<TenantId, Limits>,
    /// The per-pod limiters used while Redis is away, by key and quota.
    local: Cache<(String, Quota), Arc<LocalLimiter>>,
}

/// A per-pod limiter that reports how much burst is left.
type LocalLimiter =
    governor::RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    pub fn new(db: Db, redis: ConnectionManager, settings: RateLimitSettings) -> Self {
        Self {
            db,
            redis,
            script: Arc::new(redis::Script::new(GCRA)),
            limits: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(settings.tenant_limits_cache_secs))
                .build(),
            local: Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
            settings,
        }
    }

    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    /// Counts one request of `agent` in `tenant`.
    pub async fn check(&self, tenant: TenantId, agent: AgentId) -> Result<Decision> {
        let limits = self.limits_of(tenant).await?;
        let keys = [
            format!("{}:tenant:{tenant}", self.settings.key_prefix),
            format!("{}:agent:{agent}", self.settings.key_prefix),
        ];
        match tokio::time::timeout(REDIS_TIMEOUT, self.check_in_redis(&keys, limits)).await {
            Ok(Ok(decision)) => Ok(decision),
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "rate limit: Redis refused; limiting in this pod");
                Ok(self.check_locally(&keys, limits))
            }
            Err(_) => {
                tracing::debug!("rate limit: Redis is slow; limiting in this pod");
                Ok(self.check_locally(&keys, limits))
            }
        }
    }

    async fn limits_of(&self, tenant: TenantId) -> Result<Limits> {
        if let Some(limits) = self.limits.get(&tenant) {
            return Ok(limits);
        }
        let mut tx = self.db.begin_for(tenant).await?;
        let own = tenant_limits(&mut tx).await?.unwrap_or_default();
        tx.commit().await?;
        let value = |v: Option<i32>, default: u32| {
            v.and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v > 0)
                .unwrap_or(default)
        };
        let s = &self.settings;
        let limits = Limits {
            tenant: Quota {
                per_sec: value(own.rate_limit_per_sec, s.tenant_per_sec),
                burst: value(own.rate_limit_burst, s.tenant_burst),
            },
            agent: Quota {
                per_sec: value(own.agent_rate_limit_per_sec, s.agent_per_sec),
                burst: value(own.agent_rate_limit_burst, s.agent_burst),
            },
        };
        self.limits.insert(tenant, limits);
        Ok(limits)
    }

    async fn check_in_redis(
        &self,
        keys: &[String; 2],
        limits: Limits,
    ) -> redis::RedisResult<Decision> {
        let mut conn = self.redis.clone();
        let out: Vec<i64> = self
            .script
            .key(&keys[0])
            .key(&keys[1])
            .arg(limits.tenant.interval_ms())
            .arg(limits.tenant.burst)
            .arg(limits.agent.interval_ms())
            .arg(limits.agent.burst)
            .invoke_async(&mut conn)
            .await?;
        let [t_ok, t_remaining, t_reset, a_ok, a_remaining, a_reset] = out[..] else {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "unexpected answer from the rate limit script",
            )));
        };
        let ms = |v: i64| Duration::from_millis(u64::try_from(v).unwrap_or(0));
        let remaining = |v: i64| u32::try_from(v).unwrap_or(0);
        let tenant = (t_ok == 1, remaining(t_remaining), ms(t_reset));
        let agent = (a_ok == 1, remaining(a_remaining), ms(a_reset));
        Ok(decide(limits, tenant, agent))
    }

    fn check_locally(&self, keys: &[String; 2], limits: Limits) -> Decision {
        let mut results = [(true, 0u32, Duration::ZERO); 2];
        for (i, (key, quota)) in keys.iter().zip([limits.tenant, limits.agent]).enumerate() {
            let limiter = self.local.get_with((key.clone(), quota), || {
                Arc::new(
                    governor::RateLimiter::direct(governor_quota(quota))
                        .with_middleware::<StateInformationMiddleware>(),
                )
            });
            results[i] = match limiter.check() {
                Ok(snapshot) => (
                    true,
                    snapshot.remaining_burst_capacity(),
                    Duration::from_secs_f64(
                        f64::from(quota.burst) / f64::from(quota.per_sec.max(1)),
                    ),
                ),
                Err(not_until) => (
                    false,
                    0,
                    not_until.wait_time_from(governor::clock::Clock::now(&DefaultClock::default())),
                ),
            };
        }
        let [tenant, agent] = results;
        decide(limits, tenant, agent)
    }
}

/// A tenant's own limits (`tenants.rate_limit_*`); NULL takes the default.
#[derive(Debug, Default, sqlx::FromRow)]
struct TenantLimits {
    rate_limit_per_sec: Option<i32>,
    rate_limit_burst: Option<i32>,
    agent_rate_limit_per_sec: Option<i32>,
    agent_rate_limit_burst: Option<i32>,
}

async fn tenant_limits(tx: &mut TenantTx) -> Result<Option<TenantLimits>> {
    Ok(sqlx::query_as(
        "SELECT rate_limit_per_sec, rate_limit_burst, agent_rate_limit_per_sec, \
                agent_rate_limit_burst FROM tenants WHERE id = $1",
    )
    .bind(tx.tenant_id().0)
    .fetch_optional(tx.conn())
    .await?)
}

fn governor_quota(quota: Quota) -> GovernorQuota {
    let per_sec = NonZeroU32::new(quota.per_sec).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(quota.burst).unwrap_or(NonZeroU32::MIN);
    GovernorQuota::per_second(per_sec).allow_burst(burst)
}

/// One key's answer: allowed, requests left, and the reset (or the wait, when refused).
type KeyAnswer = (bool, u32, Duration);

/// The decision, naming the quota that refused (of two, the longer wait), or else the one with
/// fewer requests left.
fn decide(limits: Limits, tenant: KeyAnswer, agent: KeyAnswer) -> Decision {
    let agent_decides = match (tenant.0, agent.0) {
        (true, true) => agent.1 <= tenant.1,
        (true, false) => true,
        (false, true) => false,
        (false, false) => agent.2 >= tenant.2,
    };
    let (policy, (_, remaining, reset)) = if agent_decides {
        (Policy::Agent, agent)
    } else {
        (Policy::Tenant, tenant)
    };
    Decision {
        allowed: tenant.0 && agent.0,
        limits,
        policy,
        remaining,
        reset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        tenant: Quota {
            per_sec: 100,
            burst: 200,
        },
        agent: Quota {
            per_sec: 10,
            burst: 20,
        },
    };

    #[test]
    fn the_tighter_quota_speaks_for_the_decision() {
        let second = Duration::from_secs(1);
        let d = decide(LIMITS, (true, 150, second), (true, 3, second));
        assert!(d.allowed);
        assert_eq!((d.policy, d.remaining), (Policy::Agent, 3));
        let d = decide(
            LIMITS,
            (false, 0, Duration::from_millis(40)),
            (true, 0, second),
        );
        assert!(!d.allowed);
        assert_eq!(
            (d.policy, d.reset),
            (Policy::Tenant, Duration::from_millis(40))
        );
        let d = decide(
            LIMITS,
            (true, 7, second),
            (false, 0, Duration::from_millis(90)),
        );
        assert_eq!(
            (d.policy, d.reset),
            (Policy::Agent, Duration::from_millis(90))
        );
    }
}
