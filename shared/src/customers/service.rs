//! The rules for customers: who sees which, under the conversation rules.

use std::collections::{BTreeMap, HashMap};

use super::repo::{self, Edit};
use super::{
    ConversationCounts, CustomerProfile, Enricher, Enrichment, ExternalIds, HistoryEntry,
    OpenConversation, etag, phone,
};
use crate::conversations::service::{may_see_parts, visibility};
use crate::conversations::{
    self, ConversationService, CustomerHistoryCursor, TimelineEntry, TimelineKind,
};
use crate::ids::{AgentId, ConversationId, CustomerId};
use crate::integrations::propagation::{self, CustomerChange, Propagation, SyncStatus};
use crate::pagination::{Page, PageRequest};
use crate::tenancy::{Db, TenantCtx};
use crate::{Error, Result};

/// At most this large as JSON, and this deeply nested: attributes are shown with the profile.
pub const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;
pub const MAX_ATTRIBUTES_DEPTH: usize = 5;

/// A change asked for by `PATCH /customers/{id}`; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct CustomerEdit {
    pub display_name: Option<String>,
    /// `Some(None)` removes it.
    pub email: Option<Option<String>>,
    /// As typed: normalised to E.164 here.
    pub phone: Option<String>,
    /// Replaces the attributes.
    pub attributes: Option<BTreeMap<String, serde_json::Value>>,
}

/// What an edit did.
#[derive(Debug)]
pub enum Edited {
    /// Made (or nothing was to change): the customer as it is now.
    Done(Box<CustomerProfile>),
    /// The caller's copy is stale: the customer changed since (its entity tag is another).
    Stale,
}

#[derive(Debug, Clone)]
pub struct CustomerService {
    db: Db,
    propagation: Propagation,
    /// Present when a State Manager is configured.
    enricher: Option<Enricher>,
}

impl CustomerService {
    pub fn new(db: Db, propagation: Propagation, enricher: Option<Enricher>) -> Self {
        Self {
            db,
            propagation,
            enricher,
        }
    }

    /// Applies an edit if the customer is still as the caller saw it (`if_match`: the
    /// `If-Match` header, one or more entity tags or `*`). A changed name or phone is shown
    /// in the list: the customer's open conversations are sent again (`conversation:updated`),
    /// in the same transaction.
    #[tracing::instrument(skip(self, ctx, if_match, edit), fields(tenant_id = %ctx.tenant_id()))]
    pub async fn update(
        &self,
        ctx: &TenantCtx,
        id: CustomerId,
        if_match: &str,
        edit: CustomerEdit,
    ) -> Result<Edited> {
        let attributes = edit
            .attributes
            .map(|a| checked_attributes(serde_json::Value::Object(a.into_iter().collect())))
            .transpose()?;
        let mut tx = self.db.begin(ctx).await?;
        let updated_at = repo::changed_at(&mut tx, id, visibility(ctx), true)
            .await?
            .ok_or(Error::NotFound {
                resource: "customer",
            })?;
        if !matches_any(if_match, &etag(updated_at)) {
            tx.commit().await?;
            return Ok(Edited::Stale);
        }
        let phone = match &edit.phone {
            Some(typed) => {
                let region = repo::phone_region(&mut tx).await?;
                let e164 = phone::normalize(typed, region.as_deref())
                    .map_err(|e| Error::invalid("phone", e.to_string()))?;
                if repo::phone_taken(&mut tx, id, &e164).await? {
                    return Err(Error::Conflict(format!(
                        "another customer of the tenant has the phone number {e164}"
                    )));
                }
                Some(e164)
            }
            None => None,
        };
        let changed = repo::update(
            &mut tx,
            id,
            &Edit {
                display_name: edit.display_name.as_deref(),
                email: edit.email.as_ref().map(Option::as_deref),
                phone: phone.as_deref(),
                attributes: attributes.as_ref(),
            },
        )
        .await?;
        if changed == Some(true) {
            ConversationService::customer_renamed(&mut tx, id).await?;
        }
        let mut queued = false;
        if changed.is_some()
            && let Some((state_manager_id, display_name, email, phone_e164, attributes)) =
                repo::as_propagated(&mut tx, id).await?
        {
            let change = CustomerChange {
                customer_id: id,
                state_manager_id,
                display_name,
                email,
                phone_e164,
                attributes,
                by_agent_id: ctx.agent_id(),
                occurred_at: chrono::Utc::now(),
            };
            queued =
                propagation::enqueue_customer(&mut tx, self.propagation.targets, &change).await?;
        }
        tx.commit().await?;
        if queued {
            self.propagation.queued();
        }
        Ok(Edited::Done(Box::new(self.get(ctx, id).await?)))
    }

    /// The customer's conversations, newest first, each with its timeline: assignments,
    /// transfers (with their notes) and the close (with its reason). An agent gets the ones it
    /// may see, of a customer it may see.
    #[tracing::instrument(skip(self, ctx, page), fields(tenant_id = %ctx.tenant_id()))]
    pub async fn history(
        &self,
        ctx: &TenantCtx,
        id: CustomerId,
        page: PageRequest<CustomerHistoryCursor>,
    ) -> Result<Page<HistoryEntry, CustomerHistoryCursor>> {
        let mut tx = self.db.begin(ctx).await?;
        if repo::changed_at(&mut tx, id, visibility(ctx), false)
            .await?
            .is_none()
        {
            return Err(Error::NotFound {
                resource: "customer",
            });
        }
        let found = conversations::repo::of_customer(&mut tx, id, visibility(ctx), &page).await?;
        let ids: Vec<ConversationId> = found.items.iter().map(|c| c.id).collect();
        let mut steps: HashMap<ConversationId, Vec<TimelineEntry>> = HashMap::new();
        for (of, step) in conversations::repo::timelines(&mut tx, &ids).await? {
            steps.entry(of).or_default().push(step);
        }
        tx.commit().await?;
        Ok(Page {
            items: found
                .items
                .into_iter()
                .map(|conversation| {
                    let mut timeline = steps.remove(&conversation.id).unwrap_or_default();
                    if let Some(at) = conversation.closed_at {
                        timeline.push(TimelineEntry {
                            kind: TimelineKind::Closed,
                            at,
                            from_agent_id: None,
                            to_agent_id: None,
                            by_agent_id: None,
                            note: None,
                            reason: conversation.close_reason.clone(),
                        });
                    }
                    HistoryEntry {
                        conversation,
                        timeline,
                    }
                })
                .collect(),
            next: found.next,
        })
    }

    /// The profile, from local data enriched from the State Manager when one is configured.
    /// An agent sees a customer only through a conversation it may see; any other customer,
    /// and every customer of another tenant, is missing.
    #[tracing::instrument(skip(self, ctx), fields(tenant_id = %ctx.tenant_id()))]
    pub async fn get(&self, ctx: &TenantCtx, id: CustomerId) -> Result<CustomerProfile> {
        let mut tx = self.db.begin(ctx).await?;
        let row = repo::find_profile(&mut tx, id, visibility(ctx)).await?;
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
        let mut profile = CustomerProfile {
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
            external_ids: ExternalIds {
                state_manager: row.state_manager_id,
            },
            enrichment: Enrichment::NotConfigured,
            sync: SyncStatus::of(row.sync_state, row.sync_error, row.sync_at),
        };
        if let Some(enricher) = &self.enricher {
            enricher.enrich(ctx.tenant_id(), &mut profile).await;
        }
        Ok(profile)
    }
}

/// Whether an `If-Match` value names `current` (strong comparison, RFC 9110 §13.1.1).
fn matches_any(if_match: &str, current: &str) -> bool {
    if_match.trim() == "*" || if_match.split(',').any(|tag| tag.trim() == current)
}

fn checked_attributes(attributes: serde_json::Value) -> Result<serde_json::Value> {
    let bytes = serde_json::to_vec(&attributes)
        .map_err(Error::internal)?
        .len();
    if bytes > MAX_ATTRIBUTES_BYTES {
        return Err(Error::invalid(
            "attributes",
            format!("is {bytes} bytes as JSON; at most {MAX_ATTRIBUTES_BYTES}"),
        ));
    }
    if depth(&attributes) > MAX_ATTRIBUTES_DEPTH {
        return Err(Error::invalid(
            "attributes",
            format!("nests deeper than {MAX_ATTRIBUTES_DEPTH} levels"),
        ));
    }
    if contains_nul(&attributes) {
        return Err(Error::invalid("attributes", "contains a NUL character"));
    }
    Ok(attributes)
}

/// Levels of objects and arrays: `{}` is 1, `{"a": {}}` is 2.
fn depth(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        serde_json::Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Postgres refuses `\u0000` in `jsonb`.
fn contains_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Object(map) => {
            map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v))
        }
        serde_json::Value::Array(items) => items.iter().any(contains_nul),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_compares_strongly_and_accepts_a_list_or_a_star() {
        assert!(matches_any("\"17\"", "\"17\""));
        assert!(matches_any("\"1\", \"17\"", "\"17\""));
        assert!(matches_any("*", "\"17\""));
        assert!(!matches_any("W/\"17\"", "\"17\""));
        assert!(!matches_any("\"16\"", "\"17\""));
        assert!(!matches_any("17", "\"17\""));
    }

    #[test]
    fn attributes_have_a_size_and_a_depth_limit() {
        assert!(checked_attributes(serde_json::json!({"a": {"b": {"c": {"d": {}}}}})).is_ok());
        assert!(
            checked_attributes(serde_json::json!({"a": {"b": {"c": {"d": {"e": {}}}}}})).is_err()
        );
        assert!(
            checked_attributes(serde_json::json!({"big": "x".repeat(MAX_ATTRIBUTES_BYTES)}))
                .is_err()
        );
        assert!(checked_attributes(serde_json::json!({"nul": "a\u{0}b"})).is_err());
    }
}
