//! `/api/admin`: tenant settings only an admin may change.

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use portal_shared::Error;
use portal_shared::agents::Role;
use portal_shared::tenancy::{Db, TenantCtx};
use portal_shared::whatsapp::{AccountInfo, TokenCipher, accounts};

use super::ApiTags;
use crate::http::auth::Caller;
use crate::http::json;
use crate::http::problem::ApiResult;

#[derive(Debug, Clone)]
pub struct AdminApi {
    pub db: Db,
    /// `None` when `whatsapp.token_key` is not configured.
    pub cipher: Option<TokenCipher>,
}

/// The tenant's WhatsApp Business Account. The access token is stored encrypted and never
/// returned.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SetWhatsappAccount {
    /// WhatsApp's numeric id of the Business Account.
    #[oai(deserialize_with = "json::text", validator(pattern = "^[0-9]{1,32}$"))]
    pub waba_id: String,
    /// WhatsApp's numeric id of the sending phone number; `null` is the same as absent.
    #[oai(
        nullable,
        deserialize_with = "json::optional_text",
        validator(pattern = "^[0-9]{1,32}$")
    )]
    pub phone_number_id: Option<String>,
    #[oai(
        write_only,
        deserialize_with = "json::text",
        validator(min_length = 1, max_length = 2048, pattern = r"\S")
    )]
    pub access_token: String,
}

fn require_admin(ctx: &TenantCtx) -> Result<(), Error> {
    if ctx.role() == Role::Admin {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "only an admin may manage the tenant's settings".into(),
        ))
    }
}

#[OpenApi(prefix_path = "/admin", tag = "ApiTags::Admin")]
impl AdminApi {
    /// Set the WhatsApp Business Account
    ///
    /// Creates or replaces the tenant's account; template-sync uses it on its next run.
    #[oai(
        path = "/whatsapp-account",
        method = "put",
        operation_id = "setWhatsappAccount"
    )]
    async fn set_account(
        &self,
        Caller(ctx): Caller,
        body: Json<SetWhatsappAccount>,
    ) -> ApiResult<Json<AccountInfo>> {
        require_admin(&ctx)?;
        let cipher = self.cipher.as_ref().ok_or_else(|| {
            Error::Unavailable(
                "whatsapp.token_key is not configured: tokens cannot be stored".into(),
            )
        })?;
        let mut tx = self.db.begin(&ctx).await?;
        let info = accounts::set(
            &mut tx,
            cipher,
            &body.0.waba_id,
            body.0.phone_number_id.as_deref(),
            &body.0.access_token,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(tenant_id = %ctx.tenant_id(), waba_id = %info.waba_id, "WhatsApp account set");
        Ok(Json(info))
    }

    /// Get the WhatsApp Business Account (without its token)
    #[oai(
        path = "/whatsapp-account",
        method = "get",
        operation_id = "getWhatsappAccount"
    )]
    async fn get_account(&self, Caller(ctx): Caller) -> ApiResult<Json<AccountInfo>> {
        require_admin(&ctx)?;
        let mut tx = self.db.begin(&ctx).await?;
        let info = accounts::info(&mut tx).await?;
        tx.commit().await?;
        info.map(Json).ok_or_else(|| {
            Error::NotFound {
                resource: "WhatsApp account",
            }
            .into()
        })
    }
}
