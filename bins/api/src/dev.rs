//! `api dev`: one command from a fresh machine (with Postgres on localhost) to a running API
//! with demo data and tokens. Creates the database and roles, migrates, loads the demo tenant,
//! starts a stand-in Outbound Transformer, prints the docs URL and tokens, and serves.

use std::time::Duration;

use poem::listener::TcpAcceptor;
use poem::web::Json;
use poem::{Route, Server, handler, post};
use portal_shared::agents::Role;
use portal_shared::auth::mint_dev_token;
use portal_shared::config::Settings;
use portal_shared::ids::{AgentId, TenantId};
use portal_shared::templates::sync::Syncer;
use portal_shared::tenancy::Db;
use portal_shared::{db, demo};
use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;

pub const DEV_DATABASE: &str = "portal";
pub const DEV_LOGIN_ROLE: &str = "portal_api";
/// Development only; the service refuses nothing shorter than 32 bytes.
pub const DEV_JWT_SECRET: &str = "dev-only-secret-change-me-0123456789abcdef";

/// Environment the `dev` command fills in where the caller has not.
pub fn dev_env(
    admin_url: &str,
    transformer_url: &str,
    whatsapp_url: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let app_url = db::with_user(&db::with_database(admin_url, DEV_DATABASE)?, DEV_LOGIN_ROLE)?;
    let defaults = [
        ("PORTAL__ENVIRONMENT", "development".to_string()),
        ("PORTAL__DATABASE__URL", app_url),
        ("PORTAL__AUTH__JWT_SECRET", DEV_JWT_SECRET.to_string()),
        ("PORTAL__TELEMETRY__LOG_FORMAT", "pretty".to_string()),
        ("PORTAL__TRANSFORMER__URL", transformer_url.to_string()),
        ("PORTAL__WHATSAPP__API_BASE_URL", whatsapp_url.to_string()),
        (
            "PORTAL__WHATSAPP__TOKEN_KEY",
            crate::dev_whatsapp::DEV_TOKEN_KEY.to_string(),
        ),
    ];
    let mut env: Vec<(String, String)> = std::env::vars().collect();
    for (key, value) in defaults {
        if std::env::var_os(key).is_none() {
            env.push((key.to_string(), value));
        }
    }
    Ok(env)
}

/// A stand-in Outbound Transformer on a free local port that accepts every message, so
/// messages sent from the docs UI become `sent` without the real service. The dev command
/// points `transformer.url` at it unless `PORTAL__TRANSFORMER__URL` is set.
pub async fn start_transformer_stand_in() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = TcpAcceptor::from_tokio(listener)?;
    let app = Route::new().at("/messages", post(accept_message));
    tokio::spawn(async move {
        if let Err(err) = Server::new_with_acceptor(acceptor).run(app).await {
            tracing::error!(error = %err, "the stand-in transformer stopped");
        }
    });
    Ok(format!("http://{addr}/messages"))
}

#[handler]
fn accept_message(
    headers: &poem::http::HeaderMap,
    message: Json<serde_json::Value>,
) -> Json<serde_json::Value> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info!(message_id = key, to = %message.0["to"], "stand-in transformer accepted a message");
    Json(serde_json::json!({ "external_id": format!("wamid.dev.{key}") }))
}

/// Gives the demo tenant a WhatsApp account on the stand-in (unless it has one) and syncs its
/// templates, as the template-sync CronJob would; returns the summary line.
async fn sync_demo_templates(owner: &sqlx::PgPool, settings: &Settings) -> String {
    let run = async {
        let db = Db::new(db::pool(&settings.database)?);
        let syncer = Syncer::new(db.clone(), settings)?;
        let tenant = TenantId(demo::TENANT);
        let (nonce, sealed) = syncer
            .cipher
            .seal(tenant, crate::dev_whatsapp::DEMO_ACCESS_TOKEN)?;
        sqlx::query(
            "INSERT INTO whatsapp_accounts (tenant_id, waba_id, token_nonce, token_ciphertext) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(tenant.0)
        .bind(crate::dev_whatsapp::DEMO_WABA_ID)
        .bind(&nonce[..])
        .bind(&sealed)
        .execute(owner)
        .await?;
        let summary = syncer.sync(tenant, &CancellationToken::new()).await;
        db.close().await;
        anyhow::Ok(summary.to_string())
    };
    run.await
        .unwrap_or_else(|err| format!("not synced: {err:#}"))
}

pub async fn prepare(
    admin_url: &str,
    settings: &Settings,
    conversations: usize,
) -> anyhow::Result<()> {
    let owner_url = db::provision(admin_url, DEV_DATABASE, DEV_LOGIN_ROLE).await?;
    let owner = PgPoolOptions::new()
        .max_connections(1)
        .connect(&owner_url)
        .await?;
    let loaded = demo::load(&owner, conversations).await?;
    let synced = sync_demo_templates(&owner, settings).await;
    owner.close().await;
    let port = settings.http.port_or(crate::DEFAULT_PORT);
    let token = |agent, role| {
        mint_dev_token(
            &settings.auth,
            TenantId(demo::TENANT),
            AgentId(agent),
            &[role],
            Duration::from_secs(12 * 3600),
        )
    };
    let agent_token = token(demo::AGENT, Role::Agent)?;
    let supervisor_token = token(demo::SUPERVISOR, Role::Supervisor)?;
    #[allow(clippy::print_stdout)]
    {
        println!();
        println!(
            "  demo data: {}",
            if loaded { "loaded" } else { "already present" }
        );
        println!("  templates: {synced}");
        println!("  API docs:  http://127.0.0.1:{port}/docs");
        println!(
            "  realtime:  http://127.0.0.1:{} (Socket.IO; auth {{ token }})",
            realtime::DEFAULT_PORT
        );
        println!("  agent token (Alex Agent, 12 h):\n    {agent_token}");
        println!("  supervisor token (Sam Supervisor, 12 h):\n    {supervisor_token}");
        println!(
            "  try: curl -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:{port}/api/conversations"
        );
        println!();
    }
    Ok(())
}
