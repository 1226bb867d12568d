//! A stand-in Outbound Transformer that accepts every message, so messages sent in development
//! become `sent` without the real service.

use poem::web::Json;
use poem::{Route, handler, post};

/// Starts it on `addr`; returns the URL to POST messages to. The dev command points
/// `transformer.url` at it unless `PORTAL__TRANSFORMER__URL` is set.
pub async fn start(addr: std::net::SocketAddr) -> anyhow::Result<String> {
    let app = Route::new().at("/messages", post(accept_message));
    let addr = super::serve(app, "transformer", addr).await?;
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
