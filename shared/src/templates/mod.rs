//! WhatsApp message templates: their shape as the WhatsApp Business Management API returns
//! them, and the checks a template message must pass before it is sent ([`validate`]).

pub mod cache;
pub mod repo;
pub mod service;
pub mod sync;
pub mod validate;

use serde_json::Value;

pub use validate::{ParamError, Rendered, RenderedButton, validate};

/// How a template names its variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParameterFormat {
    /// `{{1}}`, `{{2}}`, …
    Positional,
    /// `{{first_name}}`, …
    Named,
}

/// The kind of media a header holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Image,
    Video,
    Document,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
            Self::Document => "document",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    Text(String),
    Media(MediaKind),
    /// A location header (sent with its coordinates; no text to check here).
    Location,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Button {
    QuickReply {
        text: String,
    },
    /// `url` may end in one variable, filled at send time.
    Url {
        text: String,
        url: String,
    },
    PhoneNumber {
        text: String,
    },
    /// Copies a coupon code given at send time.
    CopyCode,
    /// An authentication template's one-time-password button; the code is given at send time.
    Otp,
    /// Any other type, kept as received (it takes no parameter we know of).
    Other(String),
}

/// A template's parts that decide what a send must supply and what the customer sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSpec {
    pub name: String,
    pub language: String,
    /// As WhatsApp reports it (`APPROVED`, `PENDING`, `REJECTED`, `PAUSED`, …).
    pub status: String,
    pub parameter_format: ParameterFormat,
    pub header: Option<Header>,
    pub body: String,
    pub footer: Option<String>,
    pub buttons: Vec<Button>,
}

impl TemplateSpec {
    /// Reads a template object of the Business Management API (`GET /{waba-id}/message_templates`).
    /// Unknown component and button types are tolerated; a template without a body is not.
    pub fn from_graph(template: &Value) -> Result<Self, String> {
        let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
        let name = text(template, "name").ok_or("template without a name")?;
        let language = text(template, "language").ok_or("template without a language")?;
        let status = text(template, "status").unwrap_or_default();
        let parameter_format = match text(template, "parameter_format").as_deref() {
            Some("NAMED") => ParameterFormat::Named,
            _ => ParameterFormat::Positional,
        };
        let mut spec = Self {
            name,
            language,
            status,
            parameter_format,
            header: None,
            body: String::new(),
            footer: None,
            buttons: Vec::new(),
        };
        let mut has_body = false;
        let components = template
            .get("components")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for component in components {
            match text(component, "type").as_deref() {
                Some("HEADER") => {
                    spec.header = Some(match text(component, "format").as_deref() {
                        Some("IMAGE") => Header::Media(MediaKind::Image),
                        Some("VIDEO") => Header::Media(MediaKind::Video),
                        Some("DOCUMENT") => Header::Media(MediaKind::Document),
                        Some("LOCATION") => Header::Location,
                        _ => Header::Text(text(component, "text").unwrap_or_default()),
                    });
                }
                Some("BODY") => {
                    spec.body = text(component, "text").unwrap_or_default();
                    has_body = true;
                }
                Some("FOOTER") => spec.footer = text(component, "text"),
                Some("BUTTONS") => {
                    let buttons = component
                        .get("buttons")
                        .and_then(Value::as_array)
                        .map(Vec::as_slice)
                        .unwrap_or_default();
                    spec.buttons = buttons.iter().map(button).collect();
                }
                _ => {}
            }
        }
        if !has_body {
            return Err(format!("template {:?} has no BODY component", spec.name));
        }
        Ok(spec)
    }

    pub fn is_approved(&self) -> bool {
        self.status == "APPROVED"
    }
}

fn button(b: &Value) -> Button {
    let text = |key: &str| {
        b.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    match b.get("type").and_then(Value::as_str).unwrap_or_default() {
        "QUICK_REPLY" => Button::QuickReply { text: text("text") },
        "URL" => Button::Url {
            text: text("text"),
            url: text("url"),
        },
        "PHONE_NUMBER" => Button::PhoneNumber { text: text("text") },
        "COPY_CODE" => Button::CopyCode,
        "OTP" => Button::Otp,
        other => Button::Other(other.to_string()),
    }
}

/// The variables of a template text, in order of appearance: `{{1}}` gives `"1"`,
/// `{{first_name}}` gives `"first_name"`.
pub fn placeholders(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            break;
        };
        let name = after[..end].trim();
        if !name.is_empty() && !found.contains(&name) {
            found.push(name);
        }
        rest = &after[end + 2..];
    }
    found
}

/// `text` with each `{{name}}` replaced by its value.
fn fill(text: &str, value_of: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            break;
        };
        out.push_str(&rest[..start]);
        match value_of(after[..end].trim()) {
            Some(value) => out.push_str(&value),
            None => out.push_str(&rest[start..start + end + 4]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}
