//! SQL for conversations. Every function takes a tenant-scoped transaction, and every query
//! also names the tenant itself: row-level security is the backstop, not the only filter,
//! and the explicit `tenant_id` lets the planner use the tenant-leading indexes.

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Postgres, QueryBuilder};
use uuid::Uuid;

use super::search::{SearchKind, SearchTerm};
use super::{
    AgentSummary, Conversation, ConversationFilter, ConversationState, CustomerHistoryCursor,
    CustomerSummary, ListCursor, ListRequest, SortDirection, SortKey, StateCounts, TimelineEntry,
    TimelineKind,
};
use crate::Result;
use crate::ids::{AgentId, ConversationId, CustomerId};
use crate::integrations::propagation::{SyncState, SyncStatus};
use crate::pagination::{Page, PageRequest};
use crate::tenancy::TenantTx;

/// Whose conversations a query may return.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Visibility {
    /// Supervisors and admins: the whole tenant.
    Tenant,
    /// An agent: its own, and unassigned waiting ones it may take.
    Agent(AgentId),
}

impl Visibility {
    /// The agent to bind where a query spells the rule with [`agent_sees!`]; `None` (NULL)
    /// for the whole tenant.
    pub(crate) fn agent(self) -> Option<Uuid> {
        match self {
            Self::Tenant => None,
            Self::Agent(agent) => Some(agent.0),
        }
    }
}

/// [`Visibility`] in SQL, for a conversation aliased `$alias` and the agent bound at
/// `$agent` (NULL: the whole tenant, which sees every conversation).
macro_rules! agent_sees {
    ($alias:literal, $agent:literal) => {
        concat!(
            "(",
            $agent,
            "::uuid IS NULL OR ",
            $alias,
            ".assigned_agent_id = ",
            $agent,
            " OR (",
            $alias,
            ".assigned_agent_id IS NULL AND ",
            $alias,
            ".state = 'waiting'))"
        )
    };
}
pub(crate) use agent_sees;

#[derive(Debug, sqlx::FromRow)]
pub(super) struct ConversationRow {
    id: Uuid,
    state: ConversationState,
    channel: String,
    customer_id: Uuid,
    customer_name: String,
    customer_phone: Option<String>,
    assigned_agent_id: Option<Uuid>,
    assignee_name: Option<String>,
    state_manager_id: Option<String>,
    genesys_conversation_id: Option<String>,
    close_reason: Option<String>,
    last_message_preview: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    last_activity_at: DateTime<Utc>,
    closed_at: Option<DateTime<Utc>>,
    sync_state: Option<SyncState>,
    sync_error: Option<String>,
    sync_at: Option<DateTime<Utc>>,
}

impl From<ConversationRow> for Conversation {
    fn from(r: ConversationRow) -> Self {
        Self {
            id: ConversationId(r.id),
            state: r.state,
            channel: r.channel,
            customer: CustomerSummary {
                id: CustomerId(r.customer_id),
                display_name: r.customer_name,
                phone: r.customer_phone,
            },
            assignee: r.assigned_agent_id.map(|id| AgentSummary {
                id: AgentId(id),
                display_name: r.assignee_name.unwrap_or_default(),
            }),
            state_manager_id: r.state_manager_id,
            genesys_conversation_id: r.genesys_conversation_id,
            close_reason: r.close_reason,
            last_message_preview: r.last_message_preview,
            created_at: r.created_at,
            updated_at: r.updated_at,
            last_activity_at: r.last_activity_at,
            closed_at: r.closed_at,
            sync: SyncStatus::of(r.sync_state, r.sync_error, r.sync_at),
        }
    }
}

/// A conversation with its customer and assignee, as [`ConversationRow`] reads it: the
/// columns of any `c` shaped like the table (the table itself, a subquery, the rows an UPDATE
/// returned), with [`JOINS`].
macro_rules! columns {
    () => {
        "c.id, c.state, c.channel, \
        c.customer_id, cu.display_name AS customer_name, cu.phone_e164 AS customer_phone, \
        c.assigned_agent_id, a.display_name AS assignee_name, \
        c.state_manager_id, c.genesys_conversation_id, c.close_reason, c.last_message_preview, \
        c.created_at, c.updated_at, c.last_activity_at, c.closed_at, \
        c.sync_state, c.sync_error, c.sync_at"
    };
}
macro_rules! joins {
    () => {
        "JOIN customers cu ON cu.tenant_id = c.tenant_id AND cu.id = c.customer_id \
        LEFT JOIN agents a ON a.tenant_id = c.tenant_id AND a.id = c.assigned_agent_id"
    };
}
const COLUMNS: &str = columns!();
const JOINS: &str = joins!();

/// One conversation with its customer and assignee; `lock` holds it until the transaction ends.
#[tracing::instrument(skip(tx), fields(otel.kind = "client", db.system = "postgresql", tenant_id = %tx.tenant_id()))]
pub(crate) async fn find(
    tx: &mut TenantTx,
    id: ConversationId,
    lock: bool,
) -> Result<Option<Conversation>> {
    let lock = if lock { " FOR UPDATE OF c" } else { "" };
    let row: Option<ConversationRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM conversations c {JOINS} WHERE c.tenant_id = $1 AND c.id = $2{lock}"
    )))
    .bind(tx.tenant_id().0)
    .bind(id.0)
    .fetch_optional(tx.conn())
    .await?;
    Ok(row.map(Into::into))
}

/// The ids of the conversations upstream knows by these `state_manager_id`s, locked for update
/// (in id order, so two batches locking overlapping sets cannot deadlock); absent ones are
/// missing from the answer.
pub(crate) async fn lock_by_state_manager_ids(
    tx: &mut TenantTx,
    state_manager_ids: &[&str],
) -> Result<Vec<(String, ConversationId)>> {
    let rows: Vec<(String, Uuid)> = sqlx::query_as(
        "SELECT state_manager_id, id FROM conversations \
         WHERE tenant_id = $1 AND state_manager_id = ANY($2) ORDER BY id FOR UPDATE",
    )
    .bind(tx.tenant_id().0)
    .bind(state_manager_ids)
    .fetch_all(tx.conn())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(smid, id)| (smid, ConversationId(id)))
        .collect())
}

/// The id of the conversation upstream knows by `state_manager_id`, locked for update.
pub(crate) async fn lock_by_state_manager_id(
    tx: &mut TenantTx,
    state_manager_id: &str,
) -> Result<Option<ConversationId>> {
    Ok(lock_by_state_manager_ids(tx, &[state_manager_id])
        .await?
        .pop()
        .map(|(_, id)| id))
}

/// A conversation opened by the platform.
#[derive(Debug)]
pub(super) struct NewConversation<'a> {
    pub id: ConversationId,
    pub customer: CustomerId,
    pub state: ConversationState,
    pub assignee: Option<AgentId>,
    pub state_manager_id: &'a str,
    pub genesys_conversation_id: Option<&'a str>,
}

pub(super) async fn insert(tx: &mut TenantTx, new: &NewConversation<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO conversations (tenant_id, id, customer_id, state, assigned_agent_id, \
             state_manager_id, genesys_conversation_id, closed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $4 = 'closed'::conversation_state THEN now() END)",
    )
    .bind(tx.tenant_id().0)
    .bind(new.id.0)
    .bind(new.customer.0)
    .bind(new.state)
    .bind(new.assignee.map(|a| a.0))
    .bind(new.state_manager_id)
    .bind(new.genesys_conversation_id)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Sets assignee and state together (the table's checks keep them consistent).
#[tracing::instrument(skip(tx), fields(otel.kind = "client", db.system = "postgresql", tenant_id = %tx.tenant_id()))]
pub(super) async fn set_assignment(
    tx: &mut TenantTx,
    id: ConversationId,
    assignee: Option<AgentId>,
    state: ConversationState,
) -> Result<()> {
    let tenant_id = tx.tenant_id().0;
    sqlx::query!(
        r#"UPDATE conversations
           SET assigned_agent_id = $3, state = $4, updated_at = now()
           WHERE tenant_id = $1 AND id = $2"#,
        tenant_id,
        id.0,
        assignee.map(|a| a.0),
        state as ConversationState
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

#[tracing::instrument(skip(tx, reason), fields(otel.kind = "client", db.system = "postgresql", tenant_id = %tx.tenant_id()))]
pub(super) async fn close(
    tx: &mut TenantTx,
    id: ConversationId,
    reason: Option<&str>,
) -> Result<()> {
    let tenant_id = tx.tenant_id().0;
    sqlx::query!(
        r#"UPDATE conversations
           SET state = 'closed', closed_at = now(), close_reason = $3, updated_at = now()
           WHERE tenant_id = $1 AND id = $2"#,
        tenant_id,
        id.0,
        reason
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Messages were added: each conversation moves to the top of the list with its new preview.
/// Returns the conversations as they are now (those that exist).
#[tracing::instrument(skip(tx, previews), fields(otel.kind = "client", db.system = "postgresql", tenant_id = %tx.tenant_id()))]
pub(crate) async fn record_messages(
    tx: &mut TenantTx,
    previews: &[(ConversationId, String)],
) -> Result<Vec<Conversation>> {
    let ids: Vec<Uuid> = previews.iter().map(|(id, _)| id.0).collect();
    let texts: Vec<&str> = previews.iter().map(|(_, p)| p.as_str()).collect();
    let rows: Vec<ConversationRow> = sqlx::query_as(AssertSqlSafe(format!(
        "WITH updated AS ( \
             UPDATE conversations c \
             SET last_activity_at = greatest(c.last_activity_at, now()), \
                 last_message_preview = u.preview, updated_at = now() \
             FROM unnest($2::uuid[], $3::text[]) AS u (id, preview) \
             WHERE c.tenant_id = $1 AND c.id = u.id \
             RETURNING c.* \
         ) \
         SELECT {COLUMNS} FROM updated c {JOINS}"
    )))
    .bind(tx.tenant_id().0)
    .bind(ids)
    .bind(texts)
    .fetch_all(tx.conn())
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "assignment_kind", rename_all = "lowercase")]
pub(super) enum AssignmentKind {
    Assigned,
    Unassigned,
    Transferred,
}

/// Appends to the assignment/transfer history.
#[tracing::instrument(skip(tx, note), fields(otel.kind = "client", db.system = "postgresql", tenant_id = %tx.tenant_id()))]
pub(super) async fn record_assignment(
    tx: &mut TenantTx,
    id: ConversationId,
    kind: AssignmentKind,
    from: Option<AgentId>,
    to: Option<AgentId>,
    actor: Option<AgentId>,
    note: Option<&str>,
) -> Result<()> {
    let tenant_id = tx.tenant_id().0;
    sqlx::query!(
        r#"INSERT INTO conversation_assignments
               (tenant_id, conversation_id, kind, from_agent_id, to_agent_id, actor_agent_id, note)
           VALUES ($1, $2, $3, $4, $5, $6, $7)"#,
        tenant_id,
        id.0,
        kind as AssignmentKind,
        from.map(|a| a.0),
        to.map(|a| a.0),
        actor.map(|a| a.0),
        note
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// A conjunction of equalities that an index can serve in sort order.
#[derive(Debug, Clone, Copy)]
struct Branch {
    assignee: Option<Option<AgentId>>,
    state: Option<ConversationState>,
}

/// Splits "what the caller may see × the states asked for" into disjoint branches. Each is an
/// index range read in sort order; a Merge Append of them reads about `limit` rows, where one
/// query with `OR`/`IN` would collect every match and sort it.
fn branches(
    visibility: Visibility,
    filter: &ConversationFilter,
    search: Option<&SearchTerm>,
) -> Vec<Branch> {
    let visible = match visibility {
        // The list indexes are partial, one per state (migration 13): the whole tenant is read
        // one state at a time, or by the assignee asked for. A search reads its customers'
        // conversations by customer, in no order, so it needs no split.
        Visibility::Tenant => match (filter.assigned_agent_id, filter.unassigned) {
            (Some(agent), _) => vec![Branch {
                assignee: Some(Some(agent)),
                state: None,
            }],
            (None, true) => vec![Branch {
                assignee: Some(None),
                state: None,
            }],
            (None, false) if search.is_some() => vec![Branch {
                assignee: None,
                state: None,
            }],
            (None, false) => ConversationState::ALL
                .into_iter()
                .map(|state| Branch {
                    assignee: None,
                    state: Some(state),
                })
                .collect(),
        },
        Visibility::Agent(me) => vec![
            Branch {
                assignee: Some(Some(me)),
                state: None,
            },
            Branch {
                assignee: Some(None),
                state: Some(ConversationState::Waiting),
            },
        ],
    };
    let states = &filter.states;
    if states.is_empty() {
        return visible;
    }
    let mut out = Vec::new();
    for b in visible {
        for &s in states {
            match b.state {
                Some(fixed) if fixed != s => {}
                _ => out.push(Branch {
                    state: Some(s),
                    ..b
                }),
            }
        }
    }
    out
}

fn sort_column(sort: SortKey) -> &'static str {
    match sort {
        SortKey::LastActivityAt => "last_activity_at",
        SortKey::CreatedAt => "created_at",
    }
}

fn direction_sql(direction: SortDirection) -> &'static str {
    match direction {
        SortDirection::Asc => "ASC",
        SortDirection::Desc => "DESC",
    }
}

/// Conditions every branch shares: the caller's filters other than state and visibility.
fn push_filters(
    qb: &mut QueryBuilder<Postgres>,
    tenant_id: Uuid,
    filter: &ConversationFilter,
    search: Option<&SearchTerm>,
) {
    if let Some(agent) = filter.assigned_agent_id {
        qb.push(" AND c.assigned_agent_id = ").push_bind(agent.0);
    }
    if filter.unassigned {
        qb.push(" AND c.assigned_agent_id IS NULL");
    }
    if let Some(term) = search {
        qb.push(" AND c.customer_id IN (SELECT t.customer_id FROM customer_search_terms t WHERE t.tenant_id = ")
            .push_bind(tenant_id)
            .push(" AND t.term >= ")
            .push_bind(term.prefix.clone())
            .push(" AND t.term < ")
            .push_bind(term.upper.clone())
            .push(")");
        if let Some(full) = &term.full {
            let normalised = match term.kind {
                SearchKind::Phone => {
                    "regexp_replace(coalesce(cu.phone_e164, ''), '[^0-9]', '', 'g')"
                }
                SearchKind::Name => {
                    r"regexp_replace(lower(btrim(cu.display_name)), '\s+', ' ', 'g')"
                }
            };
            qb.push(" AND EXISTS (SELECT 1 FROM customers cu WHERE cu.tenant_id = c.tenant_id AND cu.id = c.customer_id AND position(")
                .push_bind(full.clone())
                .push(" IN ")
                .push(normalised)
                .push(") > 0)");
        }
    }
}

fn push_branch(qb: &mut QueryBuilder<Postgres>, branch: Branch) {
    match branch.assignee {
        Some(Some(agent)) => {
            qb.push(" AND c.assigned_agent_id = ").push_bind(agent.0);
        }
        Some(None) => {
            qb.push(" AND c.assigned_agent_id IS NULL");
        }
        None => {}
    }
    if let Some(state) = branch.state {
        qb.push(" AND c.state = ").push_bind(state);
    }
}

#[tracing::instrument(skip(tx, request, search), fields(otel.kind = "client", db.system = "postgresql", tenant_id = %tx.tenant_id()))]
pub(super) async fn list(
    tx: &mut TenantTx,
    visibility: Visibility,
    request: &ListRequest,
    search: Option<&SearchTerm>,
) -> Result<Page<Conversation, ListCursor>> {
    let tenant_id = tx.tenant_id().0;
    let column = sort_column(request.sort);
    let dir = direction_sql(request.direction);
    let order = format!(" ORDER BY c.{column} {dir}, c.id {dir} LIMIT ");
    let limit = request.page.fetch_limit();

    let mut qb = QueryBuilder::new(format!("SELECT {COLUMNS} FROM ("));
    for (i, branch) in branches(visibility, &request.filter, search)
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            qb.push(" UNION ALL ");
        }
        qb.push("(SELECT c.* FROM conversations c WHERE c.tenant_id = ")
            .push_bind(tenant_id);
        push_branch(&mut qb, branch);
        push_filters(&mut qb, tenant_id, &request.filter, search);
        if let Some(after) = &request.page.after {
            let cmp = if request.direction == SortDirection::Asc {
                ">"
            } else {
                "<"
            };
            qb.push(format!(" AND (c.{column}, c.id) {cmp} ("))
                .push_bind(after.at)
                .push(", ")
                .push_bind(after.id.0)
                .push(")");
        }
        qb.push(order.as_str()).push_bind(limit).push(")");
    }
    qb.push(format!(") c {JOINS}"));
    qb.push(order.as_str()).push_bind(limit);

    let rows: Vec<ConversationRow> = qb.build_query_as().fetch_all(tx.conn()).await?;
    let (sort, direction) = (request.sort, request.direction);
    Ok(request
        .page
        .finish(rows.into_iter().map(Conversation::from).collect(), |c| {
            ListCursor {
                sort,
                direction,
                at: match sort {
                    SortKey::LastActivityAt => c.last_activity_at,
                    SortKey::CreatedAt => c.created_at,
                },
                id: c.id,
            }
        }))
}

#[tracing::instrument(skip(tx, filter), fields(otel.kind = "client", db.system = "postgresql", tenant_id = %tx.tenant_id()))]
pub(super) async fn count_by_state(
    tx: &mut TenantTx,
    visibility: Visibility,
    filter: &ConversationFilter,
    search: Option<&SearchTerm>,
) -> Result<StateCounts> {
    let tenant_id = tx.tenant_id().0;
    let mut qb = QueryBuilder::new("SELECT c.state, count(*) FROM (");
    for (i, branch) in branches(visibility, filter, search).into_iter().enumerate() {
        if i > 0 {
            qb.push(" UNION ALL ");
        }
        qb.push("(SELECT c.state FROM conversations c WHERE c.tenant_id = ")
            .push_bind(tenant_id);
        push_branch(&mut qb, branch);
        push_filters(&mut qb, tenant_id, filter, search);
        qb.push(")");
    }
    qb.push(") c GROUP BY c.state");
    let rows: Vec<(ConversationState, i64)> = qb.build_query_as().fetch_all(tx.conn()).await?;
    let mut counts = StateCounts::default();
    for (state, n) in rows {
        match state {
            ConversationState::Active => counts.active = n,
            ConversationState::Waiting => counts.waiting = n,
            ConversationState::Closed => counts.closed = n,
        }
    }
    Ok(counts)
}

/// A customer's conversations, newest first, after a cursor (`$4`, `$5`), that an agent (`$3`;
/// NULL: the whole tenant) may see. Public so that the plan test runs this very statement:
/// a backward scan of `conversations_by_customer_created` reading about `limit` (`$6`) rows.
pub const CUSTOMER_HISTORY_SQL: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM conversations c ",
    joins!(),
    " WHERE c.tenant_id = $1 AND c.customer_id = $2 AND ",
    agent_sees!("c", "$3"),
    " AND ($4::timestamptz IS NULL OR (c.created_at, c.id) < ($4, $5::uuid)) \
    ORDER BY c.created_at DESC, c.id DESC \
    LIMIT $6"
);

#[tracing::instrument(skip(tx, page), fields(otel.kind = "client", db.system = "postgresql", tenant_id = %tx.tenant_id()))]
pub(crate) async fn of_customer(
    tx: &mut TenantTx,
    customer: CustomerId,
    visibility: Visibility,
    page: &PageRequest<CustomerHistoryCursor>,
) -> Result<Page<Conversation, CustomerHistoryCursor>> {
    let rows: Vec<ConversationRow> = sqlx::query_as(CUSTOMER_HISTORY_SQL)
        .bind(tx.tenant_id().0)
        .bind(customer.0)
        .bind(visibility.agent())
        .bind(page.after.map(|c| c.at))
        .bind(page.after.map(|c| c.id.0))
        .bind(page.fetch_limit())
        .fetch_all(tx.conn())
        .await?;
    let conversations = rows.into_iter().map(Conversation::from).collect();
    Ok(
        page.finish(conversations, |c: &Conversation| CustomerHistoryCursor {
            at: c.created_at,
            id: c.id,
        }),
    )
}

#[derive(sqlx::FromRow)]
struct TimelineRow {
    conversation_id: Uuid,
    kind: AssignmentKind,
    from_agent_id: Option<Uuid>,
    to_agent_id: Option<Uuid>,
    actor_agent_id: Option<Uuid>,
    note: Option<String>,
    created_at: DateTime<Utc>,
}

/// At most this many assignment steps per conversation in a history page.
pub(crate) const MAX_TIMELINE_STEPS: i64 = 100;

/// The assignments and transfers of these conversations, oldest first within each: the
/// first [`MAX_TIMELINE_STEPS`] of each, through `conversation_assignments_by_conversation`.
#[tracing::instrument(skip(tx, ids), fields(otel.kind = "client", db.system = "postgresql", tenant_id = %tx.tenant_id()))]
pub(crate) async fn timelines(
    tx: &mut TenantTx,
    ids: &[ConversationId],
) -> Result<Vec<(ConversationId, TimelineEntry)>> {
    let ids: Vec<Uuid> = ids.iter().map(|c| c.0).collect();
    let rows: Vec<TimelineRow> = sqlx::query_as(
        "SELECT t.conversation_id, t.kind, t.from_agent_id, t.to_agent_id, t.actor_agent_id, \
                t.note, t.created_at \
         FROM unnest($2::uuid[]) AS wanted (id) \
         CROSS JOIN LATERAL ( \
             SELECT * FROM conversation_assignments ca \
             WHERE ca.tenant_id = $1 AND ca.conversation_id = wanted.id \
             ORDER BY ca.created_at, ca.id LIMIT $3 \
         ) t",
    )
    .bind(tx.tenant_id().0)
    .bind(&ids)
    .bind(MAX_TIMELINE_STEPS)
    .fetch_all(tx.conn())
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                ConversationId(r.conversation_id),
                TimelineEntry {
                    kind: match r.kind {
                        AssignmentKind::Assigned => TimelineKind::Assigned,
                        AssignmentKind::Unassigned => TimelineKind::Unassigned,
                        AssignmentKind::Transferred => TimelineKind::Transferred,
                    },
                    at: r.created_at,
                    from_agent_id: r.from_agent_id.map(AgentId),
                    to_agent_id: r.to_agent_id.map(AgentId),
                    by_agent_id: r.actor_agent_id.map(AgentId),
                    note: r.note,
                    reason: None,
                },
            )
        })
        .collect())
}
