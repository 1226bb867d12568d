//! Integration tests: `template_sync::run` against a fresh Postgres database per test (through
//! the non-owner app role, so row-level security applies), real Redis, and `wiremock` standing in
//! for the WhatsApp Business Management API.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

mod binary;
mod concurrency;
mod failures;
mod helpers;
mod paging;
mod redis_down;
mod resync;
mod retries;
mod stop;
