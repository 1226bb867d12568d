//! A stand-in Outbound Transformer that accepts every message, so messages sent in development
//! become `sent` without the real service.

use poem::listener::TcpAcceptor;
use poem::web::Json;
use poem::{Route, Server, handler, post};

/// Starts it on a free local port; returns the URL to POST messages to. The dev command points
/// `transformer.url` at it unless `PORTAL__TRANSFORMER__URL` is set.
pub async fn start() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = TcpAcceptor::from_tokio(listener)?;
    let app = Route::new().at("/messages", post(accept_message));
    tokio::spawn(async move {
        if let Err(err) = Server::new_with_acceptor(acceptor).run(app).await {
            tracing::error!(error = %err, "the stand-in transformer stopped");
        }
    });
    Ok(format!("http://{addr}/messages"))
}

#[handler]
fn accept_message(
    headers: &poem::http::HeaderMap,
    message: Json<serde_json::Value>,
) -> Json<serde_json::Value> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info!(message_id = key, to = %message.0["to"], "stand-in transformer accepted a message");
    Json(serde_json::json!({ "external_id": format!("wamid.dev.{key}") }))
}
