//! Copies each request's head out of hyper's read buffer before Socket.IO keeps it.
//!
//! hyper parses a request's URI and header values as slices of the connection's read buffer
//! (about 16 KiB), and engine.io keeps the request head of every session for its whole life
//! (`socket.req_parts()`), so each connection pinned that whole buffer: measured with
//! heaptrack, it was nearly half of the memory of an idle connection. [`CompactRequests`]
//! gives the service the same request with its URI and header values copied into one
//! allocation of their exact size, so the read buffer is freed once the connection is
//! upgraded (or the polling request ends).

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderValue};
use http::{Request, Uri};

/// A hyper service that passes each request on to `S` with its head compacted.
#[derive(Debug, Clone)]
pub struct CompactRequests<S>(pub S);

impl<S, B> hyper::service::Service<Request<B>> for CompactRequests<S>
where
    S: hyper::service::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, req: Request<B>) -> Self::Future {
        self.0.call(compact(req))
    }
}

/// The same request, its URI and header values in one buffer of their own. Header names are
/// already either static or copied by hyper; the method, version and extensions are moved.
pub fn compact<B>(req: Request<B>) -> Request<B> {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map(|p| p.as_str());
    // Only origin-form URIs (`/socket.io/?EIO=4&...`, what browsers send) are rebuilt;
    // anything else is kept as it is.
    let path = path.filter(|_| parts.uri.scheme().is_none() && parts.uri.authority().is_none());
    let size = path.map_or(0, str::len)
        + parts
            .headers
            .values()
            .map(|v| v.as_bytes().len())
            .sum::<usize>();
    let mut buf = BytesMut::with_capacity(size);
    if let Some(path) = path {
        buf.extend_from_slice(path.as_bytes());
    }
    let path_len = buf.len();
    for value in parts.headers.values() {
        buf.extend_from_slice(value.as_bytes());
    }
    let buf: Bytes = buf.freeze();

    if path.is_some()
        && let Ok(uri) = Uri::from_maybe_shared(buf.slice(..path_len))
    {
        parts.uri = uri;
    }
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    let mut at = path_len;
    let mut name = None;
    for (key, value) in std::mem::take(&mut parts.headers) {
        // `into_iter` names only the first value of each header.
        if key.is_some() {
            name = key;
        }
        let Some(name) = name.clone() else { continue };
        let len = value.as_bytes().len();
        let copied = match HeaderValue::from_maybe_shared(buf.slice(at..at + len)) {
            Ok(mut copied) => {
                copied.set_sensitive(value.is_sensitive());
                copied
            }
            Err(_) => value,
        };
        at += len;
        headers.append(name, copied);
    }
    parts.headers = headers;
    Request::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_uri_and_every_header_value_in_order() {
        let req = Request::builder()
            .method("GET")
            .uri("/socket.io/?EIO=4&transport=websocket")
            .header("host", "example.test")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("x-many", "one")
            .header("x-many", "two")
            .header("cookie", "a=b")
            .body(())
            .unwrap();
        let mut sensitive = req;
        sensitive
            .headers_mut()
            .get_mut("cookie")
            .unwrap()
            .set_sensitive(true);
        let before = format!("{:?} {:?}", sensitive.uri(), sensitive.headers());
        let after = compact(sensitive);
        assert_eq!(format!("{:?} {:?}", after.uri(), after.headers()), before);
        assert_eq!(
            after.uri().query(),
            Some("EIO=4&transport=websocket"),
            "the query is still parsed"
        );
        let many: Vec<_> = after.headers().get_all("x-many").iter().collect();
        assert_eq!(many, ["one", "two"]);
        assert!(after.headers()["cookie"].is_sensitive());
    }

    #[test]
    fn leaves_an_absolute_uri_as_it_is() {
        let req = Request::builder()
            .uri("http://example.test/socket.io/?EIO=4")
            .body(())
            .unwrap();
        assert_eq!(
            compact(req).uri().to_string(),
            "http://example.test/socket.io/?EIO=4"
        );
    }
}
