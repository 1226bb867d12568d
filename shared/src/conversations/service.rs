//! The rules for conversations: who sees which, who may do what, which transitions exist.
//!
//! Each action runs in one tenant-scoped transaction that locks the conversation, checks the
//! rules against its current state, writes the change, its history and its event row, and
//! commits. Two agents taking the same conversation serialise on the row lock: the second
//! sees the first one's assignment and gets a conflict.

use super::repo::{self, AssignmentKind, Visibility};
use super::search::{self, SearchTerm};
use super::{
    Conversation, ConversationFilter, ConversationState, ListCursor, ListRequest, StateCounts,
};
use crate::agents;
use crate::events::{self, EventType};
use crate::ids::{AgentId, ConversationId};
use crate::pagination::Page;
use crate::tenancy::{Db, TenantCtx, TenantTx};
use crate::{Error, FieldError, Result};

pub const MAX_NOTE_CHARS: usize = 1000;
pub const MAX_CLOSE_REASON_CHARS: usize = 500;

/// A change asked for by `PATCH /conversations/{id}`; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ConversationPatch {
    /// `Some(None)` unassigns.
    pub assigned_agent_id: Option<Option<AgentId>>,
    pub state: Option<ConversationState>,
}

#[derive(Debug, Clone)]
pub struct ConversationService {
    db: Db,
}

impl ConversationService {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    #[tracing::instrument(skip(self, ctx, request), fields(tenant_id = %ctx.tenant_id()))]
    pub async fn list(
        &self,
        ctx: &TenantCtx,
        request: &ListRequest,
    ) -> Result<Page<Conversation, ListCursor>> {
        if let Some(after) = &request.page.after
            && (after.sort != request.sort || after.direction != request.direction)
        {
            return Err(Error::invalid(
                "cursor",
                "was made for another sort order; start again without it",
            ));
        }
        let search = validate_filter(&request.filter)?;
        let mut tx = self.db.begin(ctx).await?;
        let page = repo::list(&mut tx, visibility(ctx), request, search.as_ref()).await?;
        tx.commit().await?;
        Ok(page)
    }

    #[tracing::instrument(skip(self, ctx, filter), fields(tenant_id = %ctx.tenant_id()))]
    pub async fn count_by_state(
        &self,
        ctx: &TenantCtx,
        filter: &ConversationFilter,
    ) -> Result<StateCounts> {
        let search = validate_filter(filter)?;
        let mut tx = self.db.begin(ctx).await?;
        let counts =
            repo::count_by_state(&mut tx, visibility(ctx), filter, search.as_ref()).await?;
        tx.commit().await?;
        Ok(counts)
    }

    #[tracing::instrument(skip(self, ctx), fields(tenant_id = %ctx.tenant_id()))]
    pub async fn get(&self, ctx: &TenantCtx, id: ConversationId) -> Result<Conversation> {
        let mut tx = self.db.begin(ctx).await?;
        let conversation = visible(ctx, repo::find(&mut tx, id, false).await?)?;
        tx.commit().await?;
        Ok(conversation)
    }

    /// Assigns, unassigns or changes state. An agent may take an unassigned waiting
    /// conversation and act on its own; supervisors and admins act on any.
    #[tracing::instrument(skip(self, ctx), fields(tenant_id = %ctx.tenant_id()))]
    pub async fn update(
        &self,
        ctx: &TenantCtx,
        id: ConversationId,
        patch: ConversationPatch,
    ) -> Result<Conversation> {
        if patch.assigned_agent_id.is_none() && patch.state.is_none() {
            return Err(Error::Validation(vec![
                FieldError::new(
                    "assigned_agent_id",
                    "give assigned_agent_id, state, or both",
                ),
                FieldError::new("state", "give assigned_agent_id, state, or both"),
            ]));
        }
        if patch.state == Some(ConversationState::Closed) {
            if patch.assigned_agent_id.is_some() {
                return Err(Error::invalid(
                    "assigned_agent_id",
                    "cannot be changed while closing",
                ));
            }
            return self.close(ctx, id, None).await;
        }

        let mut tx = self.db.begin(ctx).await?;
        let current = repo::find(&mut tx, id, true).await?;
        let current = match (&patch.assigned_agent_id, current) {
            // The loser of a race to take a conversation finds it taken: a conflict, not a 404,
            // so the portal can say "someone else took it".
            (Some(Some(target)), Some(c))
                if !ctx.sees_whole_tenant()
                    && *target == ctx.agent_id()
                    && c.state != ConversationState::Closed
                    && c.assignee.as_ref().is_some_and(|a| a.id != ctx.agent_id()) =>
            {
                return Err(Error::Conflict(
                    "the conversation was taken by another agent".into(),
                ));
            }
            (_, found) => visible(ctx, found)?,
        };
        if current.state == ConversationState::Closed {
            return Err(Error::Conflict("the conversation is closed".into()));
        }

        let current_assignee = current.assignee.as_ref().map(|a| a.id);
        let assignee = patch.assigned_agent_id.unwrap_or(current_assignee);
        if assignee != current_assignee {
            self.check_may_assign(ctx, &mut tx, &current, assignee)
                .await?;
        } else if patch.state.is_some_and(|s| s != current.state) {
            require_acting_assignee(ctx, &current)?;
        }

        // Unassigning puts an active conversation back in the queue; assigning a waiting one
        // makes it active, unless the caller asked for a state explicitly.
        let state = match (patch.state, assignee) {
            (Some(ConversationState::Active), None) => {
                return Err(Error::Conflict(
                    "an active conversation needs an assignee".into(),
                ));
            }
            (Some(state), _) => state,
            (None, None) => ConversationState::Waiting,
            (None, Some(_)) if current_assignee.is_none() => ConversationState::Active,
            (None, Some(_)) => current.state,
        };

        if assignee == current_assignee && state == current.state {
            tx.commit().await?;
            return Ok(current);
        }
        repo::set_assignment(&mut tx, id, assignee, state).await?;
        if assignee != current_assignee {
            let kind = match (current_assignee, assignee) {
                (_, None) => AssignmentKind::Unassigned,
                (None, Some(_)) => AssignmentKind::Assigned,
                (Some(_), Some(_)) => AssignmentKind::Transferred,
            };
            repo::record_assignment(
                &mut tx,
                id,
                kind,
                current_assignee,
                assignee,
                ctx.agent_id(),
                None,
            )
            .await?;
        }
        finish(tx, &current, EventType::ConversationUpdated).await
    }

    /// Hands the conversation to another active agent of the tenant, with an optional note.
    #[tracing::instrument(skip(self, ctx, note), fields(tenant_id = %ctx.tenant_id()))]
    pub async fn transfer(
        &self,
        ctx: &TenantCtx,
        id: ConversationId,
        to: AgentId,
        note: Option<String>,
    ) -> Result<Conversation> {
        let note = optional_text("note", note, MAX_NOTE_CHARS)?;
        let mut tx = self.db.begin(ctx).await?;
        let current = visible(ctx, repo::find(&mut tx, id, true).await?)?;
        require_acting_assignee(ctx, &current)?;
        if current.state == ConversationState::Closed {
            return Err(Error::Conflict("the conversation is closed".into()));
        }
        let from = current.assignee.as_ref().map(|a| a.id);
        if from == Some(to) {
            return Err(Error::invalid(
                "to_agent_id",
                "the conversation is already assigned to this agent",
            ));
        }
        require_active_agent(&mut tx, to, "to_agent_id").await?;
        repo::set_assignment(&mut tx, id, Some(to), current.state).await?;
        repo::record_assignment(
            &mut tx,
            id,
            AssignmentKind::Transferred,
            from,
            Some(to),
            ctx.agent_id(),
            note.as_deref(),
        )
        .await?;
        finish(tx, &current, EventType::ConversationUpdated).await
    }

    /// Closes the conversation; closing a closed one changes nothing and succeeds.
    #[tracing::instrument(skip(self, ctx, reason), fields(tenant_id = %ctx.tenant_id()))]
    pub async fn close(
        &self,
        ctx: &TenantCtx,
        id: ConversationId,
        reason: Option<String>,
    ) -> Result<Conversation> {
        let reason = optional_text("reason", reason, MAX_CLOSE_REASON_CHARS)?;
        let mut tx = self.db.begin(ctx).await?;
        let current = visible(ctx, repo::find(&mut tx, id, true).await?)?;
        if current.state == ConversationState::Closed {
            tx.commit().await?;
            return Ok(current);
        }
        require_acting_assignee(ctx, &current)?;
        repo::close(&mut tx, id, reason.as_deref()).await?;
        finish(tx, &current, EventType::ConversationUpdated).await
    }

    async fn check_may_assign(
        &self,
        ctx: &TenantCtx,
        tx: &mut TenantTx,
        current: &Conversation,
        target: Option<AgentId>,
    ) -> Result<()> {
        if !ctx.sees_whole_tenant() {
            let me = Some(ctx.agent_id());
            let own = current.assignee.as_ref().map(|a| a.id) == me;
            let may = match target {
                // Taking an unassigned conversation.
                Some(t) if Some(t) == me => current.assignee.is_none(),
                // Giving one's own back to the queue.
                None => own,
                Some(_) => false,
            };
            if !may {
                return Err(Error::Forbidden(
                    "agents may take unassigned conversations and release their own; use transfer to hand one over".into(),
                ));
            }
        }
        if let Some(target) = target {
            require_active_agent(tx, target, "assigned_agent_id").await?;
        }
        Ok(())
    }
}

pub(crate) fn visibility(ctx: &TenantCtx) -> Visibility {
    if ctx.sees_whole_tenant() {
        Visibility::Tenant
    } else {
        Visibility::Agent(ctx.agent_id())
    }
}

/// Hides what the caller may not see behind the same answer as a missing conversation.
pub(crate) fn visible(ctx: &TenantCtx, found: Option<Conversation>) -> Result<Conversation> {
    found.filter(|c| may_see(ctx, c)).ok_or(Error::NotFound {
        resource: "conversation",
    })
}

fn may_see(ctx: &TenantCtx, conversation: &Conversation) -> bool {
    may_see_parts(
        ctx,
        conversation.assignee.as_ref().map(|a| a.id),
        conversation.state,
    )
}

/// Agents see their own conversations and the unassigned waiting ones they may take.
pub fn may_see_parts(ctx: &TenantCtx, assignee: Option<AgentId>, state: ConversationState) -> bool {
    ctx.sees_whole_tenant()
        || match assignee {
            Some(a) => a == ctx.agent_id(),
            None => state == ConversationState::Waiting,
        }
}

/// Acting on a conversation (other than taking it) is for its assignee or a supervisor.
pub(crate) fn require_acting_assignee(ctx: &TenantCtx, conversation: &Conversation) -> Result<()> {
    if ctx.sees_whole_tenant()
        || conversation
            .assignee
            .as_ref()
            .is_some_and(|a| a.id == ctx.agent_id())
    {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "only the assigned agent or a supervisor may do this".into(),
        ))
    }
}

async fn require_active_agent(tx: &mut TenantTx, id: AgentId, field: &str) -> Result<()> {
    match agents::find(tx, id).await? {
        Some(agent) if agent.active => Ok(()),
        Some(_) => Err(Error::invalid(field, "the agent is inactive")),
        None => Err(Error::invalid(field, "no such agent in this tenant")),
    }
}

fn optional_text(field: &str, value: Option<String>, max_chars: usize) -> Result<Option<String>> {
    let value = value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty());
    if value
        .as_ref()
        .is_some_and(|v| v.chars().count() > max_chars)
    {
        return Err(Error::invalid(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    Ok(value)
}

fn validate_filter(filter: &ConversationFilter) -> Result<Option<SearchTerm>> {
    let mut errors = Vec::new();
    if filter.unassigned && filter.assigned_agent_id.is_some() {
        errors.push(FieldError::new(
            "unassigned",
            "cannot be combined with assigned_agent_id",
        ));
    }
    let mut term = None;
    if let Some(q) = &filter.q {
        if q.chars().count() > search::MAX_QUERY_CHARS {
            errors.push(FieldError::new(
                "q",
                format!("must be at most {} characters", search::MAX_QUERY_CHARS),
            ));
        } else {
            term = SearchTerm::parse(q);
            if term.is_none() {
                errors.push(FieldError::new("q", "must contain a letter or a digit"));
            }
        }
    }
    if errors.is_empty() {
        Ok(term)
    } else {
        Err(Error::Validation(errors))
    }
}

/// Reads the changed conversation back, records its event, and commits. The event carries
/// the assignee and state from before the change too, so the realtime service can tell the
/// agent who lost the conversation, and the queue it left.
async fn finish(mut tx: TenantTx, before: &Conversation, event: EventType) -> Result<Conversation> {
    let id = before.id;
    let conversation = repo::find(&mut tx, id, false).await?.ok_or_else(|| {
        Error::internal(anyhow::anyhow!(
            "conversation {id} vanished inside its transaction"
        ))
    })?;
    let previous = serde_json::json!({
        "assignee_id": before.assignee.as_ref().map(|a| a.id),
        "state": before.state,
    });
    events::append(
        &mut tx,
        event,
        &serde_json::json!({ "conversation": conversation, "previous": previous }),
    )
    .await?;
    tx.commit().await?;
    Ok(conversation)
}
