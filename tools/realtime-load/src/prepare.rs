//! `prepare`: a database for the realtime service with one tenant full of agents.

use std::path::PathBuf;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

/// The tenant's name; `prepare` deletes earlier load tenants (and their agents) first.
const TENANT_NAME: &str = "realtime-load";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A superuser URL of the Postgres server.
    #[arg(
        long,
        env = "PORTAL_LOAD_ADMIN_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    admin_url: String,
    /// The database to create (or reuse) and migrate.
    #[arg(long, default_value = "portal_load")]
    database: String,
    /// The non-owner login role the realtime service connects as.
    #[arg(long, default_value = "portal_load_app")]
    app_role: String,
    #[arg(long, default_value_t = 10_000)]
    agents: usize,
    #[arg(long, default_value_t = 3)]
    supervisors: usize,
    /// Where to write the plan `run` reads.
    #[arg(long, default_value = "realtime-load.json")]
    out: PathBuf,
}

/// What `run` needs: who may connect, and where the tenant's event counter is.
#[derive(Debug, Serialize, Deserialize)]
pub struct Plan {
    /// The app role's URL: what the realtime service is to connect as.
    pub database_url: String,
    /// The owner's URL: `run` reads and moves on the tenant's event counter with it.
    pub owner_url: String,
    pub tenant_id: Uuid,
    pub agents: Vec<Uuid>,
    pub supervisors: Vec<Uuid>,
}

impl Plan {
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!("reading the plan {} (run `prepare` first)", path.display())
        })?;
        Ok(serde_json::from_str(&text)?)
    }
}

pub async fn prepare(args: Args) -> anyhow::Result<()> {
    let owner_url = portal_shared::db::provision(&args.admin_url, &args.database, &args.app_role)
        .await
        .context("provisioning the load database")?;
    let database_url = portal_shared::db::with_user(&owner_url, &args.app_role)?;
    let owner = PgPoolOptions::new()
        .max_connections(1)
        .connect(&owner_url)
        .await?;

    let mut tx = owner.begin().await?;
    sqlx::query("DELETE FROM tenants WHERE name = $1")
        .bind(TENANT_NAME)
        .execute(&mut *tx)
        .await?;
    let tenant_id = Uuid::new_v4();
    sqlx::query("INSERT INTO tenants (id, name) VALUES ($1, $2)")
        .bind(tenant_id)
        .bind(TENANT_NAME)
        .execute(&mut *tx)
        .await?;
    let agents: Vec<Uuid> = (0..args.agents).map(|_| Uuid::new_v4()).collect();
    let supervisors: Vec<Uuid> = (0..args.supervisors).map(|_| Uuid::new_v4()).collect();
    for (ids, role) in [(&agents, "agent"), (&supervisors, "supervisor")] {
        sqlx::query(
            "INSERT INTO agents (tenant_id, id, display_name, role) \
             SELECT $1, t.id, $3 || ' ' || t.n, $3::agent_role \
             FROM UNNEST($2::uuid[]) WITH ORDINALITY AS t(id, n)",
        )
        .bind(tenant_id)
        .bind(ids.as_slice())
        .bind(role)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    owner.close().await;

    let plan = Plan {
        database_url,
        owner_url,
        tenant_id,
        agents,
        supervisors,
    };
    std::fs::write(&args.out, serde_json::to_vec(&plan)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "prepared database {}: tenant {} with {} agents and {} supervisors; plan written to {}",
        args.database,
        plan.tenant_id,
        plan.agents.len(),
        plan.supervisors.len(),
        args.out.display()
    );
    println!("realtime connects as: {}", plan.database_url);
    Ok(())
}
