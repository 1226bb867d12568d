//! Customers: the people on the other end of a conversation, known to upstream by phone.
//!
//! Upstream (the State Manager, through `agent.notifications`) names a customer by E.164
//! phone number; [`upsert_by_phone`] finds or creates one and takes a new display name.

mod repo;

pub use repo::{CustomerChange, open_conversations, upsert_by_phone};
