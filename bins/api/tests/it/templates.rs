//! Templates through the API: the list (cache first, Postgres behind it), one template, the
//! validator, template sends, and the admin's WhatsApp account.

use base64::Engine;
use portal_shared::ids::TenantId;
use portal_shared::whatsapp::TokenCipher;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::*;

const TOKEN_KEY: [u8; 32] = [42; 32];

fn token_key() -> String {
    base64::engine::general_purpose::STANDARD.encode(TOKEN_KEY)
}

async fn app_with(extra: &[(&str, &str)]) -> TestApp {
    let key = token_key();
    let mut env = vec![("PORTAL__WHATSAPP__TOKEN_KEY", key.as_str())];
    env.extend_from_slice(extra);
    TestApp::spawn_with(&env).await
}

/// Stores a template as template-sync would.
async fn template(
    app: &TestApp,
    tenant: Uuid,
    name: &str,
    language: &str,
    status: &str,
    components: Value,
) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO templates (tenant_id, external_id, name, language, category, status, parameter_format, \
         components, content_hash) VALUES ($1, $2, $3, $4, 'UTILITY', $5, $6, $7, '\\x00') RETURNING id",
    )
    .bind(tenant)
    .bind(Uuid::new_v4().simple().to_string())
    .bind(name)
    .bind(language)
    .bind(status)
    .bind(if components.to_string().contains("{{1}}") { "POSITIONAL" } else { "NAMED" })
    .bind(components)
    .fetch_one(&app.owner)
    .await
    .unwrap()
}

fn order_update() -> Value {
    json!([
        {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"},
        {"type": "BODY", "text": "Hi {{1}}, your order {{2}} ships today."},
        {"type": "FOOTER", "text": "Thanks"},
    ])
}

fn names(body: &Value) -> Vec<(String, String)> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_list_shows_approved_templates_by_default_filtered_and_paged() {
    let app = app_with(&[]).await;
    let w = World::new(&app).await;
    template(
        &app,
        w.a,
        "order_update",
        "en_US",
        "APPROVED",
        order_update(),
    )
    .await;
    template(&app, w.a, "order_update", "es", "APPROVED", order_update()).await;
    template(
        &app,
        w.a,
        "appointment",
        "en_US",
        "APPROVED",
        json!([{"type": "BODY", "text": "Hi {{name}}"}]),
    )
    .await;
    template(
        &app,
        w.a,
        "promo",
        "en_US",
        "REJECTED",
        json!([{"type": "BODY", "text": "Sale"}]),
    )
    .await;
    let b_template = template(
        &app,
        w.b,
        "b_only",
        "en_US",
        "APPROVED",
        json!([{"type": "BODY", "text": "B"}]),
    )
    .await;

    let (status, body) = app.get("/api/templates", &w.agent_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        names(&body)
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["appointment", "order_update", "order_update"]
    );
    let (_, body) = app
        .get("/api/templates?status=REJECTED", &w.agent_token)
        .await;
    assert_eq!(
        names(&body),
        [("promo".to_string(), "REJECTED".to_string())]
    );
    let (_, body) = app
        .get("/api/templates?language=es&name=ORDER", &w.agent_token)
        .await;
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    assert_eq!(body["items"][0]["language"], "es");

    let (_, first) = app.get("/api/templates?limit=2", &w.agent_token).await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = app
        .get(
            &format!("/api/templates?limit=2&cursor={cursor}"),
            &w.agent_token,
        )
        .await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert!(second.get("next_cursor").is_none());
    let (status, body) = app
        .get("/api/templates?cursor=garbage", &w.agent_token)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // Another tenant's template is exactly like a missing one.
    let (status, missing) = app
        .get(
            &format!("/api/templates/{}", Uuid::new_v4()),
            &w.agent_token,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, other) = app
        .get(&format!("/api/templates/{b_template}"), &w.agent_token)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(other["detail"], missing["detail"]);
    let (status, own) = app
        .get(&format!("/api/templates/{b_template}"), &w.b_token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(own["name"], "b_only");
}

#[tokio::test]
async fn the_list_is_served_from_the_cache_and_from_postgres_when_redis_is_down() {
    let app = app_with(&[]).await;
    let w = World::new(&app).await;
    template(
        &app,
        w.a,
        "first",
        "en_US",
        "APPROVED",
        json!([{"type": "BODY", "text": "One"}]),
    )
    .await;
    // A miss reads Postgres and fills the cache.
    let (_, body) = app.get("/api/templates", &w.agent_token).await;
    assert_eq!(names(&body).len(), 1);
    let redis = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let key = format!("templates:{}", w.a);
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((86_000..=86_400).contains(&ttl), "24 h: {ttl}");
    // Served from the cache now: a row added behind its back does not show until a refresh.
    template(
        &app,
        w.a,
        "second",
        "en_US",
        "APPROVED",
        json!([{"type": "BODY", "text": "Two"}]),
    )
    .await;
    let (_, body) = app.get("/api/templates", &w.agent_token).await;
    assert_eq!(names(&body).len(), 1);
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let (_, body) = app.get("/api/templates", &w.agent_token).await;
    assert_eq!(names(&body).len(), 2);

    // With Redis unreachable, Postgres answers.
    let down = app_with(&[("PORTAL__REDIS__URL", "redis://127.0.0.1:1")]).await;
    let w = World::new(&down).await;
    template(
        &down,
        w.a,
        "only",
        "en_US",
        "APPROVED",
        json!([{"type": "BODY", "text": "x"}]),
    )
    .await;
    let (status, body) = down.get("/api/templates", &w.agent_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(names(&body).len(), 1);
}

#[tokio::test]
async fn validate_renders_a_good_send_and_lists_each_bad_parameter() {
    let app = app_with(&[]).await;
    let w = World::new(&app).await;
    let id = template(
        &app,
        w.a,
        "order_update",
        "en_US",
        "APPROVED",
        order_update(),
    )
    .await;
    template(
        &app,
        w.a,
        "paused",
        "en_US",
        "PAUSED",
        json!([{"type": "BODY", "text": "Hi"}]),
    )
    .await;

    let good = json!({"header": {"text": "#7"}, "body": ["Ana", "#7"]});
    let (status, body) = app
        .post(
            "/api/templates/validate",
            &w.agent_token,
            json!({"template_id": id, "parameters": good}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["text"],
        "Order #7\n\nHi Ana, your order #7 ships today.\n\nThanks"
    );
    let (status, by_name) = app
        .post(
            "/api/templates/validate",
            &w.agent_token,
            json!({"name": "order_update", "language": "en_US", "parameters": good}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_name["text"], body["text"]);

    let (status, body) = app
        .post(
            "/api/templates/validate",
            &w.agent_token,
            json!({"template_id": id, "parameters": {"body": ["", "a\tb", "x"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let errors: Vec<(String, String)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_string(),
                e["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        [
            ("parameters.header".to_string(), "required".to_string()),
            ("parameters.body".to_string(), "count".to_string()),
            ("parameters.body[0]".to_string(), "not_empty".to_string()),
            (
                "parameters.body[1]".to_string(),
                "no_newline_or_tab".to_string()
            ),
        ]
    );
    let (status, body) = app
        .post(
            "/api/templates/validate",
            &w.agent_token,
            json!({"name": "paused", "language": "en_US"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["rule"], "approved");
    let (status, _) = app
        .post(
            "/api/templates/validate",
            &w.b_token,
            json!({"template_id": id}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another tenant's template");
    let (status, body) = app
        .post(
            "/api/templates/validate",
            &w.agent_token,
            json!({"name": "order_update"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a name needs its language: {body}"
    );
}

#[tokio::test]
async fn a_template_message_is_checked_and_stored_with_what_the_customer_sees() {
    let app = app_with(&[]).await;
    let w = World::new(&app).await;
    template(
        &app,
        w.a,
        "order_update",
        "en_US",
        "APPROVED",
        order_update(),
    )
    .await;
    let c = app.customer(w.a, "Ana", "+34600000009").await;
    let conv = app.conversation(w.a, c, "active", Some(w.agent), 1).await;
    let send = |parameters: Value| json!({"type": "template", "template": {"name": "order_update", "language": "en_US", "parameters": parameters}});

    let (status, body, _) = app
        .send(
            conv,
            &w.agent_token,
            send(json!({"header": {"text": "#7"}, "body": ["Ana", "#7"]})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["content_type"], "template");
    assert_eq!(
        body["text"],
        "Order #7\n\nHi Ana, your order #7 ships today.\n\nThanks"
    );
    assert_eq!(body["template"]["name"], "order_update");
    // Searchable as the customer saw it.
    let (_, hits) = app
        .get("/api/messages/search?q=ships", &w.agent_token)
        .await;
    assert_eq!(hits["items"].as_array().unwrap().len(), 1, "{hits}");

    let (status, body, _) = app
        .send(conv, &w.agent_token, send(json!({"body": ["Ana"]})), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["template.parameters.header", "template.parameters.body"]
    );
    let (status, body, _) = app
        .send(
            conv,
            &w.agent_token,
            json!({"type": "template", "template": {"name": "nope", "language": "en_US"}}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "template.name");
    assert_eq!(app.outbox_len().await, 1, "only the valid one was queued");
}

#[tokio::test]
async fn only_an_admin_sets_the_whatsapp_account_and_the_token_never_comes_back() {
    let app = app_with(&[]).await;
    let w = World::new(&app).await;
    let admin = app.agent(w.a, "Ada Admin", "admin").await;
    let admin_token = token(w.a, admin, "admin");
    let account = json!({"waba_id": "123456789", "phone_number_id": "555", "access_token": "EAAG-very-secret"});

    for t in [&w.agent_token, &w.supervisor_token] {
        let (status, _) = app
            .request(
                reqwest::Method::PUT,
                "/api/admin/whatsapp-account",
                Some(t),
                Some(account.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (status, _) = app.get("/api/admin/whatsapp-account", &admin_token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app
        .request(
            reqwest::Method::PUT,
            "/api/admin/whatsapp-account",
            Some(&admin_token),
            Some(json!({"waba_id": "abc", "access_token": "t"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "waba_id", "{body}");
    let (status, body) = app
        .request(
            reqwest::Method::PUT,
            "/api/admin/whatsapp-account",
            Some(&admin_token),
            Some(json!({"waba_id": "123", "access_token": "  "})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "access_token", "{body}");

    let (status, body) = app
        .request(
            reqwest::Method::PUT,
            "/api/admin/whatsapp-account",
            Some(&admin_token),
            Some(account),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!body.to_string().contains("EAAG"), "{body}");
    let (_, body) = app.get("/api/admin/whatsapp-account", &admin_token).await;
    assert_eq!(body["waba_id"], "123456789");
    assert!(!body.to_string().contains("EAAG"));

    // Encrypted at rest, for this tenant only.
    let (nonce, sealed): (Vec<u8>, Vec<u8>) = sqlx::query_as(
        "SELECT token_nonce, token_ciphertext FROM whatsapp_accounts WHERE tenant_id = $1",
    )
    .bind(w.a)
    .fetch_one(&app.owner)
    .await
    .unwrap();
    assert!(!sealed.windows(4).any(|x| x == b"EAAG"));
    let cipher = TokenCipher::new(&SecretString::from(token_key())).unwrap();
    use secrecy::ExposeSecret;
    assert_eq!(
        cipher
            .open(TenantId(w.a), &nonce, &sealed)
            .unwrap()
            .expose_secret(),
        "EAAG-very-secret"
    );
    assert!(cipher.open(TenantId(w.b), &nonce, &sealed).is_err());
    // Another tenant's admin sees none.
    let b_admin = app.agent(w.b, "Bea Admin", "admin").await;
    let (status, _) = app
        .get("/api/admin/whatsapp-account", &token(w.b, b_admin, "admin"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
