//! A Socket.IO client for tests: what the server sent, in order, through a channel.

use std::time::Duration;

use futures::FutureExt;
use rust_socketio::asynchronous::{Client as SioClient, ClientBuilder};
use rust_socketio::{Event, Payload};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::contract;

#[derive(Debug)]
pub enum Incoming {
    Connected,
    Error(String),
    Closed,
    Event(String, Value),
}

/// Events in order, except `agent:presence`, which arrives whenever an agent comes or goes
/// and is kept apart so that tests of other events need not skip it.
pub struct Client {
    socket: SioClient,
    rx: mpsc::UnboundedReceiver<Incoming>,
    presence: mpsc::UnboundedReceiver<Value>,
}

fn first(payload: Payload) -> Value {
    match payload {
        Payload::Text(mut values) if !values.is_empty() => values.remove(0),
        other => panic!("unexpected payload {other:?}"),
    }
}

const WAIT: Duration = Duration::from_secs(10);

impl Client {
    /// Opens a connection with the handshake `auth` payload; does not wait for the answer.
    pub async fn open(base: &str, auth: Value) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let (presence_tx, presence) = mpsc::unbounded_channel();
        let (t1, t2, t3, t4) = (tx.clone(), tx.clone(), tx.clone(), tx);
        let socket = ClientBuilder::new(base)
            .auth(auth)
            .reconnect(false)
            .on(Event::Connect, move |_, _| {
                let _ = t1.send(Incoming::Connected);
                async {}.boxed()
            })
            .on(Event::Error, move |payload, _| {
                let text = match first(payload) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                let _ = t2.send(Incoming::Error(text));
                async {}.boxed()
            })
            .on(Event::Close, move |_, _| {
                let _ = t3.send(Incoming::Closed);
                async {}.boxed()
            })
            .on_any(move |event, payload, _| {
                let name = String::from(event);
                if name == "agent:presence" {
                    let _ = presence_tx.send(first(payload));
                } else {
                    let _ = t4.send(Incoming::Event(name, first(payload)));
                }
                async {}.boxed()
            })
            .connect()
            .await
            .unwrap();
        Self {
            socket,
            rx,
            presence,
        }
    }

    /// Connects with a token (and `last_seq`, when given) and waits until accepted.
    pub async fn connect(base: &str, token: &str, last_seq: Option<i64>) -> Self {
        let mut auth = json!({ "token": token });
        if let Some(seq) = last_seq {
            auth["last_seq"] = json!(seq);
        }
        let mut client = Self::open(base, auth).await;
        match client.recv().await {
            Incoming::Connected => client,
            other => panic!("connection not accepted: {other:?}"),
        }
    }

    /// Connects with `auth` and returns the message of the `connect_error` it must get.
    pub async fn refused(base: &str, auth: Value) -> String {
        match Self::open(base, auth).await.outcome().await {
            Err(message) => message,
            Ok(()) => panic!("expected a connect_error, the connection was accepted"),
        }
    }

    /// How the handshake of an [`Client::open`]ed connection ended: accepted, or refused with
    /// the `connect_error`'s message.
    pub async fn outcome(&mut self) -> Result<(), String> {
        match self.recv().await {
            Incoming::Connected => Ok(()),
            Incoming::Error(text) => {
                let json = text.split_once(": ").map(|(_, json)| json).unwrap_or(&text);
                let value: Value = serde_json::from_str(json).unwrap_or(Value::String(text));
                Err(value["message"].as_str().unwrap_or_default().to_string())
            }
            other => panic!("expected the handshake's outcome, got {other:?}"),
        }
    }

    async fn recv(&mut self) -> Incoming {
        let incoming = tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("nothing received within 10 s")
            .expect("the client is gone");
        if let Incoming::Event(name, payload) = &incoming {
            contract::check(name, payload);
        }
        incoming
    }

    /// The next event the server emitted.
    pub async fn next(&mut self) -> (String, Value) {
        loop {
            match self.recv().await {
                Incoming::Event(name, payload) => return (name, payload),
                Incoming::Connected => continue,
                other => panic!("expected an event, got {other:?}"),
            }
        }
    }

    /// The next `agent:presence` payload.
    pub async fn presence(&mut self) -> Value {
        let payload = tokio::time::timeout(WAIT, self.presence.recv())
            .await
            .expect("no agent:presence within 10 s")
            .unwrap();
        contract::check("agent:presence", &payload);
        payload
    }

    /// Asserts that no `agent:presence` arrives for `ms` milliseconds.
    pub async fn no_presence(&mut self, ms: u64) {
        if let Ok(Some(got)) =
            tokio::time::timeout(Duration::from_millis(ms), self.presence.recv()).await
        {
            panic!("expected no presence change, got {got}");
        }
    }

    /// The next `n` events' sequence numbers (every event must carry one).
    pub async fn seqs(&mut self, n: usize) -> Vec<i64> {
        let mut seqs = Vec::new();
        for _ in 0..n {
            let (name, payload) = self.next().await;
            seqs.push(
                payload["seq"]
                    .as_i64()
                    .unwrap_or_else(|| panic!("{name} without seq: {payload}")),
            );
        }
        seqs
    }

    /// Asserts that nothing arrives for `ms` milliseconds.
    pub async fn quiet(&mut self, ms: u64) {
        if let Ok(Some(got)) = tokio::time::timeout(Duration::from_millis(ms), self.rx.recv()).await
        {
            panic!("expected nothing, got {got:?}");
        }
    }

    /// Waits until the server closes the connection; returns the events sent before.
    pub async fn closed(&mut self) -> Vec<(String, Value)> {
        let mut events = Vec::new();
        loop {
            match self.recv().await {
                Incoming::Closed => return events,
                Incoming::Event(name, payload) => events.push((name, payload)),
                other => panic!("expected the close, got {other:?}"),
            }
        }
    }

    /// Emits `event` and returns the server's acknowledgement.
    pub async fn ack(&self, event: &str, data: Value) -> Value {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = std::sync::Arc::new(std::sync::Mutex::new(Some(tx)));
        self.socket
            .emit_with_ack(event, data, WAIT, move |payload, _| {
                if let Some(tx) = tx.lock().unwrap().take() {
                    // This client hands over an acknowledgement's arguments as one array.
                    let ack = match first(payload) {
                        Value::Array(mut args) if args.len() == 1 => args.remove(0),
                        other => other,
                    };
                    let _ = tx.send(ack);
                }
                async {}.boxed()
            })
            .await
            .unwrap();
        let ack = tokio::time::timeout(WAIT, rx)
            .await
            .expect("no acknowledgement within 10 s")
            .unwrap();
        contract::check(&format!("ack:{event}"), &ack);
        ack
    }

    pub async fn disconnect(self) {
        let _ = self.socket.disconnect().await;
    }
}
