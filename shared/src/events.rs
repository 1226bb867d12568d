//! The event log: one row per change, written in the transaction that makes the change.
//!
//! `seq` is per tenant, gapless and visible in commit order (see the events migration), so a
//! consumer that has seen `seq` N can ask for everything after N and miss nothing. Publishing
//! rows to Redis is the realtime issue's relay; here they are only recorded.

use serde::Serialize;

use crate::tenancy::TenantTx;
use crate::{Error, Result};

/// The event names of the Socket.IO contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    ConversationNew,
    ConversationUpdated,
    MessageNew,
    MessageStatus,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConversationNew => "conversation:new",
            Self::ConversationUpdated => "conversation:updated",
            Self::MessageNew => "message:new",
            Self::MessageStatus => "message:status",
        }
    }
}

/// Appends an event for the transaction's tenant and returns its sequence number.
///
/// Call it last in a transaction: it locks the tenant's counter until commit.
#[tracing::instrument(skip(tx, payload), fields(tenant_id = %tx.tenant_id(), event = event.as_str()))]
pub async fn append(tx: &mut TenantTx, event: EventType, payload: &impl Serialize) -> Result<i64> {
    let payload = serde_json::to_value(payload).map_err(Error::internal)?;
    let tenant_id = tx.tenant_id().0;
    let seq = sqlx::query_scalar!(
        r#"WITH next AS (
               INSERT INTO tenant_event_counters (tenant_id, last_seq) VALUES ($1, 1)
               ON CONFLICT (tenant_id) DO UPDATE SET last_seq = tenant_event_counters.last_seq + 1
               RETURNING last_seq
           )
           INSERT INTO events (tenant_id, seq, event_type, payload)
           SELECT $1, last_seq, $2, $3 FROM next
           RETURNING seq"#,
        tenant_id,
        event.as_str(),
        payload
    )
    .fetch_one(tx.conn())
    .await?;
    Ok(seq)
}
