//! Property tests of the parsers that read what clients and upstream send: the
//! `agent.notifications` envelope, every list's cursor, and WhatsApp's template objects with the
//! parameters an agent fills in. Whatever the input, each answers (a value or a refusal) and
//! never panics; what their contracts promise holds for generated inputs. proptest keeps any
//! failing case in `hostile_input.proptest-regressions` beside this file, and replays it first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use portal_shared::agents::AgentCursor;
use portal_shared::conversations::{CustomerHistoryCursor, ListCursor};
use portal_shared::messages::{HistoryCursor, SearchCursor};
use portal_shared::notifications::{Notification, parse};
use portal_shared::pagination::Cursor;
use portal_shared::templates::TemplateSpec;
use portal_shared::templates::service::TemplateCursor;
use portal_shared::templates::validate;
use proptest::prelude::*;
use serde_json::{Value, json};

/// Any JSON value, nested a few levels, with the keys the parsers look for among the others.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("type".to_string()),
        Just("data".to_string()),
        Just("version".to_string()),
        Just("event_id".to_string()),
        Just("tenant_id".to_string()),
        Just("components".to_string()),
        Just("text".to_string()),
        Just("format".to_string()),
        Just("buttons".to_string()),
        "[a-z_]{1,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        Just(json!("BODY")),
        Just(json!("HEADER")),
        Just(json!("{{1}}")),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// A well-formed `message.received` envelope with generated ids and text.
fn received_envelope() -> impl Strategy<Value = (Value, String)> {
    (any::<u128>(), any::<u128>(), "[a-z0-9-]{1,40}", ".{1,200}").prop_map(
        |(event, tenant, sm_id, text)| {
            let envelope = json!({
                "version": 1,
                "event_id": uuid::Uuid::from_u128(event),
                "type": "message.received",
                "tenant_id": uuid::Uuid::from_u128(tenant),
                "occurred_at": "2026-12-01T09:00:00Z",
                "data": {
                    "state_manager_id": sm_id,
                    "whatsapp_message_id": "wamid.1",
                    "sent_at": "2026-12-01T09:00:00Z",
                    "text": text,
                }
            });
            (envelope, text)
        },
    )
}

proptest! {
    #[test]
    fn the_envelope_parser_answers_any_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&body);
    }

    #[test]
    fn the_envelope_parser_answers_any_json(value in json_value()) {
        let _ = parse(value.to_string().as_bytes());
    }

    #[test]
    fn a_well_formed_envelope_is_read_as_sent((envelope, text) in received_envelope()) {
        let parsed = parse(envelope.to_string().as_bytes()).unwrap();
        prop_assert_eq!(parsed.event_id.to_string(), envelope["event_id"].as_str().unwrap());
        match parsed.notification {
            Notification::MessageReceived { text: got, .. } => prop_assert_eq!(got, Some(text)),
            other => prop_assert!(false, "read as {:?}", other),
        }
    }

    #[test]
    fn a_template_object_and_its_parameters_never_panic(template in json_value(), params in json_value()) {
        if let Ok(spec) = TemplateSpec::from_graph(&template) {
            let _ = validate(&spec, &params);
        }
    }

    #[test]
    fn a_templates_parameters_never_panic(
        body in "[ -~]{0,60}(\\{\\{[0-9a-z_]{1,3}\\}\\}[ -~]{0,20}){0,4}",
        params in json_value(),
    ) {
        let template = json!({
            "name": "t", "language": "en", "status": "APPROVED",
            "components": [{ "type": "BODY", "text": body }],
        });
        if let Ok(spec) = TemplateSpec::from_graph(&template) {
            let _ = validate(&spec, &params);
        }
    }
}

/// Strings an anchored pattern matches (the generator takes it without its anchors).
fn pattern_strings(pattern: &str) -> impl Strategy<Value = String> {
    let unanchored = pattern.trim_start_matches('^').trim_end_matches('$');
    proptest::string::string_regex(unanchored).unwrap()
}

/// Every cursor: any text decodes or is refused without a panic; every string its pattern
/// matches decodes (the document promises it); a decoded cursor encodes to a string that
/// decodes to the same cursor.
macro_rules! cursor_properties {
    ($($name:ident: $cursor:ty),* $(,)?) => {
        $(
            mod $name {
                use super::*;

                proptest! {
                    #[test]
                    fn any_text_is_answered(text in ".{0,80}") {
                        let _ = <$cursor>::decode(&text);
                    }

                    #[test]
                    fn what_the_pattern_allows_decodes_and_round_trips(
                        text in pattern_strings(<$cursor>::PATTERN)
                    ) {
                        let cursor = <$cursor>::decode(&text);
                        prop_assert!(cursor.is_some(), "{:?} matches the pattern but does not decode", text);
                        let encoded = cursor.unwrap().encode();
                        let again = <$cursor>::decode(&encoded).map(|c| c.encode());
                        prop_assert_eq!(again, Some(encoded));
                    }
                }
            }
        )*
    };
}

cursor_properties!(
    list: ListCursor,
    customer_history: CustomerHistoryCursor,
    history: HistoryCursor,
    search: SearchCursor,
    agents: AgentCursor,
    templates: TemplateCursor,
);
