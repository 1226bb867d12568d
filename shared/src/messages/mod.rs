//! Messages: a conversation's history, sending through the outbox, delivery status, search.
//!
//! [`service`] holds the rules (who may read and send, how a status may move); [`repo`] the
//! SQL; [`status`] the status order; [`dispatcher`] delivers outbound messages to the
//! Outbound Transformer.

pub mod dispatcher;
pub mod inbound;
pub mod receipts;
mod repo;
pub mod service;
pub mod status;

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use serde::{Deserialize, Serialize};

use crate::conversations::{ConversationState, CustomerSummary};
use crate::cursor_part;
use crate::ids::{AgentId, ConversationId, MessageId};
use crate::pagination::{Cursor, part};

pub use dispatcher::{DeliveryMetrics, Dispatcher};
pub use service::{MessageService, SendOutcome, StatusChange};

/// WhatsApp's limit on a text message.
pub const MAX_TEXT_CHARS: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, Enum)]
#[sqlx(type_name = "message_direction", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
#[oai(rename_all = "lowercase")]
pub enum Direction {
    /// From the customer.
    Inbound,
    /// To the customer.
    Outbound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, Enum)]
#[sqlx(type_name = "message_sender", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
#[oai(rename_all = "lowercase")]
pub enum SenderType {
    Customer,
    Agent,
    /// Automated messages (bots, notices).
    System,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, Enum)]
#[sqlx(type_name = "message_content_type", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
#[oai(rename_all = "lowercase")]
pub enum ContentType {
    Text,
    Template,
    Media,
}

/// Delivery status. Moves only forward: pending → sent → delivered → read; failed from
/// pending or sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, Enum)]
#[sqlx(type_name = "message_status", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
#[oai(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Stored; not yet accepted by the Outbound Transformer.
    Pending,
    Sent,
    Delivered,
    Read,
    Failed,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
        }
    }
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Sender {
    #[serde(rename = "type")]
    #[oai(rename = "type")]
    pub kind: SenderType,
    /// Set when `type` is `agent`.
    pub agent_id: Option<AgentId>,
}

/// A WhatsApp template message: which template, and the values for its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Object)]
pub struct TemplateContent {
    pub name: String,
    /// The template's language code, e.g. `en_US`.
    pub language: String,
    /// As sent: positional (`["Ana", "42"]`) or named (`{"first_name": "Ana"}`) values.
    #[oai(default)]
    #[serde(default)]
    pub parameters: serde_json::Value,
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MediaContent {
    pub url: String,
    pub mime_type: Option<String>,
}

/// When each status was reached.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct StatusTimes {
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub read_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
}

/// A message as the API returns it and as events carry it.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct Message {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub direction: Direction,
    pub sender: Sender,
    pub content_type: ContentType,
    /// What the customer sees: the text, a template's rendered text, or a media caption.
    pub text: String,
    pub template: Option<TemplateContent>,
    pub media: Option<MediaContent>,
    pub status: MessageStatus,
    pub status_times: StatusTimes,
    /// Why the message failed, when `status` is `failed`.
    pub failure_reason: Option<String>,
    /// WhatsApp's message id (wamid), once known.
    pub external_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What an agent asks to send.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum OutgoingContent {
    Text { text: String },
    Template(TemplateContent),
}

crate::time_id_cursor!(
    /// Where a history page starts: the `(created_at, id)` of a message.
    HistoryCursor,
    MessageId,
    "an `older_cursor` or `newer_cursor` of this history"
);

impl HistoryCursor {
    pub fn of(message: &Message) -> Self {
        Self {
            at: message.created_at,
            id: message.id,
        }
    }
}

/// Which slice of a conversation's history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryAnchor {
    /// The newest messages.
    Latest,
    /// The messages just older than the cursor.
    Before(HistoryCursor),
    /// The messages just newer than the cursor.
    After(HistoryCursor),
    /// The messages just newer than `after` and older than `before` (a gap to fill).
    Between {
        after: HistoryCursor,
        before: HistoryCursor,
    },
}

/// A page of history, always newest first.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    pub items: Vec<Message>,
    /// Whether older messages than the oldest in `items` exist.
    pub has_older: bool,
    /// Whether newer messages than the newest in `items` exist.
    pub has_newer: bool,
}

/// Where a page of search results starts: the rank and sort key of the last hit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchCursor {
    pub rank: f32,
    pub at: DateTime<Utc>,
    pub id: MessageId,
}

impl Cursor for SearchCursor {
    const PATTERN: &'static str = concat!(
        "^",
        cursor_part!(bits),
        "\\.",
        cursor_part!(micros),
        "\\.",
        cursor_part!(id),
        "$"
    );
    const DESCRIPTION: &'static str = "a `next_cursor` of this search";

    fn encode(&self) -> String {
        format!(
            "{}.{}.{}",
            part::bits(self.rank),
            part::micros(self.at),
            part::id(self.id.0)
        )
    }

    fn decode(text: &str) -> Option<Self> {
        let [rank, at, id] = part::split(text)?;
        Some(Self {
            rank: part::parse_bits(rank)?,
            at: part::parse_micros(at)?,
            id: MessageId(part::parse_id(id)?),
        })
    }
}

/// The conversation a search hit belongs to, enough to show it in a result list.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct HitConversation {
    pub id: ConversationId,
    pub state: ConversationState,
    pub customer: CustomerSummary,
    pub assigned_agent_id: Option<AgentId>,
}

#[derive(Debug, Clone, Serialize, Object)]
pub struct SearchHit {
    pub message: Message,
    pub conversation: HitConversation,
    /// Relevance; higher is better.
    pub rank: f32,
    /// HTML-safe excerpt: the message text escaped, each match wrapped in `<mark>…</mark>`.
    pub snippet: String,
}
