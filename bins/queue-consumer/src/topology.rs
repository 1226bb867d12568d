//! The queues and exchange of `agent.notifications`, declared idempotently at every connect.
//!
//! | name | kind | arguments |
//! |---|---|---|
//! | `{queue}` | quorum queue, durable | `x-queue-type=quorum`, `x-dead-letter-exchange={queue}.dlx`, `x-delivery-limit={consumer.delivery_limit}` |
//! | `{queue}.dlx` | fanout exchange, durable | |
//! | `{queue}.dlq` | quorum queue, durable, bound to `{queue}.dlx` | `x-queue-type=quorum` |
//! | `{queue}.wait` | classic queue, durable | `x-dead-letter-exchange=""`, `x-dead-letter-routing-key={queue}` |
//!
//! A quorum queue because its `x-delivery-limit` makes a message that keeps killing the
//! consumer end in the dead-letter queue instead of being redelivered forever. The wait queue
//! holds a message that names something not there yet for `consumer.missing_retry_ms` (the
//! message's own expiration) and then, expired, routes it back to `{queue}`. Declaring with
//! other arguments than an existing queue's fails (`PRECONDITION_FAILED`): whoever else declares
//! these queues must use exactly these.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

/// The names derived from `consumer.queue`.
#[derive(Debug, Clone)]
pub struct Names {
    pub queue: String,
    pub dead_letter_exchange: String,
    pub dead_letter_queue: String,
    pub wait_queue: String,
}

impl Names {
    pub fn new(queue: &str) -> Self {
        Self {
            queue: queue.to_string(),
            dead_letter_exchange: format!("{queue}.dlx"),
            dead_letter_queue: format!("{queue}.dlq"),
            wait_queue: format!("{queue}.wait"),
        }
    }
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in entries {
        table.insert(ShortString::from(*key), value.clone());
    }
    table
}

/// The main queue's arguments, as documented above.
pub fn queue_arguments(names: &Names, delivery_limit: u32) -> FieldTable {
    table(&[
        ("x-queue-type", text("quorum")),
        ("x-dead-letter-exchange", text(&names.dead_letter_exchange)),
        (
            "x-delivery-limit",
            AMQPValue::LongInt(i32::try_from(delivery_limit).unwrap_or(i32::MAX)),
        ),
    ])
}

pub async fn declare(channel: &Channel, names: &Names, delivery_limit: u32) -> lapin::Result<()> {
    let durable = QueueDeclareOptions::durable();
    channel
        .exchange_declare(
            names.dead_letter_exchange.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            names.dead_letter_queue.as_str().into(),
            durable,
            table(&[("x-queue-type", text("quorum"))]),
        )
        .await?;
    channel
        .queue_bind(
            names.dead_letter_queue.as_str().into(),
            names.dead_letter_exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            names.wait_queue.as_str().into(),
            durable,
            table(&[
                ("x-dead-letter-exchange", text("")),
                ("x-dead-letter-routing-key", text(&names.queue)),
            ]),
        )
        .await?;
    channel
        .queue_declare(
            names.queue.as_str().into(),
            durable,
            queue_arguments(names, delivery_limit),
        )
        .await?;
    Ok(())
}

/// Messages ready in the queue (not yet delivered): the consumer's backlog.
pub async fn depth(channel: &Channel, names: &Names) -> lapin::Result<u32> {
    let queue = channel
        .queue_declare(
            names.queue.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(queue.message_count())
}
