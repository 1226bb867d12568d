//! HTTP plumbing shared by every route: problem bodies, authentication, metrics, tracing.

pub mod auth;
pub mod body_limit;
pub mod metrics;
pub mod problem;
pub mod trace;
