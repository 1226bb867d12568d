//! SQL for customers.

use uuid::Uuid;

use crate::Result;
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
