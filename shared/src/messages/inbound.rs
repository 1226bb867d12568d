//! Messages customers send: they arrive through `agent.notifications` (`message.received`)
//! with their WhatsApp id, which makes a redelivered or re-published one a no-op.

use chrono::{DateTime, Utc};

use super::repo::{self, NewMessage};
use super::service::touch;
use super::{
    ContentType, Direction, MAX_TEXT_CHARS, MediaContent, Message, MessageStatus, SenderType,
};
use crate::conversations;
use crate::events::{self, EventType};
use crate::ids::MessageId;
use crate::tenancy::TenantTx;
use crate::{Error, Result};

/// A customer's message as upstream reports it.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The conversation, as the State Manager names it.
    pub state_manager_id: String,
    pub whatsapp_message_id: String,
    /// When the customer sent it (WhatsApp's timestamp).
    pub sent_at: DateTime<Utc>,
    /// The text, or a media message's caption.
    pub text: Option<String>,
    pub media: Option<MediaContent>,
}

#[derive(Debug, Clone)]
pub enum Received {
    Stored(Box<Message>),
    /// A message with this WhatsApp id is already stored.
    Known,
}

/// Stores the message in its conversation (a closed one too: it is part of the history), moves
/// the conversation up the list and records `message:new`. The caller commits.
pub async fn receive(tx: &mut TenantTx, inbound: &Inbound) -> Result<Received> {
    let text = inbound.text.as_deref().unwrap_or("").trim();
    if text.is_empty() && inbound.media.is_none() {
        return Err(Error::invalid(
            "data.text",
            "a message needs a text or a media",
        ));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(Error::invalid(
            "data.text",
            format!("must be at most {MAX_TEXT_CHARS} characters"),
        ));
    }
    let conversation_id =
        conversations::repo::lock_by_state_manager_id(tx, &inbound.state_manager_id)
            .await?
            .ok_or(Error::NotFound {
                resource: "conversation",
            })?;
    if repo::find_by_external_id(tx, &inbound.whatsapp_message_id)
        .await?
        .is_some()
    {
        return Ok(Received::Known);
    }
    let new = NewMessage {
        id: MessageId::new(),
        conversation_id,
        direction: Direction::Inbound,
        sender_type: SenderType::Customer,
        sender_agent_id: None,
        content_type: if inbound.media.is_some() {
            ContentType::Media
        } else {
            ContentType::Text
        },
        body: text,
        template: None,
        status: MessageStatus::Delivered,
        idempotency: None,
        media: inbound.media.as_ref(),
        external_id: Some(&inbound.whatsapp_message_id),
        sent_at: Some(inbound.sent_at),
    };
    let message = repo::insert(tx, &new)
        .await?
        .ok_or_else(|| Error::internal(anyhow::anyhow!("inbound insert returned no row")))?;
    let conversation = touch(tx, conversation_id, &message).await?;
    events::append(
        tx,
        EventType::MessageNew,
        &serde_json::json!({ "message": message, "conversation": conversation }),
    )
    .await?;
    Ok(Received::Stored(Box::new(message)))
}
