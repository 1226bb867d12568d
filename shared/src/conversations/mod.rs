//! Conversations: the list agents work from, and the actions on one conversation.
//!
//! [`service`] holds the rules (who sees what, which transitions are allowed); [`repo`] holds
//! the SQL; [`search`] the meaning of the list's `q`.

pub(crate) mod repo;
pub mod search;
pub mod service;

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, ConversationId, CustomerId};
use crate::pagination::PageRequest;

pub(crate) use repo::Visibility;
pub use service::{ConversationPatch, ConversationService, PlatformChange, PlatformConversation};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, Enum)]
#[sqlx(type_name = "conversation_state", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
#[oai(rename_all = "lowercase")]
pub enum ConversationState {
    /// An agent is working it; it always has an assignee.
    Active,
    /// Waiting for an agent (in the queue) or on hold.
    Waiting,
    /// Finished; nothing changes it any more.
    Closed,
}

impl ConversationState {
    pub const ALL: [Self; 3] = [Self::Active, Self::Waiting, Self::Closed];
}

/// A conversation as the API returns it and as events carry it.
#[derive(Debug, Clone, Serialize, Object)]
pub struct Conversation {
    pub id: ConversationId,
    pub state: ConversationState,
    pub channel: String,
    pub customer: CustomerSummary,
    /// The agent working it, if any.
    pub assignee: Option<AgentSummary>,
    /// The conversation's id in the State Manager.
    pub state_manager_id: Option<String>,
    /// The conversation's id on the Genesys platform.
    pub genesys_conversation_id: Option<String>,
    pub close_reason: Option<String>,
    /// The start of the last message's text.
    pub last_message_preview: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

/// What the list shows of a customer, so it renders without further calls.
#[derive(Debug, Clone, Serialize, Object)]
pub struct CustomerSummary {
    pub id: CustomerId,
    pub display_name: String,
    /// E.164, e.g. `+447946001800`.
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Serialize, Object)]
pub struct AgentSummary {
    pub id: AgentId,
    pub display_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Enum)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    LastActivityAt,
    CreatedAt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Enum)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum SortDirection {
    Asc,
    Desc,
}

/// Which conversations a list or count covers (besides what the caller may see).
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    /// Empty means every state.
    pub states: Vec<ConversationState>,
    pub assigned_agent_id: Option<AgentId>,
    pub unassigned: bool,
    /// Customer name (partial, any case) or phone (partial digits, any formatting).
    pub q: Option<String>,
}

/// Where a page of the list starts: the sort key of the last row of the previous page. It
/// carries the sort it was made for, so it cannot be replayed against another ordering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListCursor {
    #[serde(rename = "s")]
    pub sort: SortKey,
    #[serde(rename = "d")]
    pub direction: SortDirection,
    #[serde(rename = "t")]
    pub at: DateTime<Utc>,
    #[serde(rename = "i")]
    pub id: ConversationId,
}

#[derive(Debug, Clone)]
pub struct ListRequest {
    pub filter: ConversationFilter,
    pub sort: SortKey,
    pub direction: SortDirection,
    pub page: PageRequest<ListCursor>,
}

/// How many conversations of each state match a filter (the portal's tabs).
#[derive(Debug, Clone, Default, Serialize, Object)]
pub struct StateCounts {
    pub active: i64,
    pub waiting: i64,
    pub closed: i64,
}
