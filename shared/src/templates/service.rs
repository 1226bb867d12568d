//! Reading templates (cache first, Postgres behind it) and checking a template send.

use serde_json::Value;
use uuid::Uuid;

use super::cache::TemplateCache;
use super::repo::{self, Template};
use super::{ParamError, Rendered, validate};
use crate::cursor_part;
use crate::pagination::{Cursor, Page, PageRequest, part};
use crate::tenancy::{Db, TenantCtx, TenantTx};
use crate::{Error, FieldError, Result};

/// Filters of the template list. Status defaults to `APPROVED`: what an agent can send.
#[derive(Debug, Clone, Default)]
pub struct TemplateFilter {
    pub statuses: Vec<String>,
    pub category: Option<String>,
    pub language: Option<String>,
    /// Part of the name, any case.
    pub name: Option<String>,
}

/// The list's sort key: name, language, id.
#[derive(Debug, Clone)]
pub struct TemplateCursor {
    name: String,
    language: String,
    id: Uuid,
}

impl Cursor for TemplateCursor {
    const PATTERN: &'static str = concat!(
        "^",
        cursor_part!(text),
        "\\.",
        cursor_part!(text),
        "\\.",
        cursor_part!(id),
        "$"
    );
    const DESCRIPTION: &'static str = "a `next_cursor` of this list";

    fn encode(&self) -> String {
        format!(
            "{}.{}.{}",
            part::text(&self.name),
            part::text(&self.language),
            part::id(self.id)
        )
    }

    fn decode(text: &str) -> Option<Self> {
        let [name, language, id] = part::split(text)?;
        Some(Self {
            name: part::parse_text(name)?,
            language: part::parse_text(language)?,
            id: part::parse_id(id)?,
        })
    }
}

impl TemplateFilter {
    fn admits(&self, t: &Template) -> bool {
        let status_ok = if self.statuses.is_empty() {
            t.status == "APPROVED"
        } else {
            self.statuses
                .iter()
                .any(|s| s.eq_ignore_ascii_case(&t.status))
        };
        status_ok
            && self
                .category
                .as_ref()
                .is_none_or(|c| c.eq_ignore_ascii_case(&t.category))
            && self.language.as_ref().is_none_or(|l| *l == t.language)
            && self
                .name
                .as_ref()
                .is_none_or(|n| t.name.to_lowercase().contains(&n.to_lowercase()))
    }
}

/// Which template a validation is about.
#[derive(Debug, Clone)]
pub enum TemplateRef {
    Id(Uuid),
    Name { name: String, language: String },
}

#[derive(Debug, Clone)]
pub struct TemplateService {
    db: Db,
    cache: TemplateCache,
}

impl TemplateService {
    pub fn new(db: Db, cache: TemplateCache) -> Self {
        Self { db, cache }
    }

    /// A page of the tenant's usable templates. A tenant has at most a few thousand (WhatsApp's
    /// limit per account), so the whole list is read (from the cache, or from Postgres, which
    /// then refills the cache) and filtered here: one code path for both sources.
    pub async fn list(
        &self,
        ctx: &TenantCtx,
        filter: &TemplateFilter,
        page: &PageRequest<TemplateCursor>,
    ) -> Result<Page<Template, TemplateCursor>> {
        let templates = match self.cache.get(ctx.tenant_id()).await {
            Some(cached) => cached,
            None => {
                let mut tx = self.db.begin(ctx).await?;
                let all = repo::all(&mut tx).await?;
                tx.commit().await?;
                self.cache.put(ctx.tenant_id(), &all).await;
                all
            }
        };
        let rows: Vec<Template> = templates
            .into_iter()
            .filter(|t| filter.admits(t))
            .filter(|t| {
                page.after.as_ref().is_none_or(|c| {
                    (t.name.as_str(), t.language.as_str(), t.id)
                        > (c.name.as_str(), c.language.as_str(), c.id)
                })
            })
            .take(page.fetch_limit() as usize)
            .collect();
        Ok(page.finish(rows, |t| TemplateCursor {
            name: t.name.clone(),
            language: t.language.clone(),
            id: t.id,
        }))
    }

    pub async fn get(&self, ctx: &TenantCtx, id: Uuid) -> Result<Template> {
        let mut tx = self.db.begin(ctx).await?;
        let found = repo::find(&mut tx, id).await?;
        tx.commit().await?;
        found.ok_or(Error::NotFound {
            resource: "template",
        })
    }

    /// Checks a send of the template with `parameters`; the rendered parts when it would pass.
    pub async fn validate(
        &self,
        ctx: &TenantCtx,
        template: &TemplateRef,
        parameters: &Value,
    ) -> Result<(Template, Rendered)> {
        let mut tx = self.db.begin(ctx).await?;
        let checked = check(&mut tx, template, parameters).await;
        tx.commit().await?;
        checked
    }
}

/// Finds the template and validates the parameters against it: 404 for an unknown (or
/// deleted) template, 422 with one error per offending parameter.
pub(crate) async fn check(
    tx: &mut TenantTx,
    template: &TemplateRef,
    parameters: &Value,
) -> Result<(Template, Rendered)> {
    let found = match template {
        TemplateRef::Id(id) => repo::find(tx, *id)
            .await?
            .filter(|t| t.deleted_at.is_none()),
        TemplateRef::Name { name, language } => repo::find_by_name(tx, name, language).await?,
    };
    let template = found.ok_or(Error::NotFound {
        resource: "template",
    })?;
    let spec = template
        .spec()
        .map_err(|e| Error::invalid("template", format!("the stored template is unusable: {e}")))?;
    match validate(&spec, parameters) {
        Ok(rendered) => Ok((template, rendered)),
        Err(errors) => Err(Error::Validation(
            errors.into_iter().map(field_error).collect(),
        )),
    }
}

fn field_error(e: ParamError) -> FieldError {
    FieldError::new(e.path, e.message).with_rule(e.rule)
}
