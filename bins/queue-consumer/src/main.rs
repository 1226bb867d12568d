//! `queue-consumer`: apply `agent.notifications` from RabbitMQ.

use anyhow::Context;
use clap::Parser;
use portal_shared::config::Settings;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Agent Portal queue consumer: agent.notifications from RabbitMQ into Postgres, and live to agents"
)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let settings = Settings::load()?;
        let _telemetry = portal_shared::telemetry::init("queue-consumer", &settings.telemetry)?;
        let port = settings.http.port_or(queue_consumer::DEFAULT_PORT);
        let listener = tokio::net::TcpListener::bind((settings.http.host.as_str(), port))
            .await
            .with_context(|| format!("binding {}:{port}", settings.http.host))?;
        queue_consumer::run(settings, listener, portal_shared::signal::shutdown_signal()).await
    })
}
