//! The one outbox mechanism: work written in the same transaction as the change it carries,
//! then delivered by a dispatcher that leases due rows across tenants. Two outboxes use it —
//! messages for the Outbound Transformer ([`crate::messages::Dispatcher`]) and the changes the
//! platform must hear of ([`crate::integrations::propagation`]) — each with its own table,
//! claim function and delivery, and this loop, lease rule and retry policy in common.
//!
//! A row is claimed by pushing its due time one lease ahead under a fresh lease token, so one
//! attempt at a time is in flight, and a dispatcher that died mid-attempt leaves a row that
//! becomes due again by itself. An attempt only starts if it can end before its lease does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use opentelemetry::trace::TraceContextExt as _;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::Result;
use crate::config::DispatcherSettings;
use crate::integrations::client::CallError;
use crate::tenancy::TenantTx;

/// One kind of outbox: how its due rows are claimed and how one is attempted.
pub(crate) trait Outbox: Send + Sync + 'static {
    type Claim: Send + Sync + 'static;

    /// Names the dispatcher in logs.
    const NAME: &'static str;

    /// Leases up to `batch` due rows for `lease`.
    fn claim(
        &self,
        batch: u32,
        lease: Duration,
    ) -> impl Future<Output = Result<Vec<Self::Claim>>> + Send;

    /// The span of an attempt at `claim`, and the `traceparent` of the request that wrote it.
    fn span(claim: &Self::Claim) -> (tracing::Span, Option<&str>);

    /// Makes one attempt and records its result; `claimed_at` starts the lease.
    fn attempt(
        &self,
        claim: &Self::Claim,
        claimed_at: Instant,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// One attempt, as a trace of its own (it may come minutes later, from another process) linked
/// to the request that wrote the row.
async fn deliver<O: Outbox>(outbox: Arc<O>, claim: O::Claim, claimed_at: Instant) {
    let (span, traceparent) = O::span(&claim);
    if let Some(traceparent) = traceparent {
        let stored = crate::telemetry::context_of(traceparent);
        span.add_link(stored.span().span_context().clone());
    }
    async {
        if let Err(err) = outbox.attempt(&claim, claimed_at).await {
            // The row stays claimed until its lease runs out, then another attempt is made.
            tracing::warn!(
                outbox = O::NAME, error = ?err,
                "an attempt could not be recorded; it is made again after its lease"
            );
        }
    }
    .instrument(span)
    .await;
}

/// Delivers until `shutdown` is cancelled, then lets the attempts in flight finish. `wake` is
/// notified when a row is written, so a new row is delivered at once rather than at the next poll.
pub async fn run<O: Outbox>(
    outbox: Arc<O>,
    settings: DispatcherSettings,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let concurrency = settings.concurrency as usize;
    let lease = lease(&settings);
    let poll = Duration::from_millis(settings.poll_interval_ms);
    let mut in_flight = JoinSet::new();
    tracing::info!(outbox = O::NAME, concurrency, "dispatcher started");
    loop {
        while in_flight.try_join_next().is_some() {}
        let free = concurrency.saturating_sub(in_flight.len());
        if free > 0 {
            match outbox.claim(free as u32, lease).await {
                Ok(claims) => {
                    let full = claims.len() == free;
                    let claimed_at = Instant::now();
                    for claim in claims {
                        in_flight.spawn(deliver(Arc::clone(&outbox), claim, claimed_at));
                    }
                    // More may be due: claim again as soon as a slot frees up.
                    if full {
                        continue;
                    }
                }
                Err(err) => {
                    tracing::warn!(outbox = O::NAME, error = ?err, "could not claim due rows; retrying at the next poll");
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = wake.notified() => {}
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            () = tokio::time::sleep(poll) => {}
        }
    }
    tracing::info!(
        outbox = O::NAME,
        in_flight = in_flight.len(),
        "dispatcher stopping; finishing attempts in flight"
    );
    while in_flight.join_next().await.is_some() {}
}

pub fn lease(settings: &DispatcherSettings) -> Duration {
    Duration::from_millis(settings.lease_ms)
}

/// Whether an attempt of at most `attempt_timeout` still ends before the lease taken at
/// `claimed_at` runs out; otherwise another dispatcher could start a second attempt while this
/// one is still waiting.
pub fn fits_in_lease(
    settings: &DispatcherSettings,
    claimed_at: Instant,
    attempt_timeout: Duration,
) -> bool {
    claimed_at.elapsed() + attempt_timeout < lease(settings)
}

/// A claimed row, as releasing or rescheduling it addresses it: its table, its key, and the
/// lease token that proves the claim still holds it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lease<K> {
    pub table: &'static str,
    pub key_column: &'static str,
    pub tenant_id: uuid::Uuid,
    pub key: K,
    pub token: uuid::Uuid,
}

/// Removes the row if this claim still holds it; false when another dispatcher took over.
#[tracing::instrument(skip(tx, lease), fields(otel.kind = "client", db.system = "postgresql", tenant_id = %tx.tenant_id(), table = lease.table))]
pub(crate) async fn release<K>(tx: &mut TenantTx, lease: Lease<K>) -> Result<bool>
where
    K: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send,
{
    let Lease {
        table, key_column, ..
    } = lease;
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {table} WHERE tenant_id = $1 AND {key_column} = $2 AND lease_token = $3"
    )))
    .bind(lease.tenant_id)
    .bind(lease.key)
    .bind(lease.token)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Schedules the next attempt at `at` if this claim still holds the row.
#[tracing::instrument(skip(tx, lease, error), fields(otel.kind = "client", db.system = "postgresql", tenant_id = %tx.tenant_id(), table = lease.table))]
pub(crate) async fn reschedule<K>(
    tx: &mut TenantTx,
    lease: Lease<K>,
    at: DateTime<Utc>,
    error: &str,
) -> Result<bool>
where
    K: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send,
{
    let Lease {
        table, key_column, ..
    } = lease;
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {table} SET next_attempt_at = $4, last_error = $5, lease_token = NULL \
         WHERE tenant_id = $1 AND {key_column} = $2 AND lease_token = $3"
    )))
    .bind(lease.tenant_id)
    .bind(lease.key)
    .bind(lease.token)
    .bind(at)
    .bind(error)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What becomes of a row whose attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// For good: the service refused it, or the last attempt was made. The reason says which.
    Fail {
        reason: String,
        /// `rejected` or `gave_up`, for the metrics.
        outcome: &'static str,
    },
    /// Again at `at`.
    Retry { at: DateTime<Utc>, reason: String },
}

/// The retry policy of every outbox: a refusal fails at once; anything else is retried with
/// backoff (a `Retry-After` honoured up to the maximum) until `max_attempts`.
pub fn after_failure(settings: &DispatcherSettings, attempts: i32, error: &CallError) -> Next {
    let reason = error.to_string();
    if !error.is_retryable() {
        return Next::Fail {
            reason,
            outcome: "rejected",
        };
    }
    if attempts >= settings.max_attempts as i32 {
        return Next::Fail {
            reason: format!("gave up after {attempts} attempts: {reason}"),
            outcome: "gave_up",
        };
    }
    let delay = backoff(settings, attempts, error.retry_after());
    Next::Retry {
        at: Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX),
        reason,
    }
}

/// [`crate::backoff::delay`], with a `Retry-After` honoured up to the maximum.
fn backoff(
    settings: &DispatcherSettings,
    attempts: i32,
    retry_after: Option<Duration>,
) -> Duration {
    let max = Duration::from_millis(settings.backoff_max_ms);
    let jittered = crate::backoff::delay(
        Duration::from_millis(settings.backoff_initial_ms),
        max,
        u32::try_from(attempts).unwrap_or(1),
    );
    jittered.max(retry_after.unwrap_or_default().min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> DispatcherSettings {
        DispatcherSettings {
            enabled: true,
            concurrency: 1,
            poll_interval_ms: 1000,
            lease_ms: 30_000,
            max_attempts: 3,
            backoff_initial_ms: 1000,
            backoff_max_ms: 60_000,
        }
    }

    fn unavailable(retry_after: Option<u64>) -> CallError {
        CallError::Unavailable {
            reason: "503".into(),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn backoff_honours_retry_after_up_to_the_maximum() {
        let s = settings();
        let d = backoff(&s, 1, Some(Duration::from_secs(30)));
        assert_eq!(d, Duration::from_secs(30));
        let d = backoff(&s, 1, Some(Duration::from_secs(3600)));
        assert_eq!(d, Duration::from_secs(60));
    }

    #[test]
    fn a_refusal_fails_at_once_and_the_last_attempt_gives_up() {
        let s = settings();
        let refused = CallError::Rejected {
            status: 400,
            reason: "no".into(),
        };
        assert!(matches!(
            after_failure(&s, 1, &refused),
            Next::Fail {
                outcome: "rejected",
                ..
            }
        ));
        assert!(matches!(
            after_failure(&s, 2, &unavailable(None)),
            Next::Retry { .. }
        ));
        let Next::Fail { reason, outcome } = after_failure(&s, 3, &unavailable(None)) else {
            panic!("the third attempt of three must give up");
        };
        assert_eq!(outcome, "gave_up");
        assert!(reason.starts_with("gave up after 3 attempts"), "{reason}");
        let Next::Retry { at, .. } = after_failure(&s, 1, &unavailable(Some(20))) else {
            panic!("a 503 must be retried");
        };
        assert!(at >= Utc::now() + chrono::Duration::seconds(19));
    }
}
