//! `/api/customers`: a customer's profile, corrections to it, and their interaction history.

use std::collections::BTreeMap;

use poem::http::StatusCode;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object, OpenApi};
use portal_shared::conversations::CustomerHistoryCursor;
use portal_shared::customers::{
    CustomerEdit, CustomerProfile, CustomerService, Edited, HistoryEntry,
};
use portal_shared::ids::CustomerId;
use portal_shared::pagination::PageRequest;
use uuid::Uuid;

use super::ApiTags;
use crate::http::auth::Caller;
use crate::http::cursor::Paging;
use crate::http::json;
use crate::http::problem::{ApiResult, Problem};

#[derive(Debug, Clone)]
pub struct CustomersApi {
    pub service: CustomerService,
}

/// A page of a customer's history, newest conversation first.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CustomerHistoryPage {
    pub items: Vec<HistoryEntry>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<Paging<CustomerHistoryCursor>>,
}

/// The profile, with its entity tag for a later `If-Match`.
#[derive(Debug, ApiResponse)]
pub enum ProfileResponse {
    /// The customer as it is now.
    #[oai(status = 200)]
    Ok(Json<CustomerProfile>, #[oai(header = "ETag")] String),
}

#[derive(Debug, ApiResponse)]
pub enum UpdateResponse {
    /// The customer as it is now (after the change).
    #[oai(status = 200)]
    Ok(Json<CustomerProfile>, #[oai(header = "ETag")] String),
    /// The customer changed since the caller read it: read it again (`GET`), then retry.
    #[oai(status = 412, content_type = "application/problem+json")]
    PreconditionFailed(Json<Problem>),
    /// `If-Match` is missing: send the `ETag` of the profile the change is based on.
    #[oai(status = 428, content_type = "application/problem+json")]
    PreconditionRequired(Json<Problem>),
}

/// `PATCH` body. Absent fields are left unchanged.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CustomerUpdate {
    /// 1–200 characters, not blank.
    #[oai(
        deserialize_with = "json::present_text",
        validator(
            min_length = 1,
            max_length = 200,
            pattern = r"^[^\x00]*[^\x00\s][^\x00]*$"
        )
    )]
    pub display_name: Option<String>,
    /// `null` removes it.
    #[oai(
        nullable,
        deserialize_with = "json::clearable_text",
        validator(max_length = 320, pattern = r"^[^@\s\x00]+@[^@\s\x00]+$")
    )]
    pub email: MaybeUndefined<String>,
    /// In any formatting; stored in E.164. Without a country code (`+` or `00`), it is read in
    /// the tenant's region. 422 when it is not a valid number; 409 when another customer of
    /// the tenant has it.
    #[oai(
        deserialize_with = "json::present_text",
        validator(min_length = 1, max_length = 64, pattern = r"^[^\x00]*$")
    )]
    pub phone: Option<String>,
    /// Replaces the attributes: a JSON object of at most 16 KiB as JSON and 5 levels deep.
    #[oai(deserialize_with = "json::present")]
    pub attributes: Option<BTreeMap<String, serde_json::Value>>,
}

#[OpenApi(prefix_path = "/customers", tag = "ApiTags::Customers")]
impl CustomersApi {
    /// Get a customer's profile
    ///
    /// Name, phone, email and attributes, first and last contact, the open conversation and
    /// the counts of conversations by state, and an `ETag` for a later change. An agent sees a
    /// customer only through a conversation it may see (its own, or an unassigned waiting
    /// one); supervisors and admins see every customer of their tenant. Any other customer
    /// answers 404, as a missing one.
    #[oai(path = "/:id", method = "get", operation_id = "getCustomer")]
    async fn get(&self, Caller(ctx): Caller, id: Path<Uuid>) -> ApiResult<ProfileResponse> {
        let profile = self.service.get(&ctx, CustomerId(id.0)).await?;
        let etag = profile.etag();
        Ok(ProfileResponse::Ok(Json(profile), etag))
    }

    /// A customer's interaction history
    ///
    /// The customer's conversations, newest first, each as the conversation list shows it
    /// (state, assignee, created and closed times, last message preview) with its timeline:
    /// assignments, transfers with their notes, and the close with its reason, oldest first
    /// (at most 100 assignment steps per conversation). An agent gets the conversations it may
    /// see, of a customer it may see (404 otherwise, as for a missing one).
    #[oai(
        path = "/:id/history",
        method = "get",
        operation_id = "getCustomerHistory"
    )]
    async fn history(
        &self,
        Caller(ctx): Caller,
        id: Path<Uuid>,
        /// 1–100, default 25.
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        cursor: Query<Option<Paging<CustomerHistoryCursor>>>,
    ) -> ApiResult<Json<CustomerHistoryPage>> {
        let page = PageRequest::new(cursor.0.map(|c| c.0), limit.0)?;
        let found = self.service.history(&ctx, CustomerId(id.0), page).await?;
        Ok(Json(CustomerHistoryPage {
            items: found.items,
            next_cursor: found.next.map(Paging),
        }))
    }

    /// Correct a customer
    ///
    /// Display name, email, phone, attributes; whoever may see the customer may correct it.
    /// `If-Match` must carry the `ETag` of the profile the change is based on (428 without
    /// it, 412 when the customer changed since). A new name or phone reaches the lists at
    /// once: the customer's open conversations are sent again as `conversation:updated`.
    /// `{}` changes nothing.
    #[oai(path = "/:id", method = "patch", operation_id = "updateCustomer")]
    async fn update(
        &self,
        Caller(ctx): Caller,
        id: Path<Uuid>,
        /// The `ETag` of the profile the change is based on (or `*`).
        #[oai(name = "If-Match", validator(max_length = 1000))]
        if_match: Header<Option<String>>,
        body: Json<CustomerUpdate>,
    ) -> ApiResult<UpdateResponse> {
        let Some(if_match) = if_match.0 else {
            return Ok(UpdateResponse::PreconditionRequired(Json(Problem::new(
                StatusCode::PRECONDITION_REQUIRED,
                Some("send If-Match with the ETag of the profile this change is based on".into()),
            ))));
        };
        let edit = CustomerEdit {
            display_name: body.0.display_name,
            email: match body.0.email {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(email) => Some(Some(email)),
            },
            phone: body.0.phone,
            attributes: body.0.attributes,
        };
        match self
            .service
            .update(&ctx, CustomerId(id.0), &if_match, edit)
            .await?
        {
            Edited::Done(profile) => {
                let etag = profile.etag();
                Ok(UpdateResponse::Ok(Json(*profile), etag))
            }
            Edited::Stale => Ok(UpdateResponse::PreconditionFailed(Json(Problem::new(
                StatusCode::PRECONDITION_FAILED,
                Some("the customer changed since this ETag: read it again, then retry".into()),
            )))),
        }
    }
}
