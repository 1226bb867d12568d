//! The Redis subscription that feeds the fan-out, and its repair work.
//!
//! It subscribes to the events channel and the presence channel. While subscribed it also
//! fills the fan-out's gaps from Postgres, and pings Redis so a dead connection is noticed.
//! When the subscription breaks (Redis restarted, network lost) it resubscribes with backoff
//! and then reads from Postgres every event published while it was away, so connected sockets
//! miss nothing; sockets stay connected throughout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use portal_shared::backoff::Backoff;
use portal_shared::events::{self, Event, Replay};
use portal_shared::ids::TenantId;
use portal_shared::tenancy::Db;
use redis::aio::{PubSubSink, PubSubStream};
use socketioxide::SocketIo;
use tokio_util::sync::CancellationToken;

use crate::fanout::{Fanout, Outgoing};
use crate::metrics::Metrics;
use crate::presence::{self, PresenceChange};

/// Events read from Postgres per round trip when filling a gap or catching up.
const READ_PAGE: u32 = 1000;
const PING_EVERY: Duration = Duration::from_secs(5);
const PING_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct Subscriber {
    pub client: redis::Client,
    pub events_channel: String,
    pub presence_channel: String,
    pub fanout: Fanout,
    pub io: SocketIo,
    pub db: Db,
    pub metrics: Metrics,
    pub gap_wait: Duration,
    /// Read by readiness.
    pub up: Arc<AtomicBool>,
}

impl Subscriber {
    pub async fn run(self, stop: CancellationToken) {
        let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
        loop {
            match self.subscribe().await {
                Ok((sink, stream)) => {
                    tracing::info!(channel = %self.events_channel, "subscribed to events");
                    backoff.reset();
                    self.set_up(true);
                    self.catch_up().await;
                    self.pump(sink, stream, &stop).await;
                    self.set_up(false);
                    if stop.is_cancelled() {
                        return;
                    }
                    tracing::warn!("the Redis subscription was lost: resubscribing");
                }
                Err(err) => tracing::warn!(error = %err, "could not subscribe to Redis"),
            }
            // Jittered, so pods that lost Redis together do not return together.
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
        self.metrics.subscribed(up);
    }

    async fn subscribe(&self) -> redis::RedisResult<(PubSubSink, PubSubStream)> {
        let connect = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(&self.events_channel).await?;
            pubsub.subscribe(&self.presence_channel).await?;
            Ok(pubsub.split())
        };
        tokio::time::timeout(Duration::from_secs(3), connect)
            .await
            .unwrap_or_else(|_| {
                Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "timed out subscribing",
                )))
            })
    }

    async fn pump(&self, mut sink: PubSubSink, mut stream: PubSubStream, stop: &CancellationToken) {
        let mut gaps = tokio::time::interval((self.gap_wait / 2).max(Duration::from_millis(10)));
        let mut ping = tokio::time::interval(PING_EVERY);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                msg = stream.next() => match msg {
                    Some(msg) => self.handle(&msg).await,
                    None => return,
                },
                _ = gaps.tick() => self.fill_gaps().await,
                _ = ping.tick() => {
                    let pong = tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await;
                    if !matches!(pong, Ok(Ok(_))) {
                        return;
                    }
                }
            }
        }
    }

    async fn handle(&self, msg: &redis::Msg) {
        let payload = msg.get_payload_bytes();
        if msg.get_channel_name() == self.presence_channel {
            match serde_json::from_slice::<PresenceChange>(payload) {
                Ok(change) => presence::push(&self.io, &change).await,
                Err(err) => tracing::warn!(error = %err, "malformed presence change ignored"),
            }
            return;
        }
        match serde_json::from_slice::<Event>(payload) {
            Ok(event) => self.offer(&event),
            Err(err) => tracing::warn!(error = %err, "malformed event ignored"),
        }
    }

    fn offer(&self, event: &Event) {
        match Outgoing::new(event) {
            Ok(out) => self.fanout.offer(out),
            Err(err) => {
                tracing::error!(seq = event.seq, tenant = %event.tenant_id, error = %err, "event not deliverable")
            }
        }
    }

    /// Reads from Postgres the events that are missing before ones already held.
    async fn fill_gaps(&self) {
        for (tenant, after, next) in self.fanout.gaps(self.gap_wait) {
            let wanted = u32::try_from(next - after - 1).unwrap_or(READ_PAGE);
            self.read(tenant, after, wanted.clamp(1, READ_PAGE), Some(next))
                .await;
        }
    }

    /// Reads every event published after what each tracked tenant last delivered.
    async fn catch_up(&self) {
        for (tenant, mut after) in self.fanout.heads() {
            while let Some(last) = self.read(tenant, after, READ_PAGE, None).await {
                after = last;
            }
        }
    }

    /// Offers the tenant's events after `after`; the last `seq` read when there may be more.
    /// `next` is the first event already held: when Postgres no longer has the ones before
    /// it, the fan-out skips to it.
    async fn read(
        &self,
        tenant: TenantId,
        after: i64,
        limit: u32,
        next: Option<i64>,
    ) -> Option<i64> {
        match events::since(&self.db, tenant, after, limit).await {
            Ok(Replay::Events { events, more }) => {
                for event in &events {
                    self.offer(event);
                }
                let last = events.last().map(|e| e.seq);
                if more { last } else { None }
            }
            Ok(Replay::Resync) => {
                let to = match next {
                    Some(next) => next,
                    None => events::head(&self.db, tenant).await.ok()? + 1,
                };
                self.fanout.skip_to(tenant, to);
                None
            }
            Err(err) => {
                tracing::warn!(%tenant, error = %err, "could not read missed events (retried later)");
                None
            }
        }
    }
}
