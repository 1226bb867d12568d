//! Publishes events that are still unpublished after a grace period: their publisher crashed
//! between commit and publish, its sink was full, or Redis was down. Any number of relays may
//! run; each claims different rows (`FOR UPDATE SKIP LOCKED`) and publishes them in `seq` order
//! per tenant before marking them, in one transaction. The relay also deletes published events
//! older than the retention period.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Event, EventRow, mark_published, publish};
use crate::Result;
use crate::tenancy::Db;

const BATCH: i32 = 500;
const PRUNE_BATCH: i32 = 5000;

#[derive(Debug)]
pub struct EventRelay {
    db: Db,
    redis: redis::aio::ConnectionManager,
    channel: String,
    interval: Duration,
    min_age: Duration,
    retention: Duration,
}

impl EventRelay {
    pub fn new(
        db: Db,
        redis: redis::aio::ConnectionManager,
        channel: String,
        interval: Duration,
        min_age: Duration,
        retention: Duration,
    ) -> Self {
        Self {
            db,
            redis,
            channel,
            interval,
            min_age,
            retention,
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
            match self.prune_once().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(events = n, "pruned events past retention"),
                Err(err) => tracing::warn!(error = %err, "pruning events failed"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    /// Deletes one batch of published events older than the retention; returns how many.
    pub async fn prune_once(&self) -> Result<usize> {
        let pruned: i32 = sqlx::query_scalar("SELECT prune_events(make_interval(secs => $1), $2)")
            .bind(self.retention.as_secs_f64())
            .bind(PRUNE_BATCH)
            .fetch_one(self.db.pool())
            .await?;
        Ok(usize::try_from(pruned).unwrap_or(0))
    }

    /// Publishes one batch; returns how many events it published.
    pub async fn relay_once(&mut self) -> Result<usize> {
        let mut tx = self.db.pool().begin().await?;
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT tenant_id, seq, event_type, payload, created_at, traceparent \
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
        let events: Vec<Event> = rows.into_iter().map(Event::from).collect();
        publish(&mut self.redis, &self.channel, &events).await?;
        mark_published(&mut *tx, &events).await?;
        tx.commit().await?;
        Ok(events.len())
    }
}
