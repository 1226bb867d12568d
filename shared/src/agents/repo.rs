//! SQL for agents. Every function runs inside a tenant-scoped transaction.

use crate::Result;
use crate::agents::{Agent, Role};
use crate::cursor_part;
use crate::ids::AgentId;
use crate::pagination::{Cursor, Page, PageRequest, part};
use crate::tenancy::TenantTx;

/// Finds one agent of the transaction's tenant, active or not.
#[tracing::instrument(skip(tx), fields(otel.kind = "client", db.system = "postgresql", tenant_id = %tx.tenant_id()))]
pub async fn find(tx: &mut TenantTx, id: AgentId) -> Result<Option<Agent>> {
    let agent = sqlx::query_as!(
        Agent,
        r#"SELECT id AS "id: AgentId", display_name, email, role AS "role: Role", active, created_at
           FROM agents WHERE id = $1"#,
        id.0
    )
    .fetch_optional(tx.conn())
    .await?;
    Ok(agent)
}

#[derive(Debug, Clone, Default)]
pub struct AgentFilter {
    /// Include deactivated agents (the transfer picker leaves them out).
    pub include_inactive: bool,
}

/// Where a page of agents starts: the last (name, id) seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCursor {
    pub display_name: String,
    pub id: AgentId,
}

impl Cursor for AgentCursor {
    const PATTERN: &'static str = concat!("^", cursor_part!(text), "\\.", cursor_part!(id), "$");
    const DESCRIPTION: &'static str = "a `next_cursor` of this list";

    fn encode(&self) -> String {
        format!("{}.{}", part::text(&self.display_name), part::id(self.id.0))
    }

    fn decode(text: &str) -> Option<Self> {
        let [name, id] = part::split(text)?;
        Some(Self {
            display_name: part::parse_text(name)?,
            id: AgentId(part::parse_id(id)?),
        })
    }
}

/// The tenant's agents by name, a page at a time.
#[tracing::instrument(skip(tx), fields(otel.kind = "client", db.system = "postgresql", tenant_id = %tx.tenant_id()))]
pub async fn list(
    tx: &mut TenantTx,
    filter: &AgentFilter,
    page: &PageRequest<AgentCursor>,
) -> Result<Page<Agent, AgentCursor>> {
    let (after_name, after_id) = match &page.after {
        Some(after) => (Some(after.display_name.clone()), Some(after.id.0)),
        None => (None, None),
    };
    let rows = sqlx::query_as!(
        Agent,
        r#"SELECT id AS "id: AgentId", display_name, email, role AS "role: Role", active, created_at
           FROM agents
           WHERE ($1 OR active)
             AND ($2::text IS NULL OR (display_name, id) > ($2, $3::uuid))
           ORDER BY display_name, id
           LIMIT $4"#,
        filter.include_inactive,
        after_name,
        after_id,
        page.fetch_limit()
    )
    .fetch_all(tx.conn())
    .await?;
    Ok(page.finish(rows, |a| AgentCursor {
        display_name: a.display_name.clone(),
        id: a.id,
    }))
}
