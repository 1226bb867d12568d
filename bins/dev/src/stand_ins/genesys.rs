//! A stand-in Genesys Cloud: an OAuth token endpoint and the messaging conversations the
//! portal routes. Every conversation it is asked about exists, with the customer and an agent
//! participant; transfers replace the routing participant and disconnects end the agent's, as
//! Genesys does, so a repeated attempt finds its effect in place. What it received is logged
//! and listed at `GET /changes`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use poem::http::StatusCode;
use poem::web::{Data, Json, Path};
use poem::{EndpointExt, Route, get, handler, patch, post};
use serde_json::{Value, json};

use super::Received;

/// The OAuth client the development stack is configured with.
pub const CLIENT_ID: &str = "dev-client";
pub const CLIENT_SECRET: &str = "dev-client-secret";

/// Each conversation's participants, created on first sight.
#[derive(Debug, Clone, Default)]
struct Conversations(Arc<Mutex<HashMap<String, Vec<Value>>>>);

impl Conversations {
    fn with<T>(&self, id: &str, f: impl FnOnce(&mut Vec<Value>) -> T) -> T {
        let mut all = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let participants = all.entry(id.to_string()).or_insert_with(|| {
            vec![
                json!({ "id": format!("{id}-customer"), "purpose": "customer", "state": "connected" }),
                json!({ "id": format!("{id}-agent-0"), "purpose": "agent", "userId": "genesys-user-0", "state": "connected" }),
            ]
        });
        f(participants)
    }
}

/// Starts it on `addr`; returns its base URL (both `genesys.api_url` and `genesys.login_url`).
pub async fn start(addr: std::net::SocketAddr) -> anyhow::Result<String> {
    let app = Route::new()
        .at("/oauth/token", post(token))
        .at("/api/v2/conversations/messages/:id", get(conversation))
        .at(
            "/api/v2/conversations/:id/participants/:participant/replace/:kind",
            post(replace),
        )
        .at(
            "/api/v2/conversations/messages/:id/participants/:participant",
            patch(disconnect),
        )
        .at("/changes", get(super::list))
        .data(Received::default())
        .data(Conversations::default());
    let addr = super::serve(app, "genesys", addr).await?;
    Ok(format!("http://{addr}"))
}

#[handler]
fn token() -> Json<Value> {
    Json(json!({
        "access_token": format!("dev-token-{}", uuid::Uuid::new_v4().simple()),
        "token_type": "bearer",
        "expires_in": 86_400,
    }))
}

#[handler]
fn conversation(Path(id): Path<String>, conversations: Data<&Conversations>) -> Json<Value> {
    let participants = conversations.with(&id, |p| p.clone());
    Json(json!({ "id": id, "participants": participants }))
}

#[handler]
fn replace(
    Path((id, participant, kind)): Path<(String, String, String)>,
    headers: &poem::http::HeaderMap,
    body: Json<Value>,
    conversations: Data<&Conversations>,
    received: Data<&Received>,
) -> StatusCode {
    received.record(
        "genesys",
        &format!("replace/{kind} {id}"),
        headers,
        body.0.clone(),
    );
    conversations.with(&id, |participants| {
        let n = participants.len();
        for p in participants.iter_mut().filter(|p| p["id"] == participant.as_str()) {
            p["state"] = json!("disconnected");
        }
        participants.push(match kind.as_str() {
            "queue" => json!({ "id": format!("{id}-acd-{n}"), "purpose": "acd", "queueId": body.0["queueId"], "state": "connected" }),
            _ => json!({ "id": format!("{id}-agent-{n}"), "purpose": "agent", "userId": body.0["userId"], "state": "connected" }),
        });
    });
    StatusCode::ACCEPTED
}

#[handler]
fn disconnect(
    Path((id, participant)): Path<(String, String)>,
    headers: &poem::http::HeaderMap,
    body: Json<Value>,
    conversations: Data<&Conversations>,
    received: Data<&Received>,
) -> StatusCode {
    received.record(
        "genesys",
        &format!("disconnect {id}"),
        headers,
        body.0.clone(),
    );
    conversations.with(&id, |participants| {
        for p in participants
            .iter_mut()
            .filter(|p| p["id"] == participant.as_str())
        {
            p["state"] = body.0["state"].clone();
        }
    });
    StatusCode::ACCEPTED
}
