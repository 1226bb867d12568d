//! Keyset pagination with cursors.
//!
//! A cursor is the sort key of the last row a page returned, written as text ([`Cursor`]).
//! Rows inserted between two requests therefore neither repeat nor shift the next page, unlike
//! offsets. A cursor that does not match its list's pattern is a validation error on its
//! parameter, never a 500.

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

/// A keyset position as it travels in a URL: `next_cursor` out, `cursor` (or `before`,
/// `after`) back in.
///
/// Each kind of cursor has a grammar, [`Cursor::PATTERN`], which the OpenAPI document declares,
/// and every string the pattern matches decodes to some position. A cursor is only a place in
/// a sorted list, not a secret nor a grant (what the caller may see is decided by the query),
/// so a hand-made one yields a page like any other; and a client can tell from the document
/// alone which values the server takes.
pub trait Cursor: Sized {
    /// A regular expression (ECMA-262 and Rust alike), anchored.
    const PATTERN: &'static str;
    /// What the document says of it.
    const DESCRIPTION: &'static str;
    fn encode(&self) -> String;
    /// `Some` for every string matching [`Cursor::PATTERN`].
    fn decode(text: &str) -> Option<Self>;
}

/// The grammar of a cursor's parts, for composing patterns with `concat!`.
#[macro_export]
macro_rules! cursor_part {
    (micros) => {
        "[0-9]{1,16}"
    };
    (id) => {
        "[0-9a-f]{32}"
    };
    (text) => {
        "(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?"
    };
    (bits) => {
        "[0-9a-f]{8}"
    };
}

/// A cursor that is a row's `(timestamp, id)`, encoded `micros.id`: declares the struct
/// (`at`, `id`) and its [`Cursor`] implementation.
#[macro_export]
macro_rules! time_id_cursor {
    ($(#[$doc:meta])* $name:ident, $id:ident, $description:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name {
            pub at: chrono::DateTime<chrono::Utc>,
            pub id: $id,
        }

        impl $crate::pagination::Cursor for $name {
            const PATTERN: &'static str = concat!(
                "^",
                $crate::cursor_part!(micros),
                "\\.",
                $crate::cursor_part!(id),
                "$"
            );
            const DESCRIPTION: &'static str = $description;

            fn encode(&self) -> String {
                use $crate::pagination::part;
                format!("{}.{}", part::micros(self.at), part::id(self.id.0))
            }

            fn decode(text: &str) -> Option<Self> {
                use $crate::pagination::part;
                let [at, id] = part::split(text)?;
                Some(Self {
                    at: part::parse_micros(at)?,
                    id: $id(part::parse_id(id)?),
                })
            }
        }
    };
}

/// Encoders and decoders of the parts named in [`cursor_part!`], joined by `.`.
pub mod part {
    use base64::Engine;
    use base64::alphabet::URL_SAFE;
    use base64::engine::DecodePaddingMode;
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    /// base64url without padding; any trailing bits accepted, so that every string of a valid
    /// length decodes.
    const TEXT: GeneralPurpose = GeneralPurpose::new(
        &URL_SAFE,
        GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_padding_mode(DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );

    pub fn micros(at: DateTime<Utc>) -> String {
        at.timestamp_micros().max(0).to_string()
    }

    pub fn parse_micros(text: &str) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_micros(text.parse().ok()?)
    }

    pub fn id(id: Uuid) -> String {
        id.simple().to_string()
    }

    pub fn parse_id(text: &str) -> Option<Uuid> {
        (text.len() == 32)
            .then(|| Uuid::try_parse(text).ok())
            .flatten()
    }

    pub fn text(text: &str) -> String {
        TEXT.encode(text)
    }

    /// Bytes that are not UTF-8 still make a position (between the names around them); NUL,
    /// which no Postgres text holds, is dropped.
    pub fn parse_text(text: &str) -> Option<String> {
        let bytes = TEXT.decode(text).ok()?;
        Some(String::from_utf8_lossy(&bytes).replace('\0', ""))
    }

    pub fn bits(value: f32) -> String {
        format!("{:08x}", value.to_bits())
    }

    pub fn parse_bits(text: &str) -> Option<f32> {
        (text.len() == 8)
            .then(|| u32::from_str_radix(text, 16).ok())
            .flatten()
            .map(f32::from_bits)
    }

    /// Splits `text` into exactly `N` parts at `.`.
    pub fn split<const N: usize>(text: &str) -> Option<[&str; N]> {
        let parts: Vec<&str> = text.split('.').collect();
        parts.try_into().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_decodes_what_its_pattern_matches_and_round_trips() {
        let at = chrono::DateTime::from_timestamp_micros(1_764_583_200_123_456).unwrap();
        assert_eq!(part::parse_micros(&part::micros(at)), Some(at));
        assert!(part::parse_micros("9999999999999999").is_some());
        let id = uuid::Uuid::new_v4();
        assert_eq!(part::parse_id(&part::id(id)), Some(id));
        assert!(part::parse_id("ffffffffffffffffffffffffffffffff").is_some());
        for name in ["", "a", "Zoë Ødegård", "名前"] {
            assert_eq!(part::parse_text(&part::text(name)).as_deref(), Some(name));
        }
        // Lengths 2 and 3 past a multiple of 4, trailing bits set, bytes that are not UTF-8.
        for text in ["", "AB", "AB_", "AB_-", "AB_-zz", "__8", "_-_-_w"] {
            assert!(part::parse_text(text).is_some(), "{text}");
        }
        assert!(
            part::parse_text("ABCDE").is_none(),
            "the pattern excludes 4n+1 lengths"
        );
        assert!(part::parse_bits("7fc00000").is_some_and(f32::is_nan));
        assert_eq!(part::parse_bits(&part::bits(0.25)), Some(0.25));
        assert_eq!(part::split::<2>("a.b"), Some(["a", "b"]));
        assert_eq!(part::split::<2>("a.b.c"), None);
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
