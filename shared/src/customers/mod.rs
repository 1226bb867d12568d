//! Customers: the people on the other end of a conversation, known to upstream by phone.
//!
//! Upstream (the State Manager, through `agent.notifications`) names a customer by E.164
//! phone number; [`upsert_by_phone`] finds or creates one and takes a new display name.
//! [`CustomerService`] answers the profile an agent sees, under the conversation rules: an
//! agent sees a customer only through a conversation it may see.

mod enrichment;
pub mod phone;
mod repo;
pub mod service;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use serde::Serialize;

use crate::conversations::{Conversation, ConversationState, TimelineEntry};
use crate::ids::{ConversationId, CustomerId};
use crate::integrations::propagation::SyncStatus;

pub use enrichment::Enricher;
pub use repo::{CustomerChange, link_state_manager_id, open_conversations, upsert_by_phone};
pub use service::{CustomerEdit, CustomerService, Edited};

/// The entity tag of a customer as it is now: it changes with every change of the row.
pub fn etag(updated_at: DateTime<Utc>) -> String {
    format!("\"{}\"", updated_at.timestamp_micros())
}

impl CustomerProfile {
    pub fn etag(&self) -> String {
        etag(self.updated_at)
    }
}

/// A customer as the profile shows them.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CustomerProfile {
    pub id: CustomerId,
    pub display_name: String,
    /// E.164, e.g. `+447946001800`.
    pub phone: Option<String>,
    pub email: Option<String>,
    /// Free-form attributes: a JSON object.
    pub attributes: BTreeMap<String, serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the customer's first conversation started; absent before any.
    pub first_contact_at: Option<DateTime<Utc>>,
    /// The last activity in any of the customer's conversations; absent before any.
    pub last_contact_at: Option<DateTime<Utc>>,
    /// The customer's conversation that is not closed, when there is one the caller may see.
    pub open_conversation: Option<OpenConversation>,
    /// The customer's conversations, by state.
    pub conversations: ConversationCounts,
    /// The customer's ids in other systems.
    pub external_ids: ExternalIds,
    /// Whether fields the State Manager holds were added (an email, attributes the portal
    /// lacks; the portal's own values win): `enriched` when they were; `not_configured` while
    /// no State Manager is configured; `not_linked` when it does not know the customer;
    /// `unavailable` when it did not answer in time or is failing (the local data is
    /// answered without it).
    pub enrichment: Enrichment,
    /// Where propagation of edits to the State Manager stands; absent before any edit was
    /// to propagate.
    pub sync: Option<SyncStatus>,
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ExternalIds {
    /// The customer's id in the State Manager.
    pub state_manager: Option<String>,
}

/// One conversation of a customer's history, with what happened to it, oldest step first.
#[derive(Debug, Clone, Serialize, Object)]
pub struct HistoryEntry {
    pub conversation: Conversation,
    pub timeline: Vec<TimelineEntry>,
}

#[derive(Debug, Clone, Serialize, Object)]
pub struct OpenConversation {
    pub id: ConversationId,
    pub state: ConversationState,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Object)]
pub struct ConversationCounts {
    pub active: i64,
    pub waiting: i64,
    pub closed: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum Enrichment {
    Enriched,
    Unavailable,
    NotConfigured,
    NotLinked,
}
