//! SQL of the integration outbox. Writing goes through the tenant's transaction; claiming due
//! rows of every tenant and reading the backlog go through the SECURITY DEFINER functions of
//! the propagation migration.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::{SyncState, Target};
use crate::ids::{AgentId, ConversationId, CustomerId, TenantId};
use crate::tenancy::TenantTx;
use crate::{Error, Result};

/// What a row's change is about; rows of one subject and target are delivered in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subject {
    Conversation(ConversationId),
    Customer(CustomerId),
}

impl Subject {
    fn kind(self) -> &'static str {
        match self {
            Self::Conversation(_) => "conversation",
            Self::Customer(_) => "customer",
        }
    }

    fn id(self) -> Uuid {
        match self {
            Self::Conversation(id) => id.0,
            Self::Customer(id) => id.0,
        }
    }

    fn table(self) -> &'static str {
        match self {
            Self::Conversation(_) => "conversations",
            Self::Customer(_) => "customers",
        }
    }
}

/// A row leased to this dispatcher.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Claim {
    pub tenant_id: Uuid,
    pub id: i64,
    pub target: String,
    pub subject_kind: String,
    pub subject_id: Uuid,
    pub change: serde_json::Value,
    pub idempotency_key: Uuid,
    pub attempts: i32,
    pub lease_token: Uuid,
    pub traceparent: Option<String>,
}

impl Claim {
    /// The row this claim holds, for [`crate::outbox::release`] and [`crate::outbox::reschedule`].
    pub fn lease(&self) -> crate::outbox::Lease<i64> {
        crate::outbox::Lease {
            table: "integration_outbox",
            key_column: "id",
            tenant_id: self.tenant_id,
            key: self.id,
            token: self.lease_token,
        }
    }

    pub fn tenant(&self) -> TenantId {
        TenantId(self.tenant_id)
    }

    pub fn target(&self) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.as_str() == self.target)
    }

    pub fn subject(&self) -> Option<Subject> {
        match self.subject_kind.as_str() {
            "conversation" => Some(Subject::Conversation(ConversationId(self.subject_id))),
            "customer" => Some(Subject::Customer(CustomerId(self.subject_id))),
            _ => None,
        }
    }
}

#[tracing::instrument(skip(tx, change), fields(otel.kind = "client", db.system = "postgresql", tenant_id = %tx.tenant_id(), target = target.as_str()))]
pub(crate) async fn enqueue(
    tx: &mut TenantTx,
    target: Target,
    subject: Subject,
    change: &impl Serialize,
) -> Result<()> {
    let change = serde_json::to_value(change).map_err(Error::internal)?;
    sqlx::query(
        "INSERT INTO integration_outbox (tenant_id, target, subject_kind, subject_id, change, traceparent) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tx.tenant_id().0)
    .bind(target.as_str())
    .bind(subject.kind())
    .bind(subject.id())
    .bind(change)
    .bind(crate::telemetry::current_traceparent())
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Sets the subject's sync state; false when it was so already (nothing to tell anyone).
pub(crate) async fn set_sync(
    tx: &mut TenantTx,
    subject: Subject,
    state: SyncState,
    reason: Option<&str>,
) -> Result<bool> {
    let reason: Option<String> = reason.map(|r| r.chars().take(1000).collect());
    let table = subject.table();
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {table} SET sync_state = $3, sync_error = $4, sync_at = now() \
         WHERE tenant_id = $1 AND id = $2 \
           AND (sync_state IS DISTINCT FROM $3 OR sync_error IS DISTINCT FROM $4)"
    )))
    .bind(tx.tenant_id().0)
    .bind(subject.id())
    .bind(state)
    .bind(reason)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The subject's sync state now, locked until the transaction ends.
pub(crate) async fn sync_state(tx: &mut TenantTx, subject: Subject) -> Result<Option<SyncState>> {
    let table = subject.table();
    let state: Option<Option<SyncState>> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT sync_state FROM {table} WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    )))
    .bind(tx.tenant_id().0)
    .bind(subject.id())
    .fetch_optional(tx.conn())
    .await?;
    Ok(state.flatten())
}

/// Rows of the subject still to deliver, whatever the target.
pub(crate) async fn remaining(tx: &mut TenantTx, subject: Subject) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM integration_outbox WHERE tenant_id = $1 AND subject_id = $2",
    )
    .bind(tx.tenant_id().0)
    .bind(subject.id())
    .fetch_one(tx.conn())
    .await?)
}

pub(crate) async fn claim(
    pool: &PgPool,
    batch: u32,
    lease: std::time::Duration,
) -> Result<Vec<Claim>> {
    Ok(sqlx::query_as(
        "SELECT tenant_id, id, target, subject_kind, subject_id, change, idempotency_key, \
                attempts, lease_token, traceparent \
         FROM claim_integration_outbox($1, make_interval(secs => $2))",
    )
    .bind(i32::try_from(batch).unwrap_or(i32::MAX))
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await?)
}

/// Per target: rows waiting across all tenants, and the creation time of the oldest.
pub(crate) async fn backlog(pool: &PgPool) -> Result<Vec<(String, i64, Option<DateTime<Utc>>)>> {
    Ok(
        sqlx::query_as("SELECT target, waiting, oldest FROM integration_outbox_backlog()")
            .fetch_all(pool)
            .await?,
    )
}

/// The agents' Genesys Cloud users.
pub(crate) async fn genesys_user_id(tx: &mut TenantTx, agent: AgentId) -> Result<Option<String>> {
    let id: Option<Option<String>> =
        sqlx::query_scalar("SELECT genesys_user_id FROM agents WHERE tenant_id = $1 AND id = $2")
            .bind(tx.tenant_id().0)
            .bind(agent.0)
            .fetch_optional(tx.conn())
            .await?;
    Ok(id.flatten())
}

/// The Genesys queue the tenant's released conversations go back to.
pub(crate) async fn genesys_queue_id(tx: &mut TenantTx) -> Result<Option<String>> {
    let id: Option<Option<String>> =
        sqlx::query_scalar("SELECT genesys_queue_id FROM tenants WHERE id = $1")
            .bind(tx.tenant_id().0)
            .fetch_optional(tx.conn())
            .await?;
    Ok(id.flatten())
}
