//! `/healthz`, `/readyz` and `/metrics`, served beside Socket.IO on the same port.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use portal_shared::tenancy::Db;
use serde_json::json;

use crate::metrics::Metrics;

#[derive(Debug, Clone)]
pub struct Probes {
    pub enabled: bool,
    pub db: Db,
    pub subscribed: Arc<AtomicBool>,
    pub metrics: Metrics,
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

fn json_reply(status: StatusCode, body: serde_json::Value) -> Reply {
    reply(status, "application/json", body.to_string())
}

impl Probes {
    pub async fn handle<B>(self, req: Request<B>) -> Result<Reply, Infallible> {
        if req.method() != Method::GET {
            return Ok(self.not_found());
        }
        Ok(match req.uri().path() {
            "/healthz" => json_reply(StatusCode::OK, json!({ "status": "ok" })),
            "/readyz" => self.readyz().await,
            "/metrics" => reply(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                self.metrics.render(),
            ),
            _ => self.not_found(),
        })
    }

    fn not_found(&self) -> Reply {
        reply(
            StatusCode::NOT_FOUND,
            "application/problem+json",
            json!({ "type": "about:blank", "title": "Not Found", "status": 404,
                    "detail": "the realtime service serves /socket.io/, /healthz, /readyz and /metrics" })
            .to_string(),
        )
    }

    /// Ready: Postgres answers (authentication and replay need it) and the Redis subscription
    /// is up (live events need it). Disabled by configuration: ready, and says so.
    async fn readyz(&self) -> Reply {
        if !self.enabled {
            return json_reply(StatusCode::OK, json!({ "status": "disabled" }));
        }
        let postgres = portal_shared::readiness::check(self.db.ping()).await;
        let redis = if self.subscribed.load(Ordering::Relaxed) {
            "ok"
        } else {
            "not subscribed (reconnecting)"
        };
        let ready = postgres == "ok" && redis == "ok";
        json_reply(
            if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            },
            json!({
                "status": if ready { "ready" } else { "unavailable" },
                "checks": { "postgres": postgres, "redis_subscription": redis },
            }),
        )
    }
}
