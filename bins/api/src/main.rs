//! `api`: serve the REST API, run migrations, or mint a development token.

use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use portal_shared::agents::Role;
use portal_shared::config::Settings;
use portal_shared::ids::{AgentId, TenantId};
use secrecy::ExposeSecret;
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(version, about = "Agent Portal REST API")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply or revert migrations, connecting with PORTAL__DATABASE__URL as the schema owner.
    Migrate {
        #[command(subcommand)]
        direction: Option<Migration>,
    },
    /// Mint an HS256 token for development (refused when auth.jwks_url is configured).
    DevToken {
        #[arg(long)]
        tenant: Uuid,
        #[arg(long)]
        agent: Uuid,
        /// agent, supervisor or admin; repeat for several.
        #[arg(long = "role", default_value = "agent")]
        roles: Vec<String>,
        #[arg(long, default_value_t = 720)]
        ttl_minutes: u64,
    },
    /// Development: create database and roles, migrate, load demo data, print tokens, serve
    /// the API and, beside it on port 8081, the realtime service.
    Dev {
        /// A superuser connection to the local Postgres.
        #[arg(
            long,
            env = "PORTAL_DEV_ADMIN_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/postgres"
        )]
        admin_url: String,
        /// How many demo conversations to load into an empty database.
        #[arg(long, default_value_t = 400)]
        conversations: usize,
        /// Prepare everything and print the tokens, but do not serve.
        #[arg(long)]
        no_serve: bool,
    },
}

#[derive(Debug, Subcommand)]
enum Migration {
    /// Apply every pending migration (the default).
    Up,
    /// Revert migrations down to `--to` (0 = everything).
    Down {
        #[arg(long, default_value_t = 0)]
        to: i64,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(Settings::load()?).await,
            Command::Migrate { direction } => {
                let settings = Settings::load()?;
                let url = settings.database.url.expose_secret();
                match direction.unwrap_or(Migration::Up) {
                    Migration::Up => portal_shared::db::migrate_up(url)
                        .await
                        .context("migrating up")?,
                    Migration::Down { to } => portal_shared::db::migrate_down(url, to)
                        .await
                        .context("migrating down")?,
                }
                eprintln!("migrations done");
                Ok(())
            }
            Command::DevToken {
                tenant,
                agent,
                roles,
                ttl_minutes,
            } => {
                let settings = Settings::load()?;
                let roles = roles
                    .iter()
                    .map(|r| Role::parse(r).with_context(|| format!("unknown role {r:?}")))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let token = portal_shared::auth::mint_dev_token(
                    &settings.auth,
                    TenantId(tenant),
                    AgentId(agent),
                    &roles,
                    Duration::from_secs(ttl_minutes * 60),
                )?;
                #[allow(clippy::print_stdout)]
                {
                    println!("{token}");
                }
                Ok(())
            }
            Command::Dev {
                admin_url,
                conversations,
                no_serve,
            } => {
                let transformer = api::dev::start_transformer_stand_in().await?;
                let whatsapp = api::dev_whatsapp::start().await?;
                let settings = Settings::load_from(
                    None,
                    api::dev::dev_env(&admin_url, &transformer, &whatsapp)?,
                )?;
                api::dev::prepare(&admin_url, &settings, conversations).await?;
                if no_serve {
                    return Ok(());
                }
                // The realtime service beside the API, as its own pods would run it.
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", realtime::DEFAULT_PORT))
                    .await
                    .with_context(|| format!("binding 127.0.0.1:{}", realtime::DEFAULT_PORT))?;
                let realtime = tokio::spawn(realtime::run(
                    settings.clone(),
                    listener,
                    portal_shared::signal::shutdown_signal(),
                ));
                serve(settings).await?;
                realtime.await?
            }
        }
    })
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let _telemetry = portal_shared::telemetry::init("api", &settings.telemetry)?;
    let port = settings.http.port_or(api::DEFAULT_PORT);
    let listener = tokio::net::TcpListener::bind((settings.http.host.as_str(), port))
        .await
        .with_context(|| format!("binding {}:{port}", settings.http.host))?;
    api::run(settings, listener, portal_shared::signal::shutdown_signal()).await
}
