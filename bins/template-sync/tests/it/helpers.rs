//! A test harness: the API's `TestApp` for a fresh database, a `wiremock` server as WhatsApp,
//! settings for `template_sync::run`, and readers for the table and the Redis cache.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use portal_shared::config::Settings;
use portal_shared::ids::TenantId;
use portal_shared::templates::cache;
use portal_shared::templates::sync::{Outcome, Summary};
use portal_shared::whatsapp::TokenCipher;
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::types::chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub use portal_shared::templates::repo::SyncCounts;
pub use testkit::*;

/// The Graph API version the settings default to.
pub const VERSION: &str = "v23.0";
const TOKEN_KEY: [u8; 32] = [42; 32];

pub struct Harness {
    pub app: TestApp,
    pub server: MockServer,
    pub cipher: TokenCipher,
}

impl Harness {
    pub async fn new() -> Self {
        let (app, server) = tokio::join!(TestApp::spawn(), MockServer::start());
        let cipher = TokenCipher::new(&SecretString::from(STANDARD.encode(TOKEN_KEY))).unwrap();
        Self {
            app,
            server,
            cipher,
        }
    }

    /// Settings for template-sync: this test's database (as the app role), the stub as
    /// WhatsApp, fast retries; `extra` overrides.
    pub fn settings(&self, extra: &[(&str, &str)]) -> Settings {
        Settings::load_from(None, self.env(extra)).unwrap()
    }

    /// The `PORTAL__*` variables behind [`Harness::settings`].
    pub fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let key = STANDARD.encode(TOKEN_KEY);
        let uri = self.server.uri();
        let mut env: Vec<(String, String)> = [
            ("PORTAL__DATABASE__URL", self.app.app_url.as_str()),
            ("PORTAL__DATABASE__MAX_CONNECTIONS", "2"),
            ("PORTAL__AUTH__JWT_SECRET", SECRET),
            ("PORTAL__WHATSAPP__API_BASE_URL", uri.as_str()),
            ("PORTAL__WHATSAPP__TOKEN_KEY", key.as_str()),
            ("PORTAL__WHATSAPP__BACKOFF_INITIAL_MS", "10"),
            ("PORTAL__WHATSAPP__BACKOFF_MAX_MS", "200"),
            ("PORTAL__WHATSAPP__MAX_ATTEMPTS", "4"),
            ("PORTAL__WHATSAPP__TIMEOUT_MS", "1000"),
            ("PORTAL__TEMPLATES__CACHE_TTL_SECS", "3600"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    }

    /// A tenant with a WhatsApp Business Account whose token is sealed as the API would.
    pub async fn tenant_with_account(&self, waba_id: &str, token: &str) -> Uuid {
        let tenant = self.app.tenant().await;
        let (nonce, sealed) = self.cipher.seal(TenantId(tenant), token).unwrap();
        sqlx::query(
            "INSERT INTO whatsapp_accounts (tenant_id, waba_id, token_nonce, token_ciphertext) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(tenant)
        .bind(waba_id)
        .bind(&nonce[..])
        .bind(&sealed)
        .execute(&self.app.owner)
        .await
        .unwrap();
        tenant
    }

    /// `template_sync::run` for one tenant, never stopped.
    pub async fn sync(&self, settings: &Settings, tenant: Uuid) -> Summary {
        let mut summaries =
            template_sync::run(settings, Some(TenantId(tenant)), CancellationToken::new())
                .await
                .unwrap();
        assert_eq!(summaries.len(), 1, "{summaries:?}");
        let summary = summaries.remove(0);
        assert_eq!(summary.tenant_id, TenantId(tenant));
        summary
    }

    /// The tenant's rows, deleted ones included, by external id (read as the owner).
    pub async fn rows(&self, tenant: Uuid) -> Vec<Row> {
        sqlx::query_as(
            "SELECT external_id, name, language, category, status, parameter_format, components, \
             quality_rating, synced_at, updated_at, deleted_at FROM templates \
             WHERE tenant_id = $1 ORDER BY external_id",
        )
        .bind(tenant)
        .fetch_all(&self.app.owner)
        .await
        .unwrap()
    }

    pub async fn row(&self, tenant: Uuid, external_id: &str) -> Row {
        self.rows(tenant)
            .await
            .into_iter()
            .find(|r| r.external_id == external_id)
            .unwrap_or_else(|| panic!("no row for template {external_id}"))
    }

    /// Requests the stub received so far.
    pub async fn requests(&self) -> Vec<wiremock::Request> {
        self.server.received_requests().await.unwrap()
    }

    /// Waits (up to 5 s) until the stub has received `n` requests (recorded before any delay).
    pub async fn wait_for_requests(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.requests().await.len() < n {
            assert!(Instant::now() < deadline, "the stub never got {n} requests");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Row {
    pub external_id: String,
    pub name: String,
    pub language: String,
    pub category: String,
    pub status: String,
    pub parameter_format: String,
    pub components: Value,
    pub quality_rating: Option<String>,
    pub synced_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// The counts of a `Synced` outcome (panics on anything else).
pub fn synced(summary: &Summary) -> (SyncCounts, bool) {
    match &summary.outcome {
        Outcome::Synced { counts, cached } => (*counts, *cached),
        other => panic!("expected Synced, got {other:?} ({summary})"),
    }
}

/// The error of a `Failed` outcome (panics on anything else).
pub fn failed(summary: &Summary) -> String {
    match &summary.outcome {
        Outcome::Failed { error } => error.clone(),
        other => panic!("expected Failed, got {other:?} ({summary})"),
    }
}

pub fn counts(fetched: usize, created: usize, updated: usize, deleted: usize) -> SyncCounts {
    SyncCounts {
        fetched,
        created,
        updated,
        deleted,
    }
}

// --- the Redis cache ---

pub async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open("redis://127.0.0.1:6379")
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The cached template list of the tenant, parsed, or None when the key is absent.
pub async fn cached(tenant: Uuid) -> Option<Vec<Value>> {
    let json: Option<String> = redis::cmd("GET")
        .arg(cache::key(TenantId(tenant)))
        .query_async(&mut redis().await)
        .await
        .unwrap();
    json.map(|j| serde_json::from_str(&j).unwrap())
}

/// The cached external ids, in the cache's order.
pub async fn cached_ids(tenant: Uuid) -> Vec<String> {
    cached(tenant)
        .await
        .expect("the cache key is missing")
        .iter()
        .map(|t| t["external_id"].as_str().unwrap().to_string())
        .collect()
}

/// The key's remaining TTL in seconds (-2: no key, -1: no expiry).
pub async fn cache_ttl(tenant: Uuid) -> i64 {
    redis::cmd("TTL")
        .arg(cache::key(TenantId(tenant)))
        .query_async(&mut redis().await)
        .await
        .unwrap()
}

// --- WhatsApp, as the stub serves it ---

pub fn templates_path(waba_id: &str) -> String {
    format!("/{VERSION}/{waba_id}/message_templates")
}

/// A template as the Graph API describes it (`fields=id,name,language,status,category,
/// parameter_format,components,quality_score`).
pub fn template(id: &str, name: &str, status: &str) -> Value {
    json!({
        "id": id,
        "name": name,
        "language": "en_US",
        "status": status,
        "category": "UTILITY",
        "parameter_format": "POSITIONAL",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}",
             "example": {"header_text": ["#4521"]}},
            {"type": "BODY", "text": "Hi {{1}}, your order {{2}} has shipped.",
             "example": {"body_text": [["Ana", "#4521"]]}},
            {"type": "FOOTER", "text": "Reply STOP to opt out"},
            {"type": "BUTTONS", "buttons": [
                {"type": "URL", "text": "Track", "url": "https://example.com/track/{{1}}",
                 "example": ["https://example.com/track/4521"]},
                {"type": "QUICK_REPLY", "text": "Talk to an agent"}
            ]}
        ],
        "quality_score": {"score": "GREEN", "date": 1_732_000_000}
    })
}

/// A NAMED-parameter marketing template with an image header.
pub fn named_template(id: &str, name: &str) -> Value {
    json!({
        "id": id,
        "name": name,
        "language": "pt_BR",
        "status": "APPROVED",
        "category": "MARKETING",
        "parameter_format": "NAMED",
        "components": [
            {"type": "HEADER", "format": "IMAGE",
             "example": {"header_handle": ["https://scontent.example.com/h.jpg"]}},
            {"type": "BODY", "text": "Olá {{first_name}}, {{discount}} off today!",
             "example": {"body_text_named_params": [
                 {"param_name": "first_name", "example": "Ana"},
                 {"param_name": "discount", "example": "15%"}
             ]}},
            {"type": "FOOTER", "text": "Promo"},
            {"type": "BUTTONS", "buttons": [
                {"type": "PHONE_NUMBER", "text": "Call us", "phone_number": "+5511999999999"}
            ]}
        ],
        "quality_score": {"score": "YELLOW"}
    })
}

pub fn cursor(page: usize) -> String {
    format!("QVFIU-cursor-{page}")
}

/// Page `index` of `pages`: `paging.next` and `cursors.after` point at the next page; the last
/// page has an `after` cursor but no `next`, as the Graph API answers.
pub fn page_body(waba_id: &str, data: &[Value], index: usize, pages: usize) -> Value {
    let mut paging = json!({
        "cursors": {"before": format!("QVFIU-before-{index}"), "after": cursor(index + 1)}
    });
    if index + 1 < pages {
        paging["next"] = json!(format!(
            "https://graph.facebook.com/{VERSION}/{waba_id}/message_templates?limit=100&after={}",
            cursor(index + 1)
        ));
    }
    json!({"data": data, "paging": paging})
}

/// A matcher-complete mock of page `index`: right path, page size, fields, cursor and token.
pub fn page_mock(waba_id: &str, token: &str, index: usize) -> wiremock::MockBuilder {
    let mock = Mock::given(method("GET"))
        .and(path(templates_path(waba_id)))
        .and(query_param("limit", "100"))
        .and(query_param(
            "fields",
            "id,name,language,status,category,parameter_format,components,quality_score",
        ))
        .and(header("authorization", format!("Bearer {token}").as_str()));
    if index == 0 {
        mock.and(query_param_is_missing("after"))
    } else {
        mock.and(query_param("after", cursor(index).as_str()))
    }
}

/// Mounts `pages` for the account, each answered after `delay`.
pub async fn mount_pages_delayed(
    server: &MockServer,
    waba_id: &str,
    token: &str,
    pages: &[Vec<Value>],
    delay: Duration,
) {
    for (index, data) in pages.iter().enumerate() {
        page_mock(waba_id, token, index)
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(page_body(waba_id, data, index, pages.len()))
                    .set_delay(delay),
            )
            .named(format!("page {index} of {waba_id}"))
            .mount(server)
            .await;
    }
}

pub async fn mount_pages(server: &MockServer, waba_id: &str, token: &str, pages: &[Vec<Value>]) {
    mount_pages_delayed(server, waba_id, token, pages, Duration::ZERO).await;
}
