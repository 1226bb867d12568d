//! `Allow` on a 405: which methods the path has, from the OpenAPI document.

use std::sync::Arc;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};

use crate::openapi::Methods;

pub async fn allow<E: Endpoint>(
    ep: E,
    req: Request,
    methods: Arc<Methods>,
) -> poem::Result<Response> {
    let path = req.uri().path().strip_prefix("/api").map(str::to_string);
    let mut response = ep.call(req).await?.into_response();
    if response.status() == StatusCode::METHOD_NOT_ALLOWED
        && let Some(allowed) = path.as_deref().and_then(|p| methods.allowed(p))
        && let Ok(value) = HeaderValue::from_str(allowed)
    {
        response.headers_mut().insert(header::ALLOW, value);
    }
    Ok(response)
}
