//! Preparing the development database: the database and its roles, migrations, the demo
//! tenant, its WhatsApp account on the stand-in and a template sync; then the URLs and tokens.

use std::time::Duration;

use portal_shared::agents::Role;
use portal_shared::auth::mint_dev_token;
use portal_shared::config::Settings;
use portal_shared::ids::{AgentId, TenantId};
use portal_shared::whatsapp::TokenCipher;
use portal_shared::{db, demo};
use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;

pub const DEV_DATABASE: &str = "portal";
pub const DEV_LOGIN_ROLE: &str = "portal_api";
/// Development only; the service refuses nothing shorter than 32 bytes.
pub const DEV_JWT_SECRET: &str = "dev-only-secret-change-me-0123456789abcdef";

/// Where the stand-ins for the external services listen.
#[derive(Debug)]
pub struct StandInUrls {
    pub transformer: String,
    pub whatsapp: String,
    pub state_manager: String,
    pub genesys: String,
}

/// Environment the `dev` command fills in where the caller has not.
pub fn dev_env(admin_url: &str, stand_ins: &StandInUrls) -> anyhow::Result<Vec<(String, String)>> {
    let app_url = db::with_user(&db::with_database(admin_url, DEV_DATABASE)?, DEV_LOGIN_ROLE)?;
    let defaults = [
        ("PORTAL__ENVIRONMENT", "development".to_string()),
        ("PORTAL__DATABASE__URL", app_url),
        ("PORTAL__AUTH__JWT_SECRET", DEV_JWT_SECRET.to_string()),
        ("PORTAL__TELEMETRY__LOG_FORMAT", "pretty".to_string()),
        ("PORTAL__TRANSFORMER__URL", stand_ins.transformer.clone()),
        ("PORTAL__WHATSAPP__API_BASE_URL", stand_ins.whatsapp.clone()),
        (
            "PORTAL__STATE_MANAGER__URL",
            stand_ins.state_manager.clone(),
        ),
        ("PORTAL__GENESYS__API_URL", stand_ins.genesys.clone()),
        ("PORTAL__GENESYS__LOGIN_URL", stand_ins.genesys.clone()),
        (
            "PORTAL__GENESYS__CLIENT_ID",
            crate::stand_ins::genesys::CLIENT_ID.to_string(),
        ),
        (
            "PORTAL__GENESYS__CLIENT_SECRET",
            crate::stand_ins::genesys::CLIENT_SECRET.to_string(),
        ),
        (
            "PORTAL__WHATSAPP__TOKEN_KEY",
            crate::stand_ins::whatsapp::DEV_TOKEN_KEY.to_string(),
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

/// Gives the demo tenant a WhatsApp account on the stand-in (unless it has one) and syncs its
/// templates through template-sync's `run`, as its CronJob would; returns the summary line.
async fn sync_demo_templates(owner: &sqlx::PgPool, settings: &Settings) -> String {
    let run = async {
        let tenant = TenantId(demo::TENANT);
        let key = settings
            .whatsapp
            .token_key
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("whatsapp.token_key is not set"))?;
        let (nonce, sealed) =
            TokenCipher::new(key)?.seal(tenant, crate::stand_ins::whatsapp::DEMO_ACCESS_TOKEN)?;
        sqlx::query(
            "INSERT INTO whatsapp_accounts (tenant_id, waba_id, token_nonce, token_ciphertext) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(tenant.0)
        .bind(crate::stand_ins::whatsapp::DEMO_WABA_ID)
        .bind(&nonce[..])
        .bind(&sealed)
        .execute(owner)
        .await?;
        let summaries =
            template_sync::run(settings, Some(tenant), CancellationToken::new()).await?;
        anyhow::Ok(
            summaries
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    };
    run.await
        .unwrap_or_else(|err| format!("not synced: {err:#}"))
}

pub async fn prepare(
    admin_url: &str,
    settings: &Settings,
    conversations: usize,
    consuming: bool,
) -> anyhow::Result<()> {
    let owner_url = db::provision(admin_url, DEV_DATABASE, DEV_LOGIN_ROLE).await?;
    let owner = PgPoolOptions::new()
        .max_connections(1)
        .connect(&owner_url)
        .await?;
    let loaded = demo::load(&owner, conversations).await?;
    let synced = sync_demo_templates(&owner, settings).await;
    owner.close().await;
    let port = settings.http.port_or(api::DEFAULT_PORT);
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
        println!(
            "  queue-consumer: {}",
            if consuming {
                format!(
                    "consuming agent.notifications (probes on http://127.0.0.1:{})",
                    queue_consumer::DEFAULT_PORT
                )
            } else {
                "not started: RabbitMQ is not reachable at amqp.url".to_string()
            }
        );
        for (name, url) in [
            ("state manager", settings.state_manager.url.as_deref()),
            ("genesys", settings.genesys.api_url.as_deref()),
        ] {
            if let Some(url) = url {
                println!("  {name} stand-in: {url}/changes lists the changes propagated to it");
            }
        }
        println!("  agent token (Alex Agent, 12 h):\n    {agent_token}");
        println!("  supervisor token (Sam Supervisor, 12 h):\n    {supervisor_token}");
        println!(
            "  try: curl -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:{port}/api/conversations"
        );
        println!();
    }
    Ok(())
}
