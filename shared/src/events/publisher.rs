//! Publishes each committed transaction's events to Redis, in commit order, off the request path.
//!
//! [`crate::tenancy::TenantTx::commit`] hands its events to an [`EventSink`]; one
//! [`EventPublisher`] task per process sends them in batches (one pipelined round trip) and
//! marks them published. When Redis is down, or the sink is full, events are simply left
//! unpublished for the [`super::EventRelay`]: the request that made them never waits on Redis.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Event, mark_published, publish};
use crate::tenancy::Db;

/// Events waiting for the publisher; beyond this the relay takes over.
const SINK_CAPACITY: usize = 10_000;
const BATCH: usize = 256;

/// Where committed transactions leave their events.
#[derive(Debug, Clone)]
pub struct EventSink {
    tx: mpsc::Sender<Event>,
}

impl EventSink {
    pub(crate) fn offer(&self, events: Vec<Event>) {
        for event in events {
            if self.tx.try_send(event).is_err() {
                // Full or closed: the relay publishes it after `events.relay_min_age_ms`.
                tracing::debug!("event publisher busy; leaving the event to the relay");
                return;
            }
        }
    }
}

#[derive(Debug)]
pub struct EventPublisher {
    rx: mpsc::Receiver<Event>,
    db: Db,
    redis: redis::aio::ConnectionManager,
    channel: String,
}

impl EventPublisher {
    /// The sink to give [`Db::with_event_sink`], and the task that drains it.
    pub fn new(db: Db, redis: redis::aio::ConnectionManager, channel: String) -> (EventSink, Self) {
        let (tx, rx) = mpsc::channel(SINK_CAPACITY);
        (
            EventSink { tx },
            Self {
                rx,
                db,
                redis,
                channel,
            },
        )
    }

    /// Publishes until `shutdown`, then publishes what is already queued and stops.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                received = self.rx.recv_many(&mut batch, BATCH) => {
                    if received == 0 {
                        return;
                    }
                }
            }
            self.publish_batch(&mut batch).await;
        }
        self.rx.close();
        while self.rx.recv_many(&mut batch, BATCH).await > 0 {
            self.publish_batch(&mut batch).await;
        }
    }

    async fn publish_batch(&mut self, batch: &mut Vec<Event>) {
        match publish(&mut self.redis, &self.channel, batch).await {
            Ok(()) => {
                if let Err(err) = mark_published(self.db.pool(), batch).await {
                    // Published but not marked: the relay publishes them again; subscribers
                    // drop the duplicates by seq.
                    tracing::warn!(error = %err, "could not mark events published");
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, events = batch.len(), "could not publish events; the relay will")
            }
        }
        batch.clear();
    }
}
