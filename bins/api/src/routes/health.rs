//! Probes and metrics, outside `/api` and without authentication.

use std::time::Duration;

use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{IntoResponse, Response, handler};
use portal_shared::integrations::{Integrations, propagation};
use portal_shared::messages::dispatcher;
use portal_shared::readiness::check;
use portal_shared::tenancy::Db;
use redis::aio::ConnectionManager;
use serde_json::json;

use crate::http::metrics::Metrics;

/// Alive: the process answers. Never checks dependencies (a restart would not fix them).
#[handler]
pub fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// The OpenAPI document, built once at start.
#[derive(Debug, Clone)]
pub struct Document(pub serde_json::Value);

/// The REST contract (see [`crate::openapi`]).
#[handler]
pub fn openapi(doc: Data<&Document>) -> Json<serde_json::Value> {
    Json(doc.0.0.clone())
}

/// The Redis connection (events, presence), for readiness.
#[derive(Debug, Clone)]
pub struct Redis(pub ConnectionManager);

/// Ready: Postgres answers within a second. Redis is reported but does not make the API
/// unready: while it is down, events wait in Postgres and the relay publishes them later,
/// and agents' online flags are unknown. The platform's services are reported, with the
/// backlogs waiting for them, and never make the API unready either: what is meant for them
/// waits in the outboxes.
#[handler]
pub async fn readyz(
    db: Data<&Db>,
    redis: Data<&Redis>,
    integrations: Data<&Integrations>,
) -> Response {
    let postgres = check(db.ping()).await;
    let mut checks = json!({ "postgres": postgres });
    let mut conn = redis.0.0.clone();
    let ping = async move {
        redis::cmd("PING")
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| portal_shared::Error::Unavailable(format!("redis: {e}")))
    };
    checks["redis"] = json!(check(ping).await);
    let ready = postgres == "ok";
    let mut body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "checks": checks,
        "integrations": integrations.report(),
    });
    // Informational: a growing backlog means the transformer is down or slow, which the API
    // itself survives (messages wait in the outbox), so it does not make the API unready.
    if ready
        && let Ok(Ok(backlog)) =
            tokio::time::timeout(Duration::from_secs(1), dispatcher::backlog(&db)).await
    {
        body["outbox"] =
            json!({ "waiting": backlog.waiting, "oldest_age_secs": backlog.oldest_age_secs });
    }
    if ready
        && let Ok(Ok(backlogs)) =
            tokio::time::timeout(Duration::from_secs(1), propagation::backlog(&db)).await
    {
        let mut by_target = serde_json::Map::new();
        for backlog in backlogs {
            by_target.insert(
                backlog.target.as_str().to_string(),
                json!({ "waiting": backlog.waiting, "oldest_age_secs": backlog.oldest_age_secs }),
            );
        }
        body["propagation"] = serde_json::Value::Object(by_target);
    }
    let body = Json(body);
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
