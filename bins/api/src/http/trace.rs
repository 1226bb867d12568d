//! A span per request that continues the caller's W3C trace (`traceparent`), with a request
//! id on every log line of the request (the caller's `X-Request-Id` when it sends a sensible
//! one, a proxy's, else a new one) and, once its token is verified, its tenant and agent.

use std::sync::Arc;

use poem::{Endpoint, IntoResponse, Request, Response};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::openapi::Methods;

/// Paths served beside the API, each its own route.
const FIXED_ROUTES: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/openapi.json"];

/// The request's route, as the conventions have it: the template of the path it matches
/// (`/api/conversations/{id}`), never the path itself (unbounded: it holds ids).
fn route(path: &str, methods: &Methods) -> Option<String> {
    match path.strip_prefix("/api") {
        Some(rest) => methods.template(rest).map(|t| format!("/api{t}")),
        None => FIXED_ROUTES.contains(&path).then(|| path.to_string()),
    }
}
pub async fn trace<E: Endpoint>(
    ep: E,
    req: Request,
    methods: Arc<Methods>,
) -> poem::Result<Response> {
    let route = route(req.uri().path(), &methods);
    let request_id = req
        .header("x-request-id")
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
    let span = tracing::info_span!(
        "http.request",
        // The conventions name a server span by its method and route (the method alone
        // for a path the API does not have).
        otel.name = %match &route {
            Some(route) => format!("{} {route}", req.method()),
            None => req.method().to_string(),
        },
        http.route = route.as_deref(),
        otel.kind = "server",
        request_id,
        // Recorded once the token is verified (http::auth).
        tenant_id = tracing::field::Empty,
        agent_id = tracing::field::Empty,
        http.request.method = %req.method(),
        url.path = %req.uri().path(),
        http.response.status_code = tracing::field::Empty,
    );
    // Without an exporter there is no OpenTelemetry layer, and this is a no-op.
    let _ = span.set_parent(portal_shared::telemetry::extract_context(req.headers()));
    let started = std::time::Instant::now();
    let result = ep
        .call(req)
        .instrument(span.clone())
        .await
        .map(IntoResponse::into_response);
    let status = match &result {
        Ok(resp) => resp.status(),
        Err(err) => err.status(),
    };
    span.record("http.response.status_code", status.as_u16());
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), elapsed_ms, "request failed");
        } else {
            tracing::info!(status = status.as_u16(), elapsed_ms, "request");
        }
    });
    result
}
