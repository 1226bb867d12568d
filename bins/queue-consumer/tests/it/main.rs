//! Integration tests: `queue_consumer::run` against real RabbitMQ (a queue of its own per test),
//! a fresh Postgres database per test (through the non-owner app role, so row-level security
//! applies), real Redis, and the API (`testkit::TestApp`) to look at the results as the
//! portal does.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

mod connection;
mod helpers;
mod poison;
mod receipts;
mod traces;
mod types;
