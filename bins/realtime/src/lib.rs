//! The Agent Portal realtime service as a library: [`run`] serves Socket.IO (v5, Engine.IO v4:
//! WebSocket, and HTTP long-polling with upgrade) and the probes on a listener the caller
//! bound, so `main` binds the configured port and tests bind port 0.
//!
//! Events reach it through Redis pub/sub ([`subscriber`]); [`fanout`] emits each to the
//! sockets whose rooms it concerns, exactly once and in order; [`session`] handles one
//! connection from handshake to disconnect.

pub mod compact;
pub mod expiry;
pub mod fanout;
pub mod metrics;
pub mod presence;
pub mod probes;
pub mod session;
pub mod subscriber;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::GracefulShutdown;
use portal_shared::auth::Authenticator;
use portal_shared::config::{RealtimeSettings, Settings};
use portal_shared::conversations::ConversationService;
use portal_shared::events;
use portal_shared::presence::Presence;
use portal_shared::tenancy::Db;
use secrecy::ExposeSecret;
use socketioxide::SocketIo;
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use tokio_util::sync::CancellationToken;

use crate::compact::CompactRequests;
use crate::expiry::Expiry;
use crate::fanout::Fanout;
use crate::metrics::Metrics;
use crate::presence::PresenceBoard;
use crate::probes::Probes;
use crate::session::Handshake;
use crate::subscriber::Subscriber;

pub const DEFAULT_PORT: u16 = 8081;

/// tungstenite's read buffer per WebSocket, allocated up front (engine.io's default is
/// 4 KiB). Browsers send small messages here (pongs, joins, a token refresh); a bigger one
/// still fits, the buffer grows for it.
const WS_READ_BUFFER: usize = 1024;

/// What every connection's handlers share.
#[derive(Debug)]
pub struct App {
    pub settings: RealtimeSettings,
    pub db: Db,
    pub auth: Authenticator,
    pub conversations: ConversationService,
    pub fanout: Fanout,
    pub presence: PresenceBoard,
    pub expiry: Expiry,
    pub metrics: Metrics,
}

/// The Redis channel presence changes travel on, beside the events channel.
pub fn presence_channel(events_channel: &str) -> String {
    format!("{events_channel}:presence")
}

/// Serves until `shutdown` completes; then disconnects every socket (clients reconnect to
/// another pod and catch up by replay) and drains other requests for at most the grace period.
pub async fn run(
    settings: Settings,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let db = Db::connect(&settings.database).await?;
    let redis_url = settings.redis.url.expose_secret();
    let redis = events::redis_connection(redis_url)?;
    let metrics = Metrics::default();
    let subscribed = Arc::new(AtomicBool::new(false));
    let realtime = settings.realtime.clone();

    let probes = Probes {
        enabled: realtime.enabled,
        db: db.clone(),
        subscribed: subscribed.clone(),
        metrics: metrics.clone(),
    };
    let (service, io) = SocketIo::builder()
        .ping_interval(Duration::from_millis(realtime.ping_interval_ms))
        .ping_timeout(Duration::from_millis(realtime.ping_timeout_ms))
        .max_buffer_size(realtime.max_buffered_packets)
        .max_payload(realtime.max_payload_bytes)
        .ws_read_buffer_size(WS_READ_BUFFER)
        .build_with_inner_svc(hyper::service::service_fn(move |req| {
            probes.clone().handle(req)
        }));
    let service = CompactRequests(service);

    let fanout = Fanout::new(io.clone(), metrics.clone(), realtime.max_buffered_packets);
    let presence_channel = presence_channel(&settings.events.channel);
    let presence = PresenceBoard::new(
        Presence::new(
            redis.clone(),
            Duration::from_secs(settings.presence.ttl_secs),
        ),
        redis,
        presence_channel.clone(),
    );
    let app = Arc::new(App {
        settings: realtime.clone(),
        db: db.clone(),
        auth: Authenticator::new(&settings.auth, db.clone())?,
        // Realtime only reads conversations: nothing of it is propagated.
        conversations: ConversationService::new(db.clone(), Default::default()),
        fanout: fanout.clone(),
        presence: presence.clone(),
        expiry: Expiry::default(),
        metrics: metrics.clone(),
    });
    let (on_connect, on_handshake) = (app.clone(), app.clone());
    io.ns(
        "/",
        (move |s: SocketRef| session::connected(on_connect.clone(), s)).with(
            move |s: SocketRef, h: TryData<Handshake>| {
                session::authenticate(on_handshake.clone(), s, h)
            },
        ),
    );

    let stop = CancellationToken::new();
    let mut tasks = vec![tokio::spawn(
        app.expiry.clone().run(io.clone(), stop.clone()),
    )];
    if realtime.enabled {
        let subscriber = Subscriber {
            client: redis::Client::open(redis_url)?,
            events_channel: settings.events.channel.clone(),
            presence_channel,
            fanout,
            io: io.clone(),
            db: db.clone(),
            metrics,
            gap_wait: Duration::from_millis(realtime.gap_wait_ms),
            up: subscribed,
        };
        tasks.push(tokio::spawn(subscriber.run(stop.clone())));
        // Three refreshes per TTL: a connection survives two lost refreshes.
        let every = Duration::from_secs(settings.presence.ttl_secs).div_f64(3.0);
        tasks.push(tokio::spawn(presence.refresh_loop(
            io.clone(),
            every,
            stop.clone(),
        )));
    } else {
        tracing::warn!("realtime.enabled is false: every connection is refused");
    }

    tracing::info!(addr = ?listener.local_addr()?, enabled = realtime.enabled, "realtime listening");
    let graceful = GracefulShutdown::new();
    // HTTP/1.1 only: Socket.IO's long-polling and WebSocket upgrade need nothing more.
    let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).http1_only();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        // Out of file descriptors, say: wait instead of spinning.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let conn = http
                    .serve_connection_with_upgrades(TokioIo::new(stream), service.clone());
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    if let Err(err) = conn.await {
                        tracing::debug!(error = %err, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    tracing::info!("shutting down: disconnecting sockets");
    // The subscriber and the presence loop emit through `io`: stop them before closing it.
    stop.cancel();
    for task in tasks {
        if let Err(err) = task.await {
            tracing::error!(error = %err, "a realtime task failed");
        }
    }
    io.close().await;
    if tokio::time::timeout(settings.http.shutdown_grace(), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the grace period");
    }
    db.close().await;
    tracing::info!("realtime stopped");
    Ok(())
}
