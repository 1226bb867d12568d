//! The rules for messages: who reads and sends, how sending stays exactly-once, how a status moves.
//!
//! Sending stores the message as `pending` together with its outbox row, the conversation's
//! new activity and the `message:new` event, in one transaction; the [`super::Dispatcher`]
//! delivers it afterwards. Nothing is sent from inside a request, so a crash, a slow
//! transformer or a retry by the client can neither lose a message nor send it twice.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use super::repo::{self, NewMessage};
use super::status::{Transition, transition};
use super::{
    ContentType, Direction, HistoryAnchor, HistoryCursor, HistoryPage, MAX_TEXT_CHARS, Message,
    MessageStatus, OutgoingContent, SearchCursor, SearchHit, SenderType,
};
use crate::conversations::service::{require_acting_assignee, visibility, visible};
use crate::conversations::{self, Conversation, ConversationState};
use crate::events::{self, EventType};
use crate::ids::{ConversationId, MessageId};
use crate::pagination::{Page, PageRequest};
use crate::templates::{self, service::TemplateRef};
use crate::tenancy::{Db, TenantCtx, TenantTx};
use crate::{Error, Result};

pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;
pub const MAX_SEARCH_CHARS: usize = 200;
pub const MAX_FAILURE_REASON_CHARS: usize = 1000;
/// How much of a message the conversation list shows.
const PREVIEW_CHARS: usize = 160;

/// A status to move to, as asked by the API, the dispatcher or a receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub status: MessageStatus,
    /// Kept when the status becomes `failed`.
    pub failure_reason: Option<String>,
    /// WhatsApp's id, recorded if the message has none yet.
    pub external_id: Option<String>,
}

impl StatusChange {
    pub fn to(status: MessageStatus) -> Self {
        Self {
            status,
            failure_reason: None,
            external_id: None,
        }
    }
}

/// What became of a status change.
#[derive(Debug, Clone)]
pub enum StatusOutcome {
    /// The status moved; its event is written.
    Applied(Message),
    /// The message already had this status.
    Unchanged(Message),
    /// The change would move the status backwards; the message is as it was.
    Refused(Message),
}

/// The stored message, and whether it was stored by an earlier request with the same key.
#[derive(Debug, Clone)]
pub struct SendOutcome {
    pub message: Message,
    pub replayed: bool,
}

#[derive(Debug, Clone)]
pub struct MessageService {
    db: Db,
    /// Wakes this process's dispatcher when a message is queued, instead of waiting for its poll.
    queued: Arc<Notify>,
}

impl MessageService {
    pub fn new(db: Db, queued: Arc<Notify>) -> Self {
        Self { db, queued }
    }

    /// A page of a conversation's history, newest first.
    #[tracing::instrument(skip(self, ctx), fields(tenant_id = %ctx.tenant_id()))]
    pub async fn history(
        &self,
        ctx: &TenantCtx,
        conversation: ConversationId,
        anchor: HistoryAnchor,
        page: &PageRequest<()>,
    ) -> Result<HistoryPage> {
        let mut tx = self.db.begin(ctx).await?;
        visible(
            ctx,
            conversations::repo::find(&mut tx, conversation, false).await?,
        )?;
        let (items, more) = repo::history(&mut tx, conversation, anchor, page.limit).await?;
        // `more` answers for the direction read; the other direction is one index probe.
        let (has_older, has_newer) = match anchor {
            HistoryAnchor::Latest => (more, false),
            HistoryAnchor::Before(cursor) => {
                let newest = items.first().map(HistoryCursor::of).unwrap_or(cursor);
                let newer = repo::exists_beyond(&mut tx, conversation, newest, true).await?;
                (more, newer)
            }
            HistoryAnchor::After(cursor) => {
                let oldest = items.last().map(HistoryCursor::of).unwrap_or(cursor);
                let older = repo::exists_beyond(&mut tx, conversation, oldest, false).await?;
                (older, more)
            }
            // Read from `after` up; newer ones lie within the gap (`more`) or past `before`.
            HistoryAnchor::Between { after, .. } => {
                let oldest = items.last().map(HistoryCursor::of).unwrap_or(after);
                let newest = items.first().map(HistoryCursor::of).unwrap_or(after);
                let older = repo::exists_beyond(&mut tx, conversation, oldest, false).await?;
                let newer =
                    more || repo::exists_beyond(&mut tx, conversation, newest, true).await?;
                (older, newer)
            }
        };
        tx.commit().await?;
        Ok(HistoryPage {
            items,
            has_older,
            has_newer,
        })
    }

    #[tracing::instrument(skip(self, ctx), fields(tenant_id = %ctx.tenant_id()))]
    pub async fn get(&self, ctx: &TenantCtx, id: MessageId) -> Result<Message> {
        let mut tx = self.db.begin(ctx).await?;
        let (message, _) = visible_message(ctx, &mut tx, id, false).await?;
        tx.commit().await?;
        Ok(message)
    }

    /// Stores an outbound message as `pending` and queues it for delivery.
    ///
    /// With an idempotency key, a retry of the same request returns the message the first
    /// one stored and queues nothing; the same key with another request is refused.
    #[tracing::instrument(skip(self, ctx, content, idempotency_key), fields(tenant_id = %ctx.tenant_id()))]
    pub async fn send(
        &self,
        ctx: &TenantCtx,
        conversation_id: ConversationId,
        content: OutgoingContent,
        idempotency_key: Option<String>,
    ) -> Result<SendOutcome> {
        validate_text(&content)?;
        let idempotency = match idempotency_key {
            Some(key) => Some((
                validate_idempotency_key(key)?,
                request_hash(conversation_id, &content)?,
            )),
            None => None,
        };

        let mut tx = self.db.begin(ctx).await?;
        // Locking the conversation serialises sends to it with closing and transfers.
        let conversation = visible(
            ctx,
            conversations::repo::find(&mut tx, conversation_id, true).await?,
        )?;
        if let Some((key, hash)) = &idempotency
            && let Some(earlier) = replay(&mut tx, ctx, key, hash).await?
        {
            tx.commit().await?;
            return Ok(earlier);
        }
        require_acting_assignee(ctx, &conversation)?;
        if conversation.state == ConversationState::Closed {
            return Err(Error::Conflict("the conversation is closed".into()));
        }
        let (body, template) = match &content {
            OutgoingContent::Text { text } => (text.clone(), None),
            OutgoingContent::Template(template) => {
                (render_template(&mut tx, template).await?, Some(template))
            }
        };

        let new = NewMessage {
            id: MessageId::new(),
            conversation_id,
            direction: Direction::Outbound,
            sender_type: SenderType::Agent,
            sender_agent_id: Some(ctx.agent_id()),
            content_type: if template.is_some() {
                ContentType::Template
            } else {
                ContentType::Text
            },
            body: &body,
            template,
            status: MessageStatus::Pending,
            idempotency: idempotency
                .as_ref()
                .map(|(key, hash)| (key.as_str(), hash.as_slice())),
            media: None,
            external_id: None,
            sent_at: None,
        };
        let Some(message) = repo::insert(&mut tx, &new).await? else {
            // A concurrent request with the same key (to another conversation, or it would
            // have waited on the lock above) committed first.
            let (key, hash) = idempotency
                .as_ref()
                .ok_or_else(|| Error::internal(anyhow::anyhow!("insert skipped without a key")))?;
            let earlier = replay(&mut tx, ctx, key, hash).await?.ok_or_else(|| {
                Error::internal(anyhow::anyhow!("idempotency key conflict without a row"))
            })?;
            tx.commit().await?;
            return Ok(earlier);
        };
        repo::enqueue(&mut tx, message.id).await?;
        let conversation = touch(&mut tx, conversation_id, &message).await?;
        events::append(
            &mut tx,
            EventType::MessageNew,
            &serde_json::json!({ "message": message, "conversation": conversation }),
        )
        .await?;
        tx.commit().await?;
        self.queued.notify_one();
        Ok(SendOutcome {
            message,
            replayed: false,
        })
    }

    /// `PATCH /messages/{id}/status`: for the conversation's assignee or a supervisor.
    /// A backwards move is refused with the current status; an equal one changes nothing.
    #[tracing::instrument(skip(self, ctx, change), fields(tenant_id = %ctx.tenant_id()))]
    pub async fn update_status(
        &self,
        ctx: &TenantCtx,
        id: MessageId,
        change: StatusChange,
    ) -> Result<Message> {
        let change = validate_status_change(change)?;
        let mut tx = self.db.begin(ctx).await?;
        let (current, conversation) = visible_message(ctx, &mut tx, id, true).await?;
        require_acting_assignee(ctx, &conversation)?;
        let outcome = apply_status(&mut tx, current, &change).await?;
        tx.commit().await?;
        match outcome {
            StatusOutcome::Applied(m) | StatusOutcome::Unchanged(m) => Ok(m),
            StatusOutcome::Refused(m) => Err(Error::StatusConflict {
                current: m.status.as_str(),
                requested: change.status.as_str(),
            }),
        }
    }

    /// Full-text search over the messages the caller may see, best match first.
    #[tracing::instrument(skip(self, ctx, query), fields(tenant_id = %ctx.tenant_id()))]
    pub async fn search(
        &self,
        ctx: &TenantCtx,
        query: &str,
        conversation: Option<ConversationId>,
        page: &PageRequest<SearchCursor>,
    ) -> Result<Page<SearchHit, SearchCursor>> {
        // NUL separates words like a space: no stored text holds one (Postgres text cannot).
        let query = query.replace('\0', " ");
        let query = query.trim();
        if query.chars().count() > MAX_SEARCH_CHARS {
            return Err(Error::invalid(
                "q",
                format!("must be at most {MAX_SEARCH_CHARS} characters"),
            ));
        }
        // Words are letters and digits: a query without any matches nothing.
        if !query.chars().any(char::is_alphanumeric) {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        }
        let mut tx = self.db.begin(ctx).await?;
        if let Some(id) = conversation {
            visible(ctx, conversations::repo::find(&mut tx, id, false).await?)?;
        }
        let (hits, more) = repo::search(
            &mut tx,
            visibility(ctx),
            query,
            conversation,
            page.after,
            page.limit,
        )
        .await?;
        tx.commit().await?;
        let next = if more {
            hits.last().map(|h| SearchCursor {
                rank: h.rank,
                at: h.message.created_at,
                id: h.message.id,
            })
        } else {
            None
        };
        Ok(Page { items: hits, next })
    }
}

/// Applies a status change to a locked message and records its event. The one place a
/// status moves, for the API, the dispatcher and delivery receipts alike.
pub(crate) async fn apply_status(
    tx: &mut TenantTx,
    current: Message,
    change: &StatusChange,
) -> Result<StatusOutcome> {
    match transition(current.status, change.status) {
        Transition::Same => Ok(StatusOutcome::Unchanged(current)),
        Transition::Refused => Ok(StatusOutcome::Refused(current)),
        Transition::Forward => {
            repo::set_status(
                tx,
                current.id,
                change.status,
                change.failure_reason.as_deref(),
                change.external_id.as_deref(),
            )
            .await?;
            let message = repo::find(tx, current.id, false)
                .await?
                .ok_or_else(|| Error::internal(anyhow::anyhow!("message vanished")))?;
            let conversation =
                conversations::repo::find(tx, message.conversation_id, false).await?;
            events::append(
                tx,
                EventType::MessageStatus,
                &serde_json::json!({ "message": message, "conversation": conversation }),
            )
            .await?;
            Ok(StatusOutcome::Applied(message))
        }
    }
}

/// The message and its conversation, if the caller may see the conversation.
async fn visible_message(
    ctx: &TenantCtx,
    tx: &mut TenantTx,
    id: MessageId,
    lock: bool,
) -> Result<(Message, Conversation)> {
    let not_found = || Error::NotFound {
        resource: "message",
    };
    let message = repo::find(tx, id, lock).await?.ok_or_else(not_found)?;
    let conversation = conversations::repo::find(tx, message.conversation_id, false).await?;
    let conversation = visible(ctx, conversation).map_err(|_| not_found())?;
    Ok((message, conversation))
}

/// The earlier message stored under this key, if the request matches it.
async fn replay(
    tx: &mut TenantTx,
    ctx: &TenantCtx,
    key: &str,
    hash: &[u8],
) -> Result<Option<SendOutcome>> {
    match repo::find_by_idempotency_key(tx, ctx.agent_id(), key).await? {
        Some((message, earlier)) if earlier == hash => Ok(Some(SendOutcome {
            message,
            replayed: true,
        })),
        Some(_) => Err(Error::invalid(
            "Idempotency-Key",
            "was already used for a different request; use a new key for a new message",
        )),
        None => Ok(None),
    }
}

/// Moves the conversation up the list with the new message as its preview.
async fn touch(
    tx: &mut TenantTx,
    id: ConversationId,
    message: &Message,
) -> Result<Option<Conversation>> {
    Ok(
        conversations::repo::record_messages(tx, &[(id, preview(&message.text))])
            .await?
            .pop(),
    )
}

/// What the conversation list shows of a message: the start of its text on one line.
pub(super) fn preview(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(PREVIEW_CHARS)
        .collect()
}

/// A text must be non-empty and within WhatsApp's limit; a template is checked against its
/// synced definition inside the send's transaction ([`render_template`]).
fn validate_text(content: &OutgoingContent) -> Result<()> {
    let text = match content {
        OutgoingContent::Text { text } => text,
        OutgoingContent::Template(template) if holds_nul(&template.parameters) => {
            return Err(Error::invalid(
                "template.parameters",
                "must not contain NUL characters",
            ));
        }
        OutgoingContent::Template(_) => return Ok(()),
    };
    if text.trim().is_empty() {
        return Err(Error::invalid("text", "must not be empty"));
    }
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(Error::invalid(
            "text",
            format!(
                "must be at most {MAX_TEXT_CHARS} characters (WhatsApp's limit); it has {chars}"
            ),
        ));
    }
    Ok(())
}

/// Whether a JSON value holds a NUL anywhere, which no Postgres text or jsonb can store.
fn holds_nul(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// What the customer will see of a template message, once its parameters pass WhatsApp's
/// rules; errors name their place in the request (`template.parameters.body[0]`).
async fn render_template(tx: &mut TenantTx, template: &super::TemplateContent) -> Result<String> {
    let reference = TemplateRef::Name {
        name: template.name.clone(),
        language: template.language.clone(),
    };
    match templates::service::check(tx, &reference, &template.parameters).await {
        Ok((_, rendered)) => Ok(rendered.text()),
        Err(Error::NotFound { .. }) => Err(Error::invalid(
            "template.name",
            format!(
                "no usable template {:?} in language {:?} (see GET /api/templates)",
                template.name, template.language
            ),
        )),
        Err(Error::Validation(fields)) => Err(Error::Validation(
            fields
                .into_iter()
                .map(|mut f| {
                    // The validator names the template itself `template`, and parameters
                    // under `parameters`; here both live under `template`.
                    f.field = if f.field == "template" {
                        "template.name".into()
                    } else {
                        format!("template.{}", f.field)
                    };
                    f
                })
                .collect(),
        )),
        Err(other) => Err(other),
    }
}

fn validate_idempotency_key(key: String) -> Result<String> {
    let valid = !key.is_empty()
        && key.chars().count() <= MAX_IDEMPOTENCY_KEY_CHARS
        && key.chars().all(|c| c.is_ascii_graphic());
    if valid {
        Ok(key)
    } else {
        Err(Error::invalid(
            "Idempotency-Key",
            format!(
                "must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters (a UUID is a good choice)"
            ),
        ))
    }
}

/// What a retry must repeat exactly to count as the same request.
fn request_hash(conversation: ConversationId, content: &OutgoingContent) -> Result<Vec<u8>> {
    let canonical = serde_json::to_vec(&(conversation, content)).map_err(Error::internal)?;
    Ok(Sha256::digest(&canonical).to_vec())
}

fn validate_status_change(mut change: StatusChange) -> Result<StatusChange> {
    change.failure_reason = change
        .failure_reason
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    if change.failure_reason.is_some() && change.status != MessageStatus::Failed {
        return Err(Error::invalid(
            "failure_reason",
            "is only allowed with status failed",
        ));
    }
    if change
        .failure_reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_FAILURE_REASON_CHARS)
    {
        return Err(Error::invalid(
            "failure_reason",
            format!("must be at most {MAX_FAILURE_REASON_CHARS} characters"),
        ));
    }
    if change.status == MessageStatus::Failed && change.failure_reason.is_none() {
        change.failure_reason = Some("marked failed".into());
    }
    Ok(change)
}
