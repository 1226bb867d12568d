//! Stand-ins for the external HTTP services, so the development stack runs offline: each is a
//! real HTTP server, on a free local port in the one-process stack, or on fixed ports for
//! docker-compose (`dev stand-ins`).

pub mod genesys;
pub mod state_manager;
pub mod transformer;
pub mod whatsapp;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use poem::listener::TcpAcceptor;
use poem::web::{Data, Json};
use poem::{Endpoint, Server, handler};
use serde_json::{Value, json};

/// The calls a stand-in received, newest last, for `GET /changes`.
#[derive(Debug, Clone, Default)]
struct Received(Arc<Mutex<VecDeque<Value>>>);

/// How many received calls a stand-in keeps.
const KEPT: usize = 200;

impl Received {
    /// Logs the call and keeps it.
    fn record(&self, service: &str, what: &str, headers: &poem::http::HeaderMap, body: Value) {
        let key = headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        tracing::info!(service, what, idempotency_key = ?key, body = %body, "stand-in received a change");
        let mut kept = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if kept.len() == KEPT {
            kept.pop_front();
        }
        kept.push_back(json!({
            "what": what,
            "idempotency_key": key,
            "received_at": chrono::Utc::now(),
            "body": body,
        }));
    }
}

#[handler]
fn list(received: Data<&Received>) -> Json<Value> {
    let kept = received
        .0
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Json(Value::Array(kept.iter().cloned().collect()))
}

/// Serves `app` on `addr` (port 0: a free one) in the background; returns the bound address.
async fn serve(
    app: impl Endpoint + 'static,
    name: &'static str,
    addr: SocketAddr,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the stand-in {name} to {addr}"))?;
    let addr = listener.local_addr()?;
    let acceptor = TcpAcceptor::from_tokio(listener)?;
    tokio::spawn(async move {
        if let Err(err) = Server::new_with_acceptor(acceptor).run(app).await {
            tracing::error!(error = %err, "the stand-in {name} stopped");
        }
    });
    tracing::info!(%addr, "the stand-in {name} is listening");
    Ok(addr)
}
