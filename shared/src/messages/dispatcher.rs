//! Delivers pending outbound messages to the Outbound Transformer.
//!
//! The message outbox on the one [`crate::outbox`] mechanism: any number of dispatchers, in
//! any number of processes, deliver each message one attempt at a time. A 2xx marks the
//! message `sent`; a 4xx marks it `failed` with the transformer's reason; a timeout, a
//! connection error, a 5xx, 408 or 429 (or the transformer's circuit open) is retried with
//! backoff and jitter until `max_attempts`, then marked `failed`. A dispatcher that dies
//! mid-attempt leaves its row to become due again when the lease runs out; the transformer
//! drops the repeated attempt by its `Idempotency-Key` (our message id) if the first got through.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::receipts;
use super::repo::{self, Claim};
use super::service::{MAX_FAILURE_REASON_CHARS, StatusChange, apply_status};
use super::{Message, MessageStatus};
use crate::Result;
use crate::config::DispatcherSettings;
use crate::conversations::{self, Conversation};
use crate::ids::TenantId;
use crate::integrations::transformer::{OutboundContent, OutboundMessage, TransformerClient};
use crate::outbox::{self, Next, Outbox};
use crate::tenancy::{Db, TenantTx};

#[derive(Debug)]
pub struct Dispatcher {
    db: Db,
    transformer: TransformerClient,
    settings: DispatcherSettings,
    queued: Arc<Notify>,
    metrics: DeliveryMetrics,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Delivery attempts by outcome, for the process's `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct DeliveryMetrics {
    attempts: Family<OutcomeLabels, Counter>,
}

impl DeliveryMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "message_delivery_attempts",
            "Attempts to hand a message to the Outbound Transformer, by outcome: sent, rejected (4xx, failed), retry (5xx, timeout, unreachable, circuit open), gave_up (failed after max_attempts)",
            self.attempts.clone(),
        );
    }

    fn record(&self, outcome: &'static str) {
        self.attempts
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }
}

impl Dispatcher {
    /// `queued` is the signal [`super::MessageService`] gives when it stores a message.
    pub fn new(
        db: Db,
        transformer: TransformerClient,
        settings: DispatcherSettings,
        queued: Arc<Notify>,
        metrics: DeliveryMetrics,
    ) -> Self {
        Self {
            db,
            transformer,
            settings,
            queued,
            metrics,
        }
    }

    /// Delivers until `shutdown` is cancelled, then lets the attempts in flight finish.
    pub async fn run(self, shutdown: CancellationToken) {
        let settings = self.settings.clone();
        let queued = self.queued.clone();
        outbox::run(Arc::new(self), settings, queued, shutdown).await;
    }

    async fn attempt_delivery(&self, claim: &Claim, claimed_at: Instant) -> Result<()> {
        let mut tx = self.db.begin_for(claim.tenant()).await?;
        let message = repo::find(&mut tx, claim.message(), false).await?;
        // Marked failed (or sent, by an early receipt) meanwhile: nothing left to deliver.
        let Some(message) = message.filter(|m| m.status == MessageStatus::Pending) else {
            outbox::release(&mut tx, claim.lease()).await?;
            return tx.commit().await;
        };
        let conversation =
            conversations::repo::find(&mut tx, message.conversation_id, false).await?;
        // No transaction stays open while the transformer is called.
        tx.commit().await?;
        if !outbox::fits_in_lease(&self.settings, claimed_at, self.transformer.timeout()) {
            tracing::warn!(
                "the database was too slow to attempt delivery within the lease; leaving it to the next claim"
            );
            return Ok(());
        }

        let outbound = outbound_message(claim.tenant(), &message, conversation.as_ref());
        let result = self.transformer.deliver(&outbound).await;

        let mut tx = self.db.begin_for(claim.tenant()).await?;
        match result {
            Ok(accepted) => {
                outbox::release(&mut tx, claim.lease()).await?;
                let change = StatusChange {
                    external_id: accepted.external_id.clone(),
                    ..StatusChange::to(MessageStatus::Sent)
                };
                set_status(&mut tx, &message, change).await?;
                // Receipts that overtook the transformer's answer.
                if let Some(external_id) = &accepted.external_id {
                    receipts::apply_kept(&mut tx, external_id).await?;
                }
                self.metrics.record("sent");
                tracing::info!("message sent");
            }
            Err(err) => match outbox::after_failure(&self.settings, claim.attempts, &err) {
                Next::Fail { reason, outcome } => {
                    self.metrics.record(outcome);
                    if outbox::release(&mut tx, claim.lease()).await? {
                        tracing::warn!(%reason, "message failed");
                        set_status(&mut tx, &message, failed(reason)).await?;
                    }
                }
                Next::Retry { at, reason } => {
                    self.metrics.record("retry");
                    tracing::info!(%reason, retry_at = %at, "delivery will be retried");
                    outbox::reschedule(&mut tx, claim.lease(), at, &reason).await?;
                }
            },
        }
        tx.commit().await
    }
}

impl Outbox for Dispatcher {
    type Claim = Claim;
    const NAME: &'static str = "messages";

    async fn claim(&self, batch: u32, lease: Duration) -> Result<Vec<Claim>> {
        repo::claim(self.db.pool(), batch, lease).await
    }

    fn span(claim: &Claim) -> (tracing::Span, Option<&str>) {
        let span = tracing::info_span!(
            "deliver message",
            otel.kind = "client",
            message_id = %claim.message_id,
            tenant_id = %claim.tenant_id,
            attempt = claim.attempts,
        );
        (span, claim.traceparent.as_deref())
    }

    async fn attempt(&self, claim: &Claim, claimed_at: Instant) -> Result<()> {
        self.attempt_delivery(claim, claimed_at).await
    }
}

/// Messages waiting for delivery, across every tenant.
#[derive(Debug, Clone, Copy)]
pub struct Backlog {
    pub waiting: i64,
    /// How long the oldest has waited; 0 when none waits.
    pub oldest_age_secs: i64,
}

pub async fn backlog(db: &Db) -> Result<Backlog> {
    let (waiting, oldest) = repo::backlog(db.pool()).await?;
    Ok(Backlog {
        waiting,
        oldest_age_secs: oldest.map_or(0, |t| (Utc::now() - t).num_seconds().max(0)),
    })
}

async fn set_status(tx: &mut TenantTx, message: &Message, change: StatusChange) -> Result<()> {
    if let Some(current) = repo::find(tx, message.id, true).await? {
        apply_status(tx, current, &change).await?;
    }
    Ok(())
}

fn failed(reason: String) -> StatusChange {
    StatusChange {
        failure_reason: Some(reason.chars().take(MAX_FAILURE_REASON_CHARS).collect()),
        ..StatusChange::to(MessageStatus::Failed)
    }
}

fn outbound_message(
    tenant: TenantId,
    message: &Message,
    conversation: Option<&Conversation>,
) -> OutboundMessage {
    OutboundMessage {
        message_id: message.id,
        tenant_id: tenant,
        conversation_id: message.conversation_id,
        state_manager_id: conversation.and_then(|c| c.state_manager_id.clone()),
        genesys_conversation_id: conversation.and_then(|c| c.genesys_conversation_id.clone()),
        to: conversation.and_then(|c| c.customer.phone.clone()),
        sender_agent_id: message.sender.agent_id,
        content: match &message.template {
            Some(template) => OutboundContent::Template {
                template: template.clone(),
                text: message.text.clone(),
            },
            None => OutboundContent::Text {
                text: message.text.clone(),
            },
        },
        created_at: message.created_at,
    }
}
