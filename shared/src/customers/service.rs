//! The rules for customers: who sees which, under the conversation rules.

use super::repo;
use super::{ConversationCounts, CustomerProfile, Enrichment, OpenConversation};
use crate::conversations::service::may_see_parts;
use crate::ids::{AgentId, ConversationId, CustomerId};
use crate::tenancy::{Db, TenantCtx};
use crate::{Error, Result};

#[derive(Debug, Clone)]
pub struct CustomerService {
    db: Db,
}

impl CustomerService {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// The profile, from local data. An agent sees a customer only through a conversation it
    /// may see; any other customer, and every customer of another tenant, is missing.
    #[tracing::instrument(skip(self, ctx), fields(tenant_id = %ctx.tenant_id()))]
    pub async fn get(&self, ctx: &TenantCtx, id: CustomerId) -> Result<CustomerProfile> {
        let seen_by = (!ctx.sees_whole_tenant()).then(|| ctx.agent_id());
        let mut tx = self.db.begin(ctx).await?;
        let row = repo::find_profile(&mut tx, id, seen_by).await?;
        tx.commit().await?;
        let row = row.ok_or(Error::NotFound {
            resource: "customer",
        })?;
        let open_conversation = match (row.open_id, row.open_state) {
            (Some(id), Some(state))
                if may_see_parts(ctx, row.open_assignee.map(AgentId), state) =>
            {
                Some(OpenConversation {
                    id: ConversationId(id),
                    state,
                })
            }
            _ => None,
        };
        Ok(CustomerProfile {
            id: CustomerId(row.id),
            display_name: row.display_name,
            phone: row.phone_e164,
            email: row.email,
            attributes: row.attributes.0,
            created_at: row.created_at,
            updated_at: row.updated_at,
            first_contact_at: row.first_contact_at,
            last_contact_at: row.last_contact_at,
            open_conversation,
            conversations: ConversationCounts {
                active: row.active,
                waiting: row.waiting,
                closed: row.closed,
            },
            enrichment: Enrichment::NotConfigured,
        })
    }
}
