//! `agent.notifications`: the messages upstream services publish to RabbitMQ, version 1 of
//! their envelope (`schemas/agent-notifications.v1.json`), and why one may be refused.

pub mod apply;
pub mod envelope;
pub mod processed;

pub use apply::{Applier, Outcome, Refusal};
pub use envelope::{Envelope, Notification, Poison, parse};
