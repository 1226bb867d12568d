//! The bearer-token security scheme: the only way a handler obtains a [`TenantCtx`].

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;
use portal_shared::auth::Authenticator;
use portal_shared::tenancy::TenantCtx;

use super::problem::ApiError;
use portal_shared::Error;

/// A JWT from the Auth Service: `sub` (agent), `tenant_id`, `roles`, `exp`, `iss`, `aud`.
#[derive(Debug, SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "authenticate")]
pub struct Caller(pub TenantCtx);

async fn authenticate(req: &Request, bearer: Bearer) -> poem::Result<TenantCtx> {
    let Some(authenticator) = req.data::<Authenticator>() else {
        return Err(ApiError::from(Error::internal(anyhow::anyhow!(
            "no authenticator installed"
        )))
        .into());
    };
    let ctx = authenticator
        .authenticate(&bearer.token)
        .await
        .map_err(ApiError::from)?;
    // The request's span (http::trace) names its caller, for every log line of the request.
    let span = tracing::Span::current();
    span.record("tenant_id", tracing::field::display(ctx.tenant_id()));
    span.record("agent_id", tracing::field::display(ctx.agent_id()));
    Ok(ctx)
}
