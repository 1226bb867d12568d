//! Propagating the portal's changes to the platform: assignment, transfer, state and close
//! of a conversation, and edits of a customer, are committed locally first, with one row per
//! target in the integration outbox written in the same transaction ([`enqueue_conversation`],
//! [`enqueue_customer`]); [`Propagator`] delivers them on the one [`crate::outbox`] mechanism.
//!
//! The subject's `sync` says where that stands (see the propagation migration): `pending` from
//! the change, `synced` once every row of it was acknowledged, `failed` (with the target's
//! reason) when one failed for good, until the next change. A conversation's change of `sync`
//! is pushed as `conversation:updated`.
//!
//! A change the platform refuses (Genesys: the target agent is offline there, the interaction
//! is gone) is not rolled back: it stands in the portal with `sync: failed` and the reason,
//! for the agent and their supervisor to see and act on. A rollback would silently undo what
//! an agent saw succeed, and could not undo what happened since (messages sent by the new
//! assignee, a close).

mod dispatcher;
pub(crate) mod repo;

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::config::Settings;
use crate::conversations::{Conversation, ConversationState};
use crate::ids::{AgentId, ConversationId, CustomerId};
use crate::tenancy::TenantTx;

pub use dispatcher::{PropagationMetrics, Propagator, backlog};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, Enum)]
#[sqlx(type_name = "sync_state", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
#[oai(rename_all = "lowercase")]
pub enum SyncState {
    /// Changes are on their way to the platform.
    Pending,
    /// The platform acknowledged every change.
    Synced,
    /// A change failed for good; `reason` says why. Stays until the next change.
    Failed,
}

/// Where propagation of a conversation's or customer's changes to the platform stands.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SyncStatus {
    pub state: SyncState,
    /// Why it failed: the target and its answer.
    pub reason: Option<String>,
    /// When it became so.
    pub at: DateTime<Utc>,
}

impl SyncStatus {
    /// From the subject's three `sync_*` columns; none before anything was to propagate.
    pub(crate) fn of(
        state: Option<SyncState>,
        reason: Option<String>,
        at: Option<DateTime<Utc>>,
    ) -> Option<Self> {
        Some(Self {
            state: state?,
            reason,
            at: at?,
        })
    }
}

/// A platform service changes are propagated to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    StateManager,
    Genesys,
}

impl Target {
    pub const ALL: [Self; 2] = [Self::StateManager, Self::Genesys];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::StateManager => "state_manager",
            Self::Genesys => "genesys",
        }
    }
}

/// The targets this deployment propagates to: the configured ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Targets {
    pub state_manager: bool,
    pub genesys: bool,
}

impl Targets {
    pub fn configured(settings: &Settings) -> Self {
        Self {
            state_manager: settings.state_manager.url.is_some(),
            genesys: settings.genesys.api_url.is_some(),
        }
    }

    fn includes(self, target: Target) -> bool {
        match target {
            Target::StateManager => self.state_manager,
            Target::Genesys => self.genesys,
        }
    }
}

/// What an agent did to a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Taken, or (re)assigned by a supervisor.
    Assigned,
    /// Handed back to the queue.
    Released,
    /// Handed to another agent with `POST /transfer`.
    Transferred,
    /// Active to waiting or back, the assignee unchanged.
    StateChanged,
    Closed,
}

/// A conversation's change as the State Manager receives it (the body of
/// `POST {state_manager.url}/conversations/{state_manager_id}/changes`) and as the outbox keeps it.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationChange {
    #[serde(rename = "type")]
    pub kind: ChangeKind,
    pub conversation_id: ConversationId,
    pub state_manager_id: Option<String>,
    pub genesys_conversation_id: Option<String>,
    /// The state after the change.
    pub state: ConversationState,
    /// The assignee after the change.
    pub assigned_agent_id: Option<AgentId>,
    /// The assignee before it.
    pub previous_agent_id: Option<AgentId>,
    /// A transfer's note.
    pub note: Option<String>,
    /// A close's reason.
    pub reason: Option<String>,
    pub by_agent_id: AgentId,
    pub occurred_at: DateTime<Utc>,
}

impl ConversationChange {
    pub fn new(
        kind: ChangeKind,
        before: &Conversation,
        after: &Conversation,
        by: AgentId,
        note: Option<String>,
    ) -> Self {
        Self {
            kind,
            conversation_id: after.id,
            state_manager_id: after.state_manager_id.clone(),
            genesys_conversation_id: after.genesys_conversation_id.clone(),
            state: after.state,
            assigned_agent_id: after.assignee.as_ref().map(|a| a.id),
            previous_agent_id: before.assignee.as_ref().map(|a| a.id),
            note,
            reason: after.close_reason.clone(),
            by_agent_id: by,
            occurred_at: after.updated_at,
        }
    }

    /// Whether Genesys has anything to do for it, with what the change says: routing moves
    /// (to an agent, back to the queue) and the agent's leaving on close.
    fn concerns_genesys(&self) -> bool {
        self.genesys_conversation_id.is_some() && self.kind != ChangeKind::StateChanged
    }
}

/// A customer's edit as the State Manager receives it (the body of
/// `PATCH {state_manager.url}/customers/{state_manager_id}`): the fields as they are now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerChange {
    pub customer_id: CustomerId,
    pub state_manager_id: String,
    pub display_name: String,
    pub email: Option<String>,
    pub phone_e164: Option<String>,
    pub attributes: serde_json::Value,
    pub by_agent_id: AgentId,
    pub occurred_at: DateTime<Utc>,
}

/// Queues `change` for every configured target it concerns and marks the conversation
/// `pending`, in the caller's transaction; true when something was queued.
pub(crate) async fn enqueue_conversation(
    tx: &mut TenantTx,
    targets: Targets,
    change: &ConversationChange,
) -> Result<bool> {
    let mut queued = false;
    for target in Target::ALL {
        let concerned = match target {
            Target::StateManager => change.state_manager_id.is_some(),
            Target::Genesys => change.concerns_genesys(),
        };
        if targets.includes(target) && concerned {
            repo::enqueue(
                tx,
                target,
                repo::Subject::Conversation(change.conversation_id),
                change,
            )
            .await?;
            queued = true;
        }
    }
    if queued {
        repo::set_sync(
            tx,
            repo::Subject::Conversation(change.conversation_id),
            SyncState::Pending,
            None,
        )
        .await?;
    }
    Ok(queued)
}

/// Queues a customer's edit for the State Manager (when configured) and marks the customer
/// `pending`, in the caller's transaction.
pub(crate) async fn enqueue_customer(
    tx: &mut TenantTx,
    targets: Targets,
    change: &CustomerChange,
) -> Result<bool> {
    if !targets.state_manager {
        return Ok(false);
    }
    let subject = repo::Subject::Customer(change.customer_id);
    repo::enqueue(tx, Target::StateManager, subject, change).await?;
    repo::set_sync(tx, subject, SyncState::Pending, None).await?;
    Ok(true)
}

/// What a service needs to propagate its changes: the targets, and the dispatcher's wake-up
/// (given after the commit of a transaction that queued something).
#[derive(Debug, Clone, Default)]
pub struct Propagation {
    pub targets: Targets,
    pub wake: std::sync::Arc<tokio::sync::Notify>,
}

impl Propagation {
    /// Tells the dispatcher rows were queued (after the commit).
    pub(crate) fn queued(&self) {
        self.wake.notify_one();
    }
}
