//! Refuses request bodies over the configured size with 413, with or without Content-Length.
//!
//! poem's own `SizeLimit` answers 411 to requests without Content-Length, which would refuse
//! every plain GET; this accepts them and bounds chunked bodies while reading.

use poem::http::StatusCode;
use poem::{Endpoint, Error, IntoResponse, Request, Response};

pub async fn limit_body<E: Endpoint>(
    ep: E,
    mut req: Request,
    max: usize,
) -> poem::Result<Response> {
    let declared = req
        .headers()
        .get(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > max as u64 => return Err(too_large(max)),
        Some(_) => {}
        None if req
            .headers()
            .contains_key(poem::http::header::TRANSFER_ENCODING) =>
        {
            let body = req
                .take_body()
                .into_bytes_limit(max)
                .await
                .map_err(|_| too_large(max))?;
            req.set_body(body);
        }
        None => {}
    }
    ep.call(req).await.map(IntoResponse::into_response)
}

fn too_large(max: usize) -> Error {
    Error::from_string(
        format!("the request body exceeds {max} bytes"),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
}
