//! Integration tests: the realtime service and the API on random ports, against a fresh
//! Postgres database per test and real Redis, with a Rust Socket.IO client.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

mod client;
mod contract;
mod delivery;
mod handshake;
mod helpers;
mod js_client;
mod limits;
mod reconnect;
mod resilience;
