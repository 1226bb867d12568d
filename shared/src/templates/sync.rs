//! One tenant's template sync: WhatsApp → Postgres → the Redis cache.
//!
//! The whole sync of a tenant is one Postgres transaction that first takes a transaction-level
//! advisory lock on the tenant, so a second run started meanwhile skips the tenant instead of
//! interleaving with it; every page is fetched before anything is written, and a stop (SIGTERM)
//! between pages rolls the transaction back: nothing is ever half-written.

use std::fmt;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::cache::TemplateCache;
use super::repo::{self, Fetched, SyncCounts};
use crate::config::Settings;
use crate::events;
use crate::ids::TenantId;
use crate::tenancy::Db;
use crate::whatsapp::{GraphClient, GraphError, TokenCipher, accounts};

/// How a tenant's sync ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Synced {
        #[serde(flatten)]
        counts: SyncCounts,
        /// Whether the Redis cache was refreshed (it was down, otherwise).
        cached: bool,
    },
    /// Another run holds the tenant.
    Skipped,
    Failed {
        error: String,
    },
    Stopped,
}

/// One line of template-sync's summary.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub tenant_id: TenantId,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl Summary {
    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed { .. } | Outcome::Stopped)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tenant {}: ", self.tenant_id)?;
        match &self.outcome {
            Outcome::Synced { counts, cached } => write!(
                f,
                "fetched {} / created {} / updated {} / deleted {}{}",
                counts.fetched,
                counts.created,
                counts.updated,
                counts.deleted,
                if *cached {
                    ""
                } else {
                    " (cache not refreshed: Redis unavailable)"
                }
            ),
            Outcome::Skipped => write!(f, "skipped: another sync of this tenant is running"),
            Outcome::Failed { error } => write!(f, "error: {error}"),
            Outcome::Stopped => write!(f, "stopped before finishing; nothing written"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Syncer {
    pub db: Db,
    pub client: GraphClient,
    pub cipher: TokenCipher,
    pub cache: TemplateCache,
}

impl Syncer {
    /// From configuration: the Graph API client, the token cipher (`whatsapp.token_key` is
    /// required: without it no access token can be decrypted) and the Redis cache.
    pub fn new(db: Db, settings: &Settings) -> crate::Result<Self> {
        let key = settings.whatsapp.token_key.as_ref().ok_or_else(|| {
            crate::Error::invalid(
                "whatsapp.token_key",
                "is not set: access tokens cannot be decrypted",
            )
        })?;
        Ok(Self {
            db,
            client: GraphClient::new(&settings.whatsapp)?,
            cipher: TokenCipher::new(key)?,
            cache: TemplateCache::new(
                events::redis_connection(settings.redis.url.expose_secret())?,
                Duration::from_secs(settings.templates.cache_ttl_secs),
            ),
        })
    }

    pub async fn sync(&self, tenant: TenantId, stop: &CancellationToken) -> Summary {
        let outcome = match self.run(tenant, stop).await {
            Ok(outcome) => outcome,
            Err(Failure::Stopped) => Outcome::Stopped,
            Err(Failure::Other(error)) => Outcome::Failed { error },
        };
        Summary {
            tenant_id: tenant,
            outcome,
        }
    }

    async fn run(&self, tenant: TenantId, stop: &CancellationToken) -> Result<Outcome, Failure> {
        let mut tx = self.db.begin_for(tenant).await?;
        let locked: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_xact_lock(hashtextextended('template-sync:' || $1::text, 0))",
        )
        .bind(tenant.0)
        .fetch_one(tx.conn())
        .await
        .map_err(crate::Error::from)?;
        if !locked {
            return Ok(Outcome::Skipped);
        }
        let account = accounts::with_token(&mut tx, &self.cipher)
            .await?
            .ok_or_else(|| Failure::Other("the tenant has no WhatsApp Business Account".into()))?;
        let fetched = self
            .client
            .templates(&account.waba_id, &account.access_token, stop)
            .await?;
        let fetched = fetched
            .iter()
            .map(Fetched::from_graph)
            .collect::<Result<Vec<_>, String>>()
            .map_err(|e| {
                Failure::Other(format!("WhatsApp answered with a malformed template: {e}"))
            })?;
        let counts = repo::sync(&mut tx, &fetched).await?;
        if stop.is_cancelled() {
            return Err(Failure::Stopped);
        }
        let templates = repo::all(&mut tx).await?;
        tx.commit().await?;
        let cached = self.cache.put(tenant, &templates).await;
        Ok(Outcome::Synced { counts, cached })
    }
}

enum Failure {
    Stopped,
    Other(String),
}

impl From<crate::Error> for Failure {
    fn from(err: crate::Error) -> Self {
        Self::Other(match err {
            crate::Error::Internal(cause) => format!("{cause:#}"),
            other => other.to_string(),
        })
    }
}

impl From<GraphError> for Failure {
    fn from(err: GraphError) -> Self {
        match err {
            GraphError::Stopped => Self::Stopped,
            other => Self::Other(other.to_string()),
        }
    }
}
