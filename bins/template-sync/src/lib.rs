//! template-sync as a library: [`run`] syncs the given tenants (or every tenant with a WhatsApp
//! Business Account) one after the other and returns one summary per tenant.

use anyhow::Context;
use portal_shared::config::Settings;
use portal_shared::ids::TenantId;
use portal_shared::templates::sync::{Outcome, Summary, Syncer};
use portal_shared::tenancy::Db;
use portal_shared::whatsapp::accounts;
use tokio_util::sync::CancellationToken;

/// Exit status when every tenant synced (or was skipped because another run holds it).
pub const EXIT_OK: u8 = 0;
/// Exit status when any tenant failed or the run was stopped.
pub const EXIT_FAILED: u8 = 1;
/// Exit status when the run could not start (configuration, database).
pub const EXIT_UNUSABLE: u8 = 2;

/// Syncs `only` (or every tenant with an account); stops between pages when `stop` fires, and
/// then starts no further tenant (each is reported as stopped).
pub async fn run(
    settings: &Settings,
    only: Option<TenantId>,
    stop: CancellationToken,
) -> anyhow::Result<Vec<Summary>> {
    let db = Db::connect(&settings.database).await?;
    let syncer = Syncer::new(db.clone(), settings)?;
    let tenants = match only {
        Some(tenant) => vec![tenant],
        None => accounts::tenants(&db)
            .await
            .context("listing tenants with an account")?,
    };
    let mut summaries = Vec::with_capacity(tenants.len());
    for tenant in tenants {
        let summary = if stop.is_cancelled() {
            // Not started: reported, so the run's exit status says it was cut short.
            Summary {
                tenant_id: tenant,
                outcome: Outcome::Stopped,
            }
        } else {
            syncer.sync(tenant, &stop).await
        };
        tracing::info!(tenant_id = %tenant, outcome = %serde_json::to_string(&summary.outcome).unwrap_or_default(), "{summary}");
        summaries.push(summary);
    }
    db.close().await;
    Ok(summaries)
}
