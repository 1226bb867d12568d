//! The bearer-token security scheme: the only way a handler obtains a [`TenantCtx`].

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;
use portal_shared::auth::Authenticator;
use portal_shared::tenancy::TenantCtx;

use poem::http::StatusCode;
use poem_openapi::payload::Json;
use portal_shared::Error;
use portal_shared::rate_limit::RateLimiter;

use super::problem::{ApiError, Problem};
use super::rate_limit;

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
    limit(req, &ctx).await?;
    Ok(ctx)
}

/// Counts the request against the caller's quotas; over them, 429.
async fn limit(req: &Request, ctx: &TenantCtx) -> poem::Result<()> {
    let Some(limiter) = req.data::<RateLimiter>().filter(|l| l.enabled()) else {
        return Ok(());
    };
    let decision = match limiter.check(ctx.tenant_id(), ctx.agent_id()).await {
        Ok(decision) => decision,
        Err(err) => {
            // The tenant's limits could not be read (the database is away, and the request
            // would fail on it anyway): not a reason to refuse.
            tracing::warn!(error = %err, "rate limit not checked");
            return Ok(());
        }
    };
    if let Some(slot) = req.extensions().get::<rate_limit::Slot>() {
        slot.put(decision.clone());
    }
    if decision.allowed {
        return Ok(());
    }
    let quota = decision.quota();
    let problem = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        Some(format!(
            "over the {} rate limit ({} requests per second, bursts of {}); retry after {} s",
            decision.policy.as_str(),
            quota.per_sec,
            quota.burst,
            rate_limit::seconds(&decision)
        )),
    );
    Err(ApiError::TooManyRequests(
        Json(problem),
        rate_limit::seconds(&decision).to_string(),
        rate_limit::limit_header(&decision),
        rate_limit::policy_header(&decision),
    )
    .into())
}
