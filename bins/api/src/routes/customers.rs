//! `/api/customers`: a customer's profile.

use poem_openapi::OpenApi;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use portal_shared::customers::{CustomerProfile, CustomerService};
use portal_shared::ids::CustomerId;
use uuid::Uuid;

use super::ApiTags;
use crate::http::auth::Caller;
use crate::http::problem::ApiResult;

#[derive(Debug, Clone)]
pub struct CustomersApi {
    pub service: CustomerService,
}

#[OpenApi(prefix_path = "/customers", tag = "ApiTags::Customers")]
impl CustomersApi {
    /// Get a customer's profile
    ///
    /// Name, phone, email and attributes, first and last contact, the open conversation and
    /// the counts of conversations by state. An agent sees a customer only through a
    /// conversation it may see (its own, or an unassigned waiting one); supervisors and admins
    /// see every customer of their tenant. Any other customer answers 404, as a missing one.
    #[oai(path = "/:id", method = "get", operation_id = "getCustomer")]
    async fn get(&self, Caller(ctx): Caller, id: Path<Uuid>) -> ApiResult<Json<CustomerProfile>> {
        Ok(Json(self.service.get(&ctx, CustomerId(id.0)).await?))
    }
}
