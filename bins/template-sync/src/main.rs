//! `template-sync`: run to completion (a Kubernetes CronJob starts it), one summary line per
//! tenant on stdout; exit status 0 when every tenant synced, 1 when any failed or the run was
//! stopped (SIGTERM), 2 when it could not start.

use std::process::ExitCode;

use clap::Parser;
use portal_shared::config::Settings;
use portal_shared::ids::TenantId;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Sync WhatsApp message templates into Postgres and the Redis cache"
)]
struct Cli {
    /// Sync only this tenant.
    #[arg(long)]
    tenant: Option<Uuid>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    else {
        return ExitCode::from(template_sync::EXIT_UNUSABLE);
    };
    runtime.block_on(async move {
        let settings = match Settings::load() {
            Ok(settings) => settings,
            Err(err) => {
                eprintln!("{err}");
                return ExitCode::from(template_sync::EXIT_UNUSABLE);
            }
        };
        let _telemetry = portal_shared::telemetry::init("template-sync", &settings.telemetry);
        let stop = CancellationToken::new();
        let on_signal = stop.clone();
        tokio::spawn(async move {
            portal_shared::signal::shutdown_signal().await;
            on_signal.cancel();
        });
        match template_sync::run(&settings, cli.tenant.map(TenantId), stop).await {
            Ok(summaries) => {
                #[allow(clippy::print_stdout)]
                for summary in &summaries {
                    println!("{summary}");
                }
                if summaries.iter().any(|s| s.failed()) {
                    ExitCode::from(template_sync::EXIT_FAILED)
                } else {
                    ExitCode::from(template_sync::EXIT_OK)
                }
            }
            Err(err) => {
                eprintln!("template-sync could not run: {err:#}");
                ExitCode::from(template_sync::EXIT_UNUSABLE)
            }
        }
    })
}
