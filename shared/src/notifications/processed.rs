//! The ids of applied notifications: what makes a redelivery a no-op.

use std::time::Duration;

use uuid::Uuid;

use crate::Result;
use crate::tenancy::{Db, TenantTx};

/// Records `event_id` as applied in this transaction; `false` if it was already.
pub(super) async fn record(tx: &mut TenantTx, event_id: Uuid, kind: &str) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO processed_notifications (tenant_id, event_id, type) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(tx.tenant_id().0)
    .bind(event_id)
    .bind(kind)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
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
