//! `dev`: the whole Agent Portal on a development machine, in one process. It provisions the
//! local database, loads the demo data, starts stand-ins for the external services, syncs the
//! demo tenant's templates through template-sync, and runs the api, the realtime service and
//! (when RabbitMQ answers) the queue consumer, each through its library's `run`. None of this
//! is in the production binaries, which depend on `shared` alone.

mod broker;
mod prepare;
mod stand_ins;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use portal_shared::agents::Role;
use portal_shared::config::Settings;
use portal_shared::ids::{AgentId, TenantId};
use portal_shared::signal::shutdown_signal;
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(version, about = "The Agent Portal's development stack")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
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
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mint an HS256 token (with `PORTAL__AUTH__JWT_SECRET`; refused when auth.jwks_url is set).
    Token {
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
    /// Serve only the stand-ins for the external services, on fixed ports, until SIGTERM (the
    /// `stand-ins` service of docker-compose.yml).
    StandIns {
        #[arg(long, default_value = "127.0.0.1")]
        host: IpAddr,
        /// The Outbound Transformer: `POST /messages`.
        #[arg(long, default_value_t = 8090)]
        transformer_port: u16,
        /// The WhatsApp Business Management API: `GET /{version}/{waba}/message_templates`.
        #[arg(long, default_value_t = 8091)]
        whatsapp_port: u16,
        /// The State Manager: conversations, customers and the changes propagated to it.
        #[arg(long, default_value_t = 8092)]
        state_manager_port: u16,
        /// Genesys Cloud: the OAuth token, conversations' participants, transfers, disconnects.
        #[arg(long, default_value_t = 8093)]
        genesys_port: u16,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Some(Command::Token {
                tenant,
                agent,
                roles,
                ttl_minutes,
            }) => token(tenant, agent, &roles, ttl_minutes),
            Some(Command::StandIns {
                host,
                transformer_port,
                whatsapp_port,
                state_manager_port,
                genesys_port,
            }) => {
                stand_ins_only(
                    host,
                    [
                        transformer_port,
                        whatsapp_port,
                        state_manager_port,
                        genesys_port,
                    ],
                )
                .await
            }
            None => stack(&cli.admin_url, cli.conversations, cli.no_serve).await,
        }
    })
}

fn token(tenant: Uuid, agent: Uuid, roles: &[String], ttl_minutes: u64) -> anyhow::Result<()> {
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

async fn stand_ins_only(host: IpAddr, ports: [u16; 4]) -> anyhow::Result<()> {
    let telemetry = portal_shared::config::TelemetrySettings {
        log_format: portal_shared::config::LogFormat::Json,
        log_filter: "info".to_string(),
    };
    let _telemetry = portal_shared::telemetry::init("dev-stand-ins", &telemetry)?;
    start_stand_ins(ports.map(|port| SocketAddr::new(host, port))).await?;
    shutdown_signal().await;
    Ok(())
}

/// The transformer, WhatsApp, State Manager and Genesys stand-ins, on these addresses.
async fn start_stand_ins(addrs: [SocketAddr; 4]) -> anyhow::Result<prepare::StandInUrls> {
    let [transformer, whatsapp, state_manager, genesys] = addrs;
    Ok(prepare::StandInUrls {
        transformer: stand_ins::transformer::start(transformer).await?,
        whatsapp: stand_ins::whatsapp::start(whatsapp).await?,
        state_manager: stand_ins::state_manager::start(state_manager).await?,
        genesys: stand_ins::genesys::start(genesys).await?,
    })
}

async fn stack(admin_url: &str, conversations: usize, no_serve: bool) -> anyhow::Result<()> {
    let stand_ins = start_stand_ins([SocketAddr::from(([127, 0, 0, 1], 0)); 4]).await?;
    let settings = Settings::load_from(None, prepare::dev_env(admin_url, &stand_ins)?)?;
    let _telemetry = portal_shared::telemetry::init("dev", &settings.telemetry)?;
    let consuming = broker::reachable(&settings).await;
    prepare::prepare(admin_url, &settings, conversations, consuming).await?;
    if no_serve {
        return Ok(());
    }
    let bind = |port: u16| async move {
        tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("binding 127.0.0.1:{port}"))
    };
    let realtime = tokio::spawn(realtime::run(
        settings.clone(),
        bind(realtime::DEFAULT_PORT).await?,
        shutdown_signal(),
    ));
    let consumer = if consuming {
        Some(tokio::spawn(queue_consumer::run(
            settings.clone(),
            bind(queue_consumer::DEFAULT_PORT).await?,
            shutdown_signal(),
        )))
    } else {
        None
    };
    api::run(
        settings.clone(),
        bind(settings.http.port_or(api::DEFAULT_PORT)).await?,
        shutdown_signal(),
    )
    .await?;
    realtime.await??;
    if let Some(consumer) = consumer {
        consumer.await??;
    }
    Ok(())
}
