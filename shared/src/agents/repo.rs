//! SQL for agents. Every function runs inside a tenant-scoped transaction.

use crate::Result;
use crate::agents::{Agent, Role};
use crate::ids::AgentId;
use crate::pagination::{Page, PageRequest};
use crate::tenancy::TenantTx;

/// Finds one agent of the transaction's tenant, active or not.
#[tracing::instrument(skip(tx), fields(tenant_id = %tx.tenant_id()))]
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

/// The tenant's agents by name, a page at a time; the cursor is the last (name, id) seen.
#[tracing::instrument(skip(tx), fields(tenant_id = %tx.tenant_id()))]
pub async fn list(
    tx: &mut TenantTx,
    filter: &AgentFilter,
    page: &PageRequest<(String, AgentId)>,
) -> Result<Page<Agent, (String, AgentId)>> {
    let (after_name, after_id) = match &page.after {
        Some((name, id)) => (Some(name.clone()), Some(id.0)),
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
    Ok(page.finish(rows, |a| (a.display_name.clone(), a.id)))
}
