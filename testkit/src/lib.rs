//! Test support shared by the binaries' integration tests: `TestApp`, a running API with its
//! own database, an owner pool to arrange data and a method per endpoint; tokens; a small
//! world of tenants and agents.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use portal_shared::config::Settings;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

pub const SECRET: &str = "integration-test-secret-0123456789abcdef";
pub const ISSUER: &str = "agent-portal-auth";
pub const AUDIENCE: &str = "agent-portal";
pub const APP_ROLE: &str = "portal_test_app";

pub fn admin_url() -> String {
    std::env::var("PORTAL_TEST_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    /// The schema owner (a superuser here): arranges data behind the API's back.
    pub owner: PgPool,
    pub app_url: String,
    /// The Redis channel this app publishes its events on (one per test).
    pub channel: String,
    /// This test's database, dropped with the `TestApp`.
    database: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Starts the API with extra `PORTAL__*` settings.
    pub async fn spawn_with(extra: &[(&str, &str)]) -> Self {
        let database = format!("portal_test_{}", Uuid::new_v4().simple());
        let owner_url = portal_shared::db::provision(&admin_url(), &database, APP_ROLE)
            .await
            .unwrap();
        let app_url = portal_shared::db::with_user(&owner_url, APP_ROLE).unwrap();
        let settings = api_settings(&app_url, &format!("portal:test:{database}"), extra);
        let channel = settings.events.channel.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(api::run(settings, listener, async {
            let _ = rx.await;
        }));
        let owner = PgPoolOptions::new()
            .max_connections(3)
            .connect(&owner_url)
            .await
            .unwrap();
        Self {
            base,
            client: reqwest::Client::new(),
            owner,
            app_url,
            channel,
            database,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// Another api process on this test's database and events channel, with `extra` settings.
    pub async fn another_api(&self, extra: &[(&str, &str)]) -> OtherApi {
        let settings = api_settings(&self.app_url, &self.channel, extra);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(api::run(settings, listener, async {
            let _ = rx.await;
        }));
        OtherApi {
            base,
            shutdown: Some(tx),
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.server.take() {
            Some(handle) => handle.await?,
            None => Ok(()),
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() && status != StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(
                content_type.as_deref(),
                Some("application/problem+json"),
                "error responses are problem+json: {status} {value}"
            );
        }
        (status, value)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, Some(token), Some(body))
            .await
    }

    /// `POST /api/conversations/{id}/messages`, with an optional Idempotency-Key; also
    /// returns the response headers.
    pub async fn send(
        &self,
        conversation: Uuid,
        token: &str,
        body: Value,
        key: Option<&str>,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let mut req = self
            .client
            .post(format!(
                "{}/api/conversations/{conversation}/messages",
                self.base
            ))
            .bearer_auth(token)
            .json(&body);
        if let Some(key) = key {
            req = req.header("Idempotency-Key", key);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value, headers)
    }

    /// Sends a text and returns the stored message's id.
    pub async fn send_text(&self, conversation: Uuid, token: &str, text: &str) -> Uuid {
        let (status, body, _) = self
            .send(
                conversation,
                token,
                json!({"type": "text", "text": text}),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body["id"].as_str().unwrap().parse().unwrap()
    }

    // --- arranging data as the owner ---

    pub async fn tenant(&self) -> Uuid {
        let id = Uuid::new_v4();
        sqlx::query("INSERT INTO tenants (id, name) VALUES ($1, 'Tenant')")
            .bind(id)
            .execute(&self.owner)
            .await
            .unwrap();
        id
    }

    pub async fn agent(&self, tenant: Uuid, name: &str, role: &str) -> Uuid {
        let id = Uuid::new_v4();
        sqlx::query("INSERT INTO agents (tenant_id, id, display_name, role) VALUES ($1, $2, $3, $4::agent_role)")
            .bind(tenant)
            .bind(id)
            .bind(name)
            .bind(role)
            .execute(&self.owner)
            .await
            .unwrap();
        id
    }

    pub async fn deactivate(&self, agent: Uuid) {
        sqlx::query("UPDATE agents SET active = false WHERE id = $1")
            .bind(agent)
            .execute(&self.owner)
            .await
            .unwrap();
    }

    pub async fn customer(&self, tenant: Uuid, name: &str, phone: &str) -> Uuid {
        let id = Uuid::new_v4();
        sqlx::query("INSERT INTO customers (tenant_id, id, display_name, phone_e164) VALUES ($1, $2, $3, $4)")
            .bind(tenant)
            .bind(id)
            .bind(name)
            .bind(phone)
            .execute(&self.owner)
            .await
            .unwrap();
        id
    }

    /// A conversation whose last activity (and creation) is `minutes_ago` minutes ago.
    pub async fn conversation(
        &self,
        tenant: Uuid,
        customer: Uuid,
        state: &str,
        assignee: Option<Uuid>,
        minutes_ago: i64,
    ) -> Uuid {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO conversations (tenant_id, id, customer_id, state, assigned_agent_id, created_at, \
             last_activity_at, closed_at) VALUES ($1, $2, $3, $4::conversation_state, $5, \
             now() - make_interval(mins => $6), now() - make_interval(mins => $6), \
             CASE WHEN $4 = 'closed' THEN now() END)",
        )
        .bind(tenant)
        .bind(id)
        .bind(customer)
        .bind(state)
        .bind(assignee)
        .bind(minutes_ago as i32)
        .execute(&self.owner)
        .await
        .unwrap();
        id
    }

    /// A message written `seconds_ago` seconds ago.
    pub async fn message(
        &self,
        tenant: Uuid,
        conversation: Uuid,
        direction: &str,
        body: &str,
        seconds_ago: i64,
    ) -> Uuid {
        let id = Uuid::now_v7();
        let (sender, status) = if direction == "inbound" {
            ("customer", "delivered")
        } else {
            ("system", "sent")
        };
        sqlx::query(
            "INSERT INTO messages (tenant_id, id, conversation_id, direction, sender_type, content_type, \
             body, status, created_at) VALUES ($1, $2, $3, $4::message_direction, $5::message_sender, \
             'text', $6, $7::message_status, now() - make_interval(secs => $8))",
        )
        .bind(tenant)
        .bind(id)
        .bind(conversation)
        .bind(direction)
        .bind(sender)
        .bind(body)
        .bind(status)
        .bind(seconds_ago as f64)
        .execute(&self.owner)
        .await
        .unwrap();
        id
    }

    pub async fn message_status(&self, id: Uuid) -> String {
        sqlx::query_scalar("SELECT status::text FROM messages WHERE id = $1")
            .bind(id)
            .fetch_one(&self.owner)
            .await
            .unwrap()
    }

    /// Waits up to 15 s for the message to reach `status`, and returns its row as JSON.
    pub async fn wait_for_status(&self, id: Uuid, status: &str) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let row: Option<Value> = sqlx::query_scalar(
                "SELECT to_jsonb(m) - 'search_vector' FROM messages m WHERE id = $1 AND status::text = $2",
            )
            .bind(id)
            .bind(status)
            .fetch_optional(&self.owner)
            .await
            .unwrap();
            if let Some(row) = row {
                return row;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "message {id} did not reach {status}; it is {}",
                self.message_status(id).await
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    pub async fn outbox_len(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM message_outbox")
            .fetch_one(&self.owner)
            .await
            .unwrap()
    }

    pub async fn events(&self, tenant: Uuid) -> Vec<(i64, String, Value)> {
        sqlx::query_as(
            "SELECT seq, event_type, payload FROM events WHERE tenant_id = $1 ORDER BY seq",
        )
        .bind(tenant)
        .fetch_all(&self.owner)
        .await
        .unwrap()
    }
}

/// Claims as the Auth Service issues them, valid for an hour.
pub fn claims(tenant: Uuid, agent: Uuid, roles: &[&str]) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "sub": agent, "tenant_id": tenant, "roles": roles,
        "iat": now, "nbf": now, "exp": now + 3600, "iss": ISSUER, "aud": AUDIENCE,
    })
}

pub fn sign_hs256(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

pub fn token(tenant: Uuid, agent: Uuid, role: &str) -> String {
    sign_hs256(&claims(tenant, agent, &[role]), SECRET)
}

impl Drop for TestApp {
    /// Drops the test's database, so a run leaves none behind (what a killed test leaves, CI
    /// removes). On a thread of its own: `Drop` cannot wait on the test's runtime.
    fn drop(&mut self) {
        let database = self.database.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                use sqlx::Connection;
                let mut admin = sqlx::PgConnection::connect(&admin_url()).await?;
                // FORCE: the test's server and helpers may still hold connections.
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await?;
                anyhow::Ok(())
            })
        })
        .join();
        if let Ok(Err(err)) = dropped {
            eprintln!("the test database was not dropped: {err:#}");
        }
    }
}

/// The settings of a test's api: its database, its events channel, and `extra`.
fn api_settings(app_url: &str, channel: &str, extra: &[(&str, &str)]) -> Settings {
    let mut env = vec![
        ("PORTAL__DATABASE__URL".to_string(), app_url.to_string()),
        (
            "PORTAL__DATABASE__MAX_CONNECTIONS".to_string(),
            "5".to_string(),
        ),
        (
            "PORTAL__HTTP__SHUTDOWN_GRACE_SECS".to_string(),
            "1".to_string(),
        ),
        ("PORTAL__EVENTS__CHANNEL".to_string(), channel.to_string()),
        // Tests that deliver messages switch it on with a transformer of their own.
        (
            "PORTAL__DISPATCHER__ENABLED".to_string(),
            "false".to_string(),
        ),
        // A test makes requests as fast as it can as one agent; the rate limit tests switch
        // the limits on.
        (
            "PORTAL__RATE_LIMIT__ENABLED".to_string(),
            "false".to_string(),
        ),
    ];
    if !extra.iter().any(|(k, _)| *k == "PORTAL__AUTH__JWKS_URL") {
        env.push(("PORTAL__AUTH__JWT_SECRET".to_string(), SECRET.to_string()));
    }
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Settings::load_from(None, env).unwrap()
}

/// Another api process on a test's database, as a second pod is; stopped when dropped.
pub struct OtherApi {
    pub base: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for OtherApi {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A small world: two tenants; in A an agent, a second agent and a supervisor.
pub struct World {
    pub a: Uuid,
    pub b: Uuid,
    pub agent: Uuid,
    pub other_agent: Uuid,
    pub supervisor: Uuid,
    pub b_supervisor: Uuid,
    pub agent_token: String,
    pub other_agent_token: String,
    pub supervisor_token: String,
    pub b_token: String,
}

impl World {
    pub async fn new(app: &TestApp) -> Self {
        let a = app.tenant().await;
        let b = app.tenant().await;
        let agent = app.agent(a, "Alice Agent", "agent").await;
        let other_agent = app.agent(a, "Oscar Other", "agent").await;
        let supervisor = app.agent(a, "Sue Supervisor", "supervisor").await;
        let b_supervisor = app.agent(b, "Bob Boss", "supervisor").await;
        Self {
            a,
            b,
            agent,
            other_agent,
            supervisor,
            b_supervisor,
            agent_token: token(a, agent, "agent"),
            other_agent_token: token(a, other_agent, "agent"),
            supervisor_token: token(a, supervisor, "supervisor"),
            b_token: token(b, b_supervisor, "supervisor"),
        }
    }
}
