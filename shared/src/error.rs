//! The domain error: what went wrong, in terms a caller can act on.
//!
//! Every layer below HTTP returns [`Error`]; the API maps it to a status and a problem body
//! in exactly one place. Internal failures keep their cause for the logs and never show it
//! to the client.

use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object does not exist *for this caller*: missing, another tenant's, or not visible
    /// to this agent. The three are deliberately indistinguishable.
    #[error("{resource} not found")]
    NotFound { resource: &'static str },

    /// The request is well-formed but conflicts with the object's current state.
    #[error("{0}")]
    Conflict(String),

    /// A status may not move this way (backwards, or out of a final state); `current` stands.
    #[error("the status cannot change from {current} to {requested}")]
    StatusConflict {
        current: &'static str,
        requested: &'static str,
    },

    /// One or more fields are invalid; each is listed.
    #[error("invalid request: {}", FieldErrors(.0))]
    Validation(Vec<FieldError>),

    /// No usable credentials: missing, malformed, expired, wrong issuer/audience/algorithm.
    #[error("unauthorized: {0}")]
    Unauthorized(String),

    /// Authenticated, but not allowed to do this.
    #[error("forbidden: {0}")]
    Forbidden(String),

    /// A dependency (Postgres, the JWKS endpoint, …) is not answering; try again later.
    /// A concurrent transaction won (serialization failure, deadlock, or both inserting the
    /// same row): the same request, retried, will see its result. Unlike [`Error::Conflict`],
    /// nothing is wrong with the request.
    #[error("{0}")]
    Contention(String),

    #[error("service unavailable: {0}")]
    Unavailable(String),

    /// A bug or an unexpected failure. The cause goes to the logs, not to the client.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// One invalid field: its name as the client sent it (a JSON pointer-like path), and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
    /// The rule broken, where a fixed set of rules applies (template parameters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            rule: None,
        }
    }

    pub fn with_rule(mut self, rule: impl Into<String>) -> Self {
        self.rule = Some(rule.into());
        self
    }
}

impl Error {
    /// Worth retrying unchanged: the database was unreachable or busy, or a concurrent
    /// transaction won.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Contention(_))
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }
}

struct FieldErrors<'a>(&'a [FieldError]);

impl fmt::Display for FieldErrors<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Self::Unavailable("the database is not answering".into())
            }
            sqlx::Error::Database(db) => match db.code().as_deref() {
                // serialization_failure, deadlock_detected: the caller may retry.
                // unique_violation: every insert that can race is written to skip an existing
                // row, so one that still collides lost a race to a concurrent insert.
                Some("40001") | Some("40P01") | Some("23505") => {
                    Self::Contention("a concurrent change won; retry".into())
                }
                // lock_not_available, query_canceled (statement_timeout)
                Some("55P03") | Some("57014") => Self::Unavailable("the database is busy".into()),
                // admin_shutdown, cannot_connect_now
                Some("57P01") | Some("57P03") => {
                    Self::Unavailable("the database is restarting".into())
                }
                _ => Self::Internal(err.into()),
            },
            _ => Self::Internal(err.into()),
        }
    }
}
