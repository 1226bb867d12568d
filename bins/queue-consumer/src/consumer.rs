//! The connection to the broker: connect, declare, consume, hand each delivery to its worker;
//! on any connection or channel failure, start again with backoff. Unacknowledged deliveries of
//! a lost connection are redelivered by the broker, and the processed-ids table makes a
//! redelivery of something already applied a no-op.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use portal_shared::backoff::Backoff;
use portal_shared::config::{ConsumerSettings, Settings};
use portal_shared::notifications::{self, Applier, Envelope, Poison};
use portal_shared::tenancy::Db;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::acks::Acks;
use crate::forward::Forwarder;
use crate::handler::Handler;
use crate::lanes::next_batch;
use crate::metrics::Metrics;
use crate::sweep::Sweeper;
use crate::topology::{self, Names};

type Work = (Delivery, Result<Envelope, Poison>);

#[derive(Debug)]
pub struct Consumer {
    url: SecretString,
    settings: Arc<ConsumerSettings>,
    names: Names,
    /// How long in-flight messages get to finish after SIGTERM.
    grace: Duration,
    db: Db,
    applier: Applier,
    metrics: Metrics,
    /// Read by readiness: connected and consuming.
    pub consuming: Arc<AtomicBool>,
}

impl Consumer {
    pub fn new(settings: &Settings, db: Db, applier: Applier, metrics: Metrics) -> Self {
        Self {
            url: settings.amqp.url.clone(),
            settings: Arc::new(settings.consumer.clone()),
            names: Names::new(&settings.consumer.queue),
            grace: settings.http.shutdown_grace(),
            db,
            applier,
            metrics,
            consuming: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Consumes until `stop`, reconnecting as often as needed.
    pub async fn run(self, stop: CancellationToken) {
        let mut backoff = Backoff::new(
            Duration::from_millis(self.settings.reconnect_initial_ms),
            Duration::from_millis(self.settings.reconnect_max_ms),
        );
        while !stop.is_cancelled() {
            let result = self.session(&stop, &mut backoff).await;
            self.set_consuming(false);
            match result {
                Ok(()) => break,
                Err(err) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "broker connection lost or refused; reconnecting");
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        tracing::info!("consumer stopped");
    }

    fn set_consuming(&self, up: bool) {
        self.consuming.store(up, Ordering::Relaxed);
        self.metrics.connected(up);
    }

    /// One connection's life. `Ok` when stopped by `stop`, after in-flight messages finished.
    async fn session(&self, stop: &CancellationToken, backoff: &mut Backoff) -> anyhow::Result<()> {
        let properties = ConnectionProperties::default()
            .with_connection_name(format!("queue-consumer {}", std::process::id()).into());
        let connection = Connection::connect(self.url.expose_secret(), properties).await?;
        let consuming = connection.create_channel().await?;
        let publishing = connection.create_channel().await?;
        publishing
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        topology::declare(&publishing, &self.names, self.settings.delivery_limit).await?;
        consuming
            .basic_qos(self.settings.prefetch, BasicQosOptions::default())
            .await?;
        let tag = format!("queue-consumer-{}", uuid_like());
        let mut deliveries = consuming
            .basic_consume(
                self.names.queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        self.set_consuming(true);
        backoff.reset();
        tracing::info!(queue = %self.names.queue, prefetch = self.settings.prefetch, concurrency = self.settings.concurrency, "consuming");

        let session_stop = stop.child_token();
        let (acks, settling) = Acks::start(consuming.clone());
        let forwarder = Forwarder::new(publishing.clone(), self.names.clone());
        let handler = Arc::new(Handler {
            applier: self.applier.clone(),
            acks: acks.clone(),
            forwarder: forwarder.clone(),
            metrics: self.metrics.clone(),
            settings: self.settings.clone(),
            stop: session_stop.clone(),
        });
        let (lanes, mut workers) = self.start_workers(&handler);
        let sweeper = Sweeper {
            db: self.db.clone(),
            forwarder,
            channel: publishing.clone(),
            names: self.names.clone(),
            settings: self.settings.clone(),
            metrics: self.metrics.clone(),
        };
        let sweeping = tokio::spawn(sweeper.run(session_stop.clone()));

        let ended = loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => break Ok(()),
                next = deliveries.next() => match next {
                    Some(Ok(delivery)) => dispatch(&lanes, &acks, &self.metrics, delivery).await,
                    Some(Err(err)) => break Err(anyhow::Error::from(err)),
                    None => break Err(anyhow::anyhow!("the broker cancelled the consumer")),
                },
            }
        };
        self.set_consuming(false);
        if ended.is_ok() {
            // Stopping: no new deliveries; those already here are finished and acknowledged.
            if let Err(err) = consuming
                .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                .await
            {
                tracing::warn!(error = %err, "cancelling the consumer failed");
            }
            let drain = async {
                while let Some(Ok(delivery)) = deliveries.next().await {
                    dispatch(&lanes, &acks, &self.metrics, delivery).await;
                }
            };
            let _ = tokio::time::timeout(self.grace, drain).await;
        }
        drop(lanes);
        let finished = tokio::time::timeout(self.grace, async {
            while workers.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            tracing::warn!("in-flight messages did not finish in time; the broker redelivers them");
            session_stop.cancel();
            workers.shutdown().await;
        }
        session_stop.cancel();
        // With every handle gone, the settling task acknowledges what is finished and ends.
        drop((handler, acks));
        if tokio::time::timeout(self.grace, settling).await.is_err() {
            tracing::warn!(
                "acknowledging finished messages did not end in time; the broker redelivers them"
            );
        }
        let _ = sweeping.await;
        let _ = connection.close(200, "bye".into()).await;
        ended
    }

    /// One worker per `consumer.concurrency`, each applying its lane's messages in order.
    fn start_workers(&self, handler: &Arc<Handler>) -> (Vec<mpsc::Sender<Work>>, JoinSet<()>) {
        let mut lanes = Vec::new();
        let mut workers = JoinSet::new();
        let depth = usize::from(self.settings.prefetch).max(1);
        let linger = Duration::from_millis(self.settings.batch_linger_ms);
        for _ in 0..self.settings.concurrency {
            let (tx, mut rx) = mpsc::channel::<Work>(depth);
            let handler = handler.clone();
            workers.spawn(async move {
                while let Some(batch) = next_batch(&mut rx, linger).await {
                    handler.handle_many(batch).await;
                }
            });
            lanes.push(tx);
        }
        (lanes, workers)
    }
}

/// Validates the delivery and queues it on its tenant's lane. A tenant's transactions are
/// serialised anyway (each appends to the tenant's event sequence, whose counter row it holds
/// until commit), so one lane per tenant costs no parallelism; it keeps every tenant's
/// notifications in arrival order and lets a busy tenant's backlog be applied in batches.
async fn dispatch(
    lanes: &[mpsc::Sender<Work>],
    acks: &Acks,
    metrics: &Metrics,
    delivery: Delivery,
) {
    metrics.consumed();
    acks.delivered(delivery.delivery_tag);
    let parsed = notifications::parse(&delivery.data);
    let mut hasher = DefaultHasher::new();
    match &parsed {
        Ok(envelope) => envelope.tenant_id.hash(&mut hasher),
        Err(_) => delivery.delivery_tag.hash(&mut hasher),
    }
    let lane = (hasher.finish() % lanes.len() as u64) as usize;
    // A worker only ends when its lane is closed, which happens after dispatching stops.
    let _ = lanes[lane].send((delivery, parsed)).await;
}

fn uuid_like() -> String {
    format!("{:016x}", rand::random::<u64>())
}
