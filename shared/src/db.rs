//! The Postgres pool and the migrations.
//!
//! Nothing here reaches tenant data: that goes through [`crate::tenancy::Db::begin`]. This module
//! only builds connections, runs migrations as the owner, and reports health.

use std::str::FromStr;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::DatabaseSettings;
use crate::{Error, Result};

/// The schema, compiled into every binary so `api migrate` needs no files beside it.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

pub fn connect_options(url: &str, statement_timeout_ms: u64) -> Result<PgConnectOptions> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| Error::invalid("database.url", e.to_string()))?
        .application_name("agent-portal");
    Ok(if statement_timeout_ms > 0 {
        options.options([("statement_timeout", statement_timeout_ms.to_string())])
    } else {
        options
    })
}

/// A pool that connects lazily: a service starts (and answers `/healthz`) while Postgres is
/// still down, and `/readyz` tells the orchestrator when it is usable.
pub fn pool(settings: &DatabaseSettings) -> Result<PgPool> {
    let options = connect_options(settings.url.expose_secret(), settings.statement_timeout_ms)?;
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(settings.min_connections)
        .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
        .connect_lazy_with(options))
}

/// Refuses a role that would make row-level security a no-op for the service.
pub async fn ensure_rls_applies(pool: &PgPool) -> Result<()> {
    let row: (String, bool) = sqlx::query_as(
        "SELECT current_user::text, rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(pool)
    .await?;
    if row.1 {
        return Err(Error::invalid(
            "database.url",
            format!(
                "role {} is a superuser or has BYPASSRLS, so tenant isolation would not be enforced; \
                 connect as a member of portal_app",
                row.0
            ),
        ));
    }
    Ok(())
}

pub async fn ping(pool: &PgPool) -> Result<()> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}

/// Applies every pending migration. Run as the owner of the schema (a release Job).
pub async fn migrate_up(url: &str) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(connect_options(url, 0)?)
        .await?;
    MIGRATOR.run(&pool).await?;
    pool.close().await;
    Ok(())
}

/// Reverts migrations down to (and excluding) `target`; 0 reverts everything.
pub async fn migrate_down(url: &str, target: i64) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(connect_options(url, 0)?)
        .await?;
    MIGRATOR.undo(&pool, target).await?;
    pool.close().await;
    Ok(())
}

/// Creates (when missing) a database and a login role that is a member of `portal_app` and
/// nothing more, then migrates the database. For development and CI; production databases
/// and roles are provisioned by their operators.
pub async fn provision(
    admin_url: &str,
    database: &str,
    login_role: &str,
) -> anyhow::Result<String> {
    let is_identifier = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    anyhow::ensure!(
        is_identifier(database) && is_identifier(login_role),
        "database and role names must be lower-case identifiers"
    );
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(connect_options(admin_url, 0)?)
        .await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(database)
            .fetch_one(&admin)
            .await?;
    if !exists {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .execute(&admin)
            .await?;
    }
    let owner_url = with_database(admin_url, database)?;
    migrate_up(&owner_url).await?;
    // Roles are cluster-wide; creating one that another run just created is harmless.
    let role_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(login_role)
            .fetch_one(&admin)
            .await?;
    if !role_exists {
        let created = sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE ROLE {login_role} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE IN ROLE portal_app"
        )))
        .execute(&admin)
        .await;
        if let Err(err) = created
            // duplicate_object, or unique_violation when another process created it concurrently.
            && !matches!(&err, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("42710" | "23505")))
        {
            return Err(err.into());
        }
    }
    admin.close().await;
    Ok(owner_url)
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, database: &str) -> anyhow::Result<String> {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base
        .find("://")
        .map(|i| i + 3)
        .ok_or_else(|| anyhow::anyhow!("not a URL: missing ://"))?;
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{database}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

/// `url` with its user replaced (and any password dropped): the app role's URL beside the owner's.
pub fn with_user(url: &str, user: &str) -> anyhow::Result<String> {
    let scheme_end = url
        .find("://")
        .map(|i| i + 3)
        .ok_or_else(|| anyhow::anyhow!("not a URL: missing ://"))?;
    let rest = &url[scheme_end..];
    let host_start = rest.find('@').map_or(0, |i| i + 1);
    Ok(format!(
        "{}{user}@{}",
        &url[..scheme_end],
        &rest[host_start..]
    ))
}
