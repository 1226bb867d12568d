//! The one way to tenant data: a transaction that carries the tenant into Postgres.
//!
//! A [`TenantCtx`] is made only by [`crate::auth`] from a verified token and an active agent.
//! [`Db::begin`] turns it into a [`TenantTx`] whose first statement sets `app.tenant_id`, which
//! every row-level-security policy reads. Repositories take a `&mut TenantTx`, so code that has
//! not been through authentication cannot even call them, and a query that forgets its
//! `WHERE tenant_id` still sees only this tenant's rows.

use sqlx::{AssertSqlSafe, PgConnection, PgPool, Postgres, Transaction};

use crate::Result;
use crate::agents::Role;
use crate::config::DatabaseSettings;
use crate::events::{Event, EventSink};
use crate::ids::{AgentId, TenantId};

/// Who is acting, for which tenant, with which effective role.
#[derive(Debug, Clone)]
pub struct TenantCtx {
    tenant_id: TenantId,
    agent_id: AgentId,
    role: Role,
}

impl TenantCtx {
    /// Only the auth layer builds one, after verifying the token and the agent.
    pub(crate) fn new(tenant_id: TenantId, agent_id: AgentId, role: Role) -> Self {
        Self {
            tenant_id,
            agent_id,
            role,
        }
    }

    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }

    pub fn agent_id(&self) -> AgentId {
        self.agent_id
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Supervisors and admins see and act on every conversation of their tenant.
    pub fn sees_whole_tenant(&self) -> bool {
        self.role >= Role::Supervisor
    }
}

/// The application's connection pool. Holding one does not give access to tenant data.
#[derive(Debug, Clone)]
pub struct Db {
    pool: PgPool,
    events: Option<EventSink>,
}

impl Db {
    pub fn new(pool: PgPool) -> Self {
        Self { pool, events: None }
    }

    /// The pool for a service: refuses a role that would bypass row-level security, but not an
    /// unreachable database (readiness reports that, and the pool reconnects by itself).
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self> {
        let db = Self::new(crate::db::pool(settings)?);
        if let Err(err) = db.ensure_rls_applies().await {
            if matches!(err, crate::Error::Validation(_)) {
                return Err(err);
            }
            tracing::warn!(error = %err, "could not check the database role at start");
        }
        Ok(db)
    }

    /// Committed transactions hand their events to `sink` for publishing.
    pub fn with_event_sink(mut self, sink: EventSink) -> Self {
        self.events = Some(sink);
        self
    }

    /// Opens a transaction scoped to the caller's tenant.
    pub async fn begin(&self, ctx: &TenantCtx) -> Result<TenantTx> {
        self.begin_for(ctx.tenant_id).await
    }

    /// For the auth layer, which must look the agent up before a [`TenantCtx`] exists.
    pub(crate) async fn begin_for(&self, tenant_id: TenantId) -> Result<TenantTx> {
        // One round trip for both: every request and every queue batch pays for it.
        let begin = format!("BEGIN; {}", set_tenant(tenant_id));
        let tx = self.pool.begin_with(AssertSqlSafe(begin)).await?;
        Ok(TenantTx {
            tx,
            tenant_id,
            events: Vec::new(),
            sink: self.events.clone(),
        })
    }

    /// The raw pool, for the few cross-tenant SECURITY DEFINER functions (the outbox claim).
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Fails when the connected role would bypass row-level security (superuser, BYPASSRLS).
    pub async fn ensure_rls_applies(&self) -> Result<()> {
        crate::db::ensure_rls_applies(&self.pool).await
    }

    pub async fn ping(&self) -> Result<()> {
        crate::db::ping(&self.pool).await
    }

    /// Connections open, idle, and the configured maximum, for metrics.
    pub fn pool_usage(&self) -> PoolUsage {
        PoolUsage {
            size: self.pool.size(),
            idle: self.pool.num_idle() as u32,
            max: self.pool.options().get_max_connections(),
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[derive(Debug, Clone, Copy)]
pub struct PoolUsage {
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

/// The statement that scopes the rest of a transaction to `tenant_id`. A UUID's text is hex
/// digits and dashes, so it is safe to inline.
fn set_tenant(tenant_id: TenantId) -> String {
    format!("SET LOCAL app.tenant_id = '{tenant_id}'")
}

/// A transaction with `app.tenant_id` set. Dropped without [`TenantTx::commit`], it rolls back.
#[derive(Debug)]
pub struct TenantTx {
    tx: Transaction<'static, Postgres>,
    tenant_id: TenantId,
    /// Appended in this transaction, published once it commits.
    events: Vec<Event>,
    sink: Option<EventSink>,
}

impl TenantTx {
    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }

    /// The connection, for repositories only: SQL lives in this crate.
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Moves the rest of the transaction to another tenant: what follows sees and writes only
    /// that tenant's rows. For the queue consumer alone, which applies several tenants' batches
    /// in one transaction because a commit costs the database far more than a statement.
    pub(crate) async fn switch_tenant(&mut self, tenant_id: TenantId) -> Result<()> {
        sqlx::raw_sql(AssertSqlSafe(set_tenant(tenant_id)))
            .execute(&mut *self.tx)
            .await?;
        self.tenant_id = tenant_id;
        Ok(())
    }

    pub(crate) fn appended(&mut self, event: Event) {
        self.events.push(event);
    }

    /// Commits, then hands the transaction's events to the publisher (never before: a
    /// subscriber must not hear of a change that could still roll back).
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        if let Some(sink) = self.sink
            && !self.events.is_empty()
        {
            sink.offer(self.events);
        }
        Ok(())
    }
}
