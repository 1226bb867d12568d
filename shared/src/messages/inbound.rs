//! Messages customers send: they arrive through `agent.notifications` (`message.received`)
//! with their WhatsApp id, which makes a redelivered or re-published one a no-op. They are
//! stored a batch at a time: the queue consumer applies many in one transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::repo::{self, NewMessage};
use super::service::preview;
use super::{
    ContentType, Direction, MAX_TEXT_CHARS, MediaContent, Message, MessageStatus, SenderType,
};
use crate::conversations;
use crate::events::{self, EventType};
use crate::ids::{ConversationId, MessageId};
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

/// Stores the messages in their conversations (closed ones too: they are part of the
/// history), moves each conversation up the list with its last message as the preview, and
/// records a `message:new` per stored message. All or nothing: a message without text or
/// media, or for a conversation that does not exist, fails the lot. The caller commits.
pub async fn receive(tx: &mut TenantTx, inbound: &[Inbound]) -> Result<Vec<Received>> {
    let texts = inbound
        .iter()
        .map(|m| {
            let text = m.text.as_deref().unwrap_or("").trim();
            if text.is_empty() && m.media.is_none() {
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
            Ok(text)
        })
        .collect::<Result<Vec<&str>>>()?;
    let wanted: Vec<&str> = inbound
        .iter()
        .map(|m| m.state_manager_id.as_str())
        .collect();
    let found: HashMap<String, ConversationId> =
        conversations::repo::lock_by_state_manager_ids(tx, &wanted)
            .await?
            .into_iter()
            .collect();
    let new = inbound
        .iter()
        .zip(&texts)
        .map(|(m, text)| {
            let conversation_id = *found.get(&m.state_manager_id).ok_or(Error::NotFound {
                resource: "conversation",
            })?;
            Ok(NewMessage {
                id: MessageId::new(),
                conversation_id,
                direction: Direction::Inbound,
                sender_type: SenderType::Customer,
                sender_agent_id: None,
                content_type: if m.media.is_some() {
                    ContentType::Media
                } else {
                    ContentType::Text
                },
                body: text,
                template: None,
                status: MessageStatus::Delivered,
                idempotency: None,
                media: m.media.as_ref(),
                external_id: Some(&m.whatsapp_message_id),
                sent_at: Some(m.sent_at),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let stored = repo::insert_inbound(tx, &new).await?;

    // Each conversation's preview is its last message of the batch.
    let mut previews: Vec<(ConversationId, String)> = Vec::new();
    for message in &stored {
        previews.retain(|(id, _)| *id != message.conversation_id);
        previews.push((message.conversation_id, preview(&message.text)));
    }
    let after: HashMap<ConversationId, conversations::Conversation> =
        conversations::repo::record_messages(tx, &previews)
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
    let payloads: Vec<serde_json::Value> = stored
        .iter()
        .map(|message| {
            serde_json::json!({ "message": message, "conversation": after.get(&message.conversation_id) })
        })
        .collect();
    events::append_many(tx, EventType::MessageNew, &payloads).await?;

    let mut stored: HashMap<String, Message> = stored
        .into_iter()
        .filter_map(|m| Some((m.external_id.clone()?, m)))
        .collect();
    Ok(inbound
        .iter()
        .map(|m| match stored.remove(&m.whatsapp_message_id) {
            Some(message) => Received::Stored(Box::new(message)),
            None => Received::Known,
        })
        .collect())
}
