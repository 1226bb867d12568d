//! Messages: a conversation's history, sending, one message, its status, and search.

use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, Union};
use portal_shared::ids::{ConversationId, MessageId};
use portal_shared::messages::{
    HistoryAnchor, HistoryCursor, Message, MessageService, MessageStatus, OutgoingContent,
    SearchCursor, SearchHit, StatusChange, TemplateContent,
};
use portal_shared::pagination::PageRequest;

use uuid::Uuid;

use super::ApiTags;
use crate::http::auth::Caller;
use crate::http::cursor::Paging;
use crate::http::json;
use crate::http::problem::ApiResult;

#[derive(Debug, Clone)]
pub struct MessagesApi {
    pub service: MessageService,
}

/// A page of a conversation's history, newest first.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MessagePage {
    pub items: Vec<Message>,
    /// Whether messages older than the last item exist: fetch them with `before=older_cursor`.
    pub has_older: bool,
    /// Whether messages newer than the first item exist: fetch them with `after=newer_cursor`.
    pub has_newer: bool,
    /// The oldest item's position; absent when the page is empty.
    pub older_cursor: Option<Paging<HistoryCursor>>,
    /// The newest item's position (or the `after` given, when no newer messages exist yet):
    /// poll with `after=newer_cursor` to catch up.
    pub newer_cursor: Option<Paging<HistoryCursor>>,
}

/// A text message.
#[derive(Debug, Object)]
#[oai(example)]
pub struct NewText {
    /// What the customer will read: up to 4096 characters (WhatsApp's limit), not only
    /// whitespace, and no NUL.
    #[oai(
        deserialize_with = "json::text",
        validator(
            min_length = 1,
            max_length = 4096,
            pattern = r"^[^\x00]*[^\s\x00][^\x00]*$"
        )
    )]
    pub text: String,
}

impl Example for NewText {
    fn example() -> Self {
        Self {
            text: "Thanks, Ana! I have reset your line; it should be back within ten minutes."
                .into(),
        }
    }
}

/// A WhatsApp template message.
#[derive(Debug, Object)]
pub struct NewTemplate {
    pub template: TemplateContent,
}

/// `POST` body: `{"type": "text", "text": "..."}` or `{"type": "template", "template": {...}}`.
#[derive(Debug, Union)]
#[oai(discriminator_name = "type")]
pub enum NewMessage {
    #[oai(mapping = "text")]
    Text(NewText),
    #[oai(mapping = "template")]
    Template(NewTemplate),
}

#[derive(Debug, ApiResponse)]
pub enum SendResponse {
    /// Stored as `pending` and queued for delivery; `message:status` events follow.
    /// `Idempotent-Replayed: true` marks the answer to a retry with a known key.
    #[oai(status = 202)]
    Accepted(
        Json<Message>,
        #[oai(header = "Location")] String,
        #[oai(header = "Idempotent-Replayed")] Option<String>,
    ),
}

/// The statuses a message reaches without a reason.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "lowercase")]
pub enum Progress {
    Pending,
    Sent,
    Delivered,
    Read,
}

#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "lowercase")]
pub enum Failed {
    Failed,
}

/// A status other than `failed`.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct StatusReached {
    pub status: Progress,
}

/// `failed`, and why.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct StatusFailed {
    pub status: Failed,
    /// Shown to agents; `marked failed` when absent or `null`.
    #[oai(
        nullable,
        deserialize_with = "json::optional_text",
        validator(max_length = 1000, pattern = r"^[^\x00]*$")
    )]
    pub failure_reason: Option<String>,
}

/// `PATCH` body: `{"status": "delivered"}`, or `{"status": "failed", "failure_reason": "..."}`
/// (a reason goes with `failed` only).
#[derive(Debug, Union)]
#[oai(one_of)]
pub enum StatusUpdate {
    Reached(StatusReached),
    Failed(StatusFailed),
}

impl StatusUpdate {
    fn change(self) -> StatusChange {
        match self {
            Self::Reached(r) => StatusChange::to(match r.status {
                Progress::Pending => MessageStatus::Pending,
                Progress::Sent => MessageStatus::Sent,
                Progress::Delivered => MessageStatus::Delivered,
                Progress::Read => MessageStatus::Read,
            }),
            Self::Failed(f) => StatusChange {
                failure_reason: f.failure_reason,
                ..StatusChange::to(MessageStatus::Failed)
            },
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SearchPage {
    pub items: Vec<SearchHit>,
    pub next_cursor: Option<Paging<SearchCursor>>,
}

#[OpenApi(tag = "ApiTags::Messages")]
impl MessagesApi {
    /// A conversation's messages
    ///
    /// Newest first. Without a cursor: the latest messages. `before`: the messages just older
    /// than that position; `after`: the ones just newer (still newest first); both: the ones
    /// between the two, from `after` on. Positions are stable, so messages arriving between
    /// pages neither repeat nor shift them.
    #[oai(
        path = "/conversations/:id/messages",
        method = "get",
        operation_id = "listMessages"
    )]
    async fn history(
        &self,
        Caller(ctx): Caller,
        id: Path<Uuid>,
        /// An `older_cursor` from an earlier page.
        before: Query<Option<Paging<HistoryCursor>>>,
        /// A `newer_cursor` from an earlier page.
        after: Query<Option<Paging<HistoryCursor>>>,
        /// 1–100, default 25.
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
    ) -> ApiResult<Json<MessagePage>> {
        let after = after.0.map(|c| c.0);
        let anchor = match (before.0.map(|c| c.0), after) {
            (Some(before), Some(after)) => HistoryAnchor::Between { after, before },
            (Some(c), None) => HistoryAnchor::Before(c),
            (None, Some(c)) => HistoryAnchor::After(c),
            (None, None) => HistoryAnchor::Latest,
        };
        let page = PageRequest::new(None, limit.0)?;
        let result = self
            .service
            .history(&ctx, ConversationId(id.0), anchor, &page)
            .await?;
        let newest = result.items.first().map(HistoryCursor::of).or(after);
        Ok(Json(MessagePage {
            has_older: result.has_older,
            has_newer: result.has_newer,
            older_cursor: result.items.last().map(|m| Paging(HistoryCursor::of(m))),
            newer_cursor: newest.map(Paging),
            items: result.items,
        }))
    }

    /// Send a message
    ///
    /// Only the conversation's assignee or a supervisor may send, and not in a closed
    /// conversation (409). The message is stored as `pending` and delivered in the background;
    /// its status then moves to `sent` or `failed`. Send an `Idempotency-Key` (e.g. a UUID) to
    /// make retries safe: the same key and body return the first message and send nothing
    /// twice; the same key with another body is a 422. A template message names a usable
    /// template of the tenant and gives parameters that fit it (422 naming the field
    /// otherwise, as `POST /templates/validate` would).
    #[oai(
        path = "/conversations/:id/messages",
        method = "post",
        operation_id = "sendMessage"
    )]
    async fn send(
        &self,
        Caller(ctx): Caller,
        id: Path<Uuid>,
        /// 1 to 255 visible ASCII characters; a UUID is a good choice.
        #[oai(name = "Idempotency-Key", validator(pattern = "^[!-~]{1,255}$"))]
        idempotency_key: Header<Option<String>>,
        body: Json<NewMessage>,
    ) -> ApiResult<SendResponse> {
        let content = match body.0 {
            NewMessage::Text(t) => OutgoingContent::Text { text: t.text },
            NewMessage::Template(t) => OutgoingContent::Template(t.template),
        };
        let outcome = self
            .service
            .send(&ctx, ConversationId(id.0), content, idempotency_key.0)
            .await?;
        let location = format!("/api/messages/{}", outcome.message.id);
        Ok(SendResponse::Accepted(
            Json(outcome.message),
            location,
            outcome.replayed.then(|| "true".to_string()),
        ))
    }

    /// Search messages
    ///
    /// Full-text search over the messages the caller may see (web-search syntax: words,
    /// `"a phrase"`, `or`, `-excluded`), whole words in any language, best match first.
    /// `snippet` is HTML-safe: the text is escaped and each match wrapped in `<mark>`.
    #[oai(
        path = "/messages/search",
        method = "get",
        operation_id = "searchMessages"
    )]
    async fn search(
        &self,
        Caller(ctx): Caller,
        #[oai(validator(max_length = 200))] q: Query<String>,
        /// Only this conversation's messages.
        conversation_id: Query<Option<Uuid>>,
        /// 1–100, default 25.
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        cursor: Query<Option<Paging<SearchCursor>>>,
    ) -> ApiResult<Json<SearchPage>> {
        let page = PageRequest::new(cursor.0.map(|c| c.0), limit.0)?;
        let result = self
            .service
            .search(&ctx, &q.0, conversation_id.0.map(ConversationId), &page)
            .await?;
        Ok(Json(SearchPage {
            items: result.items,
            next_cursor: result.next.map(Paging),
        }))
    }

    /// Get a message
    #[oai(path = "/messages/:id", method = "get", operation_id = "getMessage")]
    async fn get(&self, Caller(ctx): Caller, id: Path<Uuid>) -> ApiResult<Json<Message>> {
        Ok(Json(self.service.get(&ctx, MessageId(id.0)).await?))
    }

    /// Update a message's status
    ///
    /// Statuses only move forward: pending → sent → delivered → read, and failed from
    /// pending or sent. A backwards or impossible move is a 409 whose `current_status` says
    /// where the message is; asking for the status it already has changes nothing (200).
    #[oai(
        path = "/messages/:id/status",
        method = "patch",
        operation_id = "updateMessageStatus"
    )]
    async fn update_status(
        &self,
        Caller(ctx): Caller,
        id: Path<Uuid>,
        body: Json<StatusUpdate>,
    ) -> ApiResult<Json<Message>> {
        let change = body.0.change();
        Ok(Json(
            self.service
                .update_status(&ctx, MessageId(id.0), change)
                .await?,
        ))
    }
}
