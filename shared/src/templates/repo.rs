//! The `templates` table.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::TemplateSpec;
use crate::Result;
use crate::tenancy::TenantTx;

/// A template as the API returns it.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Template {
    pub id: Uuid,
    /// WhatsApp's id.
    pub external_id: String,
    pub name: String,
    /// E.g. `en_US`.
    pub language: String,
    /// `MARKETING`, `UTILITY`, `AUTHENTICATION`, …
    pub category: String,
    /// `APPROVED`, `PENDING`, `REJECTED`, `PAUSED`, `DISABLED`, `IN_APPEAL`, … as WhatsApp says.
    pub status: String,
    /// `POSITIONAL` (`{{1}}`) or `NAMED` (`{{first_name}}`).
    pub parameter_format: String,
    /// Header, body, footer and buttons, as WhatsApp describes them.
    pub components: Value,
    pub quality_rating: Option<String>,
    pub synced_at: DateTime<Utc>,
    /// Set when the template disappeared upstream; it can no longer be sent.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default)]
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Template {
    /// The view the validator works on.
    pub fn spec(&self) -> std::result::Result<TemplateSpec, String> {
        TemplateSpec::from_graph(&serde_json::json!({
            "name": self.name,
            "language": self.language,
            "status": self.status,
            "parameter_format": self.parameter_format,
            "components": self.components,
        }))
    }
}

/// A template as fetched from WhatsApp, ready to store.
#[derive(Debug, Clone)]
pub struct Fetched {
    external_id: String,
    name: String,
    language: String,
    category: String,
    status: String,
    parameter_format: String,
    components: Value,
    quality_rating: Option<String>,
    hash: Vec<u8>,
}

impl Fetched {
    /// Reads one entry of the API's `data` array.
    pub fn from_graph(template: &Value) -> std::result::Result<Self, String> {
        let text = |key: &str| {
            template
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let external_id = text("id").ok_or("a template without an id")?;
        let name = text("name").ok_or_else(|| format!("template {external_id} has no name"))?;
        let language =
            text("language").ok_or_else(|| format!("template {external_id} has no language"))?;
        // serde_json's maps are ordered by key, so equal content hashes equal.
        let hash = Sha256::digest(template.to_string().as_bytes()).to_vec();
        Ok(Self {
            name,
            language,
            category: text("category").unwrap_or_default(),
            status: text("status").unwrap_or_else(|| "UNKNOWN".into()),
            parameter_format: text("parameter_format").unwrap_or_else(|| "POSITIONAL".into()),
            components: template
                .get("components")
                .cloned()
                .unwrap_or_else(|| Value::Array(Vec::new())),
            quality_rating: template
                .pointer("/quality_score/score")
                .and_then(Value::as_str)
                .map(str::to_string),
            external_id,
            hash,
        })
    }
}

/// What a sync changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SyncCounts {
    pub fetched: usize,
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
}

macro_rules! columns {
    () => {
        "id, external_id, name, language, category, status, parameter_format, components, \
         quality_rating, synced_at, deleted_at"
    };
}

type Row = (
    Uuid,
    String,
    String,
    String,
    String,
    String,
    String,
    Value,
    Option<String>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

fn from_row(r: Row) -> Template {
    Template {
        id: r.0,
        external_id: r.1,
        name: r.2,
        language: r.3,
        category: r.4,
        status: r.5,
        parameter_format: r.6,
        components: r.7,
        quality_rating: r.8,
        synced_at: r.9,
        deleted_at: r.10,
    }
}

/// Makes the tenant's templates what WhatsApp says they are: new ones inserted, changed ones
/// updated, unchanged ones left alone (not even `synced_at` moves), missing ones marked deleted.
pub async fn sync(tx: &mut TenantTx, fetched: &[Fetched]) -> Result<SyncCounts> {
    let tenant = tx.tenant_id().0;
    let existing: Vec<(String, Vec<u8>, bool)> = sqlx::query_as(
        "SELECT external_id, content_hash, deleted_at IS NOT NULL FROM templates WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_all(tx.conn())
    .await?;
    let existing: HashMap<String, (Vec<u8>, bool)> = existing
        .into_iter()
        .map(|(id, hash, deleted)| (id, (hash, deleted)))
        .collect();
    // Paging while templates change upstream can list one twice; the first listing counts.
    let mut seen = std::collections::HashSet::new();
    let fetched: Vec<&Fetched> = fetched
        .iter()
        .filter(|t| seen.insert(t.external_id.as_str()))
        .collect();
    let mut counts = SyncCounts {
        fetched: fetched.len(),
        ..SyncCounts::default()
    };
    for t in &fetched {
        let known = existing.get(&t.external_id);
        if known.is_some_and(|(hash, deleted)| *hash == t.hash && !deleted) {
            continue;
        }
        sqlx::query(
            "INSERT INTO templates (tenant_id, external_id, name, language, category, status, \
               parameter_format, components, quality_rating, content_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (tenant_id, external_id) DO UPDATE SET name = EXCLUDED.name, \
               language = EXCLUDED.language, category = EXCLUDED.category, status = EXCLUDED.status, \
               parameter_format = EXCLUDED.parameter_format, components = EXCLUDED.components, \
               quality_rating = EXCLUDED.quality_rating, content_hash = EXCLUDED.content_hash, \
               synced_at = now(), updated_at = now(), deleted_at = NULL",
        )
        .bind(tenant)
        .bind(&t.external_id)
        .bind(&t.name)
        .bind(&t.language)
        .bind(&t.category)
        .bind(&t.status)
        .bind(&t.parameter_format)
        .bind(&t.components)
        .bind(&t.quality_rating)
        .bind(&t.hash)
        .execute(tx.conn())
        .await?;
        if known.is_some() {
            counts.updated += 1;
        } else {
            counts.created += 1;
        }
    }
    let present: Vec<&str> = fetched.iter().map(|t| t.external_id.as_str()).collect();
    counts.deleted = sqlx::query(
        "UPDATE templates SET deleted_at = now(), updated_at = now() \
         WHERE tenant_id = $1 AND deleted_at IS NULL AND NOT (external_id = ANY($2))",
    )
    .bind(tenant)
    .bind(&present)
    .execute(tx.conn())
    .await?
    .rows_affected() as usize;
    Ok(counts)
}

/// Every usable (not deleted) template of the tenant, by name and language.
pub async fn all(tx: &mut TenantTx) -> Result<Vec<Template>> {
    let rows: Vec<Row> = sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM templates WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY name, language, id"
    ))
    .bind(tx.tenant_id().0)
    .fetch_all(tx.conn())
    .await?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// One template, deleted ones included.
pub async fn find(tx: &mut TenantTx, id: Uuid) -> Result<Option<Template>> {
    let row: Option<Row> = sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM templates WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tx.tenant_id().0)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    Ok(row.map(from_row))
}

/// The usable template of that name and language.
pub async fn find_by_name(
    tx: &mut TenantTx,
    name: &str,
    language: &str,
) -> Result<Option<Template>> {
    // Postgres text holds no NUL, so no template has such a name (and the query would fail).
    if name.contains('\0') || language.contains('\0') {
        return Ok(None);
    }
    let row: Option<Row> = sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM templates WHERE tenant_id = $1 AND name = $2 AND language = $3 AND deleted_at IS NULL"
    ))
    .bind(tx.tenant_id().0)
    .bind(name)
    .bind(language)
    .fetch_optional(tx.conn())
    .await?;
    Ok(row.map(from_row))
}
