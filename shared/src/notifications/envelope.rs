//! Parsing and validating one `agent.notifications` message.
//!
//! The committed JSON Schema is the contract: a message is first checked against it (formats
//! included), so the reason a message is refused is the same whichever consumer reads it and
//! whatever our types would have tolerated; only then is it read into [`Envelope`].

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::conversations::ConversationState;
use crate::ids::{AgentId, TenantId};

/// The schema, as committed in the repository (and rendered in the README).
pub const SCHEMA: &str = include_str!("../../../schemas/agent-notifications.v1.json");

/// At most this many schema violations are reported for one message.
const MAX_VIOLATIONS: usize = 5;

static VALIDATOR: LazyLock<Result<jsonschema::Validator, String>> = LazyLock::new(|| {
    let schema: Value = serde_json::from_str(SCHEMA).map_err(|e| e.to_string())?;
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| e.to_string())
});

/// Why a message cannot be applied, ever: it goes to the dead-letter queue with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Poison {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("unknown type {0:?}")]
    UnknownType(String),
    #[error("schema violation: {}", .0.join("; "))]
    Schema(Vec<String>),
}

impl Poison {
    /// The short reason code of the `x-dead-letter-reason` header and the metrics label.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotJson(_) => "not_json",
            Self::UnknownType(_) => "unknown_type",
            Self::Schema(_) => "schema_violation",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub event_id: Uuid,
    pub tenant_id: TenantId,
    pub occurred_at: DateTime<Utc>,
    pub notification: Notification,
}

/// The customer of a `conversation.created`, found or created by phone.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CustomerData {
    pub phone_e164: String,
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NewConversation {
    pub state_manager_id: String,
    pub genesys_conversation_id: Option<String>,
    pub state: Option<ConversationState>,
    #[serde(default, deserialize_with = "present")]
    pub assigned_agent_id: Option<Option<AgentId>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MediaData {
    pub url: String,
    pub mime_type: Option<String>,
    pub caption: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ReceiptError {
    pub code: i64,
    pub title: String,
}

/// What happened, by type.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum Notification {
    #[serde(rename = "conversation.created")]
    ConversationCreated {
        conversation: NewConversation,
        customer: CustomerData,
    },
    #[serde(rename = "conversation.updated")]
    ConversationUpdated {
        state_manager_id: String,
        state: Option<ConversationState>,
        /// Absent: unchanged; `null`: unassigned.
        #[serde(default, deserialize_with = "present")]
        assigned_agent_id: Option<Option<AgentId>>,
    },
    #[serde(rename = "conversation.closed")]
    ConversationClosed {
        state_manager_id: String,
        reason: Option<String>,
    },
    #[serde(rename = "message.received")]
    MessageReceived {
        state_manager_id: String,
        whatsapp_message_id: String,
        sent_at: DateTime<Utc>,
        text: Option<String>,
        media: Option<MediaData>,
    },
    #[serde(rename = "message.status")]
    MessageStatus {
        whatsapp_message_id: String,
        status: crate::messages::MessageStatus,
        timestamp: DateTime<Utc>,
        error: Option<ReceiptError>,
    },
    #[serde(rename = "customer.updated")]
    CustomerUpdated {
        phone_e164: String,
        display_name: Option<String>,
    },
}

impl Notification {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::ConversationCreated { .. } => "conversation.created",
            Self::ConversationUpdated { .. } => "conversation.updated",
            Self::ConversationClosed { .. } => "conversation.closed",
            Self::MessageReceived { .. } => "message.received",
            Self::MessageStatus { .. } => "message.status",
            Self::CustomerUpdated { .. } => "customer.updated",
        }
    }

    /// The existing conversation it is about, by its State Manager id.
    pub fn state_manager_id(&self) -> Option<&str> {
        match self {
            Self::ConversationUpdated {
                state_manager_id, ..
            }
            | Self::ConversationClosed {
                state_manager_id, ..
            }
            | Self::MessageReceived {
                state_manager_id, ..
            } => Some(state_manager_id),
            _ => None,
        }
    }
}

/// A field present (possibly `null`) versus absent.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

const TYPES: [&str; 6] = [
    "conversation.created",
    "conversation.updated",
    "conversation.closed",
    "message.received",
    "message.status",
    "customer.updated",
];

#[derive(Deserialize)]
struct Raw {
    event_id: Uuid,
    tenant_id: Uuid,
    occurred_at: DateTime<Utc>,
    #[serde(flatten)]
    notification: Notification,
}

/// Reads and checks one message body.
pub fn parse(body: &[u8]) -> Result<Envelope, Poison> {
    let value: Value = serde_json::from_slice(body).map_err(|e| Poison::NotJson(e.to_string()))?;
    if let Some(kind) = value.get("type").and_then(Value::as_str)
        && !TYPES.contains(&kind)
    {
        return Err(Poison::UnknownType(kind.chars().take(100).collect()));
    }
    let validator = VALIDATOR
        .as_ref()
        .map_err(|e| Poison::Schema(vec![format!("the committed schema does not load: {e}")]))?;
    let violations: Vec<String> = validator
        .iter_errors(&value)
        .take(MAX_VIOLATIONS)
        .map(|e| {
            let path = e.instance_path().to_string();
            format!("{}: {e}", if path.is_empty() { "/" } else { &path })
        })
        .collect();
    if !violations.is_empty() {
        return Err(Poison::Schema(violations));
    }
    let raw: Raw =
        serde_json::from_value(value).map_err(|e| Poison::Schema(vec![e.to_string()]))?;
    Ok(Envelope {
        event_id: raw.event_id,
        tenant_id: TenantId(raw.tenant_id),
        occurred_at: raw.occurred_at,
        notification: raw.notification,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn envelope(kind: &str, data: Value) -> Value {
        json!({
            "version": 1,
            "event_id": "0199a0a0-0000-7000-8000-000000000001",
            "type": kind,
            "tenant_id": "00000000-0000-4000-8000-000000000001",
            "occurred_at": "2026-11-24T10:00:00Z",
            "data": data,
        })
    }

    fn parsed(v: &Value) -> Result<Envelope, Poison> {
        parse(v.to_string().as_bytes())
    }

    fn valid() -> Vec<Value> {
        vec![
            envelope(
                "conversation.created",
                json!({
                "conversation": {"state_manager_id": "sm-1", "genesys_conversation_id": "g-1", "state": "waiting"},
                "customer": {"phone_e164": "+447946001800", "display_name": "Paula"}}),
            ),
            envelope(
                "conversation.updated",
                json!({"state_manager_id": "sm-1", "assigned_agent_id": null}),
            ),
            envelope(
                "conversation.closed",
                json!({"state_manager_id": "sm-1", "reason": "resolved"}),
            ),
            envelope(
                "message.received",
                json!({"state_manager_id": "sm-1", "whatsapp_message_id": "wamid.1",
                "sent_at": "2026-11-24T10:00:00Z", "text": "hola"}),
            ),
            envelope(
                "message.received",
                json!({"state_manager_id": "sm-1", "whatsapp_message_id": "wamid.2",
                "sent_at": "2026-11-24T10:00:00Z", "media": {"url": "https://cdn.example.com/p.jpg", "mime_type": "image/jpeg"}}),
            ),
            envelope(
                "message.status",
                json!({"whatsapp_message_id": "wamid.3", "status": "read", "timestamp": "2026-11-24T10:00:01Z"}),
            ),
            envelope(
                "message.status",
                json!({"whatsapp_message_id": "wamid.3", "status": "failed", "timestamp": "2026-11-24T10:00:01Z",
                "error": {"code": 131026, "title": "Message undeliverable"}}),
            ),
            envelope(
                "customer.updated",
                json!({"phone_e164": "+447946001800", "display_name": "Paula P."}),
            ),
        ]
    }

    #[test]
    fn every_type_is_read_into_its_variant() {
        let names: Vec<&str> = valid()
            .iter()
            .map(|v| parsed(v).unwrap().notification.type_name())
            .collect();
        assert_eq!(
            names,
            [
                "conversation.created",
                "conversation.updated",
                "conversation.closed",
                "message.received",
                "message.received",
                "message.status",
                "message.status",
                "customer.updated",
            ]
        );
        let updated = parsed(&valid()[1]).unwrap().notification;
        assert_eq!(
            updated,
            Notification::ConversationUpdated {
                state_manager_id: "sm-1".into(),
                state: None,
                assigned_agent_id: Some(None),
            },
            "an explicit null unassigns; an absent field changes nothing"
        );
    }

    #[test]
    fn what_is_not_the_contract_is_poison_with_its_reason() {
        assert_eq!(parse(b"{not json").unwrap_err().code(), "not_json");
        assert_eq!(
            parsed(&envelope("conversation.deleted", json!({}))).unwrap_err(),
            Poison::UnknownType("conversation.deleted".into())
        );
        let mut cases = Vec::new();
        let mut v = valid()[0].clone();
        v["version"] = json!(2);
        cases.push((v, "/version"));
        let mut v = valid()[0].clone();
        v["event_id"] = json!("not-a-uuid");
        cases.push((v, "/event_id"));
        let mut v = valid()[0].clone();
        v["occurred_at"] = json!("yesterday");
        cases.push((v, "/occurred_at"));
        let mut v = valid()[0].clone();
        v["data"]["customer"]["phone_e164"] = json!("0044 7946");
        cases.push((v, "/data/customer/phone_e164"));
        let mut v = valid()[5].clone();
        v["data"]["status"] = json!("seen");
        cases.push((v, "/data/status"));
        let v = envelope(
            "message.status",
            json!({"whatsapp_message_id": "w", "status": "failed", "timestamp": "2026-11-24T10:00:01Z"}),
        );
        cases.push((v, "/data"));
        let v = envelope(
            "message.received",
            json!({"state_manager_id": "sm", "whatsapp_message_id": "w", "sent_at": "2026-11-24T10:00:00Z"}),
        );
        cases.push((v, "/data"));
        let mut v = valid()[0].clone();
        v.as_object_mut().unwrap().remove("tenant_id");
        cases.push((v, "/"));
        for (v, path) in cases {
            match parsed(&v) {
                Err(Poison::Schema(violations)) => {
                    assert!(
                        violations
                            .iter()
                            .any(|m| m.starts_with(&format!("{path}:"))),
                        "{path}: {violations:?}"
                    );
                }
                other => panic!("{path}: expected a schema violation, got {other:?}"),
            }
        }
    }

    /// The README renders the schema; this keeps the rendering from drifting: every type has
    /// a row naming each of its `data` fields, nested ones included.
    #[test]
    fn the_readme_renders_every_field_of_every_type() {
        let readme = include_str!("../../../README.md");
        let schema: Value = serde_json::from_str(SCHEMA).unwrap();
        let defs = &schema["$defs"];
        fn fields(def: &Value, defs: &Value, out: &mut Vec<String>) {
            let def = match def["$ref"].as_str() {
                Some(r) => &defs[r.trim_start_matches("#/$defs/")],
                None => def,
            };
            if let Some(props) = def["properties"].as_object() {
                for (name, sub) in props {
                    out.push(name.clone());
                    fields(sub, defs, out);
                }
            }
        }
        for kind in TYPES {
            let row = readme
                .lines()
                .find(|l| l.starts_with(&format!("| `{kind}` |")))
                .unwrap_or_else(|| panic!("the README has no row for {kind}"));
            let mut names = Vec::new();
            fields(&defs[kind.replace('.', "_")], defs, &mut names);
            assert!(!names.is_empty(), "{kind}");
            for name in names {
                assert!(
                    row.contains(&format!("`{name}`")),
                    "the README row of {kind} lacks {name}"
                );
            }
        }
    }
}
