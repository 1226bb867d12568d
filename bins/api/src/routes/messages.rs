//! Messages: a conversation's history, sending, one message, its status, and search.

use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Union};
use portal_shared::ids::{ConversationId, MessageId};
use portal_shared::messages::{
    HistoryAnchor, HistoryCursor, Message, MessageService, MessageStatus, OutgoingContent,
    SearchCursor, SearchHit, StatusChange, TemplateContent,
};
use portal_shared::pagination::{PageRequest, decode_cursor, decode_cursor_param, encode_cursor};
use portal_shared::{Error, FieldError};
use uuid::Uuid;

use super::ApiTags;
use crate::http::auth::Caller;
use crate::http::problem::ApiResult;

#[derive(Debug, Clone)]
pub struct MessagesApi {
    pub service: MessageService,
}

/// A page of a conversation's history, newest first.
#[derive(Debug, Object)]
pub struct MessagePage {
    pub items: Vec<Message>,
    /// Whether messages older than the last item exist: fetch them with `before=older_cursor`.
    pub has_older: bool,
    /// Whether messages newer than the first item exist: fetch them with `after=newer_cursor`.
    pub has_newer: bool,
    /// The oldest item's position; absent when the page is empty.
    #[oai(skip_serializing_if_is_none)]
    pub older_cursor: Option<String>,
    /// The newest item's position (or the `after` given, when no newer messages exist yet):
    /// poll with `after=newer_cursor` to catch up.
    #[oai(skip_serializing_if_is_none)]
    pub newer_cursor: Option<String>,
}

/// A text message.
#[derive(Debug, Object)]
pub struct NewText {
    /// 1 to 4096 characters.
    pub text: String,
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

#[derive(Debug, Object)]
pub struct StatusUpdate {
    pub status: MessageStatus,
    /// With `failed` only; at most 1000 characters.
    pub failure_reason: Option<String>,
}

#[derive(Debug, Object)]
pub struct SearchPage {
    pub items: Vec<SearchHit>,
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[OpenApi(tag = "ApiTags::Messages")]
impl MessagesApi {
    /// A conversation's messages
    ///
    /// Newest first. Without a cursor: the latest messages. `before`: the messages just older
    /// than that position; `after`: the ones just newer (still newest first). Positions are
    /// stable, so messages arriving between pages neither repeat nor shift them.
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
        before: Query<Option<String>>,
        /// A `newer_cursor` from an earlier page.
        after: Query<Option<String>>,
        /// 1–100, default 25.
        limit: Query<Option<u32>>,
    ) -> ApiResult<Json<MessagePage>> {
        let before: Option<HistoryCursor> = before
            .0
            .as_deref()
            .map(|c| decode_cursor_param("before", c))
            .transpose()?;
        let after: Option<HistoryCursor> = after
            .0
            .as_deref()
            .map(|c| decode_cursor_param("after", c))
            .transpose()?;
        let anchor = match (before, after) {
            (Some(_), Some(_)) => {
                return Err(Error::Validation(vec![
                    FieldError::new("before", "give before or after, not both"),
                    FieldError::new("after", "give before or after, not both"),
                ])
                .into());
            }
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
            older_cursor: result
                .items
                .last()
                .map(|m| encode_cursor(&HistoryCursor::of(m))),
            newer_cursor: newest.as_ref().map(encode_cursor),
            items: result.items,
        }))
    }

    /// Send a message
    ///
    /// Only the conversation's assignee or a supervisor may send, and not in a closed
    /// conversation (409). The message is stored as `pending` and delivered in the background;
    /// its status then moves to `sent` or `failed`. Send an `Idempotency-Key` (e.g. a UUID) to
    /// make retries safe: the same key and body return the first message and send nothing
    /// twice; the same key with another body is a 422.
    #[oai(
        path = "/conversations/:id/messages",
        method = "post",
        operation_id = "sendMessage"
    )]
    async fn send(
        &self,
        Caller(ctx): Caller,
        id: Path<Uuid>,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
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
        /// At most 200 characters.
        q: Query<String>,
        /// Only this conversation's messages.
        conversation_id: Query<Option<Uuid>>,
        /// 1–100, default 25.
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<SearchPage>> {
        let after = cursor.0.as_deref().map(decode_cursor).transpose()?;
        let page = PageRequest::<SearchCursor>::new(after, limit.0)?;
        let result = self
            .service
            .search(&ctx, &q.0, conversation_id.0.map(ConversationId), &page)
            .await?;
        Ok(Json(SearchPage {
            items: result.items,
            next_cursor: result.next.as_ref().map(encode_cursor),
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
        let change = StatusChange {
            failure_reason: body.0.failure_reason,
            ..StatusChange::to(body.0.status)
        };
        Ok(Json(
            self.service
                .update_status(&ctx, MessageId(id.0), change)
                .await?,
        ))
    }
}
