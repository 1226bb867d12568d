//! `queue-consumer`: applies the `agent.notifications` RabbitMQ queue to Postgres and publishes
//! the resulting events for the realtime service.
//!
//! [`consumer`] holds the broker connection, [`handler`] the fate of one message, [`lanes`] how a lane takes its next batch, [`acks`] the
//! batched acknowledgements, [`forward`] the dead-letter and wait publishing, [`topology`] the
//! declared queues, [`sweep`] the periodic housekeeping. The rules themselves are the shared services', through
//! [`portal_shared::notifications::Applier`].

pub mod acks;
pub mod consumer;
pub mod forward;
pub mod handler;
pub mod lanes;
pub mod metrics;
pub mod probes;
pub mod sweep;
pub mod topology;

use std::future::Future;
use std::sync::Arc;

use poem::listener::{Acceptor, TcpAcceptor};
use poem::{EndpointExt, Route, Server, get};
use portal_shared::config::Settings;
use portal_shared::events;
use portal_shared::integrations::client::ClientMetrics;
use portal_shared::integrations::state_manager::{HttpStateManager, StateManager};
use portal_shared::notifications::Applier;
use portal_shared::tenancy::Db;
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::consumer::Consumer;
use crate::metrics::Metrics;

pub const DEFAULT_PORT: u16 = 8082;

/// Consumes until `shutdown` completes, then stops taking messages, finishes and acknowledges
/// the ones in flight (for at most `http.shutdown_grace_secs`), and returns.
pub async fn run(
    settings: Settings,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let db = Db::connect(&settings.database).await?;
    let stop_events = CancellationToken::new();
    let redis = events::redis_connection(settings.redis.url.expose_secret())?;
    let (db, event_tasks) = events::start_publishing(db, redis, &settings, &stop_events);
    let clients = ClientMetrics::default();
    let metrics = Metrics::new(&clients);
    let state_manager = HttpStateManager::from_settings(&settings.state_manager, &clients)?
        .map(|c| Arc::new(c) as Arc<dyn StateManager>);

    let stop = CancellationToken::new();
    let applier = Applier::new(db.clone(), state_manager);
    let consumer = Consumer::new(&settings, db.clone(), applier, metrics.clone());
    let consuming = probes::Consuming(consumer.consuming.clone());
    let consumer = tokio::spawn(consumer.run(stop.clone()));

    let app = Route::new()
        .at("/healthz", get(probes::healthz))
        .at("/readyz", get(probes::readyz))
        .at("/metrics", get(probes::metrics))
        .data(db.clone())
        .data(consuming)
        .data(metrics);
    let acceptor = TcpAcceptor::from_tokio(listener)?;
    tracing::info!(addr = ?acceptor.local_addr(), "queue-consumer listening");
    let stopping = stop.clone();
    let served = Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(
            app,
            async move {
                shutdown.await;
                tracing::info!("stopping: finishing in-flight messages");
                stopping.cancel();
            },
            Some(settings.http.shutdown_grace()),
        )
        .await;
    stop.cancel();
    if let Err(err) = consumer.await {
        tracing::error!(error = %err, "the consumer task failed");
    }
    // Last, so the events of the final messages are still published.
    events::stop_publishing(&stop_events, event_tasks).await;
    served?;
    db.close().await;
    tracing::info!("queue-consumer stopped");
    Ok(())
}
