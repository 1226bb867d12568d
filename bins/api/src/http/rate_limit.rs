//! Rate limits on `/api`: the bearer-token check counts each request against its tenant's and
//! agent's quotas ([`portal_shared::rate_limit`]) and refuses one over them with 429; this
//! middleware puts the `RateLimit` and `RateLimit-Policy` headers (draft-ietf-httpapi-ratelimit-headers)
//! on every answer the check counted.

use std::sync::{Arc, Mutex};

use poem::http::HeaderValue;
use poem::{Endpoint, IntoResponse, Request, Response};
use portal_shared::rate_limit::{Decision, Quota};

/// Where the token check leaves its decision for the response's headers.
#[derive(Debug, Clone, Default)]
pub struct Slot(Arc<Mutex<Option<Decision>>>);

impl Slot {
    pub fn put(&self, decision: Decision) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(decision);
        }
    }

    fn take(&self) -> Option<Decision> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// `"tenant";q=1000;w=2, "agent";q=40;w=2`: each quota as a burst per the window it refills in.
pub fn policy_header(decision: &Decision) -> String {
    let item = |name: &str, quota: Quota| {
        let window = quota.burst.div_ceil(quota.per_sec.max(1)).max(1);
        format!("\"{name}\";q={};w={window}", quota.burst)
    };
    format!(
        "{}, {}",
        item("tenant", decision.limits.tenant),
        item("agent", decision.limits.agent)
    )
}

/// `"agent";r=3;t=1`: the quota closest to its limit, what is left of it, and in how many
/// seconds it is full again (or, refused, allows one).
pub fn limit_header(decision: &Decision) -> String {
    format!(
        "\"{}\";r={};t={}",
        decision.policy.as_str(),
        decision.remaining,
        seconds(decision)
    )
}

/// The wait in whole seconds, at least 1 for a refusal (`Retry-After` has no fractions).
pub fn seconds(decision: &Decision) -> u64 {
    let secs = decision.reset.as_millis().div_ceil(1000) as u64;
    if decision.allowed { secs } else { secs.max(1) }
}

pub async fn headers<E: Endpoint>(ep: E, mut req: Request) -> poem::Result<Response> {
    let slot = Slot::default();
    req.extensions_mut().insert(slot.clone());
    let response = ep.call(req).await.map(IntoResponse::into_response);
    let Some(decision) = slot.take() else {
        return response;
    };
    let add = |mut response: Response| {
        let headers = response.headers_mut();
        for (name, value) in [
            ("ratelimit", limit_header(&decision)),
            ("ratelimit-policy", policy_header(&decision)),
        ] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        response
    };
    match response {
        Ok(response) => Ok(add(response)),
        Err(err) => Ok(add(err.into_response())),
    }
}
