//! The event log: one row per change, written in the transaction that makes the change.
//!
//! `seq` is per tenant, gapless and visible in commit order (see the events migration), so a
//! consumer that has seen `seq` N can ask for everything after N and miss nothing. After the
//! commit, [`publisher`] sends a transaction's events to Redis pub/sub; [`relay`] publishes
//! whatever a publisher could not (it crashed, or Redis was down). An event may therefore be
//! published twice, never lost: subscribers drop a `seq` they have already seen.

pub mod publisher;
pub mod relay;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::TenantId;
use crate::tenancy::TenantTx;
use crate::{Error, Result};

pub use publisher::{EventPublisher, EventSink};
pub use relay::EventRelay;

/// An event as it is published: the row of the `events` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub tenant_id: TenantId,
    pub seq: i64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

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

/// Appends an event for the transaction's tenant and returns its sequence number. The event
/// is published when the transaction commits.
///
/// Call it late in a transaction: it locks the tenant's counter until commit.
#[tracing::instrument(skip(tx, payload), fields(tenant_id = %tx.tenant_id(), event = event.as_str()))]
pub async fn append(tx: &mut TenantTx, event: EventType, payload: &impl Serialize) -> Result<i64> {
    let payload = serde_json::to_value(payload).map_err(Error::internal)?;
    let tenant_id = tx.tenant_id().0;
    let row = sqlx::query!(
        r#"WITH next AS (
               INSERT INTO tenant_event_counters (tenant_id, last_seq) VALUES ($1, 1)
               ON CONFLICT (tenant_id) DO UPDATE SET last_seq = tenant_event_counters.last_seq + 1
               RETURNING last_seq
           )
           INSERT INTO events (tenant_id, seq, event_type, payload)
           SELECT $1, last_seq, $2, $3 FROM next
           RETURNING seq, created_at"#,
        tenant_id,
        event.as_str(),
        payload
    )
    .fetch_one(tx.conn())
    .await?;
    tx.appended(Event {
        tenant_id: TenantId(tenant_id),
        seq: row.seq,
        event_type: event.as_str().to_string(),
        payload,
        created_at: row.created_at,
    });
    Ok(row.seq)
}

/// Publishes events on the channel, in order, in one round trip.
pub(crate) async fn publish(
    redis: &mut redis::aio::ConnectionManager,
    channel: &str,
    events: &[Event],
) -> Result<()> {
    let mut pipe = redis::pipe();
    for event in events {
        let json = serde_json::to_string(event).map_err(Error::internal)?;
        pipe.cmd("PUBLISH").arg(channel).arg(json).ignore();
    }
    pipe.query_async::<()>(redis)
        .await
        .map_err(|e| Error::Unavailable(format!("redis: {e}")))
}

/// Records that these events reached Redis, so the relay leaves them alone.
pub(crate) async fn mark_published<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    events: &[Event],
) -> Result<()> {
    let tenants: Vec<uuid::Uuid> = events.iter().map(|e| e.tenant_id.0).collect();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    sqlx::query("SELECT mark_events_published($1, $2)")
        .bind(tenants)
        .bind(seqs)
        .execute(executor)
        .await?;
    Ok(())
}

/// A Redis connection that connects on first use and reconnects by itself; commands fail
/// fast while Redis is down instead of hanging.
pub fn redis_connection(url: &str) -> Result<redis::aio::ConnectionManager> {
    let client =
        redis::Client::open(url).map_err(|e| Error::invalid("redis.url", e.to_string()))?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(std::time::Duration::from_secs(1)))
        .set_response_timeout(Some(std::time::Duration::from_secs(2)))
        .set_number_of_retries(2)
        .set_max_delay(std::time::Duration::from_millis(500));
    redis::aio::ConnectionManager::new_lazy_with_config(client, config)
        .map_err(|e| Error::invalid("redis.url", e.to_string()))
}
