//! The Redis side: every event the consumer publishes on the channel, sorted out.
//!
//! `conversation:new` of this run's conversations count the warm-up; `message:new` of this
//! run's messages are counted by index (so missing and duplicated ones are known) and timed
//! from the publish stamp in their text to their arrival here.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::Deserialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::publish::{Naming, unix_ns};

/// Latencies are recorded in microseconds up to ten minutes (a backlog at rate 0 takes long
/// to drain), to 3 significant figures.
pub const MAX_LATENCY_US: u64 = 600_000_000;

/// What the driver polls while waiting.
#[derive(Debug, Default)]
pub struct Progress {
    /// Distinct conversations of this run announced by `conversation:new`.
    pub conversations: AtomicU64,
    /// Distinct messages of this run announced by `message:new`.
    pub messages: AtomicU64,
}

/// Everything the subscriber saw, handed over when it stops.
#[derive(Debug)]
pub struct Recording {
    pub latency_us: Histogram<u64>,
    /// `counts[i]`: how often message `i` arrived.
    pub counts: Vec<u8>,
    pub received: u64,
    pub duplicates: u64,
    /// Events of our tenants that are not ours or could not be read (a malformed stamp).
    pub stray: u64,
    /// Arrivals of our messages per second of the Unix clock, from `first_second`.
    pub first_second: u64,
    pub per_second: Vec<u64>,
    pub last_receipt_unix_ns: u128,
}

#[derive(Debug)]
pub struct Subscription {
    pub progress: Arc<Progress>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<Recording>>,
}

impl Subscription {
    /// Subscribes (the subscription is in place when this returns) and starts recording.
    pub async fn start(
        redis_url: &str,
        channel: &str,
        naming: Naming,
        tenants: HashSet<Uuid>,
        messages: u64,
    ) -> anyhow::Result<Self> {
        let client = redis::Client::open(redis_url).context("the Redis URL")?;
        let mut pubsub = client
            .get_async_pubsub()
            .await
            .context("connecting to Redis")?;
        pubsub
            .subscribe(channel)
            .await
            .with_context(|| format!("subscribing to {channel}"))?;
        let progress = Arc::new(Progress::default());
        let (stop, stopped) = oneshot::channel();
        let recording = Recording {
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?,
            counts: vec![0; usize::try_from(messages)?],
            received: 0,
            duplicates: 0,
            stray: 0,
            first_second: u64::try_from(unix_ns() / 1_000_000_000)?,
            per_second: Vec::new(),
            last_receipt_unix_ns: 0,
        };
        let mut state = State {
            naming,
            tenants,
            conversations: HashSet::new(),
            progress: progress.clone(),
            recording,
        };
        let task = tokio::spawn(async move {
            let mut stream = pubsub.into_on_message();
            let mut stopped = stopped;
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    next = stream.next() => match next {
                        Some(message) => state.event(message.get_payload_bytes()),
                        None => anyhow::bail!("the Redis subscription ended (connection lost?)"),
                    },
                }
            }
            Ok(state.recording)
        });
        Ok(Self {
            progress,
            stop,
            task,
        })
    }

    pub async fn finish(self) -> anyhow::Result<Recording> {
        let _ = self.stop.send(());
        self.task.await.context("the subscriber task")?
    }
}

struct State {
    naming: Naming,
    tenants: HashSet<Uuid>,
    conversations: HashSet<String>,
    progress: Arc<Progress>,
    recording: Recording,
}

/// The part of a published event (`portal_shared::events::Event`) looked at; borrowed, as
/// the subscriber shares the machine with what it measures.
#[derive(Deserialize)]
struct Published<'a> {
    tenant_id: Uuid,
    #[serde(rename = "type", borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    payload: Payload<'a>,
}

#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(borrow)]
    message: Option<MessagePart<'a>>,
    #[serde(borrow)]
    conversation: Option<ConversationPart<'a>>,
}

#[derive(Deserialize)]
struct MessagePart<'a> {
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    external_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ConversationPart<'a> {
    #[serde(borrow)]
    state_manager_id: Option<Cow<'a, str>>,
}

impl State {
    fn event(&mut self, bytes: &[u8]) {
        let now = unix_ns();
        // Other publishers may share the channel: what is not an event of ours is ignored.
        let Ok(event) = serde_json::from_slice::<Published<'_>>(bytes) else {
            return;
        };
        if !self.tenants.contains(&event.tenant_id) {
            return;
        }
        match event.event_type.as_ref() {
            "conversation:new" => {
                if let Some(id) = event
                    .payload
                    .conversation
                    .and_then(|c| c.state_manager_id)
                    .filter(|id| self.naming.is_ours(id))
                    && self.conversations.insert(id.into_owned())
                {
                    self.progress.conversations.fetch_add(1, Ordering::Relaxed);
                }
            }
            "message:new" => self.message(event.payload.message, now),
            _ => {}
        }
    }

    fn message(&mut self, message: Option<MessagePart<'_>>, now: u128) {
        let recording = &mut self.recording;
        let Some(message) = message else {
            recording.stray += 1;
            return;
        };
        let index = message
            .external_id
            .as_deref()
            .and_then(|id| self.naming.message_index(id))
            .and_then(|i| usize::try_from(i).ok())
            .filter(|i| *i < recording.counts.len());
        let sent = message
            .text
            .as_deref()
            .and_then(|t| t.strip_prefix("load "))
            .and_then(|t| t.parse::<u128>().ok());
        let (Some(index), Some(sent)) = (index, sent) else {
            recording.stray += 1;
            return;
        };
        recording.counts[index] = recording.counts[index].saturating_add(1);
        if recording.counts[index] > 1 {
            // A republished event (the relay's, after a slow mark): delivered, but not twice.
            recording.duplicates += 1;
            return;
        }
        recording.received += 1;
        self.progress.messages.fetch_add(1, Ordering::Relaxed);
        recording.last_receipt_unix_ns = recording.last_receipt_unix_ns.max(now);
        let latency_us = u64::try_from(now.saturating_sub(sent) / 1000).unwrap_or(u64::MAX);
        recording
            .latency_us
            .saturating_record(latency_us.clamp(1, MAX_LATENCY_US));
        let second = u64::try_from(now / 1_000_000_000).unwrap_or(u64::MAX);
        if let Some(slot) = second
            .checked_sub(recording.first_second)
            .and_then(|s| usize::try_from(s).ok())
        {
            if slot >= recording.per_second.len() {
                recording.per_second.resize(slot + 1, 0);
            }
            recording.per_second[slot] += 1;
        }
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("run", &self.naming.run)
            .field("conversations", &self.conversations.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn state(messages: usize) -> (State, Uuid) {
        let tenant = Uuid::new_v4();
        let state = State {
            naming: Naming::new(),
            tenants: HashSet::from([tenant]),
            conversations: HashSet::new(),
            progress: Arc::new(Progress::default()),
            recording: Recording {
                latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).unwrap(),
                counts: vec![0; messages],
                received: 0,
                duplicates: 0,
                stray: 0,
                first_second: u64::try_from(unix_ns() / 1_000_000_000).unwrap(),
                per_second: Vec::new(),
                last_receipt_unix_ns: 0,
            },
        };
        (state, tenant)
    }

    /// The events as `portal_shared::events::Event` serialises them.
    fn event(tenant: Uuid, kind: &str, payload: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&portal_shared::events::Event {
            tenant_id: portal_shared::ids::TenantId(tenant),
            seq: 1,
            event_type: kind.into(),
            payload,
            created_at: chrono::Utc::now(),
            traceparent: None,
        })
        .unwrap()
    }

    #[test]
    fn counts_our_conversations_and_times_our_messages_once() {
        let (mut state, tenant) = state(3);
        let sm = state.naming.state_manager_id(0);
        let created = event(
            tenant,
            "conversation:new",
            json!({"conversation": {"state_manager_id": sm}}),
        );
        state.event(&created);
        state.event(&created);
        state.event(&event(
            Uuid::new_v4(),
            "conversation:new",
            json!({"conversation": {"state_manager_id": sm}}),
        ));
        assert_eq!(state.progress.conversations.load(Ordering::Relaxed), 1);

        let sent = unix_ns() - 2_000_000;
        let message = event(
            tenant,
            "message:new",
            json!({"message": {"text": format!("load {sent}"), "external_id": state.naming.whatsapp_message_id(1)},
                   "conversation": {"state_manager_id": sm}}),
        );
        state.event(&message);
        state.event(&message);
        state.event(&event(
            tenant,
            "message:new",
            json!({"message": {"text": "hello", "external_id": state.naming.whatsapp_message_id(2)}}),
        ));
        let r = &state.recording;
        assert_eq!((r.received, r.duplicates, r.stray), (1, 1, 1));
        assert_eq!(r.counts, vec![0, 2, 0]);
        assert!(r.latency_us.max() >= 2000, "{}", r.latency_us.max());
    }
}
