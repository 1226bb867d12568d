//! `api`: serve the REST API, or run migrations.

use anyhow::Context;
use clap::{Parser, Subcommand};
use portal_shared::config::Settings;
use secrecy::ExposeSecret;

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
