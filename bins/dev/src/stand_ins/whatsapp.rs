//! A stand-in WhatsApp Business Management API for the development stack: the demo tenant's account points
//! at it, so template-sync works without a Meta account. It serves a few pages of realistic
//! templates the way the Graph API does (`data`, `paging.cursors.after`, `paging.next`), and
//! answers error 190 to any other token.

use poem::web::{Json, Query};
use poem::{IntoResponse, Response, Route, get, handler};
use serde::Deserialize;
use serde_json::{Value, json};

/// The demo account's id and token (the stand-in accepts only this token).
pub const DEMO_WABA_ID: &str = "100000000000001";
pub const DEMO_ACCESS_TOKEN: &str = "dev-stand-in-access-token";
/// Development only: the key that encrypts access tokens in the dev database (32 bytes, base64).
pub const DEV_TOKEN_KEY: &str = "ZGV2LW9ubHkta2V5LWRvLW5vdC11c2UtaW4tcHJvZCE=";
const PAGE_SIZE: usize = 4;

/// Starts the stand-in on `addr`; returns its base URL.
pub async fn start(addr: std::net::SocketAddr) -> anyhow::Result<String> {
    let app = Route::new().at("/:version/:waba/message_templates", get(templates));
    let addr = super::serve(app, "WhatsApp API", addr).await?;
    Ok(format!("http://{addr}"))
}

#[derive(Debug, Deserialize)]
struct Paging {
    after: Option<String>,
}

#[handler]
fn templates(req: &poem::Request, paging: Query<Paging>) -> Response {
    let authorised = req
        .header("authorization")
        .is_some_and(|h| h == format!("Bearer {DEMO_ACCESS_TOKEN}"));
    if !authorised {
        return Json(json!({"error": {
            "message": "Invalid OAuth access token - Cannot parse access token",
            "type": "OAuthException", "code": 190, "fbtrace_id": "dev"}}))
        .with_status(poem::http::StatusCode::BAD_REQUEST)
        .into_response();
    }
    let all = demo_templates();
    let start = paging
        .after
        .as_deref()
        .and_then(|a| a.strip_prefix("page-"))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    let end = (start + PAGE_SIZE).min(all.len());
    let data: Vec<Value> = all
        .get(start..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    let mut paging =
        json!({"cursors": {"before": format!("page-{start}"), "after": format!("page-{end}")}});
    if end < all.len() {
        paging["next"] = json!(format!("{}?after=page-{end}", req.uri().path()));
    }
    Json(json!({ "data": data, "paging": paging })).into_response()
}

fn template(
    id: &str,
    name: &str,
    language: &str,
    status: &str,
    category: &str,
    components: Value,
) -> Value {
    json!({
        "id": id, "name": name, "language": language, "status": status, "category": category,
        "parameter_format": if components.to_string().contains("{{1}}") { "POSITIONAL" } else { "NAMED" },
        "components": components,
        "quality_score": {"score": "GREEN"},
    })
}

/// Ten templates over three pages: positional and named, text and media headers, URL, quick
/// reply, copy-code and OTP buttons, four languages, and a few statuses other than APPROVED.
fn demo_templates() -> Vec<Value> {
    vec![
        template(
            "900000000000001",
            "order_update",
            "en_US",
            "APPROVED",
            "UTILITY",
            json!([
            {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"},
            {"type": "BODY", "text": "Hi {{1}}, your order {{2}} has shipped and should arrive on {{3}}."},
            {"type": "FOOTER", "text": "Reply STOP to opt out"},
            {"type": "BUTTONS", "buttons": [
                {"type": "URL", "text": "Track order", "url": "https://shop.example.com/track/{{1}}"},
                {"type": "QUICK_REPLY", "text": "Talk to an agent"}]}]),
        ),
        template(
            "900000000000002",
            "appointment_reminder",
            "en_US",
            "APPROVED",
            "UTILITY",
            json!([
            {"type": "BODY", "text": "Hello {{first_name}}, this is a reminder of your appointment on {{date}} at {{time}}."},
            {"type": "BUTTONS", "buttons": [
                {"type": "QUICK_REPLY", "text": "Confirm"}, {"type": "QUICK_REPLY", "text": "Reschedule"}]}]),
        ),
        template(
            "900000000000003",
            "welcome_offer",
            "en_US",
            "APPROVED",
            "MARKETING",
            json!([
            {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["https://cdn.example.com/welcome.jpg"]}},
            {"type": "BODY", "text": "Welcome, {{first_name}}! Here is {{discount}} off your first order."},
            {"type": "BUTTONS", "buttons": [{"type": "COPY_CODE", "example": "WELCOME10"}]}]),
        ),
        template(
            "900000000000004",
            "verification_code",
            "en_US",
            "APPROVED",
            "AUTHENTICATION",
            json!([
            {"type": "BODY", "text": "{{1}} is your verification code. For your security, do not share this code."},
            {"type": "FOOTER", "text": "This code expires in 10 minutes."},
            {"type": "BUTTONS", "buttons": [{"type": "OTP", "otp_type": "COPY_CODE", "text": "Copy code"}]}]),
        ),
        template(
            "900000000000005",
            "order_update",
            "es",
            "APPROVED",
            "UTILITY",
            json!([
            {"type": "HEADER", "format": "TEXT", "text": "Pedido {{1}}"},
            {"type": "BODY", "text": "Hola {{1}}, tu pedido {{2}} ha sido enviado y llegará el {{3}}."},
            {"type": "FOOTER", "text": "Responde STOP para darte de baja"},
            {"type": "BUTTONS", "buttons": [
                {"type": "URL", "text": "Seguir pedido", "url": "https://shop.example.com/track/{{1}}"},
                {"type": "QUICK_REPLY", "text": "Hablar con un agente"}]}]),
        ),
        template(
            "900000000000006",
            "feedback_request",
            "pt_BR",
            "APPROVED",
            "MARKETING",
            json!([
            {"type": "BODY", "text": "Olá {{first_name}}, como foi o seu atendimento hoje? Responda de 1 a 5."}]),
        ),
        template(
            "900000000000007",
            "invoice_ready",
            "de",
            "APPROVED",
            "UTILITY",
            json!([
            {"type": "HEADER", "format": "DOCUMENT"},
            {"type": "BODY", "text": "Hallo {{1}}, Ihre Rechnung {{2}} liegt bei."}]),
        ),
        template(
            "900000000000008",
            "summer_sale",
            "en_US",
            "REJECTED",
            "MARKETING",
            json!([
            {"type": "BODY", "text": "Everything must go! {{1}} off today only."}]),
        ),
        template(
            "900000000000009",
            "account_notice",
            "en_US",
            "PAUSED",
            "UTILITY",
            json!([
            {"type": "BODY", "text": "Hi {{1}}, there is news about your account."}]),
        ),
        template(
            "900000000000010",
            "loyalty_points",
            "en_US",
            "PENDING",
            "MARKETING",
            json!([
            {"type": "BODY", "text": "You have {{points}} loyalty points, {{first_name}}."}]),
        ),
    ]
}
