//! The ids of applied notifications: what makes a redelivery a no-op.

use std::collections::HashSet;
use std::time::Duration;

use uuid::Uuid;

use crate::Result;
use crate::tenancy::{Db, TenantTx};

/// Records the `(event_id, type)`s as applied in this transaction; for each, whether it is
/// new (not applied before, and not earlier in the same list). `None`, recording nothing, when
/// the transaction's tenant does not exist.
pub(super) async fn record(
    tx: &mut TenantTx,
    events: &[(Uuid, &str)],
) -> Result<Option<Vec<bool>>> {
    let ids: Vec<Uuid> = events.iter().map(|(id, _)| *id).collect();
    let kinds: Vec<&str> = events.iter().map(|(_, kind)| *kind).collect();
    // The tenant check rides along: one round trip less for every batch.
    let (known, inserted): (bool, Vec<Uuid>) = sqlx::query_as(
        "WITH tenant AS (SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1) AS known), \
         inserted AS ( \
             INSERT INTO processed_notifications (tenant_id, event_id, type) \
             SELECT $1, u.event_id, u.type \
             FROM tenant, unnest($2::uuid[], $3::text[]) AS u (event_id, type) \
             WHERE tenant.known \
             ON CONFLICT DO NOTHING RETURNING event_id \
         ) \
         SELECT (SELECT known FROM tenant), array(SELECT event_id FROM inserted)",
    )
    .bind(tx.tenant_id().0)
    .bind(ids)
    .bind(kinds)
    .fetch_one(tx.conn())
    .await?;
    if !known {
        return Ok(None);
    }
    let mut new: HashSet<Uuid> = inserted.into_iter().collect();
    Ok(Some(events.iter().map(|(id, _)| new.remove(id)).collect()))
}

/// Forgets ids older than `older_than`, at most `batch` of them; returns how many.
pub async fn prune(db: &Db, older_than: Duration, batch: u32) -> Result<u64> {
    let pruned: i64 =
        sqlx::query_scalar("SELECT prune_processed_notifications(make_interval(secs => $1), $2)")
            .bind(older_than.as_secs_f64())
            .bind(i32::try_from(batch).unwrap_or(i32::MAX))
            .fetch_one(db.pool())
            .await?;
    Ok(u64::try_from(pruned).unwrap_or(0))
}
