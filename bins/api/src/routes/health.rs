//! Probes and metrics, outside `/api` and without authentication.

use std::time::Duration;

use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{IntoResponse, Response, handler};
use portal_shared::tenancy::Db;
use serde_json::json;

use crate::http::metrics::Metrics;

/// Alive: the process answers. Never checks dependencies (a restart would not fix them).
#[handler]
pub fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready: Postgres answers within a second.
#[handler]
pub async fn readyz(db: Data<&Db>) -> Response {
    let postgres = match tokio::time::timeout(Duration::from_secs(1), db.ping()).await {
        Ok(Ok(())) => "ok".to_string(),
        Ok(Err(err)) => err.to_string(),
        Err(_) => "timed out".to_string(),
    };
    let ready = postgres == "ok";
    let body = Json(
        json!({ "status": if ready { "ready" } else { "unavailable" }, "checks": { "postgres": postgres } }),
    );
    body.with_status(if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    })
    .into_response()
}

#[handler]
pub async fn metrics(metrics: Data<&Metrics>) -> Response {
    metrics
        .render()
        .await
        .with_content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .into_response()
}
