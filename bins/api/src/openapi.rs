//! The OpenAPI document as served at `/openapi.json`: the one poem-openapi derives from the
//! operations, plus what it has no attribute for: the links between operations, and
//! `additionalProperties: false` on the objects that refuse unknown fields.
//!
//! Links tell a generated client, and a stateful fuzzer, which response value feeds which
//! request: a conversation id from the list opens, changes, transfers and closes it; a message
//! id from a send reads it back. `docs/openapi.json` is the committed snapshot of this document;
//! a test fails when the two differ.

use serde_json::{Map, Value, json};

/// The contract's version, independent of the crate's: bump the major for a breaking change
/// (`scripts/contract` refuses one otherwise).
pub const CONTRACT_VERSION: &str = "1.1.0";

/// Operations that take a conversation `id` in the path.
const CONVERSATION_OPERATIONS: [&str; 6] = [
    "getConversation",
    "updateConversation",
    "transferConversation",
    "closeConversation",
    "listMessages",
    "sendMessage",
];

/// Operations that take a customer `id` in the path.
const CUSTOMER_OPERATIONS: [&str; 3] = ["getCustomer", "updateCustomer", "getCustomerHistory"];

/// Operations that take a message `id` in the path.
const MESSAGE_OPERATIONS: [&str; 2] = ["getMessage", "updateMessageStatus"];

/// Which response (operation, status) yields an id, where in its body, and for which operations.
const LINKS: &[(&str, &str, &str, &[&str])] = &[
    (
        "listConversations",
        "200",
        "/items/0/id",
        &CONVERSATION_OPERATIONS,
    ),
    ("getConversation", "200", "/id", &CONVERSATION_OPERATIONS),
    (
        "getConversation",
        "200",
        "/customer/id",
        &CUSTOMER_OPERATIONS,
    ),
    (
        "listConversations",
        "200",
        "/items/0/customer/id",
        &CUSTOMER_OPERATIONS,
    ),
    ("getCustomer", "200", "/id", &CUSTOMER_OPERATIONS),
    ("updateCustomer", "200", "/id", &CUSTOMER_OPERATIONS),
    ("updateConversation", "200", "/id", &CONVERSATION_OPERATIONS),
    (
        "transferConversation",
        "200",
        "/id",
        &CONVERSATION_OPERATIONS,
    ),
    ("closeConversation", "200", "/id", &CONVERSATION_OPERATIONS),
    ("listMessages", "200", "/items/0/id", &MESSAGE_OPERATIONS),
    ("sendMessage", "202", "/id", &MESSAGE_OPERATIONS),
    ("getMessage", "200", "/id", &MESSAGE_OPERATIONS),
    (
        "searchMessages",
        "200",
        "/items/0/message/id",
        &MESSAGE_OPERATIONS,
    ),
    (
        "searchMessages",
        "200",
        "/items/0/conversation/id",
        &CONVERSATION_OPERATIONS,
    ),
    ("listTemplates", "200", "/items/0/id", &["getTemplate"]),
    (
        "getCustomerHistory",
        "200",
        "/items/0/conversation/id",
        &CONVERSATION_OPERATIONS,
    ),
];

/// The objects declared `#[oai(deny_unknown_fields)]`: a message status update says only its
/// status, and `failure_reason` with `failed` alone.
const CLOSED_OBJECTS: [&str; 2] = ["StatusReached", "StatusFailed"];

/// Adds the links and the closed objects to poem-openapi's document (`spec` is its JSON).
pub fn document(spec: &str) -> anyhow::Result<Value> {
    let mut doc: Value = serde_json::from_str(spec)?;
    for name in CLOSED_OBJECTS {
        let schema = doc
            .pointer_mut(&format!("/components/schemas/{name}"))
            .and_then(Value::as_object_mut)
            .ok_or_else(|| anyhow::anyhow!("no schema {name} to close"))?;
        schema.insert("additionalProperties".into(), Value::Bool(false));
    }
    for (from, status, pointer, targets) in LINKS {
        if let Some(missing) = targets
            .iter()
            .find(|t| operation_mut(&mut doc, t).is_none())
        {
            anyhow::bail!("a link from {from} names {missing}, which the document lacks");
        }
        let response = operation_mut(&mut doc, from)
            .and_then(|op| op.pointer_mut(&format!("/responses/{status}")))
            .and_then(Value::as_object_mut)
            .ok_or_else(|| anyhow::anyhow!("no response {status} of {from} to link from"))?;
        let links = response
            .entry("links")
            .or_insert_with(|| Value::Object(Map::new()));
        for target in *targets {
            // A response may feed the same operation from two places (a search hit's message
            // and its conversation); the link's name says which.
            let name = if *from == "searchMessages" {
                format!(
                    "{target}From{}",
                    if pointer.contains("message") {
                        "Message"
                    } else {
                        "Conversation"
                    }
                )
            } else {
                (*target).to_string()
            };
            links[name] = json!({
                "operationId": target,
                "parameters": { "id": format!("$response.body#{pointer}") },
            });
        }
    }
    Ok(doc)
}

/// The paths the document declares and the methods of each: for the `Allow` header of a 405
/// (RFC 9110 asks for one; poem's router does not say which methods a path has), and for the
/// route a request span is named by.
#[derive(Debug, Clone, Default)]
pub struct Methods(Vec<(Vec<String>, String)>);

impl Methods {
    pub fn of(doc: &Value) -> Self {
        let paths = doc.get("paths").and_then(Value::as_object);
        Self(
            paths
                .into_iter()
                .flatten()
                .map(|(template, item)| {
                    let segments = template.split('/').map(str::to_string).collect();
                    let methods: Vec<String> = item
                        .as_object()
                        .into_iter()
                        .flat_map(|ops| ops.keys())
                        .map(|m| m.to_uppercase())
                        .collect();
                    (segments, methods.join(", "))
                })
                .collect(),
        )
    }

    /// The methods of the path (relative to the document's server, `/api`) that matches `path`.
    pub fn allowed(&self, path: &str) -> Option<&str> {
        self.matching(path).map(|(_, methods)| methods.as_str())
    }

    /// The template (`/conversations/{id}`) of the path that matches `path`.
    pub fn template(&self, path: &str) -> Option<String> {
        self.matching(path).map(|(template, _)| template.join("/"))
    }

    fn matching(&self, path: &str) -> Option<&(Vec<String>, String)> {
        let segments: Vec<&str> = path.split('/').collect();
        self.0.iter().find(|(template, _)| {
            template.len() == segments.len()
                && template
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()))
        })
    }
}

fn operation_mut<'a>(doc: &'a mut Value, operation_id: &str) -> Option<&'a mut Value> {
    doc.get_mut("paths")?
        .as_object_mut()?
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .find(|op| op.get("operationId").and_then(Value::as_str) == Some(operation_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_s_methods_and_route_come_from_its_template() {
        let doc = json!({"paths": {
            "/conversations/{id}": {"get": {}, "patch": {}},
            "/conversations/counts": {"get": {}},
        }});
        let methods = Methods::of(&doc);
        assert_eq!(methods.allowed("/conversations/abc"), Some("GET, PATCH"));
        assert_eq!(methods.allowed("/conversations/counts"), Some("GET"));
        assert_eq!(methods.allowed("/conversations/"), None);
        assert_eq!(methods.allowed("/nothing"), None);
        // The route a span is named by: the template, never the ids in the path.
        assert_eq!(
            methods.template("/conversations/abc").as_deref(),
            Some("/conversations/{id}")
        );
        assert_eq!(methods.template("/nothing"), None);
    }

    #[test]
    fn every_link_names_an_operation_of_the_document() {
        let spec = json!({
            "paths": {
                "/a": {"get": {"operationId": "listConversations", "responses": {"200": {}}}},
            },
            "components": {"schemas": {"StatusReached": {}, "StatusFailed": {}}},
        });
        let err = document(&spec.to_string()).unwrap_err();
        assert!(err.to_string().contains("names getConversation"), "{err}");
    }
}
