//! Publishes events that are still unpublished after a grace period: their publisher crashed
//! between commit and publish, its sink was full, or Redis was down. Any number of relays may
//! run; each claims different rows (`FOR UPDATE SKIP LOCKED`) and publishes them in `seq` order
//! per tenant before marking them, in one transaction.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Event, mark_published, publish};
use crate::ids::TenantId;
use crate::tenancy::Db;
use crate::{Error, Result};

const BATCH: i32 = 500;

#[derive(Debug)]
pub struct EventRelay {
    db: Db,
    redis: redis::aio::ConnectionManager,
    channel: String,
    interval: Duration,
    min_age: Duration,
}

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: uuid::Uuid,
    seq: i64,
    event_type: String,
    payload: serde_json::Value,
    created_at: chrono::DateTime<chrono::Utc>,
}

impl EventRelay {
    pub fn new(
        db: Db,
        redis: redis::aio::ConnectionManager,
        channel: String,
        interval: Duration,
        min_age: Duration,
    ) -> Self {
        Self {
            db,
            redis,
            channel,
            interval,
            min_age,
        }
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            loop {
                match self.relay_once().await {
                    Ok(n) if n == BATCH as usize => continue,
                    Ok(0) => break,
                    Ok(n) => {
                        tracing::info!(events = n, "relayed unpublished events");
                        break;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "relaying events failed; retrying at the next interval");
                        break;
                    }
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    /// Publishes one batch; returns how many events it published.
    pub async fn relay_once(&mut self) -> Result<usize> {
        let mut tx = self.db.pool().begin().await?;
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT tenant_id, seq, event_type, payload, created_at \
             FROM claim_unpublished_events(make_interval(secs => $1), $2)",
        )
        .bind(self.min_age.as_secs_f64())
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        let events: Vec<Event> = rows
            .into_iter()
            .map(|r| Event {
                tenant_id: TenantId(r.tenant_id),
                seq: r.seq,
                event_type: r.event_type,
                payload: r.payload,
                created_at: r.created_at,
            })
            .collect();
        tokio::time::timeout(
            Duration::from_secs(3),
            publish(&mut self.redis, &self.channel, &events),
        )
        .await
        .map_err(|_| Error::Unavailable("redis: publishing timed out".into()))??;
        mark_published(&mut *tx, &events).await?;
        tx.commit().await?;
        Ok(events.len())
    }
}
