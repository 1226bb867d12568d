//! Applying one notification: in one tenant transaction, through the same services the API
//! uses, together with its event rows and its id in `processed_notifications`.
//!
//! What cannot be applied is sorted by what the consumer should do about it: a [`Refusal::Poison`]
//! never will be (dead-letter it now); a [`Refusal::Missing`] names something the tenant does
//! not have yet (a conversation whose `conversation.created` is still behind it in the queue, an
//! agent not yet provisioned), worth another try later; a [`Refusal::Transient`] is the
//! database's trouble, worth retrying as it is.

use std::sync::Arc;

use super::envelope::{Envelope, Notification, ReceiptError};
use super::processed;
use crate::Error;
use crate::conversations::{ConversationService, PlatformChange, PlatformConversation};
use crate::customers;
use crate::integrations::state_manager::StateManager;
use crate::messages::MediaContent;
use crate::messages::inbound::{self, Inbound, Received};
use crate::messages::receipts::{self, Receipt, ReceiptOutcome};
use crate::tenancy::{Db, TenantTx};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied; something changed and its events were recorded.
    Applied,
    /// Applied, but nothing needed to change (already so, or the conversation is closed).
    Unchanged,
    /// A receipt for a WhatsApp id no message has yet: kept until one does.
    ReceiptKept,
    /// This `event_id` was applied before: nothing was done.
    Duplicate,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Unchanged => "unchanged",
            Self::ReceiptKept => "receipt_kept",
            Self::Duplicate => "duplicate",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Can never be applied; `reason` is the dead-letter reason code.
    #[error("{reason}: {detail}")]
    Poison {
        reason: &'static str,
        detail: String,
    },
    /// Refers to a `what` this tenant does not have (yet).
    #[error("no such {what} (yet)")]
    Missing { what: &'static str },
    #[error(transparent)]
    Transient(Error),
}

impl From<Error> for Refusal {
    fn from(err: Error) -> Self {
        match err {
            Error::NotFound { resource } => Self::Missing { what: resource },
            err if err.is_transient() => Self::Transient(err),
            Error::Internal(cause) => {
                // Logged here with its cause; the dead-letter header carries the summary only.
                tracing::error!(error = ?cause, "applying a notification failed");
                Self::Poison {
                    reason: "apply_failed",
                    detail: format!("{cause}"),
                }
            }
            err => Self::Poison {
                reason: "rejected",
                detail: err.to_string(),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct Applier {
    db: Db,
    /// Asked for the conversations notifications name that the tenant does not have yet.
    state_manager: Option<Arc<dyn StateManager>>,
}

impl Applier {
    pub fn new(db: Db, state_manager: Option<Arc<dyn StateManager>>) -> Self {
        Self { db, state_manager }
    }

    /// The conversation `envelope` names, which the tenant does not have (its
    /// `conversation.created` is late or was lost): fetched from the State Manager and opened
    /// as that notification would have; then the envelope can be applied at once. False when
    /// no State Manager is configured, it does not know the conversation either, or it does
    /// not answer: the envelope waits then.
    pub async fn fetch_missing_conversation(&self, envelope: &Envelope) -> Result<bool, Refusal> {
        let (Some(state_manager), Some(id)) = (
            &self.state_manager,
            envelope.notification.state_manager_id(),
        ) else {
            return Ok(false);
        };
        let tenant = envelope.tenant_id;
        let remote = match state_manager.conversation(tenant, id).await {
            Ok(Some(remote)) => remote,
            Ok(None) => {
                tracing::info!(
                    state_manager_id = id,
                    "the State Manager does not know the conversation either"
                );
                return Ok(false);
            }
            Err(err) => {
                tracing::warn!(state_manager_id = id, error = %err, "could not fetch the conversation from the State Manager");
                return Ok(false);
            }
        };
        let phone = &remote.customer.phone_e164;
        if !customers::phone::is_e164(phone) {
            tracing::warn!(
                state_manager_id = id,
                "the State Manager's conversation has no valid customer phone"
            );
            return Ok(false);
        }
        let mut tx = self.db.begin_for(tenant).await?;
        let found =
            customers::upsert_by_phone(&mut tx, phone, remote.customer.display_name.as_deref())
                .await?;
        if let Some(customer) = &remote.customer.id {
            customers::link_state_manager_id(&mut tx, found.id, customer).await?;
        }
        if found.renamed {
            ConversationService::customer_renamed(&mut tx, found.id).await?;
        }
        let opened = PlatformConversation {
            state_manager_id: id.to_string(),
            genesys_conversation_id: remote.genesys_conversation_id.clone(),
            state: remote.state,
            assignee: Some(remote.assigned_agent_id),
        };
        ConversationService::open_from_platform(&mut tx, found.id, &opened).await?;
        tx.commit().await?;
        tracing::info!(
            state_manager_id = id,
            "fetched a missing conversation from the State Manager"
        );
        Ok(true)
    }

    /// Applies `envelope` (parsed from `body`, which is kept with a receipt that has to wait)
    /// and commits; its events are published after the commit by the [`Db`]'s event sink.
    pub async fn apply(&self, envelope: &Envelope, body: &[u8]) -> Result<Outcome, Refusal> {
        self.apply_tenants(&[&[(envelope, body)]])
            .await?
            .pop()
            .and_then(|mut outcomes| outcomes.pop())
            .ok_or_else(|| Refusal::from(Error::internal(anyhow::anyhow!("no outcome"))))
    }

    /// Applies several tenants' batches in one transaction: each batch in order, all or none,
    /// one refused refuses them all (apply each tenant's on its own then). Batches are applied
    /// in the order given; give them sorted by tenant, so that two consumers taking the same
    /// tenants' event counters do so in the same order and never deadlock.
    pub async fn apply_tenants(
        &self,
        batches: &[&[(&Envelope, &[u8])]],
    ) -> Result<Vec<Vec<Outcome>>, Refusal> {
        let mut tx: Option<TenantTx> = None;
        let mut outcomes = Vec::with_capacity(batches.len());
        for batch in batches {
            let Some((first, _)) = batch.first() else {
                outcomes.push(Vec::new());
                continue;
            };
            let tenant = first.tenant_id;
            if batch.iter().any(|(e, _)| e.tenant_id != tenant) {
                return Err(Error::internal(anyhow::anyhow!("a batch spans tenants")).into());
            }
            let tx = match &mut tx {
                Some(tx) => {
                    tx.switch_tenant(tenant).await?;
                    tx
                }
                None => tx.insert(self.db.begin_for(tenant).await?),
            };
            outcomes.push(apply_in(tx, batch).await?);
        }
        if let Some(tx) = tx {
            tx.commit().await?;
        }
        Ok(outcomes)
    }
}

/// One tenant's batch, in the transaction (already set to that tenant). Consecutive
/// `message.received` are stored with one statement each for the lot, which is what lets the
/// consumer keep up with a busy queue.
async fn apply_in(
    tx: &mut TenantTx,
    batch: &[(&Envelope, &[u8])],
) -> Result<Vec<Outcome>, Refusal> {
    let ids: Vec<(uuid::Uuid, &str)> = batch
        .iter()
        .map(|(e, _)| (e.event_id, e.notification.type_name()))
        .collect();
    let Some(fresh) = processed::record(tx, &ids).await? else {
        return Err(Refusal::Poison {
            reason: "unknown_tenant",
            detail: format!("no tenant {}", tx.tenant_id()),
        });
    };
    let mut outcomes = vec![Outcome::Duplicate; batch.len()];
    let mut i = 0;
    while i < batch.len() {
        if !fresh[i] {
            i += 1;
            continue;
        }
        let run: Vec<usize> = (i..batch.len())
            .take_while(|&j| is_received(batch[j].0) || !fresh[j])
            .filter(|&j| fresh[j])
            .collect();
        if run.is_empty() {
            let (envelope, body) = batch[i];
            outcomes[i] = apply_notification(tx, &envelope.notification, body).await?;
            i += 1;
            continue;
        }
        let inbound: Vec<Inbound> = run
            .iter()
            .filter_map(|&j| inbound_of(&batch[j].0.notification))
            .collect();
        for (&j, received) in run.iter().zip(inbound::receive(tx, &inbound).await?) {
            outcomes[j] = match received {
                Received::Stored(_) => Outcome::Applied,
                Received::Known => Outcome::Unchanged,
            };
        }
        i = run.last().map_or(i + 1, |last| last + 1);
    }
    Ok(outcomes)
}

fn is_received(envelope: &Envelope) -> bool {
    matches!(envelope.notification, Notification::MessageReceived { .. })
}

fn inbound_of(notification: &Notification) -> Option<Inbound> {
    let Notification::MessageReceived {
        state_manager_id,
        whatsapp_message_id,
        sent_at,
        text,
        media,
    } = notification
    else {
        return None;
    };
    Some(Inbound {
        state_manager_id: state_manager_id.clone(),
        whatsapp_message_id: whatsapp_message_id.clone(),
        sent_at: *sent_at,
        // A media message's caption is its text.
        text: text
            .clone()
            .or_else(|| media.as_ref().and_then(|m| m.caption.clone())),
        media: media.as_ref().map(|m| MediaContent {
            url: m.url.clone(),
            mime_type: m.mime_type.clone(),
        }),
    })
}

async fn apply_notification(
    tx: &mut TenantTx,
    notification: &Notification,
    body: &[u8],
) -> Result<Outcome, Refusal> {
    Ok(match notification {
        Notification::ConversationCreated {
            conversation,
            customer,
        } => {
            let found = customers::upsert_by_phone(
                tx,
                &customer.phone_e164,
                customer.display_name.as_deref(),
            )
            .await?;
            if found.renamed {
                ConversationService::customer_renamed(tx, found.id).await?;
            }
            let opened = PlatformConversation {
                state_manager_id: conversation.state_manager_id.clone(),
                genesys_conversation_id: conversation.genesys_conversation_id.clone(),
                state: conversation.state,
                assignee: conversation.assigned_agent_id,
            };
            changed(ConversationService::open_from_platform(tx, found.id, &opened).await?)
        }
        Notification::ConversationUpdated {
            state_manager_id,
            state,
            assigned_agent_id,
        } => changed(
            ConversationService::update_from_platform(
                tx,
                state_manager_id,
                *state,
                *assigned_agent_id,
            )
            .await?,
        ),
        Notification::ConversationClosed {
            state_manager_id,
            reason,
        } => changed(
            ConversationService::close_from_platform(tx, state_manager_id, reason.clone()).await?,
        ),
        Notification::MessageReceived { .. } => {
            let inbound: Vec<Inbound> = inbound_of(notification).into_iter().collect();
            match inbound::receive(tx, &inbound).await?.pop() {
                Some(Received::Stored(_)) => Outcome::Applied,
                _ => Outcome::Unchanged,
            }
        }
        Notification::MessageStatus {
            whatsapp_message_id,
            status,
            timestamp,
            error,
        } => {
            let receipt = Receipt {
                whatsapp_message_id: whatsapp_message_id.clone(),
                status: *status,
                failure_reason: error.as_ref().map(failure_reason),
                at: *timestamp,
            };
            let source = serde_json::from_slice::<serde_json::Value>(body).ok();
            match receipts::apply(tx, &receipt, source.as_ref()).await? {
                ReceiptOutcome::Applied => Outcome::Applied,
                ReceiptOutcome::Ignored => Outcome::Unchanged,
                ReceiptOutcome::Kept => Outcome::ReceiptKept,
            }
        }
        Notification::CustomerUpdated {
            phone_e164,
            display_name,
        } => {
            let found = customers::upsert_by_phone(tx, phone_e164, display_name.as_deref()).await?;
            if found.renamed {
                ConversationService::customer_renamed(tx, found.id).await?;
                Outcome::Applied
            } else if found.created {
                Outcome::Applied
            } else {
                Outcome::Unchanged
            }
        }
    })
}

fn changed(change: PlatformChange) -> Outcome {
    match change {
        PlatformChange::Changed(_) => Outcome::Applied,
        PlatformChange::Unchanged(_) => Outcome::Unchanged,
    }
}

/// WhatsApp's error as the message's failure reason: `131026: Message undeliverable`.
fn failure_reason(error: &ReceiptError) -> String {
    let reason = format!("{}: {}", error.code, error.title);
    reason
        .chars()
        .take(crate::messages::service::MAX_FAILURE_REASON_CHARS)
        .collect()
}
