//! Token expiry for every socket of the process on one task, instead of one sleeping task per
//! socket: a queue of deadlines (the token's `exp`, in seconds since the epoch) and a task
//! that wakes at the earliest. At a deadline a socket whose token was not moved on by
//! `auth:refresh` is told `auth:expired` and disconnected; one that was refreshed is queued
//! again for its new expiry, exactly as the per-socket timer did.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use serde_json::json;
use socketioxide::SocketIo;
use socketioxide::socket::Sid;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::session::Session;

#[derive(Debug, Clone, Default)]
pub struct Expiry {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    queue: Mutex<Queue>,
    /// Woken when a deadline earlier than every queued one arrives.
    earlier: Notify,
}

#[derive(Debug, Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Entry>>,
    /// Sockets that went away leave their entries until their deadline; when the queue
    /// reaches this length they are dropped (and it doubles, so this stays amortised O(1)).
    prune_at: usize,
}

/// The smallest queue worth pruning.
const PRUNE_MIN: usize = 1024;

#[derive(Debug)]
struct Entry {
    at: i64,
    sid: Sid,
    /// Weak: a socket that went away is not kept alive until its token's deadline.
    session: Weak<Session>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Expiry {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.inner
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ends the socket's connection when its session's token expires.
    pub fn watch(&self, sid: Sid, session: &Arc<Session>) {
        self.push(Entry {
            at: session.expires_at(),
            sid,
            session: Arc::downgrade(session),
        });
    }

    fn push(&self, entry: Entry) {
        let mut queue = self.queue();
        let earliest = queue
            .heap
            .peek()
            .is_none_or(|Reverse(first)| entry.at < first.at);
        queue.heap.push(Reverse(entry));
        if queue.heap.len() >= queue.prune_at.max(PRUNE_MIN) {
            queue.heap.retain(|Reverse(e)| e.session.strong_count() > 0);
            queue.prune_at = queue.heap.len() * 2;
        }
        drop(queue);
        if earliest {
            self.inner.earlier.notify_one();
        }
    }

    /// Disconnects sockets as their tokens expire, until `stop`.
    pub async fn run(self, io: SocketIo, stop: CancellationToken) {
        loop {
            let now = now();
            let mut due = Vec::new();
            {
                let mut queue = self.queue();
                while queue
                    .heap
                    .peek()
                    .is_some_and(|Reverse(first)| first.at <= now)
                {
                    if let Some(Reverse(entry)) = queue.heap.pop() {
                        due.push(entry);
                    }
                }
            }
            for entry in due {
                self.expire(&io, entry, now);
            }
            // After `expire`, which queues refreshed sockets again.
            let next = self.queue().heap.peek().map(|Reverse(first)| first.at);
            let wait = match next {
                Some(at) => Duration::from_secs(u64::try_from(at - now).unwrap_or(0)),
                None => Duration::from_secs(3600),
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.inner.earlier.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn expire(&self, io: &SocketIo, entry: Entry, now: i64) {
        let Some(session) = entry.session.upgrade() else {
            return;
        };
        if session.is_closed() {
            return;
        }
        let expires_at = session.expires_at();
        if expires_at > now {
            // Refreshed meanwhile.
            self.push(Entry {
                at: expires_at,
                ..entry
            });
            return;
        }
        let Some(socket) = io.get_socket(entry.sid) else {
            return;
        };
        tracing::info!(sid = %socket.id, "token expired: disconnecting");
        let _ = socket.emit(
            "auth:expired",
            &json!({ "reason": "the token has expired" }),
        );
        let _ = socket.disconnect();
    }
}
