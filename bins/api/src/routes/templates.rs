//! `/api/templates`: the tenant's WhatsApp message templates, and checking a send of one.

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Union};
use portal_shared::pagination::PageRequest;
use portal_shared::templates::repo::Template;
use portal_shared::templates::service::{
    TemplateCursor, TemplateFilter, TemplateRef, TemplateService,
};
use portal_shared::templates::{Rendered, RenderedButton};
use uuid::Uuid;

use super::ApiTags;
use crate::http::auth::Caller;
use crate::http::cursor::Paging;
use crate::http::problem::ApiResult;

#[derive(Debug, Clone)]
pub struct TemplatesApi {
    pub service: TemplateService,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct TemplatePage {
    pub items: Vec<Template>,
    pub next_cursor: Option<Paging<TemplateCursor>>,
}

/// A template by its id, and the parameters of a send.
#[derive(Debug, Object)]
pub struct ValidateById {
    pub template_id: Uuid,
    /// `{"header": {...}, "body": [...] | {...}, "buttons": [...]}`, or just the body's values.
    #[oai(default)]
    pub parameters: serde_json::Value,
}

/// A template by its name and language, and the parameters of a send.
#[derive(Debug, Object)]
pub struct ValidateByName {
    pub name: String,
    /// E.g. `en_US`.
    pub language: String,
    /// As with `template_id`.
    #[oai(default)]
    pub parameters: serde_json::Value,
}

/// `POST /api/templates/validate`: a template, by id or by name and language, and the
/// parameters of a send.
#[derive(Debug, Union)]
#[oai(one_of)]
pub enum ValidateRequest {
    ById(ValidateById),
    ByName(ValidateByName),
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct RenderedTemplate {
    pub template_id: Uuid,
    pub name: String,
    pub language: String,
    pub header: Option<String>,
    pub body: String,
    pub footer: Option<String>,
    pub buttons: Vec<RenderedTemplateButton>,
    /// Header, body and footer as one text: what history and search will show.
    pub text: String,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct RenderedTemplateButton {
    pub index: u32,
    pub text: String,
    pub url: Option<String>,
}

impl RenderedTemplate {
    fn new(template: &Template, rendered: Rendered) -> Self {
        Self {
            template_id: template.id,
            name: template.name.clone(),
            language: template.language.clone(),
            text: rendered.text(),
            header: rendered.header,
            body: rendered.body,
            footer: rendered.footer,
            buttons: rendered
                .buttons
                .into_iter()
                .map(
                    |RenderedButton { index, text, url }| RenderedTemplateButton {
                        index: u32::try_from(index).unwrap_or(u32::MAX),
                        text,
                        url,
                    },
                )
                .collect(),
        }
    }
}

impl ValidateRequest {
    fn into_parts(self) -> (TemplateRef, serde_json::Value) {
        match self {
            Self::ById(r) => (TemplateRef::Id(r.template_id), r.parameters),
            Self::ByName(r) => (
                TemplateRef::Name {
                    name: r.name,
                    language: r.language,
                },
                r.parameters,
            ),
        }
    }
}

#[OpenApi(prefix_path = "/templates", tag = "ApiTags::Templates")]
impl TemplatesApi {
    /// List templates
    ///
    /// The tenant's templates by name and language, from the cache (Postgres when it misses
    /// or Redis is down). Only `APPROVED` ones unless `status` says otherwise (repeat it for
    /// several); templates deleted upstream are not listed.
    // Each query parameter is an argument: that is how poem-openapi documents them.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/", method = "get", operation_id = "listTemplates")]
    async fn list(
        &self,
        Caller(ctx): Caller,
        status: Query<Vec<String>>,
        category: Query<Option<String>>,
        language: Query<Option<String>>,
        /// Part of the name, any case.
        name: Query<Option<String>>,
        /// 1–100, default 25.
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        cursor: Query<Option<Paging<TemplateCursor>>>,
    ) -> ApiResult<Json<TemplatePage>> {
        let page = PageRequest::new(cursor.0.map(|c| c.0), limit.0)?;
        let filter = TemplateFilter {
            statuses: status.0,
            category: category.0,
            language: language.0,
            name: name.0,
        };
        let result = self.service.list(&ctx, &filter, &page).await?;
        Ok(Json(TemplatePage {
            items: result.items,
            next_cursor: result.next.map(Paging),
        }))
    }

    /// Get a template
    #[oai(path = "/:id", method = "get", operation_id = "getTemplate")]
    async fn get(&self, Caller(ctx): Caller, id: Path<Uuid>) -> ApiResult<Json<Template>> {
        Ok(Json(self.service.get(&ctx, id.0).await?))
    }

    /// Check a template send
    ///
    /// 200 with what the customer would see, or 422 with one error per offending parameter
    /// (`field` is its path, `rule` the rule it breaks). See the README for the rules.
    #[oai(path = "/validate", method = "post", operation_id = "validateTemplate")]
    async fn validate(
        &self,
        Caller(ctx): Caller,
        body: Json<ValidateRequest>,
    ) -> ApiResult<Json<RenderedTemplate>> {
        let (template, parameters) = body.0.into_parts();
        let (template, rendered) = self.service.validate(&ctx, &template, &parameters).await?;
        Ok(Json(RenderedTemplate::new(&template, rendered)))
    }
}
