//! Integration tests: the real API on a random port, against a fresh Postgres database per
//! test, connected as a non-owner role so row-level security is in force.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

mod auth;
mod contract;
mod conversations;
mod customers;
mod dispatcher;
mod events;
mod helpers;
mod messages;
mod presence;
mod propagation;
mod rate_limits;
mod templates;
mod tenancy;
