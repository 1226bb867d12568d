//! `/api/agents`: the tenant's agents, for the transfer picker.

use std::time::Duration;

use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use portal_shared::agents::{self, Agent, AgentCursor, AgentFilter};
use portal_shared::ids::AgentId;
use portal_shared::pagination::PageRequest;
use portal_shared::presence::Presence;
use portal_shared::tenancy::Db;

use super::ApiTags;
use crate::http::auth::Caller;
use crate::http::cursor::Paging;
use crate::http::problem::ApiResult;

#[derive(Debug, Clone)]
pub struct AgentsApi {
    pub db: Db,
    pub presence: Presence,
}

/// An agent, and whether it is connected to the portal now.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AgentListItem {
    #[oai(flatten)]
    pub agent: Agent,
    /// Connected to the realtime service on any pod; absent when that is unknown (Redis down).
    pub online: Option<bool>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AgentPage {
    pub items: Vec<AgentListItem>,
    pub next_cursor: Option<Paging<AgentCursor>>,
}

#[OpenApi(prefix_path = "/agents", tag = "ApiTags::Agents")]
impl AgentsApi {
    /// List agents
    ///
    /// The caller's tenant's agents by name, each with its `online` flag; active ones only
    /// unless `include_inactive`.
    #[oai(path = "/", method = "get", operation_id = "listAgents")]
    async fn list(
        &self,
        Caller(ctx): Caller,
        include_inactive: Query<Option<bool>>,
        /// 1–100, default 25.
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        cursor: Query<Option<Paging<AgentCursor>>>,
    ) -> ApiResult<Json<AgentPage>> {
        let page = PageRequest::new(cursor.0.map(|c| c.0), limit.0)?;
        let filter = AgentFilter {
            include_inactive: include_inactive.0.unwrap_or(false),
        };
        let mut tx = self.db.begin(&ctx).await?;
        let result = agents::list(&mut tx, &filter, &page).await?;
        tx.commit().await?;
        let ids: Vec<AgentId> = result.items.iter().map(|a| a.id).collect();
        // The list is still useful without presence: a slow or absent Redis leaves it unknown.
        let online = tokio::time::timeout(
            Duration::from_millis(500),
            self.presence.online(ctx.tenant_id(), &ids),
        )
        .await
        .ok()
        .and_then(Result::ok);
        Ok(Json(AgentPage {
            items: result
                .items
                .into_iter()
                .map(|agent| AgentListItem {
                    online: online.as_ref().map(|set| set.contains(&agent.id)),
                    agent,
                })
                .collect(),
            next_cursor: result.next.map(Paging),
        }))
    }
}
