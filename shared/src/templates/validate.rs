//! The checks WhatsApp applies to a template message, applied before we accept it, so that a
//! send that WhatsApp would refuse gets a 422 now instead of a `failed` status later; and the
//! text the customer will see, rendered for history and search.
//!
//! Sources (Meta for Developers, WhatsApp Business Platform):
//! - Template components (`/docs/whatsapp/business-management-api/message-templates/components`):
//!   header text at most 60 characters with at most one variable; body at most 1,024; footer at
//!   most 60, without variables; a URL button's URL may end in one variable; a copy-code button's
//!   code is at most 15 characters.
//! - Cloud API error codes (`/docs/whatsapp/cloud-api/support/error-codes`): 132000 (the number of
//!   parameters does not match the template's), 132012 (a parameter of the wrong kind, e.g. a
//!   header image where the template has a video), 132015/132016 (paused or disabled template),
//!   132018 (a parameter may not contain a new line or a tab, nor more than four consecutive
//!   spaces).
//! - Named parameters (`parameter_format: NAMED`) are matched by name and must all be given.
//! - Only an `APPROVED` template can be sent.
//!
//! Where this differs from the list: WhatsApp limits the rendered *body* of a template
//! message to 1,024 characters, and so do we; an OTP button's code, like a copy code, is at most
//! 15 characters.
//!
//! The parameters of a send: `{"header": {...}, "body": [...] | {...}, "buttons": [...]}`, or,
//! for a template with body variables only, just the body's array or object.
//! - `header`: `{"text": "..."}` for a text header with a variable; `{"image"|"video"|"document":
//!   {"link": "https://..."} | {"id": "<media id>"}}` for a media header.
//! - `body`: `["Ana", "42"]` (positional, in order) or `{"first_name": "Ana"}` (named).
//! - `buttons`: `[{"index": 0, "text": "<url suffix or one-time code>"}]` for URL and OTP buttons,
//!   `[{"index": 1, "coupon_code": "SAVE10"}]` for a copy-code button; `index` is the button's
//!   position in the template.

use serde::Serialize;
use serde_json::{Map, Value};

use super::{Button, Header, MediaKind, ParameterFormat, TemplateSpec, fill, placeholders};

pub const MAX_HEADER_CHARS: usize = 60;
pub const MAX_BODY_CHARS: usize = 1024;
pub const MAX_FOOTER_CHARS: usize = 60;
pub const MAX_URL_CHARS: usize = 2000;
pub const MAX_CODE_CHARS: usize = 15;

/// One offending parameter: where it is in the request, the rule it breaks, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParamError {
    pub path: String,
    pub rule: &'static str,
    pub message: String,
}

/// What the customer will see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    pub header: Option<String>,
    pub body: String,
    pub footer: Option<String>,
    pub buttons: Vec<RenderedButton>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedButton {
    pub index: usize,
    pub text: String,
    /// A URL button's link, its variable filled in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl Rendered {
    /// The message as one text: header, body and footer, a blank line apart.
    pub fn text(&self) -> String {
        [
            self.header.as_deref(),
            Some(self.body.as_str()),
            self.footer.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("\n\n")
    }
}

/// Checks `params` against the template; renders it when every check passes, otherwise
/// returns one error per offending parameter.
pub fn validate(template: &TemplateSpec, params: &Value) -> Result<Rendered, Vec<ParamError>> {
    let mut errors = Errors::default();
    if !template.is_approved() {
        errors.add(
            "template",
            "approved",
            format!(
                "template {:?} ({}) is {}; only an APPROVED template can be sent",
                template.name,
                template.language,
                if template.status.is_empty() {
                    "of unknown status"
                } else {
                    &template.status
                }
            ),
        );
    }
    let params = Params::split(params, &mut errors);
    let header = check_header(template, params.header, &mut errors);
    let body = check_body(template, params.body, &mut errors);
    let buttons = check_buttons(template, params.buttons, &mut errors);

    let rendered = Rendered {
        header,
        body,
        footer: template.footer.clone(),
        buttons,
    };
    for (part, text, max) in [
        ("header", rendered.header.as_deref(), MAX_HEADER_CHARS),
        ("body", Some(rendered.body.as_str()), MAX_BODY_CHARS),
        ("footer", rendered.footer.as_deref(), MAX_FOOTER_CHARS),
    ] {
        let chars = text.map_or(0, |t| t.chars().count());
        if chars > max {
            errors.add(
                &format!("parameters.{part}"),
                "rendered_length",
                format!("the rendered {part} has {chars} characters; WhatsApp allows {max}"),
            );
        }
    }
    errors.into_result(rendered)
}

#[derive(Default)]
struct Errors(Vec<ParamError>);

impl Errors {
    fn add(&mut self, path: &str, rule: &'static str, message: String) {
        self.0.push(ParamError {
            path: path.to_string(),
            rule,
            message,
        });
    }

    fn into_result<T>(self, ok: T) -> Result<T, Vec<ParamError>> {
        if self.0.is_empty() {
            Ok(ok)
        } else {
            Err(self.0)
        }
    }
}

struct Params<'a> {
    header: Option<&'a Value>,
    body: Option<&'a Value>,
    buttons: Option<&'a Value>,
}

impl<'a> Params<'a> {
    fn split(params: &'a Value, errors: &mut Errors) -> Self {
        match params {
            Value::Null => Self {
                header: None,
                body: None,
                buttons: None,
            },
            Value::Array(_) => Self {
                header: None,
                body: Some(params),
                buttons: None,
            },
            Value::Object(map)
                if ["header", "body", "buttons"]
                    .iter()
                    .any(|k| map.contains_key(*k)) =>
            {
                for key in map
                    .keys()
                    .filter(|k| !["header", "body", "buttons"].contains(&k.as_str()))
                {
                    errors.add(
                        &format!("parameters.{key}"),
                        "unknown",
                        "expected only header, body and buttons".into(),
                    );
                }
                Self {
                    header: map.get("header"),
                    body: map.get("body"),
                    buttons: map.get("buttons"),
                }
            }
            Value::Object(_) => Self {
                header: None,
                body: Some(params),
                buttons: None,
            },
            _ => {
                errors.add(
                    "parameters",
                    "type",
                    "expected an object {header, body, buttons}, or the body's array or object"
                        .into(),
                );
                Self {
                    header: None,
                    body: None,
                    buttons: None,
                }
            }
        }
    }
}

/// The rules every text parameter follows (WhatsApp error 132018), and non-empty.
fn check_text(path: &str, value: &Value, errors: &mut Errors) -> Option<String> {
    let Some(text) = value.as_str() else {
        errors.add(path, "type", "must be a string".into());
        return None;
    };
    let before = errors.0.len();
    if text.trim().is_empty() {
        errors.add(path, "not_empty", "must not be empty".into());
    }
    if text.contains(['\n', '\t']) {
        errors.add(
            path,
            "no_newline_or_tab",
            "must not contain a new line or a tab".into(),
        );
    }
    if text.contains("     ") {
        errors.add(
            path,
            "consecutive_spaces",
            "must not contain more than four consecutive spaces".into(),
        );
    }
    (errors.0.len() == before).then(|| text.to_string())
}

fn check_header(
    template: &TemplateSpec,
    given: Option<&Value>,
    errors: &mut Errors,
) -> Option<String> {
    const PATH: &str = "parameters.header";
    match &template.header {
        None | Some(Header::Location) => {
            if given.is_some() && template.header.is_none() {
                errors.add(PATH, "unexpected", "this template has no header".into());
            }
            None
        }
        Some(Header::Text(text)) => {
            let variables = placeholders(text);
            if variables.len() > 1 {
                // Meta refuses such a template; report it rather than guess.
                errors.add(
                    PATH,
                    "one_header_variable",
                    "the template's header has more than one variable".into(),
                );
                return Some(text.clone());
            }
            let Some(variable) = variables.first() else {
                if given.is_some() {
                    errors.add(
                        PATH,
                        "unexpected",
                        "this template's header takes no parameter".into(),
                    );
                }
                return Some(text.clone());
            };
            let Some(given) = given else {
                errors.add(
                    PATH,
                    "required",
                    format!(
                        "the header needs its variable {{{{{variable}}}}}: {{\"text\": \"...\"}}"
                    ),
                );
                return Some(text.clone());
            };
            let value = match given.get("text") {
                Some(value) => check_text(&format!("{PATH}.text"), value, errors),
                None => {
                    errors.add(PATH, "type", "expected {\"text\": \"...\"}".into());
                    None
                }
            };
            Some(match value {
                Some(value) => fill(text, |_| Some(value.clone())),
                None => text.clone(),
            })
        }
        Some(Header::Media(kind)) => {
            check_media(*kind, given, errors);
            None
        }
    }
}

fn check_media(kind: MediaKind, given: Option<&Value>, errors: &mut Errors) {
    const PATH: &str = "parameters.header";
    let name = kind.as_str();
    let Some(given) = given else {
        errors.add(PATH, "required", format!("this template's header is a {name}: give {{\"{name}\": {{\"link\": \"https://...\"}}}} or {{\"{name}\": {{\"id\": \"...\"}}}}"));
        return;
    };
    let Some(media) = given.get(name) else {
        let other = ["image", "video", "document", "text"]
            .into_iter()
            .find(|k| given.get(*k).is_some());
        errors.add(
            PATH,
            "media_kind",
            match other {
                Some(other) => format!("the template's header is a {name}, not a {other}"),
                None => format!("expected {{\"{name}\": {{\"link\" or \"id\"}}}}"),
            },
        );
        return;
    };
    let path = format!("{PATH}.{name}");
    match (
        media.get("link").and_then(Value::as_str),
        media.get("id").and_then(Value::as_str),
    ) {
        (Some(link), None) => {
            if !link.starts_with("https://") || link.len() <= "https://".len() {
                errors.add(
                    &format!("{path}.link"),
                    "https_url",
                    "must be an https:// URL".into(),
                );
            }
        }
        (None, Some(id)) if !id.trim().is_empty() => {}
        _ => errors.add(
            &path,
            "link_or_id",
            "give exactly one of a non-empty link or id".into(),
        ),
    }
}

fn check_body(template: &TemplateSpec, given: Option<&Value>, errors: &mut Errors) -> String {
    const PATH: &str = "parameters.body";
    let variables = placeholders(&template.body);
    let mut values: Map<String, Value> = Map::new();
    match (template.parameter_format, given) {
        (_, None) if variables.is_empty() => {}
        (_, None) => errors.add(
            PATH,
            "required",
            format!(
                "the body has {} variable(s): {}",
                variables.len(),
                braces(&variables)
            ),
        ),
        (ParameterFormat::Positional, Some(Value::Array(items))) => {
            if items.len() != variables.len() {
                errors.add(
                    PATH,
                    "count",
                    format!(
                        "the body has {} variable(s) but {} value(s) were given",
                        variables.len(),
                        items.len()
                    ),
                );
            }
            for (i, item) in items.iter().enumerate() {
                let path = format!("{PATH}[{i}]");
                if i >= variables.len() {
                    continue;
                }
                if let Some(text) = check_text(&path, item, errors) {
                    values.insert((i + 1).to_string(), Value::String(text));
                }
            }
        }
        (ParameterFormat::Named, Some(Value::Object(map))) => {
            for variable in &variables {
                let path = format!("{PATH}.{variable}");
                match map.get(*variable) {
                    Some(value) => {
                        if let Some(text) = check_text(&path, value, errors) {
                            values.insert((*variable).to_string(), Value::String(text));
                        }
                    }
                    None => errors.add(
                        &path,
                        "required",
                        format!("the body's variable {{{{{variable}}}}} has no value"),
                    ),
                }
            }
            for key in map.keys().filter(|k| !variables.contains(&k.as_str())) {
                errors.add(
                    &format!("{PATH}.{key}"),
                    "unknown",
                    format!("the body has no variable {{{{{key}}}}}"),
                );
            }
        }
        (ParameterFormat::Positional, Some(_)) => errors.add(
            PATH,
            "type",
            "this template's variables are positional: give an array of strings, in order".into(),
        ),
        (ParameterFormat::Named, Some(_)) => errors.add(
            PATH,
            "type",
            "this template's variables are named: give an object of strings by name".into(),
        ),
    }
    fill(&template.body, |name| {
        values.get(name).and_then(Value::as_str).map(str::to_string)
    })
}

fn braces(variables: &[&str]) -> String {
    variables
        .iter()
        .map(|v| format!("{{{{{v}}}}}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a button takes at send time.
enum Takes {
    Nothing,
    UrlSuffix,
    Code { key: &'static str },
}

fn takes(button: &Button) -> Takes {
    match button {
        Button::Url { url, .. } if !placeholders(url).is_empty() => Takes::UrlSuffix,
        Button::CopyCode => Takes::Code { key: "coupon_code" },
        Button::Otp => Takes::Code { key: "text" },
        _ => Takes::Nothing,
    }
}

fn check_buttons(
    template: &TemplateSpec,
    given: Option<&Value>,
    errors: &mut Errors,
) -> Vec<RenderedButton> {
    const PATH: &str = "parameters.buttons";
    let given: &[Value] = match given {
        None => &[],
        Some(Value::Array(items)) => items,
        Some(_) => {
            errors.add(PATH, "type", "expected an array of {index, ...}".into());
            &[]
        }
    };
    let mut by_index: Vec<Option<&Value>> = vec![None; template.buttons.len()];
    for (i, item) in given.iter().enumerate() {
        let path = format!("{PATH}[{i}]");
        let index = item
            .get("index")
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok());
        match index {
            Some(index)
                if index < template.buttons.len()
                    && !matches!(takes(&template.buttons[index]), Takes::Nothing) =>
            {
                if by_index[index].replace(item).is_some() {
                    errors.add(
                        &format!("{path}.index"),
                        "unique",
                        format!("button {index} is given twice"),
                    );
                }
            }
            Some(index) => errors.add(
                &format!("{path}.index"),
                "unknown",
                format!("the template has no button {index} that takes a parameter"),
            ),
            None => errors.add(
                &format!("{path}.index"),
                "required",
                "each button parameter needs the button's index (0-based)".into(),
            ),
        }
    }
    let mut rendered = Vec::new();
    for (index, button) in template.buttons.iter().enumerate() {
        let path = format!("{PATH}[index={index}]");
        let (text, url) = match button {
            Button::QuickReply { text } | Button::PhoneNumber { text } => (text.clone(), None),
            Button::Url { text, url } => (text.clone(), Some(url.clone())),
            Button::CopyCode => ("Copy code".to_string(), None),
            Button::Otp => ("Copy code".to_string(), None),
            Button::Other(kind) => (kind.clone(), None),
        };
        let mut url = url;
        match (takes(button), by_index[index]) {
            (Takes::Nothing, _) => {}
            (_, None) => errors.add(
                &path,
                "required",
                format!("button {index} needs its parameter"),
            ),
            (Takes::UrlSuffix, Some(item)) => {
                let value = item
                    .get("text")
                    .map(|v| check_text(&format!("{path}.text"), v, errors));
                match value {
                    Some(Some(suffix)) => {
                        let filled = url.as_deref().map(|u| fill(u, |_| Some(suffix.clone())));
                        if filled
                            .as_ref()
                            .is_some_and(|u| u.chars().count() > MAX_URL_CHARS)
                        {
                            errors.add(
                                &format!("{path}.text"),
                                "rendered_length",
                                format!("the button's URL would exceed {MAX_URL_CHARS} characters"),
                            );
                        }
                        url = filled;
                    }
                    Some(None) => {}
                    None => errors.add(
                        &format!("{path}.text"),
                        "required",
                        "a URL button takes {\"index\": n, \"text\": \"<the URL's ending>\"}"
                            .into(),
                    ),
                }
            }
            (Takes::Code { key }, Some(item)) => match item.get(key) {
                Some(value) => {
                    let path = format!("{path}.{key}");
                    if let Some(code) = check_text(&path, value, errors)
                        && code.chars().count() > MAX_CODE_CHARS
                    {
                        errors.add(
                            &path,
                            "max_length",
                            format!("at most {MAX_CODE_CHARS} characters"),
                        );
                    }
                }
                None => errors.add(
                    &format!("{path}.{key}"),
                    "required",
                    format!("this button takes {{\"index\": {index}, \"{key}\": \"...\"}}"),
                ),
            },
        }
        rendered.push(RenderedButton { index, text, url });
    }
    rendered
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(template: Value) -> TemplateSpec {
        TemplateSpec::from_graph(&template).unwrap()
    }

    fn order_update() -> TemplateSpec {
        spec(json!({
            "name": "order_update", "language": "en_US", "status": "APPROVED",
            "parameter_format": "POSITIONAL", "category": "UTILITY",
            "components": [
                {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"},
                {"type": "BODY", "text": "Hi {{1}}, your order {{2}} ships today."},
                {"type": "FOOTER", "text": "Reply STOP to opt out"},
                {"type": "BUTTONS", "buttons": [
                    {"type": "URL", "text": "Track", "url": "https://shop.example/track/{{1}}"},
                    {"type": "QUICK_REPLY", "text": "Thanks"},
                    {"type": "COPY_CODE", "example": "SAVE10"},
                ]},
            ],
        }))
    }

    fn valid_params() -> Value {
        json!({
            "header": {"text": "#42"},
            "body": ["Ana", "#42"],
            "buttons": [{"index": 0, "text": "42"}, {"index": 2, "coupon_code": "SAVE10"}],
        })
    }

    fn rules(result: Result<Rendered, Vec<ParamError>>) -> Vec<(String, &'static str)> {
        result
            .unwrap_err()
            .into_iter()
            .map(|e| (e.path, e.rule))
            .collect()
    }

    fn with(mut params: Value, pointer: &str, value: Value) -> Value {
        *params.pointer_mut(pointer).unwrap() = value;
        params
    }

    #[test]
    fn a_valid_send_is_rendered_as_the_customer_sees_it() {
        let rendered = validate(&order_update(), &valid_params()).unwrap();
        assert_eq!(rendered.header.as_deref(), Some("Order #42"));
        assert_eq!(rendered.body, "Hi Ana, your order #42 ships today.");
        assert_eq!(rendered.footer.as_deref(), Some("Reply STOP to opt out"));
        assert_eq!(
            rendered.buttons[0].url.as_deref(),
            Some("https://shop.example/track/42")
        );
        assert_eq!(
            rendered.text(),
            "Order #42\n\nHi Ana, your order #42 ships today.\n\nReply STOP to opt out"
        );
    }

    #[test]
    fn only_an_approved_template_is_sendable() {
        for status in [
            "PENDING",
            "REJECTED",
            "PAUSED",
            "DISABLED",
            "IN_APPEAL",
            "SOMETHING_NEW",
        ] {
            let mut t = order_update();
            t.status = status.into();
            assert_eq!(
                rules(validate(&t, &valid_params())),
                [("template".to_string(), "approved")],
                "{status}"
            );
        }
    }

    #[test]
    fn positional_body_parameters_must_match_in_number() {
        let few = with(valid_params(), "/body", json!(["Ana"]));
        assert_eq!(
            rules(validate(&order_update(), &few)),
            [("parameters.body".into(), "count")]
        );
        let many = with(valid_params(), "/body", json!(["Ana", "#42", "extra"]));
        assert_eq!(
            rules(validate(&order_update(), &many)),
            [("parameters.body".into(), "count")]
        );
        let named = with(valid_params(), "/body", json!({"1": "Ana"}));
        assert_eq!(
            rules(validate(&order_update(), &named)),
            [("parameters.body".into(), "type")]
        );
        let missing = json!({"header": {"text": "#42"}, "buttons": valid_params()["buttons"]});
        assert_eq!(
            rules(validate(&order_update(), &missing)),
            [("parameters.body".into(), "required")]
        );
    }

    #[test]
    fn named_body_parameters_are_matched_by_name() {
        let t = spec(json!({
            "name": "welcome", "language": "es", "status": "APPROVED", "parameter_format": "NAMED",
            "components": [{"type": "BODY", "text": "Hola {{first_name}}, tu pedido {{order_id}}."}],
        }));
        let ok = validate(&t, &json!({"first_name": "Ana", "order_id": "7"})).unwrap();
        assert_eq!(ok.body, "Hola Ana, tu pedido 7.");
        assert_eq!(
            rules(validate(&t, &json!({"first_name": "Ana", "orderid": "7"}))),
            [
                ("parameters.body.order_id".to_string(), "required"),
                ("parameters.body.orderid".to_string(), "unknown"),
            ]
        );
        assert_eq!(
            rules(validate(&t, &json!(["Ana", "7"]))),
            [("parameters.body".into(), "type")]
        );
    }

    #[test]
    fn a_parameter_is_a_non_empty_string_without_newlines_tabs_or_five_spaces() {
        for (value, rule) in [
            (json!(""), "not_empty"),
            (json!("   "), "not_empty"),
            (json!("two\nlines"), "no_newline_or_tab"),
            (json!("a\ttab"), "no_newline_or_tab"),
            (json!("five     spaces"), "consecutive_spaces"),
            (json!(42), "type"),
        ] {
            let params = with(valid_params(), "/body/0", value.clone());
            assert_eq!(
                rules(validate(&order_update(), &params)),
                [("parameters.body[0]".into(), rule)],
                "{value}"
            );
        }
        let four = with(valid_params(), "/body/0", json!("four    spaces"));
        assert!(validate(&order_update(), &four).is_ok());
    }

    #[test]
    fn a_text_header_takes_exactly_its_one_variable() {
        let missing = json!({"body": ["Ana", "#42"], "buttons": valid_params()["buttons"]});
        assert_eq!(
            rules(validate(&order_update(), &missing)),
            [("parameters.header".into(), "required")]
        );
        let bad = with(valid_params(), "/header/text", json!("a\nb"));
        assert_eq!(
            rules(validate(&order_update(), &bad)),
            [("parameters.header.text".into(), "no_newline_or_tab")]
        );
        let two = spec(
            json!({"name": "t", "language": "en", "status": "APPROVED", "components": [
            {"type": "HEADER", "format": "TEXT", "text": "{{1}} and {{2}}"}, {"type": "BODY", "text": "Hi"}]}),
        );
        assert_eq!(
            rules(validate(&two, &json!({"header": {"text": "x"}}))),
            [("parameters.header".into(), "one_header_variable")]
        );
        let plain = spec(
            json!({"name": "t", "language": "en", "status": "APPROVED", "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Hello"}, {"type": "BODY", "text": "Hi"}]}),
        );
        assert!(validate(&plain, &Value::Null).is_ok());
        assert_eq!(
            rules(validate(&plain, &json!({"header": {"text": "x"}}))),
            [("parameters.header".into(), "unexpected")]
        );
    }

    #[test]
    fn a_media_header_needs_a_link_or_id_of_its_kind() {
        let t = spec(
            json!({"name": "promo", "language": "en", "status": "APPROVED", "components": [
            {"type": "HEADER", "format": "IMAGE"}, {"type": "BODY", "text": "New in!"}]}),
        );
        assert!(
            validate(
                &t,
                &json!({"header": {"image": {"link": "https://cdn.example/a.jpg"}}})
            )
            .is_ok()
        );
        assert!(validate(&t, &json!({"header": {"image": {"id": "1234567890"}}})).is_ok());
        for (params, path, rule) in [
            (json!({}), "parameters.header", "required"),
            (
                json!({"header": {"video": {"link": "https://cdn.example/a.mp4"}}}),
                "parameters.header",
                "media_kind",
            ),
            (
                json!({"header": {"image": {"link": "http://cdn.example/a.jpg"}}}),
                "parameters.header.image.link",
                "https_url",
            ),
            (
                json!({"header": {"image": {}}}),
                "parameters.header.image",
                "link_or_id",
            ),
            (
                json!({"header": {"image": {"link": "https://x.example/a", "id": "1"}}}),
                "parameters.header.image",
                "link_or_id",
            ),
        ] {
            let params = if params == json!({}) {
                Value::Null
            } else {
                params
            };
            assert_eq!(
                rules(validate(&t, &params)),
                [(path.to_string(), rule)],
                "{params}"
            );
        }
    }

    #[test]
    fn url_and_code_buttons_take_their_parameter() {
        let no_url = with(
            valid_params(),
            "/buttons",
            json!([{"index": 2, "coupon_code": "SAVE10"}]),
        );
        assert_eq!(
            rules(validate(&order_update(), &no_url)),
            [("parameters.buttons[index=0]".into(), "required")]
        );
        let long_code = with(
            valid_params(),
            "/buttons/1/coupon_code",
            json!("SIXTEEN-CHARS-XX"),
        );
        assert_eq!(
            rules(validate(&order_update(), &long_code)),
            [(
                "parameters.buttons[index=2].coupon_code".into(),
                "max_length"
            )]
        );
        let quick_reply = with(
            valid_params(),
            "/buttons/1",
            json!({"index": 1, "text": "x"}),
        );
        assert_eq!(
            rules(validate(&order_update(), &quick_reply)),
            [
                ("parameters.buttons[1].index".to_string(), "unknown"),
                ("parameters.buttons[index=2]".to_string(), "required"),
            ]
        );
        let bad_suffix = with(valid_params(), "/buttons/0/text", json!("a b\tc"));
        assert_eq!(
            rules(validate(&order_update(), &bad_suffix)),
            [(
                "parameters.buttons[index=0].text".into(),
                "no_newline_or_tab"
            )]
        );
        let otp = spec(
            json!({"name": "otp", "language": "en", "status": "APPROVED", "components": [
            {"type": "BODY", "text": "{{1}} is your code."},
            {"type": "BUTTONS", "buttons": [{"type": "OTP", "otp_type": "COPY_CODE", "text": "Copy code"}]}]}),
        );
        assert!(
            validate(
                &otp,
                &json!({"body": ["123456"], "buttons": [{"index": 0, "text": "123456"}]})
            )
            .is_ok()
        );
        assert_eq!(
            rules(validate(&otp, &json!({"body": ["123456"]}))),
            [("parameters.buttons[index=0]".to_string(), "required")]
        );
    }

    #[test]
    fn a_button_parameter_is_given_once_and_its_url_stays_within_the_limit() {
        let twice = with(
            valid_params(),
            "/buttons",
            json!([{"index": 0, "text": "1"}, {"index": 0, "text": "2"}, {"index": 2, "coupon_code": "C"}]),
        );
        assert_eq!(
            rules(validate(&order_update(), &twice)),
            [("parameters.buttons[1].index".into(), "unique")]
        );
        let long = with(valid_params(), "/buttons/0/text", json!("x".repeat(2000)));
        assert_eq!(
            rules(validate(&order_update(), &long)),
            [("parameters.buttons[index=0].text".into(), "rendered_length")]
        );
        let fits = with(valid_params(), "/buttons/0/text", json!("x".repeat(1960)));
        assert!(validate(&order_update(), &fits).is_ok());
    }

    #[test]
    fn rendered_parts_keep_within_whatsapps_limits() {
        let long = "x".repeat(1000);
        let body = with(valid_params(), "/body/0", json!(long));
        assert_eq!(
            rules(validate(&order_update(), &body)),
            [("parameters.body".into(), "rendered_length")]
        );
        let header = with(valid_params(), "/header/text", json!("y".repeat(60)));
        assert_eq!(
            rules(validate(&order_update(), &header)),
            [("parameters.header".into(), "rendered_length")]
        );
        let t = spec(
            json!({"name": "t", "language": "en", "status": "APPROVED", "components": [
            {"type": "BODY", "text": "Hi"}, {"type": "FOOTER", "text": "z".repeat(61)}]}),
        );
        assert_eq!(
            rules(validate(&t, &Value::Null)),
            [("parameters.footer".into(), "rendered_length")]
        );
    }

    #[test]
    fn placeholders_are_found_in_order_once_each() {
        assert_eq!(
            crate::templates::placeholders("{{1}} {{ 2 }} {{1}} {{name}} {{"),
            ["1", "2", "name"]
        );
        assert!(
            TemplateSpec::from_graph(&json!({"name": "x", "language": "en", "components": []}))
                .is_err()
        );
    }
}
