//! `prepare`: a fresh database with N tenants, each with one agent to assign conversations to.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A superuser URL of the Postgres server.
    #[arg(
        long,
        env = "PORTAL_LOAD_ADMIN_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    admin_url: String,
    /// The database to drop, create and migrate.
    #[arg(long, default_value = "portal_notifications_load")]
    database: String,
    /// The non-owner login role the queue consumer connects as (row-level security applies).
    #[arg(long, default_value = "portal_notifications_load_app")]
    app_role: String,
    #[arg(long, default_value_t = 20)]
    tenants: usize,
    /// Conversations `run` opens per tenant (through `conversation.created`) and spreads its
    /// messages over.
    #[arg(long, default_value_t = 50)]
    conversations_per_tenant: usize,
    /// Where to write the plan `run` reads.
    #[arg(long, default_value = "notifications-load.json")]
    out: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tenant {
    pub id: Uuid,
    /// Every conversation of the tenant is assigned to it, as a routed conversation would be.
    pub agent_id: Uuid,
}

/// What `run` needs.
#[derive(Debug, Serialize, Deserialize)]
pub struct Plan {
    /// The app role's URL: what the queue consumer is to connect as.
    pub database_url: String,
    pub owner_url: String,
    pub tenants: Vec<Tenant>,
    pub conversations_per_tenant: usize,
}

impl Plan {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!("reading the plan {} (run `prepare` first)", path.display())
        })?;
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))
    }
}

pub async fn prepare(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.tenants > 0, "--tenants must be at least 1");
    anyhow::ensure!(
        args.conversations_per_tenant > 0,
        "--conversations-per-tenant must be at least 1"
    );
    drop_database(&args.admin_url, &args.database).await?;
    let owner_url = portal_shared::db::provision(&args.admin_url, &args.database, &args.app_role)
        .await
        .context("provisioning the load database")?;
    let database_url = portal_shared::db::with_user(&owner_url, &args.app_role)?;
    let owner = PgPoolOptions::new()
        .max_connections(1)
        .connect(&owner_url)
        .await?;

    let tenants: Vec<Tenant> = (0..args.tenants)
        .map(|_| Tenant {
            id: Uuid::new_v4(),
            agent_id: Uuid::new_v4(),
        })
        .collect();
    let tenant_ids: Vec<Uuid> = tenants.iter().map(|t| t.id).collect();
    let agent_ids: Vec<Uuid> = tenants.iter().map(|t| t.agent_id).collect();
    let mut tx = owner.begin().await?;
    sqlx::query(
        "INSERT INTO tenants (id, name) \
         SELECT t.id, 'notifications-load ' || t.n FROM UNNEST($1::uuid[]) WITH ORDINALITY AS t(id, n)",
    )
    .bind(&tenant_ids)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO agents (tenant_id, id, display_name, role) \
         SELECT t.tenant_id, t.id, 'Load agent ' || t.n, 'agent' \
         FROM UNNEST($1::uuid[], $2::uuid[]) WITH ORDINALITY AS t(tenant_id, id, n)",
    )
    .bind(&tenant_ids)
    .bind(&agent_ids)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    owner.close().await;

    let plan = Plan {
        database_url,
        owner_url,
        tenants,
        conversations_per_tenant: args.conversations_per_tenant,
    };
    std::fs::write(&args.out, serde_json::to_vec(&plan)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "prepared database {}: {} tenants with an agent each ({} conversations each at run time); plan written to {}",
        args.database,
        plan.tenants.len(),
        plan.conversations_per_tenant,
        args.out.display()
    );
    println!("the queue consumer connects as: {}", plan.database_url);
    Ok(())
}

/// Drops the database so every prepare starts from empty tables: a run's throughput depends on
/// table and index sizes, and earlier runs' rows would make runs incomparable.
async fn drop_database(admin_url: &str, database: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !database.is_empty()
            && database
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
        "--database must be a lower-case identifier"
    );
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(admin_url)
        .await
        .context("connecting to Postgres as the admin")?;
    // FORCE: a consumer left running from an earlier run must not keep the database alive.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {database} WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .with_context(|| format!("dropping database {database}"))?;
    admin.close().await;
    Ok(())
}
