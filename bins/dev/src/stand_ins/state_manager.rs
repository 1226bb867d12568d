//! A stand-in State Manager: it acknowledges every change the portal propagates, logs it, and
//! lists what it received at `GET /changes`, so a newcomer sees a transfer or a close arrive.
//! It knows every customer (with one attribute of its own, so profiles show enrichment) and
//! no conversation (the consumer waits for those, as without a State Manager).

use poem::http::StatusCode;
use poem::web::{Data, Json, Path};
use poem::{EndpointExt, IntoResponse, Response, Route, get, handler, post};
use serde_json::{Value, json};

use super::Received;

/// Starts it on `addr`; returns its base URL (`state_manager.url`).
pub async fn start(addr: std::net::SocketAddr) -> anyhow::Result<String> {
    let received = Received::default();
    let app = Route::new()
        .at("/conversations/:id", get(unknown_conversation))
        .at("/conversations/:id/changes", post(conversation_changed))
        .at("/customers/:id", get(customer).patch(customer_changed))
        .at("/changes", get(super::list))
        .data(received);
    let addr = super::serve(app, "state manager", addr).await?;
    Ok(format!("http://{addr}"))
}

#[handler]
fn unknown_conversation() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

#[handler]
fn customer(Path(id): Path<String>) -> Json<Value> {
    Json(
        json!({ "id": id, "attributes": { "segment": "consumer", "source": "state-manager stand-in" } }),
    )
}

#[handler]
fn conversation_changed(
    Path(id): Path<String>,
    headers: &poem::http::HeaderMap,
    change: Json<Value>,
    received: Data<&Received>,
) -> StatusCode {
    received.record(
        "state_manager",
        &format!("conversation {id}"),
        headers,
        change.0,
    );
    StatusCode::ACCEPTED
}

#[handler]
fn customer_changed(
    Path(id): Path<String>,
    headers: &poem::http::HeaderMap,
    change: Json<Value>,
    received: Data<&Received>,
) -> StatusCode {
    received.record(
        "state_manager",
        &format!("customer {id}"),
        headers,
        change.0,
    );
    StatusCode::OK
}
