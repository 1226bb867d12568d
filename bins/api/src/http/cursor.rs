//! Cursors on the wire: [`Paging<K>`] is a list's cursor as a poem-openapi type, so the
//! document declares each list's cursor grammar ([`Cursor::PATTERN`]) on the parameter that
//! takes it and the field that returns it, and parsing the parameter decodes it.

use std::borrow::Cow;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{
    ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type,
};
use portal_shared::pagination::Cursor;
use serde_json::Value;

/// No cursor of ours comes near it; a longer string is refused before decoding.
const MAX_CURSOR_CHARS: usize = 1024;

#[derive(Debug, Clone)]
pub struct Paging<K>(pub K);

impl<K: Cursor + Send + Sync> Type for Paging<K> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "cursor".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        let mut schema = MetaSchema::new("string");
        schema.pattern = Some(K::PATTERN.to_string());
        schema.max_length = Some(MAX_CURSOR_CHARS);
        schema.description = Some(K::DESCRIPTION);
        MetaSchemaRef::Inline(Box::new(schema))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl<K: Cursor + Send + Sync> ParseFromParameter for Paging<K> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        if value.len() > MAX_CURSOR_CHARS {
            return Err(ParseError::custom(format!(
                "verification failed. maxLength({MAX_CURSOR_CHARS})"
            )));
        }
        // Worded like poem-openapi's own checks, so the answer is a 422 naming the parameter.
        K::decode(value).map(Self).ok_or_else(|| {
            ParseError::custom(format!("verification failed. pattern: {}", K::DESCRIPTION))
        })
    }
}

impl<K: Cursor + Send + Sync> ParseFromJSON for Paging<K> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(text)) => {
                Self::parse_from_parameter(&text).map_err(|e| ParseError::custom(e.into_message()))
            }
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl<K: Cursor + Send + Sync> ToJSON for Paging<K> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.encode()))
    }
}
