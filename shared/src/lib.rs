//! The library every Agent Portal binary shares.
//!
//! Configuration, telemetry, authentication, the tenant-scoped door to Postgres, the domain
//! models, their SQL and the rules that act on them. Binaries stay thin: they parse their
//! command line, load [`config::Settings`], and wire these pieces to a transport.

pub mod agents;
pub mod auth;
pub mod backoff;
pub mod config;
pub mod conversations;
pub mod customers;
pub mod db;
pub mod demo;
pub mod error;
pub mod events;
mod examples;
pub mod ids;
pub mod integrations;
pub mod messages;
pub mod notifications;
mod outbox;
pub mod pagination;
pub mod presence;
pub mod rate_limit;
pub mod readiness;
pub mod signal;
pub mod telemetry;
pub mod templates;
pub mod tenancy;
pub mod whatsapp;

pub use error::{Error, FieldError, Result};
