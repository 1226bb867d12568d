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
use crate::ids::{AgentId, ConversationId, CustomerId};
use crate::integrations::propagation::{
    self, ChangeKind, ConversationChange, Propagation, Targets,
};
use crate::pagination::Page;
use crate::tenancy::{Db, TenantCtx, TenantTx};
use crate::{Error, Result};

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
    propagation: Propagation,
}

/// An agent's action, which the platform must hear of.
#[derive(Debug)]
struct AgentAction<'a> {
    targets: Targets,
    kind: ChangeKind,
    by: AgentId,
    note: Option<&'a str>,
}

impl ConversationService {
    /// Agents' changes are propagated to `propagation`'s targets.
    pub fn new(db: Db, propagation: Propagation) -> Self {
        Self { db, propagation }
    }

    fn action<'a>(
        &self,
        ctx: &TenantCtx,
        kind: ChangeKind,
        note: Option<&'a str>,
    ) -> AgentAction<'a> {
        AgentAction {
            targets: self.propagation.targets,
            kind,
            by: ctx.agent_id(),
            note,
        }
    }

    /// Commits an agent's change, and wakes the propagation dispatcher if it queued anything.
    async fn finish(
        &self,
        mut tx: TenantTx,
        before: &Conversation,
        action: AgentAction<'_>,
    ) -> Result<Conversation> {
        let (conversation, queued) = record_change(
            &mut tx,
            before,
            EventType::ConversationUpdated,
            Some(action),
        )
        .await?;
        tx.commit().await?;
        if queued {
            self.propagation.queued();
        }
        Ok(conversation)
    }

    /// A conversation's `sync` changed: it is sent again (`conversation:updated`).
    pub(crate) async fn sync_changed(tx: &mut TenantTx, id: ConversationId) -> Result<()> {
        let current = found(repo::find(tx, id, false).await?, id)?;
        record_change(tx, &current, EventType::ConversationUpdated, None).await?;
        Ok(())
    }

    #[tracing::instrument(skip(self, ctx, request), fields(tenant_id = %ctx.tenant_id()))]
    pub async fn list(
        &self,
        ctx: &TenantCtx,
        request: &ListRequest,
    ) -> Result<Page<Conversation, ListCursor>> {
        let Matching::Some(search) = matching(&request.filter)? else {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        };
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
        let Matching::Some(search) = matching(filter)? else {
            return Ok(StateCounts::default());
        };
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
            // A merge patch without fields changes nothing (RFC 7396): the conversation as is.
            return self.get(ctx, id).await;
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

        let state = next_state(current_assignee, current.state, assignee, patch.state)?;
        if assignee == current_assignee && state == current.state {
            tx.commit().await?;
            return Ok(current);
        }
        let kind = if assignee == current_assignee {
            ChangeKind::StateChanged
        } else if assignee.is_none() {
            ChangeKind::Released
        } else {
            ChangeKind::Assigned
        };
        reassign(&mut tx, &current, assignee, state, Some(ctx.agent_id())).await?;
        self.finish(tx, &current, self.action(ctx, kind, None))
            .await
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
            Some(ctx.agent_id()),
            note.as_deref(),
        )
        .await?;
        let action = self.action(ctx, ChangeKind::Transferred, note.as_deref());
        self.finish(tx, &current, action).await
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
        self.finish(tx, &current, self.action(ctx, ChangeKind::Closed, None))
            .await
    }

    /// `conversation.created` from the platform: opens the conversation, for the customer
    /// already found or created by phone. One that exists already (the same `state_manager_id`)
    /// takes the notification's state and assignment instead, as an update would.
    pub async fn open_from_platform(
        tx: &mut TenantTx,
        customer: CustomerId,
        opened: &PlatformConversation,
    ) -> Result<PlatformChange> {
        if let Some(id) = repo::lock_by_state_manager_id(tx, &opened.state_manager_id).await? {
            return Self::change_existing(tx, id, opened.state, opened.assignee).await;
        }
        let assignee = opened.assignee.flatten();
        if let Some(agent) = assignee {
            require_platform_assignee(tx, agent).await?;
        }
        // As if it had been waiting in the queue until now.
        let state = next_state(None, ConversationState::Waiting, assignee, opened.state)?;
        let id = ConversationId::new();
        repo::insert(
            tx,
            &repo::NewConversation {
                id,
                customer,
                state,
                assignee,
                state_manager_id: &opened.state_manager_id,
                genesys_conversation_id: opened.genesys_conversation_id.as_deref(),
            },
        )
        .await?;
        if assignee.is_some() {
            repo::record_assignment(tx, id, AssignmentKind::Assigned, None, assignee, None, None)
                .await?;
        }
        let conversation = found(repo::find(tx, id, false).await?, id)?;
        events::append(
            tx,
            EventType::ConversationNew,
            &serde_json::json!({ "conversation": conversation }),
        )
        .await?;
        Ok(PlatformChange::Changed(conversation))
    }

    /// `conversation.updated` from the platform: the State Manager or Genesys decided a state
    /// or an assignment. The platform may assign any active agent of the tenant; the state
    /// follows the assignment by the same rules as an agent's change.
    pub async fn update_from_platform(
        tx: &mut TenantTx,
        state_manager_id: &str,
        state: Option<ConversationState>,
        assignee: Option<Option<AgentId>>,
    ) -> Result<PlatformChange> {
        let id = lock_existing(tx, state_manager_id).await?;
        Self::change_existing(tx, id, state, assignee).await
    }

    /// `conversation.closed` from the platform; closing a closed conversation changes nothing.
    pub async fn close_from_platform(
        tx: &mut TenantTx,
        state_manager_id: &str,
        reason: Option<String>,
    ) -> Result<PlatformChange> {
        let reason = optional_text("reason", reason, MAX_CLOSE_REASON_CHARS)?;
        let id = lock_existing(tx, state_manager_id).await?;
        let current = found(repo::find(tx, id, false).await?, id)?;
        if current.state == ConversationState::Closed {
            return Ok(PlatformChange::Unchanged(current));
        }
        repo::close(tx, id, reason.as_deref()).await?;
        let (changed, _) =
            record_change(tx, &current, EventType::ConversationUpdated, None).await?;
        Ok(PlatformChange::Changed(changed))
    }

    /// A locked conversation takes a state and/or assignment from the platform. A closed one
    /// stays closed: a late update cannot reopen it.
    async fn change_existing(
        tx: &mut TenantTx,
        id: ConversationId,
        state: Option<ConversationState>,
        assignee: Option<Option<AgentId>>,
    ) -> Result<PlatformChange> {
        let current = found(repo::find(tx, id, false).await?, id)?;
        if current.state == ConversationState::Closed {
            return Ok(PlatformChange::Unchanged(current));
        }
        if state == Some(ConversationState::Closed) {
            repo::close(tx, id, None).await?;
            let (changed, _) =
                record_change(tx, &current, EventType::ConversationUpdated, None).await?;
            return Ok(PlatformChange::Changed(changed));
        }
        let current_assignee = current.assignee.as_ref().map(|a| a.id);
        let assignee = assignee.unwrap_or(current_assignee);
        if assignee != current_assignee
            && let Some(agent) = assignee
        {
            require_platform_assignee(tx, agent).await?;
        }
        let state = next_state(current_assignee, current.state, assignee, state)?;
        if assignee == current_assignee && state == current.state {
            return Ok(PlatformChange::Unchanged(current));
        }
        reassign(tx, &current, assignee, state, None).await?;
        let (changed, _) =
            record_change(tx, &current, EventType::ConversationUpdated, None).await?;
        Ok(PlatformChange::Changed(changed))
    }

    /// `customer.updated`: the conversations still open for the customer are sent again, so
    /// lists showing the old name refresh.
    pub async fn customer_renamed(
        tx: &mut TenantTx,
        customer: CustomerId,
    ) -> Result<Vec<Conversation>> {
        let mut changed = Vec::new();
        for id in crate::customers::open_conversations(tx, customer).await? {
            let conversation = found(repo::find(tx, id, false).await?, id)?;
            events::append(
                tx,
                EventType::ConversationUpdated,
                &serde_json::json!({ "conversation": conversation }),
            )
            .await?;
            changed.push(conversation);
        }
        Ok(changed)
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

/// A conversation as the platform describes it in `conversation.created`.
#[derive(Debug, Clone)]
pub struct PlatformConversation {
    pub state_manager_id: String,
    pub genesys_conversation_id: Option<String>,
    pub state: Option<ConversationState>,
    /// Absent: unassigned on creation, unchanged on an update; `Some(None)`: unassigned.
    pub assignee: Option<Option<AgentId>>,
}

/// What a platform notification did to a conversation; the caller commits.
#[derive(Debug, Clone)]
pub enum PlatformChange {
    Changed(Conversation),
    /// Already so, or closed (a closed conversation is final).
    Unchanged(Conversation),
}

/// The state after an assignment change: unassigning puts an active conversation back in the
/// queue; assigning a waiting one makes it active, unless a state was asked for explicitly.
fn next_state(
    current_assignee: Option<AgentId>,
    current_state: ConversationState,
    assignee: Option<AgentId>,
    asked: Option<ConversationState>,
) -> Result<ConversationState> {
    Ok(match (asked, assignee) {
        (Some(ConversationState::Active), None) => {
            return Err(Error::Conflict(
                "an active conversation needs an assignee".into(),
            ));
        }
        (Some(state), _) => state,
        (None, None) => ConversationState::Waiting,
        (None, Some(_)) if current_assignee.is_none() => ConversationState::Active,
        (None, Some(_)) => current_state,
    })
}

/// Writes a new assignee and state, and its history row; the caller records the event.
async fn reassign(
    tx: &mut TenantTx,
    current: &Conversation,
    assignee: Option<AgentId>,
    state: ConversationState,
    actor: Option<AgentId>,
) -> Result<()> {
    let current_assignee = current.assignee.as_ref().map(|a| a.id);
    repo::set_assignment(tx, current.id, assignee, state).await?;
    if assignee != current_assignee {
        let kind = match (current_assignee, assignee) {
            (_, None) => AssignmentKind::Unassigned,
            (None, Some(_)) => AssignmentKind::Assigned,
            (Some(_), Some(_)) => AssignmentKind::Transferred,
        };
        repo::record_assignment(
            tx,
            current.id,
            kind,
            current_assignee,
            assignee,
            actor,
            None,
        )
        .await?;
    }
    Ok(())
}

/// The platform names agents by id; one this tenant does not have (yet) is a missing
/// reference, which the queue consumer waits for, not a bad request.
async fn require_platform_assignee(tx: &mut TenantTx, id: AgentId) -> Result<()> {
    match agents::find(tx, id).await? {
        Some(agent) if agent.active => Ok(()),
        Some(_) => Err(Error::invalid("assigned_agent_id", "the agent is inactive")),
        None => Err(Error::NotFound { resource: "agent" }),
    }
}

/// The conversation a platform notification names, locked; one this tenant does not have is
/// a missing reference.
async fn lock_existing(tx: &mut TenantTx, state_manager_id: &str) -> Result<ConversationId> {
    repo::lock_by_state_manager_id(tx, state_manager_id)
        .await?
        .ok_or(Error::NotFound {
            resource: "conversation",
        })
}

fn found(conversation: Option<Conversation>, id: ConversationId) -> Result<Conversation> {
    conversation.ok_or_else(|| {
        Error::internal(anyhow::anyhow!(
            "conversation {id} vanished inside its transaction"
        ))
    })
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

/// What a filter leaves to search for.
enum Matching {
    /// Conversations matching the search term, if any.
    Some(Option<SearchTerm>),
    /// Nothing can match (`unassigned` with an assignee, or a `q` without a letter or digit),
    /// so no query runs.
    Nothing,
}

fn matching(filter: &ConversationFilter) -> Result<Matching> {
    if filter.unassigned && filter.assigned_agent_id.is_some() {
        return Ok(Matching::Nothing);
    }
    // A blank search box filters nothing.
    let Some(q) = filter.q.as_deref().filter(|q| !q.trim().is_empty()) else {
        return Ok(Matching::Some(None));
    };
    if q.chars().count() > search::MAX_QUERY_CHARS {
        return Err(Error::invalid(
            "q",
            format!("must be at most {} characters", search::MAX_QUERY_CHARS),
        ));
    }
    Ok(SearchTerm::parse(q).map_or(Matching::Nothing, |term| Matching::Some(Some(term))))
}

/// Reads the changed conversation back and records its event. The event carries the assignee
/// and state from before the change too, so the realtime service can tell the agent who lost
/// the conversation, and the queue it left. An agent's change is queued for the platform
/// first, so the event shows it `pending`; true when something was queued.
async fn record_change(
    tx: &mut TenantTx,
    before: &Conversation,
    event: EventType,
    action: Option<AgentAction<'_>>,
) -> Result<(Conversation, bool)> {
    let mut conversation = found(repo::find(tx, before.id, false).await?, before.id)?;
    let mut queued = false;
    if let Some(action) = action {
        let change = ConversationChange::new(
            action.kind,
            before,
            &conversation,
            action.by,
            action.note.map(str::to_string),
        );
        queued = propagation::enqueue_conversation(tx, action.targets, &change).await?;
        if queued {
            conversation = found(repo::find(tx, before.id, false).await?, before.id)?;
        }
    }
    // Absent values are omitted, as everywhere in the API and its events.
    let mut previous = serde_json::json!({ "state": before.state });
    if let Some(assignee) = &before.assignee {
        previous["assignee_id"] = serde_json::json!(assignee.id);
    }
    events::append(
        tx,
        event,
        &serde_json::json!({ "conversation": conversation, "previous": previous }),
    )
    .await?;
    Ok((conversation, queued))
}
