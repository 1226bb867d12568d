//! What happens to one delivery: validate, apply, then acknowledge, dead-letter, or park it in
//! the wait queue; never requeue forever, never drop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use lapin::message::Delivery;
use opentelemetry::trace::TraceContextExt as _;
use portal_shared::backoff::Backoff;
use portal_shared::config::ConsumerSettings;
use portal_shared::notifications::{Applier, Envelope, Poison, Refusal};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::acks::Acks;
use crate::forward::{self, Forwarder};
use crate::metrics::Metrics;

/// What to do with a delivery once its fate is known.
enum Disposition {
    Ack(&'static str),
    DeadLetter {
        reason: &'static str,
        detail: String,
    },
    Wait {
        first_received_ms: i64,
    },
    /// Stopping in the middle of retries: back to the queue for another consumer.
    Requeue,
    /// The channel it came on is gone; the broker redelivers it.
    Abandon,
}

/// One tenant's deliveries of a batch, in arrival order.
type Group = Vec<(Delivery, Envelope)>;

#[derive(Debug)]
pub struct Handler {
    pub applier: Applier,
    pub acks: Acks,
    pub forwarder: Forwarder,
    pub metrics: Metrics,
    pub settings: Arc<ConsumerSettings>,
    pub stop: CancellationToken,
}

impl Handler {
    pub async fn handle(&self, delivery: Delivery, parsed: Result<Envelope, Poison>) {
        let started = Instant::now();
        let span = tracing::info_span!(
            "notification",
            otel.kind = "consumer",
            messaging.system = "rabbitmq",
            messaging.operation.type = "process",
            event_id = tracing::field::Empty,
            r#type = tracing::field::Empty,
            tenant_id = tracing::field::Empty,
            redelivered = delivery.redelivered,
        );
        if let Some(context) = carried_context(&delivery) {
            let _ = span.set_parent(context);
        }
        if let Ok(envelope) = &parsed {
            span.record("event_id", tracing::field::display(envelope.event_id));
            span.record("type", envelope.notification.type_name());
            span.record("tenant_id", tracing::field::display(envelope.tenant_id));
        }
        async move {
            let disposition = match parsed {
                Err(poison) => Disposition::DeadLetter {
                    reason: poison.code(),
                    detail: poison.to_string(),
                },
                Ok(envelope) => self.apply(&delivery, &envelope).await,
            };
            let outcome = self.settle(&delivery, disposition).await;
            self.metrics.finished(outcome, started.elapsed());
        }
        .instrument(span)
        .await
    }

    /// Several deliveries that were waiting in a lane together: applied in one transaction,
    /// each tenant's in order (a commit costs the database far more than the statements in
    /// it). When that is refused, each tenant's are tried on their own, then one by one, which
    /// sorts out which message is at fault and what to do with it.
    pub async fn handle_many(&self, work: Vec<(Delivery, Result<Envelope, Poison>)>) {
        let mut groups: Vec<Group> = Vec::new();
        for (delivery, parsed) in work {
            match parsed {
                Ok(envelope) => match groups
                    .iter_mut()
                    .find(|g| g[0].1.tenant_id == envelope.tenant_id)
                {
                    Some(group) => group.push((delivery, envelope)),
                    None => groups.push(vec![(delivery, envelope)]),
                },
                Err(poison) => self.handle(delivery, Err(poison)).await,
            }
        }
        // The same order in every consumer: tenants' event counters are locked in it.
        groups.sort_by_key(|g| g[0].1.tenant_id);
        let several_tenants = groups.len() > 1;
        if groups.iter().map(Vec::len).sum::<usize>() > 1 {
            match self.apply_together(groups).await {
                Ok(()) => return,
                Err(refused) => groups = refused,
            }
        }
        for mut group in groups {
            if several_tenants && group.len() > 1 {
                match self.apply_together(vec![group]).await {
                    Ok(()) => continue,
                    Err(mut refused) => group = refused.pop().unwrap_or_default(),
                }
            }
            for (delivery, envelope) in group {
                self.handle(delivery, Ok(envelope)).await;
            }
        }
    }

    /// Applies the groups in one transaction and acknowledges them; hands them back untouched
    /// when the transaction is refused.
    async fn apply_together(&self, groups: Vec<Group>) -> Result<(), Vec<Group>> {
        let started = Instant::now();
        let n = groups.iter().map(Vec::len).sum::<usize>();
        // One transaction for messages of many traces: linked to each of them, as the
        // messaging conventions have it for a batch.
        let span = tracing::info_span!(
            "notification_batch",
            otel.kind = "consumer",
            messaging.system = "rabbitmq",
            messaging.operation.type = "process",
            messaging.batch.message_count = n,
            tenants = groups.len(),
        );
        for (delivery, _) in groups.iter().flatten() {
            if let Some(context) = carried_context(delivery) {
                span.add_link(context.span().span_context().clone());
            }
        }
        let batches: Vec<Vec<(&Envelope, &[u8])>> = groups
            .iter()
            .map(|group| {
                group
                    .iter()
                    .map(|(delivery, envelope)| (envelope, delivery.data.as_slice()))
                    .collect()
            })
            .collect();
        let batches: Vec<&[(&Envelope, &[u8])]> = batches.iter().map(Vec::as_slice).collect();
        let outcomes = match self.applier.apply_tenants(&batches).instrument(span).await {
            Ok(outcomes) => outcomes,
            Err(refusal) => {
                tracing::debug!(%refusal, n, "a batch was refused; applying its messages on their own");
                return Err(groups);
            }
        };
        self.metrics.batch(n);
        for (group, outcomes) in groups.iter().zip(outcomes) {
            for ((delivery, envelope), outcome) in group.iter().zip(outcomes) {
                let age = (Utc::now() - envelope.occurred_at)
                    .to_std()
                    .unwrap_or_default();
                self.metrics.applied_after(age);
                let outcome = self
                    .settle(delivery, Disposition::Ack(outcome.as_str()))
                    .await;
                self.metrics.finished(outcome, started.elapsed());
            }
        }
        Ok(())
    }

    async fn apply(&self, delivery: &Delivery, envelope: &Envelope) -> Disposition {
        let mut backoff = Backoff::new(
            Duration::from_millis(self.settings.retry_initial_ms),
            Duration::from_millis(self.settings.retry_max_ms),
        );
        let mut fetched = false;
        loop {
            match self.applier.apply(envelope, &delivery.data).await {
                Ok(outcome) => {
                    self.metrics.batch(1);
                    let age = (Utc::now() - envelope.occurred_at)
                        .to_std()
                        .unwrap_or_default();
                    self.metrics.applied_after(age);
                    tracing::debug!(outcome = outcome.as_str(), "notification done");
                    return Disposition::Ack(outcome.as_str());
                }
                Err(Refusal::Poison { reason, detail }) => {
                    return Disposition::DeadLetter { reason, detail };
                }
                Err(Refusal::Missing { what }) => {
                    // Asked once: a conversation the State Manager has is applied now, not
                    // after minutes in the wait queue.
                    if what == "conversation" && !fetched {
                        fetched = true;
                        match self.applier.fetch_missing_conversation(envelope).await {
                            Ok(true) => {
                                self.metrics.fetched();
                                continue;
                            }
                            Ok(false) => {}
                            Err(refusal) => {
                                tracing::info!(%refusal, "could not open the fetched conversation");
                            }
                        }
                    }
                    return self.missing(delivery, what);
                }
                Err(Refusal::Transient(err)) => {
                    if !delivery.acker.usable() {
                        return Disposition::Abandon;
                    }
                    let delay = backoff.next_delay();
                    self.metrics.retried();
                    tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "transient failure; retrying");
                    tokio::select! {
                        () = self.stop.cancelled() => return Disposition::Requeue,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// A conversation or agent the tenant does not have: wait for it, up to the allowed time.
    fn missing(&self, delivery: &Delivery, what: &'static str) -> Disposition {
        let now_ms = Utc::now().timestamp_millis();
        let first_received_ms = delivery
            .properties
            .headers()
            .as_ref()
            .and_then(|h| forward::header_i64(h, forward::FIRST_RECEIVED_HEADER))
            .unwrap_or(now_ms);
        let waited = Duration::from_millis(u64::try_from(now_ms - first_received_ms).unwrap_or(0));
        if waited >= Duration::from_secs(self.settings.missing_wait_secs) {
            Disposition::DeadLetter {
                reason: "unknown_reference",
                detail: format!("no such {what} after waiting {} s", waited.as_secs()),
            }
        } else {
            tracing::info!(
                missing = what,
                waited_secs = waited.as_secs(),
                "waiting for a reference"
            );
            Disposition::Wait { first_received_ms }
        }
    }

    /// Carries out the disposition; returns the outcome label for the metrics.
    async fn settle(&self, delivery: &Delivery, disposition: Disposition) -> &'static str {
        let properties = &delivery.properties;
        let (forwarded, outcome) = match disposition {
            Disposition::Ack(outcome) => (Ok(()), outcome),
            Disposition::DeadLetter { reason, detail } => {
                tracing::warn!(reason, %detail, "dead-lettering a message");
                let sent = self
                    .forwarder
                    .dead_letter(properties, &delivery.data, reason, &detail)
                    .await;
                if sent.is_ok() {
                    self.metrics.dead_lettered(reason);
                }
                (sent, "dead_lettered")
            }
            Disposition::Wait { first_received_ms } => (
                self.forwarder
                    .wait(
                        properties,
                        &delivery.data,
                        first_received_ms,
                        self.settings.missing_retry_ms,
                    )
                    .await,
                "waiting",
            ),
            Disposition::Requeue => return self.requeue(delivery),
            Disposition::Abandon => {
                self.acks.forget(delivery.delivery_tag);
                return "abandoned";
            }
        };
        match forwarded {
            Ok(()) => {
                // Applied (or forwarded): acknowledged soon, together with others. Should the
                // connection drop first, the redelivery is recognised by its event_id.
                self.acks.ack(delivery.delivery_tag);
                outcome
            }
            Err(err) => {
                // Not forwarded, so not acknowledged: it goes back to the queue, after a pause
                // so a broker that keeps refusing is not spun on (the queue's delivery limit
                // ends it in the dead-letter queue).
                tracing::error!(error = %err, "forwarding failed; requeueing the message");
                tokio::time::sleep(Duration::from_millis(self.settings.retry_max_ms.min(1000)))
                    .await;
                self.requeue(delivery)
            }
        }
    }

    /// Hands the message back to the broker for another consumer (or this one, later).
    fn requeue(&self, delivery: &Delivery) -> &'static str {
        self.acks.requeue(delivery.delivery_tag);
        "requeued"
    }
}

/// The trace context a message carries in its `traceparent`/`tracestate` headers.
fn carried_context(delivery: &Delivery) -> Option<opentelemetry::Context> {
    let headers = delivery.properties.headers().as_ref()?;
    let carried = ["traceparent", "tracestate"]
        .into_iter()
        .filter_map(|k| forward::header_text(headers, k).map(|v| (k, v)));
    Some(portal_shared::telemetry::extract_context_from(carried))
}
