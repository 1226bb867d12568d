//! The Socket.IO contract, `schemas/socketio-events.v1.json`: every event and acknowledgement
//! the test client receives is checked against it (see `client.rs`), so a payload that drifts
//! from the committed schema, or from the REST API's objects it refers to, fails the test that
//! received it.

use std::path::Path;
use std::sync::OnceLock;

use jsonschema::{Retrieve, Uri, Validator};
use serde_json::{Value, json};

const EVENTS_ID: &str = "https://agent-portal.dev/schemas/socketio-events.v1.json";
const OPENAPI_ID: &str = "https://agent-portal.dev/openapi.json";

fn read(path: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Serves the two committed documents the schema refers to; nothing is fetched.
struct Committed {
    events: Value,
    openapi: Value,
}

impl Retrieve for Committed {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        match uri.as_str() {
            EVENTS_ID => Ok(self.events.clone()),
            OPENAPI_ID => Ok(self.openapi.clone()),
            other => Err(format!("{other} is not a committed contract").into()),
        }
    }
}

fn validator(name: &str) -> Option<&'static Validator> {
    static VALIDATORS: OnceLock<Vec<(String, Validator)>> = OnceLock::new();
    let all = VALIDATORS.get_or_init(|| {
        let events = read("schemas/socketio-events.v1.json");
        let names: Vec<String> = events["$defs"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        names
            .into_iter()
            .map(|name| {
                let schema = json!({ "$ref": format!("{EVENTS_ID}#/$defs/{name}") });
                let validator = jsonschema::options()
                    .with_retriever(Committed {
                        events: events.clone(),
                        openapi: read("docs/openapi.json"),
                    })
                    .build(&schema)
                    .unwrap_or_else(|e| panic!("the schema of {name} does not build: {e}"));
                (name, validator)
            })
            .collect()
    });
    all.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

/// Panics unless `payload` is what the contract says `name` carries (`ack:<event>` for the
/// acknowledgement of a client's `<event>`).
pub fn check(name: &str, payload: &Value) {
    let validator =
        validator(name).unwrap_or_else(|| panic!("{name} is not in socketio-events.v1.json"));
    let errors: Vec<String> = validator
        .iter_errors(payload)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{name} breaks socketio-events.v1.json: {errors:?}\n{payload:#}"
    );
}

#[test]
fn the_contract_refuses_a_payload_that_drifted() {
    let conversation = json!({
        "id": "0193e0a0-0000-7000-8000-000000000001", "state": "waiting", "channel": "whatsapp",
        "customer": {"id": "0193e0a0-0000-7000-8000-000000000002", "display_name": "Ana"},
        "created_at": "2026-12-01T10:00:00Z", "updated_at": "2026-12-01T10:00:00Z",
        "last_activity_at": "2026-12-01T10:00:00Z",
    });
    check(
        "conversation:new",
        &json!({"seq": 1, "conversation": conversation}),
    );
    let mut with_null = conversation.clone();
    with_null["closed_at"] = Value::Null;
    for drifted in [
        json!({"seq": 1, "conversation": with_null}),
        json!({"seq": 0, "conversation": conversation}),
        json!({"conversation": conversation}),
        json!({"seq": 1, "conversation": conversation, "extra": true}),
    ] {
        let result = std::panic::catch_unwind(|| check("conversation:new", &drifted));
        assert!(result.is_err(), "accepted {drifted}");
    }
}
