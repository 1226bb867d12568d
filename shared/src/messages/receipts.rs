//! WhatsApp delivery receipts, by WhatsApp message id.
//!
//! They arrive out of order (a `delivered` after its `read`) and sometimes before the message
//! they refer to has its WhatsApp id (the receipt overtook the transformer's answer). The status
//! rules are the messages module's own ([`super::status`]): a receipt never moves a status
//! backwards. A receipt for an id no message has yet is kept in `pending_receipts` and applied
//! when a message gets that id ([`apply_kept`]).

use chrono::{DateTime, Utc};

use super::service::{StatusOutcome, apply_status};
use super::{MessageStatus, StatusChange, repo};
use crate::tenancy::TenantTx;
use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub whatsapp_message_id: String,
    pub status: MessageStatus,
    pub failure_reason: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptOutcome {
    Applied,
    /// The message already had this status, or a later one.
    Ignored,
    /// No message has this WhatsApp id yet: kept until one does.
    Kept,
}

/// Applies a receipt in the transaction's tenant. `source` is the notification it came in,
/// kept with a receipt that has to wait so that one kept too long can be dead-lettered as it
/// was published.
pub async fn apply(
    tx: &mut TenantTx,
    receipt: &Receipt,
    source: Option<&serde_json::Value>,
) -> Result<ReceiptOutcome> {
    if receipt.status == MessageStatus::Pending {
        return Err(Error::invalid(
            "status",
            "a receipt cannot make a message pending",
        ));
    }
    let Some(message) = repo::find_by_external_id(tx, &receipt.whatsapp_message_id).await? else {
        sqlx::query(
            "INSERT INTO pending_receipts (tenant_id, external_id, status, failure_reason, occurred_at, source) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(tx.tenant_id().0)
        .bind(&receipt.whatsapp_message_id)
        .bind(receipt.status)
        .bind(&receipt.failure_reason)
        .bind(receipt.at)
        .bind(source)
        .execute(tx.conn())
        .await?;
        return Ok(ReceiptOutcome::Kept);
    };
    let change = StatusChange {
        failure_reason: receipt.failure_reason.clone(),
        ..StatusChange::to(receipt.status)
    };
    Ok(match apply_status(tx, message, &change).await? {
        StatusOutcome::Applied(_) => ReceiptOutcome::Applied,
        StatusOutcome::Unchanged(_) | StatusOutcome::Refused(_) => ReceiptOutcome::Ignored,
    })
}

/// Applies, in status order, the receipts kept for `whatsapp_message_id`, now that a message
/// has it; returns how many moved its status.
pub async fn apply_kept(tx: &mut TenantTx, whatsapp_message_id: &str) -> Result<usize> {
    let kept: Vec<(MessageStatus, Option<String>, DateTime<Utc>)> = sqlx::query_as(
        "DELETE FROM pending_receipts WHERE tenant_id = $1 AND external_id = $2 \
         RETURNING status, failure_reason, occurred_at",
    )
    .bind(tx.tenant_id().0)
    .bind(whatsapp_message_id)
    .fetch_all(tx.conn())
    .await?;
    let mut kept = kept;
    // The order a message goes through them; `failed` last, where it can only be refused
    // after a delivery (a failure after `sent` still applies).
    kept.sort_by_key(|(status, _, _)| match status {
        MessageStatus::Pending => 0,
        MessageStatus::Sent => 1,
        MessageStatus::Failed => 2,
        MessageStatus::Delivered => 3,
        MessageStatus::Read => 4,
    });
    let mut applied = 0;
    for (status, failure_reason, at) in kept {
        let receipt = Receipt {
            whatsapp_message_id: whatsapp_message_id.to_string(),
            status,
            failure_reason,
            at,
        };
        if apply(tx, &receipt, None).await? == ReceiptOutcome::Applied {
            applied += 1;
        }
    }
    Ok(applied)
}

/// A receipt kept longer than the consumer waits for its message.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OverdueReceipt {
    pub tenant_id: crate::ids::TenantId,
    #[sqlx(rename = "external_id")]
    pub whatsapp_message_id: String,
    pub status: MessageStatus,
    /// The notification it came in.
    pub source: Option<serde_json::Value>,
    pub received_at: DateTime<Utc>,
}

/// Receipts of every tenant kept longer than `older_than`, oldest first.
pub async fn overdue(
    db: &crate::tenancy::Db,
    older_than: std::time::Duration,
    limit: u32,
) -> Result<Vec<OverdueReceipt>> {
    Ok(
        sqlx::query_as("SELECT * FROM overdue_pending_receipts(make_interval(secs => $1), $2)")
            .bind(older_than.as_secs_f64())
            .bind(i32::try_from(limit).unwrap_or(i32::MAX))
            .fetch_all(db.pool())
            .await?,
    )
}

/// Forgets an overdue receipt once it is dead-lettered; `false` if it was applied meanwhile.
pub async fn forget(db: &crate::tenancy::Db, overdue: &OverdueReceipt) -> Result<bool> {
    let mut tx = db.begin_for(overdue.tenant_id).await?;
    let done = sqlx::query(
        "DELETE FROM pending_receipts \
         WHERE tenant_id = $1 AND external_id = $2 AND status = $3 AND received_at = $4",
    )
    .bind(tx.tenant_id().0)
    .bind(&overdue.whatsapp_message_id)
    .bind(overdue.status)
    .bind(overdue.received_at)
    .execute(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected() > 0)
}
