//! Periodic housekeeping while connected: receipts kept too long are dead-lettered, old
//! processed ids are forgotten, and the queue's depth is sampled for `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel};
use portal_shared::config::ConsumerSettings;
use portal_shared::messages::receipts::{self, OverdueReceipt};
use portal_shared::notifications::processed;
use portal_shared::tenancy::Db;
use tokio_util::sync::CancellationToken;

use crate::forward::Forwarder;
use crate::metrics::Metrics;
use crate::topology::{self, Names};

/// Receipts dead-lettered per sweep, and processed ids deleted per statement.
const BATCH: u32 = 500;

#[derive(Debug)]
pub struct Sweeper {
    pub db: Db,
    pub forwarder: Forwarder,
    pub channel: Channel,
    pub names: Names,
    pub settings: Arc<ConsumerSettings>,
    pub metrics: Metrics,
}

impl Sweeper {
    pub async fn run(self, stop: CancellationToken) {
        let mut tick =
            tokio::time::interval(Duration::from_secs(self.settings.sweep_interval_secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            match topology::depth(&self.channel, &self.names).await {
                Ok(depth) => self.metrics.queue_depth(depth),
                Err(err) => tracing::debug!(error = %err, "could not sample the queue depth"),
            }
            if let Err(err) = self.overdue_receipts().await {
                tracing::warn!(error = %err, "sweeping kept receipts failed");
            }
            if let Err(err) = self.prune().await {
                tracing::warn!(error = %err, "pruning processed ids failed");
            }
        }
    }

    /// Each receipt kept past `consumer.receipt_wait_secs` goes to the dead-letter queue as the
    /// notification it came in (reason `unknown_message`), then leaves `pending_receipts`.
    async fn overdue_receipts(&self) -> anyhow::Result<()> {
        let wait = Duration::from_secs(self.settings.receipt_wait_secs);
        for receipt in receipts::overdue(&self.db, wait, BATCH).await? {
            let detail = format!(
                "no message has WhatsApp id {} after {} s",
                receipt.whatsapp_message_id,
                wait.as_secs()
            );
            let (properties, body) = as_published(&receipt);
            self.forwarder
                .dead_letter(&properties, &body, "unknown_message", &detail)
                .await?;
            self.metrics.dead_lettered("unknown_message");
            receipts::forget(&self.db, &receipt).await?;
            tracing::warn!(tenant_id = %receipt.tenant_id, whatsapp_message_id = %receipt.whatsapp_message_id, status = receipt.status.as_str(), "dead-lettered a receipt whose message never appeared");
        }
        Ok(())
    }

    async fn prune(&self) -> anyhow::Result<()> {
        let retention = Duration::from_secs(self.settings.processed_retention_hours * 3600);
        while processed::prune(&self.db, retention, BATCH).await? == u64::from(BATCH) {}
        Ok(())
    }
}

/// The receipt's notification as it was published (kept with it), with its event id.
fn as_published(receipt: &OverdueReceipt) -> (BasicProperties, Vec<u8>) {
    let body = receipt
        .source
        .as_ref()
        .map(|s| s.to_string())
        .unwrap_or_else(|| {
            serde_json::json!({
                "tenant_id": receipt.tenant_id,
                "whatsapp_message_id": receipt.whatsapp_message_id,
                "status": receipt.status,
            })
            .to_string()
        });
    let mut headers = FieldTable::default();
    headers.insert(
        "x-tenant-id".into(),
        AMQPValue::LongString(LongString::from(receipt.tenant_id.to_string())),
    );
    let mut properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_headers(headers);
    if let Some(id) = receipt
        .source
        .as_ref()
        .and_then(|s| s.get("event_id"))
        .and_then(|v| v.as_str())
    {
        properties = properties.with_message_id(id.into());
    }
    (properties, body.into_bytes())
}
