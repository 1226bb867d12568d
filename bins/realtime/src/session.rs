//! One browser connection: the handshake, catching up, conversation rooms and the token's life.
//!
//! The handshake `auth` payload is `{ token, last_seq? }`. The token is verified exactly as the
//! API verifies it; a refusal reaches the client as `connect_error` with the reason. Then the
//! socket catches up (see [`crate::fanout`]): with `last_seq`, the events after it are replayed
//! from Postgres, or `resync` is emitted when they are no longer kept or too many; without it,
//! the socket starts at the present. Only then does it join its rooms and go live.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use portal_shared::events::{self, Replay, Room};
use portal_shared::ids::ConversationId;
use portal_shared::tenancy::TenantCtx;
use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::extract::{AckSender, SocketRef, TryData};
use socketioxide::{SendError, SocketError};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::App;
use crate::fanout::{Attach, Outgoing, base_rooms};

/// Events read from Postgres per round trip while replaying.
const REPLAY_PAGE: u32 = 500;
/// How long a replay may wait for a socket whose send buffer is full.
const REPLAY_STALL: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize)]
pub struct Handshake {
    token: String,
    #[serde(default)]
    last_seq: Option<i64>,
}

/// Why a connection was refused: the message of the client's `connect_error`.
#[derive(Debug)]
pub struct Refusal(String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the service keeps about a connected socket (in its extensions).
#[derive(Debug)]
pub struct Session {
    pub ctx: TenantCtx,
    /// Where its stream starts: the client's `last_seq`, or the tenant's last event when the
    /// handshake was accepted.
    start: Start,
    /// The token's `exp` (seconds since the epoch); moved on by `auth:refresh`.
    expires_at: AtomicI64,
    /// True once caught up and in its rooms.
    live: watch::Sender<bool>,
    closed: CancellationToken,
    /// What the socket may emit (`realtime.emits_per_sec`, `emit_burst`).
    emits: EmitLimiter,
}

type EmitLimiter = governor::DefaultDirectRateLimiter;

impl Session {
    /// Counts one emit; `Err` with the refusal to answer when over the socket's rate.
    fn emitted(&self) -> Result<(), Value> {
        self.emits.check().map_err(|_| {
            refused(
                429,
                "too many emits: slow down (see realtime.emits_per_sec)",
            )
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Start {
    After(i64),
    Present(i64),
}

impl Session {
    /// The token's `exp` (seconds since the epoch).
    pub(crate) fn expires_at(&self) -> i64 {
        self.expires_at.load(Ordering::Relaxed)
    }

    /// True once the socket disconnected.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Until the socket is caught up and in its rooms; false if it went away first.
    async fn wait_live(&self) -> bool {
        let mut live = self.live.subscribe();
        tokio::select! {
            caught_up = live.wait_for(|live| *live) => caught_up.is_ok(),
            () = self.closed.cancelled() => false,
        }
    }
}

/// The connect middleware: refuses the connection unless the token is good.
pub async fn authenticate(
    app: Arc<App>,
    socket: SocketRef,
    handshake: TryData<Handshake>,
) -> Result<(), Refusal> {
    if !app.settings.enabled {
        return Err(Refusal("realtime is disabled".into()));
    }
    let TryData(handshake) = handshake;
    let handshake = handshake.map_err(|_| {
        Refusal(
            "invalid handshake: auth must be an object with a string `token` and an optional \
             integer `last_seq`"
                .into(),
        )
    })?;
    if handshake.last_seq.is_some_and(|seq| seq < 0) {
        return Err(Refusal(
            "invalid handshake: last_seq must be 0 or more".into(),
        ));
    }
    let (ctx, expires_at) = app
        .auth
        .authenticate_session(&handshake.token)
        .await
        .map_err(|e| Refusal(e.to_string()))?;
    let limit = app.settings.max_connections_per_agent;
    if app
        .presence
        .live_connections(&ctx)
        .await
        .is_some_and(|live| live >= limit)
    {
        return Err(Refusal(format!(
            "too many connections: this agent has {limit} open already (close a tab)"
        )));
    }
    // From here on the events of its rooms are kept for it, so that none committed after the
    // client learns it is connected can be missed.
    let tenant = ctx.tenant_id();
    app.fanout.register(tenant, socket.id, base_rooms(&ctx));
    let start = match handshake.last_seq {
        Some(seq) => Start::After(seq),
        None => match events::head(&app.db, tenant).await {
            Ok(head) => Start::Present(head),
            Err(err) => {
                app.fanout.detach(tenant, socket.id);
                return Err(Refusal(err.to_string()));
            }
        },
    };
    socket.extensions.insert(ctx.clone());
    socket.extensions.insert(Arc::new(Session {
        ctx,
        start,
        expires_at: AtomicI64::new(expires_at),
        live: watch::Sender::new(false),
        closed: CancellationToken::new(),
        emits: governor::RateLimiter::direct(
            governor::Quota::per_second(
                NonZeroU32::new(app.settings.emits_per_sec).unwrap_or(NonZeroU32::MIN),
            )
            .allow_burst(NonZeroU32::new(app.settings.emit_burst).unwrap_or(NonZeroU32::MIN)),
        ),
    }));
    Ok(())
}

/// The connect handler: wires the socket's events, catches it up and puts it in its rooms.
pub async fn connected(app: Arc<App>, socket: SocketRef) {
    let Some(session) = socket.extensions.get::<Arc<Session>>() else {
        let _ = socket.disconnect();
        return;
    };
    let tenant = session.ctx.tenant_id();
    let rooms = base_rooms(&session.ctx);
    app.metrics.connected();
    tracing::info!(sid = %socket.id, %tenant, agent = %session.ctx.agent_id(), transport = ?socket.transport_type(), "socket connected");

    let a = app.clone();
    socket.on(
        "conversation:join",
        move |s: SocketRef, TryData(body): TryData<Value>, ack: AckSender| {
            join_conversation(a.clone(), s, body.ok(), ack)
        },
    );
    socket.on(
        "conversation:leave",
        |s: SocketRef, TryData(body): TryData<Value>, ack: AckSender| async move {
            leave_conversation(s, body.ok(), ack)
        },
    );
    let a = app.clone();
    socket.on(
        "auth:refresh",
        move |s: SocketRef, TryData(body): TryData<Value>, ack: AckSender| {
            refresh_token(a.clone(), s, body.ok(), ack)
        },
    );
    let a = app.clone();
    socket.on_disconnect(move |s: SocketRef| disconnected(a.clone(), s));
    if !socket.connected() {
        // Gone before the disconnect handler was in place.
        disconnected(app, socket).await;
        return;
    }
    app.expiry.watch(socket.id, &session);

    match catch_up(&app, &socket, &session, &rooms).await {
        Ok(true) => {
            session.live.send_replace(true);
            app.presence
                .connected(&session.ctx, &socket.id.to_string())
                .await;
        }
        Ok(false) => {}
        Err(err) => {
            // Without its replay the socket would silently miss events; the client
            // reconnects and tries again.
            tracing::warn!(sid = %socket.id, error = %err, "could not catch the socket up: disconnecting it");
            let _ = socket.disconnect();
        }
    }
}

async fn disconnected(app: Arc<App>, socket: SocketRef) {
    let Some(session) = socket.extensions.get::<Arc<Session>>() else {
        return;
    };
    if session.closed.is_cancelled() {
        return;
    }
    session.closed.cancel();
    app.metrics.disconnected();
    app.fanout.detach(session.ctx.tenant_id(), socket.id);
    if *session.live.borrow() {
        app.presence
            .disconnected(&session.ctx, &socket.id.to_string())
            .await;
    }
    tracing::info!(sid = %socket.id, "socket disconnected");
}

/// Replays what the client missed, then attaches it to the live stream. False when the
/// socket went away meanwhile.
async fn catch_up(
    app: &App,
    socket: &SocketRef,
    session: &Session,
    rooms: &[String],
) -> anyhow::Result<bool> {
    let tenant = session.ctx.tenant_id();
    let mut cursor = match session.start {
        Start::Present(head) => head,
        Start::After(seq) => {
            let head = events::head(&app.db, tenant).await?;
            if seq > head {
                resync(app, socket, "last_seq is not from this history", head)?
            } else if head - seq > i64::from(app.settings.replay_max_events) {
                resync(app, socket, "too many events were missed", head)?
            } else {
                seq
            }
        }
    };
    loop {
        loop {
            match events::since(&app.db, tenant, cursor, REPLAY_PAGE).await? {
                Replay::Resync => {
                    let head = events::head(&app.db, tenant).await?;
                    cursor = resync(app, socket, "the missed events are no longer kept", head)?;
                    break;
                }
                Replay::Events { events, more } => {
                    let mut sent = 0;
                    for event in &events {
                        let out = Outgoing::new(event)?;
                        if out.reaches(rooms) {
                            emit_replayed(socket, &out).await?;
                            sent += 1;
                        }
                        cursor = event.seq;
                    }
                    app.metrics.delivered("replay", sent);
                    if !more {
                        break;
                    }
                }
            }
        }
        match app.fanout.attach(tenant, socket, cursor) {
            Attach::Attached => return Ok(true),
            Attach::ReplayAgain => continue,
            Attach::Gone => return Ok(false),
        }
    }
}

/// Tells the client to reload its state; it goes on live from `head`.
fn resync(app: &App, socket: &SocketRef, reason: &str, head: i64) -> anyhow::Result<i64> {
    app.metrics.resync();
    socket.emit("resync", &json!({ "reason": reason, "seq": head }))?;
    Ok(head)
}

/// Emits a replayed event, waiting while the socket's send buffer is full.
async fn emit_replayed(socket: &SocketRef, event: &Outgoing) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        match socket.emit(&event.name, &event.wire) {
            Ok(()) => return Ok(()),
            Err(SendError::Socket(SocketError::InternalChannelFull))
                if started.elapsed() < REPLAY_STALL =>
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// `{ "ok": false, "error": { status, detail } }`: the acknowledgement of a refused request,
/// shaped like the API's problem bodies.
fn refused(status: u16, detail: &str) -> Value {
    json!({ "ok": false, "error": { "status": status, "detail": detail } })
}

fn refused_for(err: &portal_shared::Error) -> Value {
    use portal_shared::Error;
    let status = match err {
        Error::NotFound { .. } => 404,
        Error::Validation(_) => 400,
        Error::Unauthorized(_) => 401,
        Error::Forbidden(_) => 403,
        Error::Unavailable(_) => 503,
        _ => 500,
    };
    refused(status, &err.to_string())
}

/// The conversation id of a join or leave: the id itself, or `{ "conversation_id": id }`.
fn conversation_id(body: Option<Value>) -> Result<ConversationId, Value> {
    let id = match &body {
        Some(Value::String(id)) => Some(id.as_str()),
        Some(Value::Object(map)) => map.get("conversation_id").and_then(Value::as_str),
        _ => None,
    };
    id.and_then(|id| Uuid::parse_str(id).ok())
        .map(ConversationId)
        .ok_or_else(|| {
            refused(
                400,
                "conversation_id: send the conversation id, or { \"conversation_id\": id }, as a UUID",
            )
        })
}

async fn join_conversation(app: Arc<App>, socket: SocketRef, body: Option<Value>, ack: AckSender) {
    let Some(session) = socket.extensions.get::<Arc<Session>>() else {
        return;
    };
    if let Err(refusal) = session.emitted() {
        let _ = ack.send(&refusal);
        return;
    }
    let id = match conversation_id(body) {
        Ok(id) => id,
        Err(refusal) => {
            let _ = ack.send(&refusal);
            return;
        }
    };
    // Joined only once caught up, so the conversation's events cannot overtake the replay.
    if !session.wait_live().await {
        return;
    }
    let room = Room::Conversation(id).to_string();
    let max = app.settings.max_joined_conversations;
    let joined = socket
        .rooms()
        .iter()
        .filter(|r| r.starts_with(Room::CONVERSATION_PREFIX) && **r != room)
        .count();
    if joined >= max {
        let _ = ack.send(&refused(
            429,
            &format!("at most {max} conversations may be open on one connection: leave one first"),
        ));
        return;
    }
    if let Err(err) = app.conversations.get(&session.ctx, id).await {
        let _ = ack.send(&refused_for(&err));
        return;
    }
    socket.join(room.clone());
    // Checked again after the join: a transfer that committed in between has evicted
    // nobody yet, since this socket was not in the room when its event went out.
    if let Err(err) = app.conversations.get(&session.ctx, id).await {
        socket.leave(room);
        let _ = ack.send(&refused_for(&err));
        return;
    }
    let _ = ack.send(&json!({ "ok": true, "conversation_id": id }));
}

fn leave_conversation(socket: SocketRef, body: Option<Value>, ack: AckSender) {
    if let Some(Err(refusal)) = socket
        .extensions
        .get::<Arc<Session>>()
        .map(|session| session.emitted())
    {
        let _ = ack.send(&refusal);
        return;
    }
    match conversation_id(body) {
        Ok(id) => {
            socket.leave(Room::Conversation(id).to_string());
            let _ = ack.send(&json!({ "ok": true, "conversation_id": id }));
        }
        Err(refusal) => {
            let _ = ack.send(&refusal);
        }
    }
}

/// `auth:refresh` with `{ token }`: a fresh token for the same agent keeps the connection
/// open past the old token's expiry.
async fn refresh_token(app: Arc<App>, socket: SocketRef, body: Option<Value>, ack: AckSender) {
    let Some(session) = socket.extensions.get::<Arc<Session>>() else {
        return;
    };
    if let Err(refusal) = session.emitted() {
        let _ = ack.send(&refusal);
        return;
    }
    let Some(token) = body
        .as_ref()
        .and_then(|b| b.get("token"))
        .and_then(Value::as_str)
    else {
        let _ = ack.send(&refused(400, "token: send { \"token\": \"<jwt>\" }"));
        return;
    };
    match app.auth.authenticate_session(token).await {
        Ok((ctx, expires_at))
            if ctx.tenant_id() == session.ctx.tenant_id()
                && ctx.agent_id() == session.ctx.agent_id() =>
        {
            session.expires_at.store(expires_at, Ordering::Relaxed);
            let _ = ack.send(&json!({ "ok": true, "expires_at": expires_at }));
        }
        Ok(_) => {
            let _ = ack.send(&refused(403, "the token is for another agent"));
        }
        Err(err) => {
            let _ = ack.send(&refused_for(&err));
        }
    }
}
