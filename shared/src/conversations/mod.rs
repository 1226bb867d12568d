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

use crate::cursor_part;
use crate::ids::{AgentId, ConversationId, CustomerId};
use crate::integrations::propagation::SyncStatus;
use crate::pagination::{Cursor, PageRequest, part};

pub use repo::CUSTOMER_HISTORY_SQL;
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
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Object)]
#[oai(skip_serializing_if_is_none, example)]
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
    /// Where propagation of the portal's changes to the platform (State Manager, Genesys)
    /// stands; absent before any change was to propagate.
    pub sync: Option<SyncStatus>,
}

/// What the list shows of a customer, so it renders without further calls.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Object)]
#[oai(skip_serializing_if_is_none)]
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
/// carries the sort it was made for, and the next pages keep that sort.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCursor {
    pub sort: SortKey,
    pub direction: SortDirection,
    pub at: DateTime<Utc>,
    pub id: ConversationId,
}

impl Cursor for ListCursor {
    const PATTERN: &'static str = concat!(
        "^[lc][ad]\\.",
        cursor_part!(micros),
        "\\.",
        cursor_part!(id),
        "$"
    );
    const DESCRIPTION: &'static str = "a `next_cursor` of this list; it carries its sort and direction, which the next pages keep";

    fn encode(&self) -> String {
        let sort = match self.sort {
            SortKey::LastActivityAt => 'l',
            SortKey::CreatedAt => 'c',
        };
        let direction = match self.direction {
            SortDirection::Asc => 'a',
            SortDirection::Desc => 'd',
        };
        format!(
            "{sort}{direction}.{}.{}",
            part::micros(self.at),
            part::id(self.id.0)
        )
    }

    fn decode(text: &str) -> Option<Self> {
        let [order, at, id] = part::split(text)?;
        let [sort, direction] = order.as_bytes() else {
            return None;
        };
        Some(Self {
            sort: match *sort {
                b'l' => SortKey::LastActivityAt,
                b'c' => SortKey::CreatedAt,
                _ => return None,
            },
            direction: match *direction {
                b'a' => SortDirection::Asc,
                b'd' => SortDirection::Desc,
                _ => return None,
            },
            at: part::parse_micros(at)?,
            id: ConversationId(part::parse_id(id)?),
        })
    }
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

crate::time_id_cursor!(
    /// A position in a customer's history: the conversation's creation time and id.
    CustomerHistoryCursor,
    ConversationId,
    "a `next_cursor` of this history"
);

/// What happened to a conversation, in a customer's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Enum)]
#[serde(rename_all = "lowercase")]
#[oai(rename_all = "lowercase")]
pub enum TimelineKind {
    Assigned,
    Unassigned,
    Transferred,
    Closed,
}

/// One step of a conversation's timeline.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct TimelineEntry {
    pub kind: TimelineKind,
    pub at: DateTime<Utc>,
    /// The agent it was taken from (unassigned, transferred, reassigned).
    pub from_agent_id: Option<AgentId>,
    /// The agent it went to (assigned, transferred).
    pub to_agent_id: Option<AgentId>,
    /// Who did it; absent when the platform did.
    pub by_agent_id: Option<AgentId>,
    /// A transfer's note.
    pub note: Option<String>,
    /// A close's reason.
    pub reason: Option<String>,
}
