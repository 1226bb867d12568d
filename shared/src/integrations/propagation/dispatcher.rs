//! Delivers the integration outbox: each row to its target, in order per subject and target,
//! on the one [`crate::outbox`] mechanism (leases, retries, a terminal `failed`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::repo::{self, Claim, Subject};
use super::{ChangeKind, ConversationChange, CustomerChange, SyncState, Target};
use crate::config::DispatcherSettings;
use crate::conversations::ConversationService;
use crate::integrations::client::CallError;
use crate::integrations::genesys::Genesys;
use crate::integrations::state_manager::StateManager;
use crate::outbox::{self, Next, Outbox};
use crate::tenancy::{Db, TenantTx};
use crate::{Error, Result};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    target: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: &'static str,
}

/// Propagation attempts by target and outcome, and the time from a change to its
/// acknowledgement, for the process's `/metrics`.
#[derive(Debug, Clone)]
pub struct PropagationMetrics {
    attempts: Family<OutcomeLabels, Counter>,
    latency: Family<TargetLabels, Histogram>,
}

impl Default for PropagationMetrics {
    fn default() -> Self {
        Self {
            attempts: Family::default(),
            latency: Family::new_with_constructor(|| {
                Histogram::new([
                    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 1800.0,
                ])
            }),
        }
    }
}

impl PropagationMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "propagation_attempts",
            "Attempts to propagate a change to the platform, by target (state_manager, genesys) and outcome: synced, rejected (refused, failed), retry, gave_up (failed after max_attempts), skipped (nothing to do)",
            self.attempts.clone(),
        );
        registry.register(
            "propagation_latency_seconds",
            "From a change committed in the portal to its acknowledgement by the target",
            self.latency.clone(),
        );
    }

    fn record(&self, target: Target, outcome: &'static str) {
        self.attempts
            .get_or_create(&OutcomeLabels {
                target: target.as_str(),
                outcome,
            })
            .inc();
    }
}

/// The integration outbox's dispatcher. Runs beside the API, like the message dispatcher.
#[derive(Debug)]
pub struct Propagator {
    db: Db,
    state_manager: Option<Arc<dyn StateManager>>,
    genesys: Option<Arc<dyn Genesys>>,
    settings: DispatcherSettings,
    wake: Arc<Notify>,
    metrics: PropagationMetrics,
}

/// What one row asks of its target.
enum Work {
    StateManagerConversation(ConversationChange),
    StateManagerCustomer(CustomerChange),
    GenesysToAgent {
        conversation: String,
        user: String,
    },
    GenesysToQueue {
        conversation: String,
        queue: String,
    },
    GenesysDisconnect {
        conversation: String,
        user: Option<String>,
    },
    /// Nothing for the target to do (a release without a queue to go back to).
    Nothing,
}

impl Propagator {
    pub fn new(
        db: Db,
        state_manager: Option<Arc<dyn StateManager>>,
        genesys: Option<Arc<dyn Genesys>>,
        settings: DispatcherSettings,
        wake: Arc<Notify>,
        metrics: PropagationMetrics,
    ) -> Self {
        Self {
            db,
            state_manager,
            genesys,
            settings,
            wake,
            metrics,
        }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let settings = self.settings.clone();
        let wake = self.wake.clone();
        outbox::run(Arc::new(self), settings, wake, shutdown).await;
    }

    /// The longest one attempt to `target` can take.
    fn attempt_timeout(&self, target: Target) -> Duration {
        match target {
            Target::StateManager => self.state_manager.as_ref().map(|c| c.timeout()),
            Target::Genesys => self.genesys.as_ref().map(|c| c.timeout()),
        }
        .unwrap_or_default()
    }

    async fn attempt_propagation(&self, claim: &Claim, claimed_at: Instant) -> Result<()> {
        let (Some(target), Some(subject)) = (claim.target(), claim.subject()) else {
            return Err(Error::internal(anyhow::anyhow!(
                "an outbox row of unknown target {:?} or subject {:?}",
                claim.target,
                claim.subject_kind
            )));
        };
        let mut tx = self.db.begin_for(claim.tenant()).await?;
        let work = work(&mut tx, target, subject, &claim.change).await?;
        tx.commit().await?;
        if !outbox::fits_in_lease(&self.settings, claimed_at, self.attempt_timeout(target)) {
            tracing::warn!(
                "the database was too slow to attempt propagation within the lease; leaving it to the next claim"
            );
            return Ok(());
        }
        let result = match work {
            Ok(work) => self.call(claim, target, work).await,
            Err(refusal) => Err(refusal),
        };

        let mut tx = self.db.begin_for(claim.tenant()).await?;
        match result {
            Ok(()) => {
                if outbox::release(&mut tx, claim.lease()).await? {
                    self.metrics.record(target, "synced");
                    let age = (Utc::now() - claim_created(claim))
                        .to_std()
                        .unwrap_or_default();
                    self.metrics
                        .latency
                        .get_or_create(&TargetLabels {
                            target: target.as_str(),
                        })
                        .observe(age.as_secs_f64());
                    tracing::info!("change propagated");
                    // The subject is synced once nothing of it remains and nothing failed.
                    if repo::sync_state(&mut tx, subject).await? == Some(SyncState::Pending)
                        && repo::remaining(&mut tx, subject).await? == 0
                    {
                        set_sync(&mut tx, subject, SyncState::Synced, None).await?;
                    }
                }
            }
            Err(err) => match outbox::after_failure(&self.settings, claim.attempts, &err) {
                Next::Fail { reason, outcome } => {
                    self.metrics.record(target, outcome);
                    if outbox::release(&mut tx, claim.lease()).await? {
                        let reason = format!("{}: {reason}", target.as_str());
                        tracing::warn!(%reason, "propagation failed");
                        set_sync(&mut tx, subject, SyncState::Failed, Some(&reason)).await?;
                    }
                }
                Next::Retry { at, reason } => {
                    self.metrics.record(target, "retry");
                    tracing::info!(%reason, retry_at = %at, "propagation will be retried");
                    outbox::reschedule(&mut tx, claim.lease(), at, &reason).await?;
                }
            },
        }
        tx.commit().await
    }

    async fn call(&self, claim: &Claim, target: Target, work: Work) -> Result<(), CallError> {
        let tenant = claim.tenant();
        let key = claim.idempotency_key;
        let unconfigured = CallError::Rejected {
            status: 0,
            reason: format!("{} is not configured in this process", target.as_str()),
        };
        match work {
            Work::Nothing => {
                self.metrics.record(target, "skipped");
                Ok(())
            }
            Work::StateManagerConversation(change) => match &self.state_manager {
                Some(sm) => sm.conversation_changed(tenant, key, &change).await,
                None => Err(unconfigured),
            },
            Work::StateManagerCustomer(change) => match &self.state_manager {
                Some(sm) => sm.customer_changed(tenant, key, &change).await,
                None => Err(unconfigured),
            },
            work => {
                let Some(genesys) = &self.genesys else {
                    return Err(unconfigured);
                };
                match work {
                    Work::GenesysToAgent { conversation, user } => {
                        genesys.transfer_to_agent(&conversation, &user).await
                    }
                    Work::GenesysToQueue {
                        conversation,
                        queue,
                    } => genesys.transfer_to_queue(&conversation, &queue).await,
                    Work::GenesysDisconnect { conversation, user } => {
                        genesys
                            .disconnect_agent(&conversation, user.as_deref())
                            .await
                    }
                    _ => Ok(()),
                }
            }
        }
    }
}

impl Outbox for Propagator {
    type Claim = Claim;
    const NAME: &'static str = "propagation";

    async fn claim(&self, batch: u32, lease: Duration) -> Result<Vec<Claim>> {
        repo::claim(self.db.pool(), batch, lease).await
    }

    fn span(claim: &Claim) -> (tracing::Span, Option<&str>) {
        let span = tracing::info_span!(
            "propagate change",
            otel.kind = "client",
            target = %claim.target,
            subject = %claim.subject_kind,
            subject_id = %claim.subject_id,
            tenant_id = %claim.tenant_id,
            attempt = claim.attempts,
        );
        (span, claim.traceparent.as_deref())
    }

    async fn attempt(&self, claim: &Claim, claimed_at: Instant) -> Result<()> {
        self.attempt_propagation(claim, claimed_at).await
    }
}

/// When the change was made (the row keeps it in its payload).
fn claim_created(claim: &Claim) -> chrono::DateTime<Utc> {
    claim
        .change
        .get("occurred_at")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_else(Utc::now)
}

/// What the row asks of its target, with the Genesys ids it needs looked up. A change that
/// cannot be made there (an agent without a Genesys user) is refused here, for good.
async fn work(
    tx: &mut TenantTx,
    target: Target,
    subject: Subject,
    change: &serde_json::Value,
) -> Result<Result<Work, CallError>> {
    let unreadable =
        |e: serde_json::Error| Error::internal(anyhow::anyhow!("an unreadable outbox row: {e}"));
    if let Subject::Customer(_) = subject {
        let change: CustomerChange = serde_json::from_value(change.clone()).map_err(unreadable)?;
        return Ok(Ok(Work::StateManagerCustomer(change)));
    }
    let change: ConversationChange = serde_json::from_value(change.clone()).map_err(unreadable)?;
    if target == Target::StateManager {
        return Ok(Ok(Work::StateManagerConversation(change)));
    }
    let Some(conversation) = change.genesys_conversation_id.clone() else {
        return Ok(Ok(Work::Nothing));
    };
    let refuse = |reason: String| Ok(Err(CallError::Rejected { status: 0, reason }));
    Ok(Ok(match change.kind {
        ChangeKind::Assigned | ChangeKind::Transferred => {
            let Some(agent) = change.assigned_agent_id else {
                return Ok(Ok(Work::Nothing));
            };
            match repo::genesys_user_id(tx, agent).await? {
                Some(user) => Work::GenesysToAgent { conversation, user },
                None => return refuse(format!("agent {agent} has no Genesys Cloud user id")),
            }
        }
        ChangeKind::Released => match repo::genesys_queue_id(tx).await? {
            Some(queue) => Work::GenesysToQueue {
                conversation,
                queue,
            },
            None => Work::Nothing,
        },
        ChangeKind::Closed => {
            let user = match change.previous_agent_id {
                Some(agent) => repo::genesys_user_id(tx, agent).await?,
                None => None,
            };
            Work::GenesysDisconnect { conversation, user }
        }
        ChangeKind::StateChanged => Work::Nothing,
    }))
}

/// Sets the subject's sync state; a conversation's change is pushed as `conversation:updated`.
async fn set_sync(
    tx: &mut TenantTx,
    subject: Subject,
    state: SyncState,
    reason: Option<&str>,
) -> Result<()> {
    if repo::set_sync(tx, subject, state, reason).await?
        && let Subject::Conversation(id) = subject
    {
        ConversationService::sync_changed(tx, id).await?;
    }
    Ok(())
}

/// Changes waiting for propagation to one target, across every tenant.
#[derive(Debug, Clone)]
pub struct Backlog {
    pub target: Target,
    pub waiting: i64,
    /// How long the oldest has waited; 0 when none waits.
    pub oldest_age_secs: i64,
}

/// Every target's backlog, a zero one included.
pub async fn backlog(db: &Db) -> Result<Vec<Backlog>> {
    let rows = repo::backlog(db.pool()).await?;
    Ok(Target::ALL
        .into_iter()
        .map(|target| {
            let row = rows.iter().find(|(t, _, _)| t == target.as_str());
            Backlog {
                target,
                waiting: row.map_or(0, |r| r.1),
                oldest_age_secs: row
                    .and_then(|r| r.2)
                    .map_or(0, |t| (Utc::now() - t).num_seconds().max(0)),
            }
        })
        .collect())
}
