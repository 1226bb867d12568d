//! A span per request that continues the caller's W3C trace (`traceparent`), with a request
//! id on every log line of the request (the caller's `X-Request-Id` when it sends a sensible
//! one, a proxy's, else a new one) and, once its token is verified, its tenant and agent.

use poem::{Endpoint, IntoResponse, Request, Response};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub async fn trace<E: Endpoint>(ep: E, req: Request) -> poem::Result<Response> {
    let request_id = req
        .header("x-request-id")
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
    let span = tracing::info_span!(
        "http.request",
        // The conventions name a server span by its route; without one, by the method alone.
        otel.name = %req.method(),
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
