//! `/api/conversations`: the list, per-state counts, and the actions on one conversation.

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{Object, OpenApi};
use portal_shared::conversations::{
    Conversation, ConversationFilter, ConversationPatch, ConversationService, ConversationState,
    ListCursor, ListRequest, SortDirection, SortKey, StateCounts,
};
use portal_shared::ids::{AgentId, ConversationId};
use portal_shared::pagination::PageRequest;
use uuid::Uuid;

use super::ApiTags;
use crate::http::auth::Caller;
use crate::http::cursor::Paging;
use crate::http::json;
use crate::http::problem::ApiResult;

#[derive(Debug, Clone)]
pub struct ConversationsApi {
    pub service: ConversationService,
}

/// A page of conversations.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ConversationPage {
    pub items: Vec<Conversation>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<Paging<ListCursor>>,
}

/// `PATCH` body. Absent fields are left unchanged; `assigned_agent_id: null` unassigns.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ConversationUpdate {
    pub assigned_agent_id: poem_openapi::types::MaybeUndefined<Uuid>,
    #[oai(deserialize_with = "json::present")]
    pub state: Option<ConversationState>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct TransferRequest {
    /// An active agent of the same tenant.
    pub to_agent_id: Uuid,
    /// Shown to the receiving agent and kept in the history. `null` is the same as absent.
    #[oai(
        nullable,
        deserialize_with = "json::optional_text",
        validator(max_length = 1000, pattern = r"^[^\x00]*$")
    )]
    pub note: Option<String>,
}

#[derive(Debug, Object, Default)]
#[oai(skip_serializing_if_is_none)]
pub struct CloseRequest {
    /// `null` is the same as absent.
    #[oai(
        nullable,
        deserialize_with = "json::optional_text",
        validator(max_length = 500, pattern = r"^[^\x00]*$")
    )]
    pub reason: Option<String>,
}

impl Example for TransferRequest {
    fn example() -> Self {
        Self {
            to_agent_id: Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_a002),
            note: Some("Billing question: the customer disputes roaming charges".into()),
        }
    }
}

fn filter(
    state: Vec<ConversationState>,
    assigned_agent_id: Option<Uuid>,
    unassigned: Option<bool>,
    q: Option<String>,
) -> ConversationFilter {
    let mut states = state;
    states.sort_by_key(|s| *s as u8);
    states.dedup();
    ConversationFilter {
        states,
        assigned_agent_id: assigned_agent_id.map(AgentId),
        unassigned: unassigned.unwrap_or(false),
        q,
    }
}

#[OpenApi(prefix_path = "/conversations", tag = "ApiTags::Conversations")]
impl ConversationsApi {
    /// List conversations
    ///
    /// Agents see their own conversations and unassigned waiting ones; supervisors and admins
    /// see the whole tenant. Keyset-paginated: follow `next_cursor` with the same sort.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/", method = "get", operation_id = "listConversations")]
    async fn list(
        &self,
        Caller(ctx): Caller,
        /// Repeat for several: `state=active&state=waiting`.
        #[oai(default)]
        state: Query<Vec<ConversationState>>,
        assigned_agent_id: Query<Option<Uuid>>,
        /// Only conversations without an assignee.
        unassigned: Query<Option<bool>>,
        /// Customer name (any case, partial) or phone (any formatting, partial digits).
        #[oai(validator(max_length = 100))]
        q: Query<Option<String>>,
        /// Default `last_activity_at`; with a `cursor`, the cursor's.
        sort: Query<Option<SortKey>>,
        /// Default `desc`; with a `cursor`, the cursor's.
        direction: Query<Option<SortDirection>>,
        /// 1–100, default 25.
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        cursor: Query<Option<Paging<ListCursor>>>,
    ) -> ApiResult<Json<ConversationPage>> {
        let after = cursor.0.map(|c| c.0);
        // A cursor keeps the order it was made in, so following one never reorders the list.
        let (sort, direction) = match &after {
            Some(c) => (c.sort, c.direction),
            None => (
                sort.0.unwrap_or(SortKey::LastActivityAt),
                direction.0.unwrap_or(SortDirection::Desc),
            ),
        };
        let request = ListRequest {
            filter: filter(state.0, assigned_agent_id.0, unassigned.0, q.0),
            sort,
            direction,
            page: PageRequest::new(after, limit.0)?,
        };
        let page = self.service.list(&ctx, &request).await?;
        Ok(Json(ConversationPage {
            items: page.items,
            next_cursor: page.next.map(Paging),
        }))
    }

    /// Count conversations per state
    ///
    /// The same filters as the list (state narrows which counts are non-zero); for the tabs.
    #[oai(path = "/counts", method = "get", operation_id = "countConversations")]
    async fn counts(
        &self,
        Caller(ctx): Caller,
        #[oai(default)] state: Query<Vec<ConversationState>>,
        assigned_agent_id: Query<Option<Uuid>>,
        unassigned: Query<Option<bool>>,
        #[oai(validator(max_length = 100))] q: Query<Option<String>>,
    ) -> ApiResult<Json<StateCounts>> {
        let filter = filter(state.0, assigned_agent_id.0, unassigned.0, q.0);
        Ok(Json(self.service.count_by_state(&ctx, &filter).await?))
    }

    /// Get a conversation
    #[oai(path = "/:id", method = "get", operation_id = "getConversation")]
    async fn get(&self, Caller(ctx): Caller, id: Path<Uuid>) -> ApiResult<Json<Conversation>> {
        Ok(Json(self.service.get(&ctx, ConversationId(id.0)).await?))
    }

    /// Assign, unassign, or change state
    ///
    /// An agent may take an unassigned conversation (`assigned_agent_id` = itself; 409 when
    /// another agent took it first) and release or change the state of its own. Supervisors
    /// may assign to any active agent (422 naming `assigned_agent_id` for any other id, or
    /// with `state: closed`). Allowed states: waiting ⇄ active (active needs an assignee),
    /// either → closed; nothing leaves closed (409). `{}` changes nothing.
    #[oai(path = "/:id", method = "patch", operation_id = "updateConversation")]
    async fn update(
        &self,
        Caller(ctx): Caller,
        id: Path<Uuid>,
        body: Json<ConversationUpdate>,
    ) -> ApiResult<Json<Conversation>> {
        let patch = ConversationPatch {
            assigned_agent_id: match body.0.assigned_agent_id {
                poem_openapi::types::MaybeUndefined::Undefined => None,
                poem_openapi::types::MaybeUndefined::Null => Some(None),
                poem_openapi::types::MaybeUndefined::Value(v) => Some(Some(AgentId(v))),
            },
            state: body.0.state,
        };
        Ok(Json(
            self.service
                .update(&ctx, ConversationId(id.0), patch)
                .await?,
        ))
    }

    /// Transfer to another agent
    ///
    /// To an active agent of the same tenant (422 otherwise), with an optional note kept in
    /// the assignment history.
    #[oai(
        path = "/:id/transfer",
        method = "post",
        operation_id = "transferConversation"
    )]
    async fn transfer(
        &self,
        Caller(ctx): Caller,
        id: Path<Uuid>,
        body: Json<TransferRequest>,
    ) -> ApiResult<Json<Conversation>> {
        let body = body.0;
        Ok(Json(
            self.service
                .transfer(
                    &ctx,
                    ConversationId(id.0),
                    AgentId(body.to_agent_id),
                    body.note,
                )
                .await?,
        ))
    }

    /// Close
    ///
    /// Body `{}` or `{"reason": "..."}`. Closing a closed conversation changes nothing and
    /// answers 200.
    #[oai(
        path = "/:id/close",
        method = "post",
        operation_id = "closeConversation"
    )]
    async fn close(
        &self,
        Caller(ctx): Caller,
        id: Path<Uuid>,
        body: Json<CloseRequest>,
    ) -> ApiResult<Json<Conversation>> {
        let reason = body.0.reason;
        Ok(Json(
            self.service
                .close(&ctx, ConversationId(id.0), reason)
                .await?,
        ))
    }
}
