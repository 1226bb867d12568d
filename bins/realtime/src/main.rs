//! `realtime`: serve Socket.IO to agents' browsers.

use anyhow::Context;
use clap::Parser;
use portal_shared::config::Settings;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Agent Portal realtime service: Socket.IO for agents' browsers, fed by Redis"
)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let settings = Settings::load()?;
        let _telemetry = portal_shared::telemetry::init("realtime", &settings.telemetry)?;
        let port = settings.http.port_or(realtime::DEFAULT_PORT);
        let listener = tokio::net::TcpListener::bind((settings.http.host.as_str(), port))
            .await
            .with_context(|| format!("binding {}:{port}", settings.http.host))?;
        realtime::run(settings, listener, portal_shared::signal::shutdown_signal()).await
    })
}
