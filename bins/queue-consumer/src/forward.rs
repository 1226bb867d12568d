//! Moving a message elsewhere before acknowledging it: to the dead-letter exchange with the
//! reason in its headers, or to the wait queue to be tried again later.
//!
//! Both publish on a confirm channel as `mandatory` and wait for the broker's confirm; only
//! then is the original acknowledged, so a message is never in neither place. (It can be in
//! both, if the connection drops between the confirm and the ack: the redelivery is then a
//! duplicate the processed-ids table absorbs, or a second dead letter.)

use chrono::Utc;
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation};

use crate::topology::Names;

/// Why a message is in the dead-letter queue: one of the codes in the README.
pub const REASON_HEADER: &str = "x-dead-letter-reason";
/// The reason in words (at most [`MAX_DETAIL_CHARS`]).
pub const DETAIL_HEADER: &str = "x-dead-letter-detail";
pub const DEAD_LETTERED_AT_HEADER: &str = "x-dead-lettered-at";
/// When this consumer first received the message (Unix milliseconds), kept across waits.
pub const FIRST_RECEIVED_HEADER: &str = "x-first-received-at";
/// How many times the message went through the wait queue.
pub const WAITS_HEADER: &str = "x-wait-count";

const MAX_DETAIL_CHARS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error(transparent)]
    Broker(#[from] lapin::Error),
    #[error("the broker refused the message (nack)")]
    Refused,
    #[error("the broker could not route the message to {0}")]
    Unroutable(String),
}

#[derive(Debug, Clone)]
pub struct Forwarder {
    channel: Channel,
    names: Names,
}

impl Forwarder {
    /// `channel` must be in confirm mode.
    pub fn new(channel: Channel, names: Names) -> Self {
        Self { channel, names }
    }

    /// Publishes the message, as it came, to the dead-letter exchange with the reason.
    pub async fn dead_letter(
        &self,
        properties: &BasicProperties,
        body: &[u8],
        reason: &str,
        detail: &str,
    ) -> Result<(), ForwardError> {
        let detail: String = detail.chars().take(MAX_DETAIL_CHARS).collect();
        let mut headers = properties.headers().clone().unwrap_or_default();
        headers.insert(REASON_HEADER.into(), text(reason));
        headers.insert(DETAIL_HEADER.into(), text(&detail));
        headers.insert(
            DEAD_LETTERED_AT_HEADER.into(),
            text(&Utc::now().to_rfc3339()),
        );
        let properties = properties.clone().with_headers(headers);
        self.publish(&self.names.dead_letter_exchange, "", body, properties)
            .await
    }

    /// Parks the message in the wait queue for `delay_ms`, after which the broker routes it
    /// back to the main queue.
    pub async fn wait(
        &self,
        properties: &BasicProperties,
        body: &[u8],
        first_received_ms: i64,
        delay_ms: u64,
    ) -> Result<(), ForwardError> {
        let mut headers = properties.headers().clone().unwrap_or_default();
        let waits = header_i64(&headers, WAITS_HEADER).unwrap_or(0) + 1;
        headers.insert(
            FIRST_RECEIVED_HEADER.into(),
            AMQPValue::LongLongInt(first_received_ms),
        );
        headers.insert(WAITS_HEADER.into(), AMQPValue::LongLongInt(waits));
        let properties = properties
            .clone()
            .with_headers(headers)
            .with_expiration(ShortString::from(delay_ms.to_string()));
        self.publish("", &self.names.wait_queue, body, properties)
            .await
    }

    async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), ForwardError> {
        let confirm = self
            .channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    immediate: false,
                },
                body,
                // Persistent, as the queues are durable.
                properties.with_delivery_mode(2),
            )
            .await?
            .await?;
        match confirm {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(_)) => Err(ForwardError::Unroutable(if exchange.is_empty() {
                routing_key.to_string()
            } else {
                exchange.to_string()
            })),
            Confirmation::Nack(_) => Err(ForwardError::Refused),
        }
    }
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

/// An integer header, whichever integer type the publisher used.
pub fn header_i64(headers: &FieldTable, key: &str) -> Option<i64> {
    match headers.inner().get(key)? {
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::LongInt(v) => Some(i64::from(*v)),
        AMQPValue::LongUInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortInt(v) => Some(i64::from(*v)),
        AMQPValue::Timestamp(v) => i64::try_from(*v).ok(),
        _ => None,
    }
}

/// A text header, as either string type.
pub fn header_text(headers: &FieldTable, key: &str) -> Option<String> {
    match headers.inner().get(key)? {
        AMQPValue::LongString(v) => Some(String::from_utf8_lossy(v.as_bytes()).into_owned()),
        AMQPValue::ShortString(v) => Some(v.as_str().to_string()),
        _ => None,
    }
}
