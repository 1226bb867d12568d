//! SQL for customers.

use uuid::Uuid;

use crate::Result;
use crate::conversations::Visibility;
use crate::conversations::repo::agent_sees;
use crate::ids::{ConversationId, CustomerId};
use crate::tenancy::TenantTx;

/// What [`upsert_by_phone`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustomerChange {
    pub id: CustomerId,
    pub created: bool,
    /// The display name changed (conversations showing it need to be re-sent).
    pub renamed: bool,
}

/// Finds the customer with this phone, or creates it. A given `display_name` replaces the
/// stored one; `None` keeps it (a new customer is then shown by its phone).
pub async fn upsert_by_phone(
    tx: &mut TenantTx,
    phone_e164: &str,
    display_name: Option<&str>,
) -> Result<CustomerChange> {
    // `xmax = 0` tells an inserted row from an updated one; the name comparison is made
    // against the row as it was before this statement.
    let (id, created, renamed): (Uuid, bool, bool) = sqlx::query_as(
        "WITH before AS ( \
             SELECT display_name FROM customers WHERE tenant_id = $1 AND phone_e164 = $2 \
         ) \
         INSERT INTO customers AS c (tenant_id, id, phone_e164, display_name) \
         VALUES ($1, $3, $2, coalesce($4, $2)) \
         ON CONFLICT (tenant_id, phone_e164) WHERE phone_e164 IS NOT NULL DO UPDATE \
             SET display_name = coalesce($4, c.display_name), \
                 updated_at = CASE WHEN $4 IS DISTINCT FROM c.display_name AND $4 IS NOT NULL \
                                   THEN now() ELSE c.updated_at END \
         RETURNING c.id, (c.xmax = 0) AS created, \
                   coalesce((SELECT display_name FROM before) IS DISTINCT FROM c.display_name, false)",
    )
    .bind(tx.tenant_id().0)
    .bind(phone_e164)
    .bind(Uuid::now_v7())
    .bind(display_name)
    .fetch_one(tx.conn())
    .await?;
    Ok(CustomerChange {
        id: CustomerId(id),
        created,
        renamed: renamed && !created,
    })
}

/// The customer's conversations that are not closed (few: a customer talks in one at a time).
pub async fn open_conversations(
    tx: &mut TenantTx,
    customer: CustomerId,
) -> Result<Vec<ConversationId>> {
    let ids: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT id FROM conversations \
         WHERE tenant_id = $1 AND customer_id = $2 AND state <> 'closed' \
         ORDER BY created_at LIMIT 100",
    )
    .bind(tx.tenant_id().0)
    .bind(customer.0)
    .fetch_all(tx.conn())
    .await?;
    Ok(ids.into_iter().map(|(id,)| ConversationId(id)).collect())
}

/// The profile as stored, with what the service needs to decide what the caller sees.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct ProfileRow {
    pub id: Uuid,
    pub display_name: String,
    pub phone_e164: Option<String>,
    pub email: Option<String>,
    pub attributes: sqlx::types::Json<std::collections::BTreeMap<String, serde_json::Value>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub first_contact_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_contact_at: Option<chrono::DateTime<chrono::Utc>>,
    pub active: i64,
    pub waiting: i64,
    pub closed: i64,
    pub open_id: Option<Uuid>,
    pub open_state: Option<crate::conversations::ConversationState>,
    pub open_assignee: Option<Uuid>,
    pub state_manager_id: Option<String>,
    pub sync_state: Option<crate::integrations::propagation::SyncState>,
    pub sync_error: Option<String>,
    pub sync_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The customer with the summary of their conversations: any customer of the tenant for a
/// supervisor, and for an agent only one with a conversation it may see (its own, or an
/// unassigned waiting one). A customer's conversations are few, and read through
/// `conversations_by_customer_created`.
#[tracing::instrument(skip(tx), fields(otel.kind = "client", db.system = "postgresql", tenant_id = %tx.tenant_id()))]
pub(super) async fn find_profile(
    tx: &mut TenantTx,
    id: CustomerId,
    visibility: Visibility,
) -> Result<Option<ProfileRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT c.id, c.display_name, c.phone_e164, c.email, c.attributes, c.created_at, \
                c.updated_at, s.first_contact_at, s.last_contact_at, s.active, s.waiting, s.closed, \
                o.id AS open_id, o.state AS open_state, o.assigned_agent_id AS open_assignee, \
                c.state_manager_id, c.sync_state, c.sync_error, c.sync_at \
         FROM customers c \
         CROSS JOIN LATERAL ( \
             SELECT min(v.created_at) AS first_contact_at, \
                    max(v.last_activity_at) AS last_contact_at, \
                    count(*) FILTER (WHERE v.state = 'active') AS active, \
                    count(*) FILTER (WHERE v.state = 'waiting') AS waiting, \
                    count(*) FILTER (WHERE v.state = 'closed') AS closed, \
                    coalesce(bool_or(", agent_sees!("v", "$3"), "), false) AS visible \
             FROM conversations v WHERE v.tenant_id = c.tenant_id AND v.customer_id = c.id \
         ) s \
         LEFT JOIN LATERAL ( \
             SELECT v.id, v.state, v.assigned_agent_id FROM conversations v \
             WHERE v.tenant_id = c.tenant_id AND v.customer_id = c.id AND v.state <> 'closed' \
             ORDER BY v.created_at DESC LIMIT 1 \
         ) o ON true \
         WHERE c.tenant_id = $1 AND c.id = $2 AND ($3::uuid IS NULL OR s.visible)"
    ))
    .bind(tx.tenant_id().0)
    .bind(id.0)
    .bind(visibility.agent())
    .fetch_optional(tx.conn())
    .await?)
}

/// When the customer last changed, if the caller may see it (as [`find_profile`] decides);
/// `lock` holds the row for an edit until the transaction ends.
#[tracing::instrument(skip(tx), fields(otel.kind = "client", db.system = "postgresql", tenant_id = %tx.tenant_id()))]
pub(super) async fn changed_at(
    tx: &mut TenantTx,
    id: CustomerId,
    visibility: Visibility,
    lock: bool,
) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    let lock = if lock { " FOR UPDATE OF c" } else { "" };
    let row: Option<(chrono::DateTime<chrono::Utc>,)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT c.updated_at FROM customers c \
         WHERE c.tenant_id = $1 AND c.id = $2 AND ($3::uuid IS NULL OR EXISTS ( \
             SELECT 1 FROM conversations v \
             WHERE v.tenant_id = c.tenant_id AND v.customer_id = c.id AND {visible})){lock}",
            visible = agent_sees!("v", "$3"),
        )))
        .bind(tx.tenant_id().0)
        .bind(id.0)
        .bind(visibility.agent())
        .fetch_optional(tx.conn())
        .await?;
    Ok(row.map(|(at,)| at))
}

/// The tenant's region for phone numbers typed without a country code.
pub(super) async fn phone_region(tx: &mut TenantTx) -> Result<Option<String>> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("SELECT phone_region FROM tenants WHERE id = $1")
            .bind(tx.tenant_id().0)
            .fetch_optional(tx.conn())
            .await?;
    Ok(row.and_then(|(region,)| region))
}

/// Whether another customer of the tenant has this phone number.
pub(super) async fn phone_taken(tx: &mut TenantTx, id: CustomerId, phone: &str) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM customers WHERE tenant_id = $1 AND phone_e164 = $2 AND id <> $3)",
    )
    .bind(tx.tenant_id().0)
    .bind(phone)
    .bind(id.0)
    .fetch_one(tx.conn())
    .await?)
}

/// An edit; `None` leaves a field as it is, `email: Some(None)` clears it.
#[derive(Debug, Default)]
pub(super) struct Edit<'a> {
    pub display_name: Option<&'a str>,
    pub email: Option<Option<&'a str>>,
    pub phone: Option<&'a str>,
    pub attributes: Option<&'a serde_json::Value>,
}

/// Writes the edit; returns which of the shown fields (name, phone) changed, or `None` when
/// nothing changed at all (the row is left untouched, `updated_at` included).
#[tracing::instrument(skip(tx, edit), fields(otel.kind = "client", db.system = "postgresql", tenant_id = %tx.tenant_id()))]
pub(super) async fn update(
    tx: &mut TenantTx,
    id: CustomerId,
    edit: &Edit<'_>,
) -> Result<Option<bool>> {
    // `clock_timestamp()`, not `now()`: `updated_at` is the ETag, and must move on every change.
    let row: Option<(bool,)> = sqlx::query_as(
        "WITH before AS ( \
             SELECT display_name, phone_e164 FROM customers WHERE tenant_id = $1 AND id = $2 \
         ) \
         UPDATE customers c SET \
             display_name = coalesce($3, c.display_name), \
             email = CASE WHEN $4 THEN $5 ELSE c.email END, \
             phone_e164 = coalesce($6, c.phone_e164), \
             attributes = coalesce($7, c.attributes), \
             updated_at = clock_timestamp() \
         FROM before \
         WHERE c.tenant_id = $1 AND c.id = $2 \
           AND (c.display_name, c.email, c.phone_e164, c.attributes) IS DISTINCT FROM \
               (coalesce($3, c.display_name), CASE WHEN $4 THEN $5 ELSE c.email END, \
                coalesce($6, c.phone_e164), coalesce($7, c.attributes)) \
         RETURNING (before.display_name, before.phone_e164) IS DISTINCT FROM (c.display_name, c.phone_e164)",
    )
    .bind(tx.tenant_id().0)
    .bind(id.0)
    .bind(edit.display_name)
    .bind(edit.email.is_some())
    .bind(edit.email.flatten())
    .bind(edit.phone)
    .bind(edit.attributes)
    .fetch_optional(tx.conn())
    .await?;
    Ok(row.map(|(shown,)| shown))
}

/// The customer as the State Manager is told of it after an edit; `None` when the State
/// Manager does not know the customer (no `state_manager_id`).
pub(super) async fn as_propagated(
    tx: &mut TenantTx,
    id: CustomerId,
) -> Result<
    Option<(
        String,
        String,
        Option<String>,
        Option<String>,
        serde_json::Value,
    )>,
> {
    Ok(sqlx::query_as(
        "SELECT state_manager_id, display_name, email, phone_e164, attributes FROM customers \
         WHERE tenant_id = $1 AND id = $2 AND state_manager_id IS NOT NULL",
    )
    .bind(tx.tenant_id().0)
    .bind(id.0)
    .fetch_optional(tx.conn())
    .await?)
}

/// Links the customer to the State Manager's id for them, unless it is linked already.
pub async fn link_state_manager_id(
    tx: &mut TenantTx,
    id: CustomerId,
    state_manager_id: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE customers SET state_manager_id = $3 \
         WHERE tenant_id = $1 AND id = $2 AND state_manager_id IS NULL \
           AND NOT EXISTS (SELECT 1 FROM customers o WHERE o.tenant_id = $1 AND o.state_manager_id = $3)",
    )
    .bind(tx.tenant_id().0)
    .bind(id.0)
    .bind(state_manager_id)
    .execute(tx.conn())
    .await?;
    Ok(())
}
