//! Keyset pagination with opaque cursors.
//!
//! A cursor is the sort key of the last row a page returned, serialised and base64url-encoded.
//! Rows inserted between two requests therefore neither repeat nor shift the next page, unlike
//! offsets. Clients must treat cursors as opaque; a cursor that does not decode is a 400-class
//! validation error on the `cursor` field, never a 500.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

pub const DEFAULT_LIMIT: u32 = 25;
pub const MAX_LIMIT: u32 = 100;

/// Which page to read: after the given key, at most `limit` rows.
#[derive(Debug, Clone)]
pub struct PageRequest<K> {
    pub after: Option<K>,
    pub limit: u32,
}

impl<K> PageRequest<K> {
    /// Checks `limit` (1..=100, default 25); the caller has already decoded the cursor.
    pub fn new(after: Option<K>, limit: Option<u32>) -> Result<Self> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Error::invalid(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        Ok(Self { after, limit })
    }

    /// One row more than the page, to learn whether another page follows without counting.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// Trims the extra row and derives the next cursor from the last row kept.
    pub fn finish<T>(&self, mut rows: Vec<T>, key: impl Fn(&T) -> K) -> Page<T, K> {
        let more = rows.len() > self.limit as usize;
        rows.truncate(self.limit as usize);
        let next = if more { rows.last().map(key) } else { None };
        Page { items: rows, next }
    }
}

#[derive(Debug, Clone)]
pub struct Page<T, K> {
    pub items: Vec<T>,
    /// The key to continue after, or `None` on the last page.
    pub next: Option<K>,
}

/// Serialises a sort key into an opaque cursor.
pub fn encode_cursor<K: Serialize>(key: &K) -> String {
    // A sort key is plain data (strings, numbers, ids); serialising it cannot fail.
    let json = serde_json::to_vec(key).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// Reads a cursor made by [`encode_cursor`]; anything else is a validation error on `cursor`.
pub fn decode_cursor<K: DeserializeOwned>(cursor: &str) -> Result<K> {
    decode_cursor_param("cursor", cursor)
}

/// As [`decode_cursor`], for a cursor passed under another parameter name (`before`, `after`).
pub fn decode_cursor_param<K: DeserializeOwned>(param: &str, cursor: &str) -> Result<K> {
    URL_SAFE_NO_PAD
        .decode(cursor.as_bytes())
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| Error::invalid(param, "is not a cursor returned by this endpoint"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let key = ("b".to_string(), 7_i64);
        let cursor = encode_cursor(&key);
        assert_eq!(decode_cursor::<(String, i64)>(&cursor).unwrap(), key);
        assert!(decode_cursor::<(String, i64)>("not a cursor!").is_err());
        assert!(decode_cursor::<(String, i64)>(&encode_cursor(&"other shape")).is_err());
    }

    #[test]
    fn limit_is_bounded() {
        assert!(PageRequest::<u8>::new(None, Some(0)).is_err());
        assert!(PageRequest::<u8>::new(None, Some(101)).is_err());
        assert_eq!(PageRequest::<u8>::new(None, None).unwrap().limit, 25);
    }

    #[test]
    fn finish_reports_a_next_key_only_when_more_rows_exist() {
        let page = PageRequest::<i32>::new(None, Some(2)).unwrap();
        let full = page.finish(vec![1, 2, 3], |x| *x);
        assert_eq!((full.items, full.next), (vec![1, 2], Some(2)));
        let last = page.finish(vec![1, 2], |x| *x);
        assert_eq!((last.items, last.next), (vec![1, 2], None));
    }
}
