//! The event log: one row per change, written in the transaction that makes the change.
//!
//! `seq` is per tenant, gapless and visible in commit order (see the events migration), so a
//! consumer that has seen `seq` N can ask for everything after N and miss nothing. After the
//! commit, [`publisher`] sends a transaction's events to Redis pub/sub; [`relay`] publishes
//! whatever a publisher could not (it crashed, or Redis was down). An event may therefore be
//! published twice, never lost: subscribers drop a `seq` they have already seen.

pub mod publisher;
pub mod relay;
pub mod rooms;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::TenantId;
use crate::tenancy::{Db, TenantTx};
use crate::{Error, Result};

pub use publisher::{EventPublisher, EventSink};
pub use relay::EventRelay;
pub use rooms::{Room, Subject, rooms_for, subject_of};

/// An event as it is published: the row of the `events` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub tenant_id: TenantId,
    pub seq: i64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// The W3C trace context of the span that wrote it, when traces are on: the realtime emit
    /// joins that trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
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
pub async fn append(tx: &mut TenantTx, event: EventType, payload: &impl Serialize) -> Result<i64> {
    let seqs = append_many(tx, event, std::slice::from_ref(payload)).await?;
    seqs.first()
        .copied()
        .ok_or_else(|| Error::internal(anyhow::anyhow!("appending an event returned no row")))
}

/// Appends one event per payload, in order, with consecutive sequence numbers: one statement
/// however many (the queue consumer applies notifications in batches).
#[tracing::instrument(skip(tx, payloads), fields(otel.kind = "client", db.system = "postgresql", tenant_id = %tx.tenant_id(), event = event.as_str(), n = payloads.len()))]
pub async fn append_many(
    tx: &mut TenantTx,
    event: EventType,
    payloads: &[impl Serialize],
) -> Result<Vec<i64>> {
    if payloads.is_empty() {
        return Ok(Vec::new());
    }
    let payloads: Vec<serde_json::Value> = payloads
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()
        .map_err(Error::internal)?;
    let tenant_id = tx.tenant_id().0;
    let n = i64::try_from(payloads.len()).map_err(Error::internal)?;
    let traceparent = crate::telemetry::current_traceparent();
    let mut rows: Vec<(i64, DateTime<Utc>)> = sqlx::query_as(
        "WITH next AS ( \
             INSERT INTO tenant_event_counters (tenant_id, last_seq) VALUES ($1, $4) \
             ON CONFLICT (tenant_id) DO UPDATE SET last_seq = tenant_event_counters.last_seq + $4 \
             RETURNING last_seq \
         ), \
         appended AS ( \
             INSERT INTO events (tenant_id, seq, event_type, payload, traceparent) \
             SELECT $1, next.last_seq - $4 + p.ord, $2, p.payload, $5 \
             FROM next, unnest($3::jsonb[]) WITH ORDINALITY AS p (payload, ord) \
             RETURNING seq, created_at \
         ), \
         unpublished AS ( \
             INSERT INTO unpublished_events (tenant_id, seq, created_at) \
             SELECT $1, seq, created_at FROM appended \
         ) \
         SELECT seq, created_at FROM appended",
    )
    .bind(tenant_id)
    .bind(event.as_str())
    .bind(&payloads)
    .bind(n)
    .bind(&traceparent)
    .fetch_all(tx.conn())
    .await?;
    // The payloads got seq in their order (`ord`); RETURNING promises no order.
    rows.sort_by_key(|(seq, _)| *seq);
    let mut seqs = Vec::with_capacity(rows.len());
    for ((seq, created_at), payload) in rows.into_iter().zip(payloads) {
        tx.appended(Event {
            tenant_id: TenantId(tenant_id),
            seq,
            event_type: event.as_str().to_string(),
            payload,
            created_at,
            traceparent: traceparent.clone(),
        });
        seqs.push(seq);
    }
    Ok(seqs)
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    tenant_id: uuid::Uuid,
    seq: i64,
    event_type: String,
    payload: serde_json::Value,
    created_at: DateTime<Utc>,
    traceparent: Option<String>,
}

impl From<EventRow> for Event {
    fn from(r: EventRow) -> Self {
        Self {
            tenant_id: TenantId(r.tenant_id),
            seq: r.seq,
            event_type: r.event_type,
            payload: r.payload,
            created_at: r.created_at,
            traceparent: r.traceparent,
        }
    }
}

/// What a client that has seen every event up to some `seq` is to be sent next.
#[derive(Debug, Clone, PartialEq)]
pub enum Replay {
    /// The events after it, in order; empty when it is up to date. `more` when `limit` cut
    /// them short: ask again after the last one.
    Events { events: Vec<Event>, more: bool },
    /// What it missed is no longer kept (past `events.retention_hours`), or its `seq` is not
    /// from this history: it must reload its state.
    Resync,
}

/// The transaction tenant's events after `after`, for a reconnecting client.
#[tracing::instrument(skip(tx), fields(tenant_id = %tx.tenant_id()))]
pub async fn replay(tx: &mut TenantTx, after: i64, limit: u32) -> Result<Replay> {
    let tenant_id = tx.tenant_id().0;
    let last = last_seq(tx).await?;
    if after > last || after < 0 {
        return Ok(Replay::Resync);
    }
    if after == last {
        return Ok(Replay::Events {
            events: Vec::new(),
            more: false,
        });
    }
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT tenant_id, seq, event_type, payload, created_at, traceparent FROM events \
         WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(tenant_id)
    .bind(after)
    .bind(i64::from(limit) + 1)
    .fetch_all(tx.conn())
    .await?;
    // Sequence numbers are gapless, so a missing `after + 1` was pruned.
    if rows.first().map(|r| r.seq) != Some(after + 1) {
        return Ok(Replay::Resync);
    }
    let more = rows.len() > limit as usize;
    Ok(Replay::Events {
        events: rows
            .into_iter()
            .take(limit as usize)
            .map(Event::from)
            .collect(),
        more,
    })
}

/// The tenant's events after `after`, for a subscriber that saw a gap or a reconnecting
/// client; read in a transaction of that tenant, so row-level security applies.
pub async fn since(db: &Db, tenant: TenantId, after: i64, limit: u32) -> Result<Replay> {
    let mut tx = db.begin_for(tenant).await?;
    let replayed = replay(&mut tx, after, limit).await?;
    tx.commit().await?;
    Ok(replayed)
}

/// The tenant's last event sequence number (0 before its first event).
pub async fn head(db: &Db, tenant: TenantId) -> Result<i64> {
    let mut tx = db.begin_for(tenant).await?;
    let last = last_seq(&mut tx).await?;
    tx.commit().await?;
    Ok(last)
}

async fn last_seq(tx: &mut TenantTx) -> Result<i64> {
    let tenant_id = tx.tenant_id().0;
    Ok(sqlx::query_scalar(
        "SELECT coalesce((SELECT last_seq FROM tenant_event_counters WHERE tenant_id = $1), 0)",
    )
    .bind(tenant_id)
    .fetch_one(tx.conn())
    .await?)
}

/// How long a publish may take before Redis counts as down (the relay catches up later).
const PUBLISH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

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
    tokio::time::timeout(PUBLISH_TIMEOUT, pipe.query_async::<()>(redis))
        .await
        .map_err(|_| Error::Unavailable("redis: publishing timed out".into()))?
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

/// Starts the publisher of this process's events and the relay, as configured; returns the
/// database handle whose transactions feed the publisher.
pub fn start_publishing(
    db: Db,
    redis: redis::aio::ConnectionManager,
    settings: &crate::config::Settings,
    stop: &tokio_util::sync::CancellationToken,
) -> (Db, Vec<tokio::task::JoinHandle<()>>) {
    let events = &settings.events;
    let mut tasks = Vec::new();
    let mut db = db;
    if events.publish {
        let (sink, publisher) =
            EventPublisher::new(db.clone(), redis.clone(), events.channel.clone());
        db = db.with_event_sink(sink);
        tasks.push(tokio::spawn(publisher.run(stop.clone())));
    }
    if events.relay_enabled {
        let relay = EventRelay::new(
            db.clone(),
            redis.clone(),
            events.channel.clone(),
            std::time::Duration::from_millis(events.relay_interval_ms),
            std::time::Duration::from_millis(events.relay_min_age_ms),
            std::time::Duration::from_secs(events.retention_hours * 3600),
        );
        tasks.push(tokio::spawn(relay.run(stop.clone())));
    }
    (db, tasks)
}

/// Stops what [`start_publishing`] started, after it has published what it holds. Call it
/// last, once nothing will append events any more.
pub async fn stop_publishing(
    stop: &tokio_util::sync::CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
) {
    stop.cancel();
    for task in tasks {
        if let Err(err) = task.await {
            tracing::error!(error = %err, "an event publishing task failed");
        }
    }
}
