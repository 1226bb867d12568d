//! `/healthz`, `/readyz` and `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{IntoResponse, Response, handler};
use portal_shared::readiness::check;
use portal_shared::tenancy::Db;
use serde_json::json;

use crate::metrics::Metrics;

/// Whether the consumer is connected to the broker and consuming.
#[derive(Debug, Clone)]
pub struct Consuming(pub Arc<AtomicBool>);

/// Alive: the process answers. Never checks dependencies (a restart would not fix them).
#[handler]
pub fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready: consuming from the broker, and Postgres answers (nothing can be applied without it).
#[handler]
pub async fn readyz(db: Data<&Db>, consuming: Data<&Consuming>) -> Response {
    let postgres = check(db.ping()).await;
    let broker = if consuming.0.0.load(Ordering::Relaxed) {
        "ok"
    } else {
        "not connected (reconnecting)"
    };
    let ready = postgres == "ok" && broker == "ok";
    Json(json!({
        "status": if ready { "ready" } else { "unavailable" },
        "checks": { "postgres": postgres, "amqp": broker },
    }))
    .with_status(if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    })
    .into_response()
}

#[handler]
pub fn metrics(metrics: Data<&Metrics>) -> Response {
    metrics
        .render()
        .with_content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .into_response()
}
