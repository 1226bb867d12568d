//! From the event stream to sockets: each event once per socket, in `seq` order.
//!
//! Redis pub/sub delivers a tenant's events nearly in order, but not exactly: API pods publish
//! independently, the relay re-publishes, and a subscription that broke misses some. So, per
//! tenant, the fan-out keeps the last `seq` it delivered, drops anything at or below it, holds
//! an event that arrives ahead of a missing one, and reports the gap ([`Fanout::gaps`]) so the
//! missing events are read from Postgres when they do not arrive within `gap_wait`.
//!
//! A socket that connects is first *pending*: it is in none of its rooms, and every event for
//! those rooms that the fan-out delivers meanwhile is buffered for it. The connect handler
//! replays what the client missed from Postgres; then [`Fanout::attach`], under the lock that
//! delivery takes, sends the buffered events newer than the replay and joins the rooms. Every
//! event is thus either in the replay, in the buffer or delivered live after the join: the
//! socket sees each once, in order.
//!
//! Only tenants with a socket here are tracked. The first socket of a tenant starts its
//! sequence at what its replay read, since every earlier event is in Postgres.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use portal_shared::conversations::service::may_see_parts;
use portal_shared::events::{Event, Room, Subject, rooms_for, subject_of};
use portal_shared::ids::TenantId;
use portal_shared::tenancy::TenantCtx;
use serde::Serialize;
use serde_json::value::RawValue;
use socketioxide::SocketIo;
use socketioxide::extract::SocketRef;
use socketioxide::socket::Sid;
use socketioxide::{SendError, SocketError};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::metrics::Metrics;

/// An event ready to emit: its audience worked out and its wire form serialised once.
#[derive(Debug)]
pub struct Outgoing {
    pub tenant: TenantId,
    pub seq: i64,
    pub name: String,
    pub rooms: Vec<String>,
    subject: Option<Subject>,
    /// The payload as the client receives it: the event's payload with its `seq`.
    pub wire: Box<RawValue>,
    created_at: DateTime<Utc>,
    /// The trace of the change, continued by the span that delivers it.
    traceparent: Option<String>,
}

#[derive(Serialize)]
struct Wire<'a> {
    seq: i64,
    #[serde(flatten)]
    payload: &'a serde_json::Value,
}

impl Outgoing {
    pub fn new(event: &Event) -> serde_json::Result<Self> {
        let wire = serde_json::value::to_raw_value(&Wire {
            seq: event.seq,
            payload: &event.payload,
        })?;
        Ok(Self {
            tenant: event.tenant_id,
            seq: event.seq,
            name: event.event_type.clone(),
            rooms: rooms_for(event).iter().map(Room::to_string).collect(),
            subject: subject_of(event),
            wire,
            created_at: event.created_at,
            traceparent: event.traceparent.clone(),
        })
    }

    /// Whether a socket in `rooms` is in its audience.
    pub fn reaches(&self, rooms: &[String]) -> bool {
        self.rooms.iter().any(|r| rooms.contains(r))
    }
}

/// The rooms a socket is put in when it connects (conversation rooms come later, on request):
/// supervisors and admins the tenant's room, agents the queue; everyone their own room.
pub fn base_rooms(ctx: &TenantCtx) -> Vec<String> {
    let tenant = ctx.tenant_id();
    let shared = if ctx.sees_whole_tenant() {
        Room::Tenant(tenant)
    } else {
        Room::Queue(tenant)
    };
    vec![shared.to_string(), Room::Agent(ctx.agent_id()).to_string()]
}

#[derive(Debug, Clone)]
pub struct Fanout {
    io: SocketIo,
    metrics: Metrics,
    /// Events buffered per pending socket at most; past it the buffer restarts and the socket
    /// replays further from Postgres instead (see [`Attach::ReplayAgain`]).
    max_buffered: usize,
    state: Arc<Mutex<HashMap<TenantId, Tenant>>>,
}

#[derive(Debug, Default)]
struct Tenant {
    /// The last `seq` delivered; `None` until the first socket's replay sets it.
    last: Option<i64>,
    /// Events that arrived ahead of a missing one, and since when the oldest gap is open.
    held: BTreeMap<i64, Arc<Outgoing>>,
    held_since: Option<Instant>,
    pending: HashMap<Sid, Pending>,
    attached: HashSet<Sid>,
    /// Sockets whose replay read events this tenant has not delivered yet: up to which `seq`
    /// live delivery must skip them. Usually empty.
    replayed_ahead: HashMap<Sid, i64>,
}

#[derive(Debug)]
struct Pending {
    registered: Instant,
    rooms: Vec<String>,
    /// The first `seq` its buffer holds if it is in the socket's audience.
    buffered_from: Option<i64>,
    buffer: Vec<Arc<Outgoing>>,
}

/// A pending socket not connected by then was abandoned during its handshake.
const ABANDONED_AFTER: Duration = Duration::from_secs(120);

/// What [`Fanout::attach`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Attach {
    Attached,
    /// Events after the replay were delivered before the socket's buffer started: replay
    /// again from where the last replay ended, then attach.
    ReplayAgain,
    /// The socket is no longer registered (it disconnected meanwhile).
    Gone,
}

/// How an emit to one socket went.
enum Sent {
    Yes,
    No,
}

impl Fanout {
    pub fn new(io: SocketIo, metrics: Metrics, max_buffered: usize) -> Self {
        Self {
            io,
            metrics,
            max_buffered,
            state: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<TenantId, Tenant>> {
        // A panic while holding the lock leaves consistent data (every step is a plain
        // assignment); keep serving rather than poisoning every later connection.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts buffering the events of `rooms` for a socket that is about to replay.
    pub fn register(&self, tenant: TenantId, sid: Sid, rooms: Vec<String>) {
        let mut state = self.lock();
        let entry = state.entry(tenant).or_default();
        let buffered_from = entry.last.map(|last| last + 1);
        entry.pending.insert(
            sid,
            Pending {
                registered: Instant::now(),
                rooms,
                buffered_from,
                buffer: Vec::new(),
            },
        );
    }

    /// Sends the socket what was buffered after `replayed_to` (the last `seq` its replay
    /// covered) and joins its rooms.
    pub fn attach(&self, tenant: TenantId, socket: &SocketRef, replayed_to: i64) -> Attach {
        let mut state = self.lock();
        let Some(entry) = state.get_mut(&tenant) else {
            return Attach::Gone;
        };
        if entry.last.is_none() {
            entry.last = Some(replayed_to);
            for pending in entry.pending.values_mut() {
                pending.buffered_from = Some(replayed_to + 1);
            }
            self.release(entry);
        }
        let Some(pending) = entry.pending.get(&socket.id) else {
            return Attach::Gone;
        };
        if pending
            .buffered_from
            .is_some_and(|from| from > replayed_to + 1)
        {
            return Attach::ReplayAgain;
        }
        let Some(pending) = entry.pending.remove(&socket.id) else {
            return Attach::Gone;
        };
        let mut sent = 0;
        for event in pending.buffer.iter().filter(|e| e.seq > replayed_to) {
            if let Sent::Yes = self.emit(socket, event) {
                sent += 1;
            }
        }
        self.metrics.delivered("live", sent);
        socket.join(pending.rooms);
        entry.attached.insert(socket.id);
        if entry.last.is_some_and(|last| last < replayed_to) {
            entry.replayed_ahead.insert(socket.id, replayed_to);
        }
        Attach::Attached
    }

    /// Forgets a socket that disconnected, and its tenant once no socket of it is left here.
    pub fn detach(&self, tenant: TenantId, sid: Sid) {
        let mut state = self.lock();
        let Some(entry) = state.get_mut(&tenant) else {
            return;
        };
        entry.pending.remove(&sid);
        entry.attached.remove(&sid);
        entry.replayed_ahead.remove(&sid);
        if entry.attached.is_empty() && entry.pending.is_empty() {
            state.remove(&tenant);
        }
    }

    /// Takes an event from the stream: delivers it, and any it was holding back, in order.
    pub fn offer(&self, event: Outgoing) {
        let mut state = self.lock();
        let Some(entry) = state.get_mut(&event.tenant) else {
            // Nobody of this tenant is connected here.
            return;
        };
        if entry.last.is_some_and(|last| event.seq <= last) || entry.held.contains_key(&event.seq) {
            self.metrics.event("duplicate");
            return;
        }
        entry.held.insert(event.seq, Arc::new(event));
        self.release(entry);
    }

    /// Delivers the held events that are next in sequence.
    fn release(&self, entry: &mut Tenant) {
        let Some(mut last) = entry.last else {
            return;
        };
        while let Some(first) = entry.held.first_entry() {
            if *first.key() <= last {
                first.remove();
                self.metrics.event("duplicate");
            } else if *first.key() == last + 1 {
                let event = first.remove();
                last = event.seq;
                self.deliver(entry, &event);
            } else {
                break;
            }
        }
        entry.last = Some(last);
        entry.held_since = match (entry.held.is_empty(), entry.held_since) {
            (true, _) => None,
            (false, Some(since)) => Some(since),
            (false, None) => Some(Instant::now()),
        };
    }

    fn deliver(&self, entry: &mut Tenant, event: &Arc<Outgoing>) {
        // A span only for a traced change: it is that trace's last hop, to the browsers.
        let span = event.traceparent.as_deref().map(|traceparent| {
            let span = tracing::info_span!(
                "deliver",
                otel.name = %format_args!("{} deliver", event.name),
                otel.kind = "consumer",
                messaging.system = "socket.io",
                messaging.operation.type = "process",
                messaging.destination.name = %event.name,
                tenant_id = %event.tenant,
                seq = event.seq,
                sockets = tracing::field::Empty,
            );
            let _ = span.set_parent(portal_shared::telemetry::context_of(traceparent));
            span
        });
        let _entered = span.as_ref().map(tracing::Span::enter);
        self.metrics.event("delivered");
        for pending in entry.pending.values_mut() {
            if pending.buffered_from.is_some() && event.reaches(&pending.rooms) {
                if pending.buffer.len() >= self.max_buffered {
                    // Its replay is taking long while events pour in: it will read these
                    // from Postgres instead of holding them here.
                    pending.buffer.clear();
                    pending.buffered_from = Some(event.seq);
                }
                pending.buffer.push(event.clone());
            }
        }
        let mut sent = 0;
        for socket in self.io.to(event.rooms.clone()).sockets() {
            let replayed = entry
                .replayed_ahead
                .get(&socket.id)
                .is_some_and(|upto| event.seq <= *upto);
            if !replayed && let Sent::Yes = self.emit(&socket, event) {
                sent += 1;
            }
        }
        self.metrics.delivered("live", sent);
        if let Some(span) = &span {
            span.record("sockets", sent);
        }
        if !entry.replayed_ahead.is_empty() {
            entry.replayed_ahead.retain(|_, upto| *upto > event.seq);
        }
        if sent > 0 {
            let lag = Utc::now() - event.created_at;
            self.metrics.lag(lag.to_std().unwrap_or_default());
        }
        if event.name == "conversation:updated"
            && let Some(subject) = event.subject
        {
            self.evict_from_conversation(subject);
        }
    }

    /// Takes the conversation's room away from agents who may no longer see it (it was
    /// transferred or taken by someone else); they heard of the change in their own room.
    fn evict_from_conversation(&self, subject: Subject) {
        let room = Room::Conversation(subject.id).to_string();
        for socket in self.io.to(room.clone()).sockets() {
            let allowed = socket
                .extensions
                .get::<TenantCtx>()
                .is_some_and(|ctx| may_see_parts(&ctx, subject.assignee, subject.state));
            if !allowed {
                socket.leave(room.clone());
            }
        }
    }

    /// Emits to one socket; one that cannot keep up is disconnected, to catch up by replay
    /// when it reconnects, rather than letting its backlog grow without bound.
    fn emit(&self, socket: &SocketRef, event: &Outgoing) -> Sent {
        match socket.emit(&event.name, &event.wire) {
            Ok(()) => Sent::Yes,
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                tracing::warn!(sid = %socket.id, "socket too slow: disconnecting it");
                self.metrics.slow_disconnect();
                let _ = socket.clone().disconnect();
                Sent::No
            }
            Err(err) => {
                tracing::debug!(sid = %socket.id, error = %err, "emit failed");
                Sent::No
            }
        }
    }

    /// Gaps open longer than `wait`: per tenant, the last `seq` delivered and the first held.
    /// Also forgets sockets registered long ago that never connected (the client left during
    /// the handshake).
    pub fn gaps(&self, wait: Duration) -> Vec<(TenantId, i64, i64)> {
        let mut state = self.lock();
        for entry in state.values_mut() {
            entry.pending.retain(|sid, p| {
                p.registered.elapsed() < ABANDONED_AFTER || self.io.get_socket(*sid).is_some()
            });
        }
        state.retain(|_, t| !t.pending.is_empty() || !t.attached.is_empty());
        state
            .iter()
            .filter(|(_, t)| t.held_since.is_some_and(|since| since.elapsed() >= wait))
            .filter_map(|(id, t)| Some((*id, t.last?, *t.held.keys().next()?)))
            .collect()
    }

    /// Gives up on the events before `seq` (Postgres no longer has them) and goes on from it.
    pub fn skip_to(&self, tenant: TenantId, seq: i64) {
        let mut state = self.lock();
        if let Some(entry) = state.get_mut(&tenant)
            && entry.last.is_some_and(|last| last < seq - 1)
        {
            tracing::error!(%tenant, from = ?entry.last, to = seq - 1, "events lost to retention: skipped");
            self.metrics.event("gap_skipped");
            entry.last = Some(seq - 1);
            self.release(entry);
        }
    }

    /// Per tracked tenant, the last `seq` delivered: where to catch up from after the Redis
    /// subscription was down.
    pub fn heads(&self) -> Vec<(TenantId, i64)> {
        let state = self.lock();
        state
            .iter()
            .filter_map(|(id, t)| Some((*id, t.last?)))
            .collect()
    }
}
