//! Stricter readings of JSON body fields than poem-openapi's defaults, for
//! `#[oai(deserialize_with = "...")]`, so the server refuses exactly what the document refuses:
//! poem-openapi reads `false` or `7` into a `String` (as `"false"`, `"7"`), and `null` into any
//! `Option` even where the document does not declare it nullable.

use poem_openapi::types::{MaybeUndefined, ParseError, ParseFromJSON, ParseResult};
use serde_json::Value;

/// A string, and nothing else.
pub fn text(value: Option<Value>) -> ParseResult<String> {
    match value {
        Some(Value::String(text)) => Ok(text),
        other => Err(ParseError::custom(format!(
            "expects a string, not {}",
            kind(other.as_ref())
        ))),
    }
}

/// A string, `null` or absent (the field is declared nullable).
pub fn optional_text(value: Option<Value>) -> ParseResult<Option<String>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(ParseError::custom(format!(
            "expects a string or null, not {}",
            kind(Some(&other))
        ))),
    }
}

/// A string, or absent; `null` is refused (the field is not nullable).
pub fn present_text(value: Option<Value>) -> ParseResult<Option<String>> {
    match value {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(ParseError::custom(format!(
            "expects a string, not {}",
            kind(Some(&other))
        ))),
    }
}

/// A string, `null` (the field is cleared) or absent (it is left as it is).
pub fn clearable_text(value: Option<Value>) -> ParseResult<MaybeUndefined<String>> {
    match value {
        None => Ok(MaybeUndefined::Undefined),
        Some(Value::Null) => Ok(MaybeUndefined::Null),
        Some(Value::String(text)) => Ok(MaybeUndefined::Value(text)),
        Some(other) => Err(ParseError::custom(format!(
            "expects a string or null, not {}",
            kind(Some(&other))
        ))),
    }
}

/// A value, or absent; `null` is refused (the field is not nullable).
pub fn present<T: ParseFromJSON>(value: Option<Value>) -> ParseResult<Option<T>> {
    match value {
        None => Ok(None),
        Some(Value::Null) => Err(ParseError::custom("must be left out rather than null")),
        Some(value) => T::parse_from_json(Some(value))
            .map(Some)
            .map_err(ParseError::propagate),
    }
}

fn kind(value: Option<&Value>) -> &'static str {
    match value {
        None => "nothing",
        Some(Value::Null) => "null",
        Some(Value::Bool(_)) => "a boolean",
        Some(Value::Number(_)) => "a number",
        Some(Value::String(_)) => "a string",
        Some(Value::Array(_)) => "an array",
        Some(Value::Object(_)) => "an object",
    }
}
