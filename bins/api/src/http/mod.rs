//! HTTP plumbing shared by every route: problem bodies, authentication, rate limits, cursors,
//! metrics, tracing.

pub mod allow;
pub mod auth;
pub mod body_limit;
pub mod cursor;
pub mod json;
pub mod metrics;
pub mod problem;
pub mod rate_limit;
pub mod trace;
