//! The RabbitMQ side: deleting the test queue, the notifications' bodies, and publishing them
//! reliably (persistent, mandatory, publisher confirms pipelined in a window).

use std::collections::VecDeque;
use std::fmt::Write;

use anyhow::Context;
use chrono::{SecondsFormat, Utc};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeleteOptions,
};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use uuid::Uuid;

use crate::prepare::Tenant;

#[derive(Debug, clap::Args)]
pub struct ResetArgs {
    #[arg(
        long,
        env = "PORTAL__AMQP__URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true
    )]
    amqp_url: String,
    /// The consumer's queue; `{queue}.dlq`, `{queue}.wait` and `{queue}.dlx` go too.
    #[arg(long, default_value = "agent.notifications.load")]
    queue: String,
}

/// Deletes the queues and exchange the consumer declares for `queue`, so a run starts without
/// a backlog from an earlier one (and the consumer declares them afresh with its arguments).
pub async fn reset(args: ResetArgs) -> anyhow::Result<()> {
    let connection = connect(&args.amqp_url).await?;
    let channel = connection.create_channel().await?;
    for queue in [
        args.queue.clone(),
        format!("{}.dlq", args.queue),
        format!("{}.wait", args.queue),
    ] {
        // RabbitMQ answers delete-ok for a queue that does not exist, so a first run needs no
        // special case.
        let dropped = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await
            .with_context(|| format!("deleting queue {queue}"))?;
        println!("deleted queue {queue} ({dropped} messages dropped)");
    }
    let exchange = format!("{}.dlx", args.queue);
    channel
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .with_context(|| format!("deleting exchange {exchange}"))?;
    println!("deleted exchange {exchange}");
    let _ = connection.close(200, "bye".into()).await;
    Ok(())
}

pub async fn connect(url: &str) -> anyhow::Result<Connection> {
    let properties = ConnectionProperties::default()
        .with_connection_name(format!("notifications-load {}", std::process::id()).into());
    Connection::connect(url, properties)
        .await
        .context("connecting to RabbitMQ")
}

/// One confirm channel publishing to the queue through the default exchange.
#[derive(Debug)]
pub struct Publisher {
    channel: Channel,
    queue: String,
    properties: BasicProperties,
    /// Published but not yet confirmed, oldest first.
    unconfirmed: VecDeque<lapin::PublisherConfirm>,
    window: usize,
}

impl Publisher {
    /// `window`: publishes awaiting their confirm at most; waiting for each confirm before the
    /// next publish would cap a channel at one message per broker round trip (and fsync).
    pub async fn open(connection: &Connection, queue: &str, window: usize) -> anyhow::Result<Self> {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self {
            channel,
            queue: queue.to_string(),
            // Persistent, as a real publisher to a durable queue would send them.
            properties: BasicProperties::default()
                .with_content_type("application/json".into())
                .with_delivery_mode(2),
            unconfirmed: VecDeque::with_capacity(window),
            window: window.max(1),
        })
    }

    pub async fn publish(&mut self, body: &[u8]) -> anyhow::Result<()> {
        while self.unconfirmed.len() >= self.window {
            self.confirm_oldest().await?;
        }
        let confirm = self
            .channel
            .basic_publish(
                "".into(),
                self.queue.as_str().into(),
                // Mandatory: a missing queue (the consumer never declared it) is an error
                // here, not messages silently dropped by the broker.
                BasicPublishOptions {
                    mandatory: true,
                    immediate: false,
                },
                body,
                self.properties.clone(),
            )
            .await
            .context("publishing to RabbitMQ")?;
        self.unconfirmed.push_back(confirm);
        Ok(())
    }

    /// Waits for every outstanding confirm.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        while !self.unconfirmed.is_empty() {
            self.confirm_oldest().await?;
        }
        Ok(())
    }

    async fn confirm_oldest(&mut self) -> anyhow::Result<()> {
        let Some(confirm) = self.unconfirmed.pop_front() else {
            return Ok(());
        };
        match confirm.await.context("waiting for a publisher confirm")? {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) => Err(anyhow::anyhow!(
                "the broker could not route a message to queue {} (is the consumer running?)",
                self.queue
            )),
            Confirmation::Nack(_) => Err(anyhow::anyhow!("the broker refused a message (nack)")),
            Confirmation::NotRequested => Err(anyhow::anyhow!(
                "publisher confirms are not enabled on the channel"
            )),
        }
    }

    pub async fn close(mut self) -> anyhow::Result<()> {
        self.flush().await?;
        let _ = self.channel.close(200, "bye".into()).await;
        Ok(())
    }
}

/// The names one run gives what it creates, unique per run so runs against the same database
/// (without a new `prepare`) do not collide.
#[derive(Debug, Clone)]
pub struct Naming {
    pub run: String,
    /// Phone numbers are `+1` followed by this and a 7-digit conversation number.
    phone_prefix: u64,
}

impl Naming {
    pub fn new() -> Self {
        let id = Uuid::new_v4();
        let bits = id.as_u128();
        Self {
            run: format!("{:08x}", (bits >> 96) as u32),
            phone_prefix: 100_000 + (bits as u64 % 900_000),
        }
    }

    pub fn state_manager_id(&self, conversation: usize) -> String {
        format!("load-{}-{conversation}", self.run)
    }

    pub fn phone(&self, conversation: usize) -> String {
        format!("+1{}{:07}", self.phone_prefix, conversation % 10_000_000)
    }

    /// The WhatsApp id of message `index`: how the subscriber knows which one arrived.
    pub fn whatsapp_message_id(&self, index: u64) -> String {
        format!("wamid.load.{}.{index}", self.run)
    }

    /// The message index back from a WhatsApp id of this run.
    pub fn message_index(&self, whatsapp_message_id: &str) -> Option<u64> {
        whatsapp_message_id
            .strip_prefix("wamid.load.")?
            .strip_prefix(self.run.as_str())?
            .strip_prefix('.')?
            .parse()
            .ok()
    }

    pub fn is_ours(&self, state_manager_id: &str) -> bool {
        state_manager_id
            .strip_prefix("load-")
            .and_then(|rest| rest.strip_prefix(self.run.as_str()))
            .is_some_and(|rest| rest.starts_with('-'))
    }
}

fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The common envelope; `data` is already JSON.
fn envelope(out: &mut String, kind: &str, tenant_id: Uuid, data: &str) {
    out.clear();
    let _ = write!(
        out,
        r#"{{"version":1,"event_id":"{}","type":"{kind}","tenant_id":"{tenant_id}","occurred_at":"{}","data":{data}}}"#,
        Uuid::now_v7(),
        now_rfc3339(),
    );
}

/// `conversation.created` for conversation number `conversation` of `tenant`: an active
/// conversation assigned to the tenant's agent, so its messages reach an agent's room.
pub fn conversation_created(
    out: &mut String,
    naming: &Naming,
    tenant: &Tenant,
    conversation: usize,
) {
    let data = format!(
        r#"{{"conversation":{{"state_manager_id":"{}","channel":"whatsapp","state":"active","assigned_agent_id":"{}"}},"customer":{{"phone_e164":"{}","display_name":"Load customer {conversation}"}}}}"#,
        naming.state_manager_id(conversation),
        tenant.agent_id,
        naming.phone(conversation),
    );
    envelope(out, "conversation.created", tenant.id, &data);
}

/// `message.received` number `index` in conversation `conversation`; its text carries the
/// publish time (`load <unix nanos>`), which the event's `payload.message.text` brings back.
pub fn message_received(
    out: &mut String,
    naming: &Naming,
    tenant: Uuid,
    conversation: usize,
    index: u64,
    sent_unix_ns: u128,
) {
    let data = format!(
        r#"{{"state_manager_id":"{}","whatsapp_message_id":"{}","sent_at":"{}","text":"load {sent_unix_ns}"}}"#,
        naming.state_manager_id(conversation),
        naming.whatsapp_message_id(index),
        now_rfc3339(),
    );
    envelope(out, "message.received", tenant, &data);
}

/// Nanoseconds since the Unix epoch: the publish stamp, read on the same clock by the
/// subscriber of this same process.
pub fn unix_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use portal_shared::notifications::{Notification, parse};

    use super::*;

    #[test]
    fn bodies_pass_the_schema_and_name_what_the_subscriber_reads_back() {
        let naming = Naming::new();
        let tenant = Tenant {
            id: Uuid::new_v4(),
            agent_id: Uuid::new_v4(),
        };
        let mut body = String::new();
        conversation_created(&mut body, &naming, &tenant, 7);
        let created = parse(body.as_bytes()).unwrap();
        assert_eq!(created.tenant_id.0, tenant.id);
        match created.notification {
            Notification::ConversationCreated {
                conversation,
                customer,
            } => {
                assert!(naming.is_ours(&conversation.state_manager_id));
                assert_eq!(customer.phone_e164, naming.phone(7));
            }
            other => panic!("{other:?}"),
        }

        message_received(
            &mut body,
            &naming,
            tenant.id,
            7,
            1234,
            1_700_000_000_123_456_789,
        );
        let received = parse(body.as_bytes()).unwrap();
        assert_eq!(received.event_id.get_version_num(), 7);
        match received.notification {
            Notification::MessageReceived {
                state_manager_id,
                whatsapp_message_id,
                text,
                ..
            } => {
                assert_eq!(state_manager_id, naming.state_manager_id(7));
                assert_eq!(naming.message_index(&whatsapp_message_id), Some(1234));
                assert_eq!(text.as_deref(), Some("load 1700000000123456789"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn names_of_other_runs_are_not_ours() {
        let (a, b) = (Naming::new(), Naming::new());
        assert!(!a.is_ours(&b.state_manager_id(1)));
        assert_eq!(a.message_index(&b.whatsapp_message_id(1)), None);
        assert_eq!(a.message_index(&a.whatsapp_message_id(42)), Some(42));
    }
}
