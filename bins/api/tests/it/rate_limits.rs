//! REST rate limits: per agent and per tenant, counted in Redis across api pods, with 429,
//! `Retry-After` and the `RateLimit` headers; each pod on its own while Redis is away.

use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::*;

const LIMITED: &[(&str, &str)] = &[("PORTAL__RATE_LIMIT__ENABLED", "true")];

/// Gives `tenant` its own limits (the defaults are far above what a test sends).
async fn limit(app: &TestApp, tenant: Uuid, tenant_burst: i32, agent_burst: i32) {
    sqlx::query(
        "UPDATE tenants SET rate_limit_per_sec = 1, rate_limit_burst = $2, \
         agent_rate_limit_per_sec = 1, agent_rate_limit_burst = $3 WHERE id = $1",
    )
    .bind(tenant)
    .bind(tenant_burst)
    .bind(agent_burst)
    .execute(&app.owner)
    .await
    .unwrap();
}

async fn get(app: &TestApp, base: &str, token: &str) -> reqwest::Response {
    app.client
        .get(format!("{base}/api/conversations"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn an_agent_over_its_burst_gets_429_with_retry_after_and_ratelimit_headers() {
    let app = TestApp::spawn_with(LIMITED).await;
    let w = World::new(&app).await;
    limit(&app, w.a, 100, 3).await;
    for left in [2, 1, 0] {
        let response = get(&app, &app.base, &w.agent_token).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header(&response, "ratelimit"),
            // Each request pushes the time until the quota is full again one second on.
            format!("\"agent\";r={left};t={}", 3 - left),
            "the agent's quota is the tighter one"
        );
        assert_eq!(
            header(&response, "ratelimit-policy"),
            "\"tenant\";q=100;w=100, \"agent\";q=3;w=3"
        );
    }
    let refused = get(&app, &app.base, &w.agent_token).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&refused, "retry-after"), "1");
    assert_eq!(header(&refused, "ratelimit"), "\"agent\";r=0;t=1");
    assert_eq!(header(&refused, "content-type"), "application/problem+json");
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["status"], 429);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("over the agent rate limit (1 requests per second, bursts of 3)"),
        "{problem}"
    );
    // Another agent of the tenant has a quota of its own; a refusal cost the tenant nothing.
    let other = get(&app, &app.base, &w.other_agent_token).await;
    assert_eq!(other.status(), StatusCode::OK);
    assert_eq!(header(&other, "ratelimit"), "\"agent\";r=2;t=1");
    // After a second the agent may make one more request.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        get(&app, &app.base, &w.agent_token).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_tenants_quota_is_shared_by_its_agents_and_by_every_api_pod() {
    let app = TestApp::spawn_with(LIMITED).await;
    let w = World::new(&app).await;
    limit(&app, w.a, 4, 100).await;
    let pod_b = app.another_api(LIMITED).await;
    let calls = [
        (&app.base, &w.agent_token),
        (&pod_b.base, &w.other_agent_token),
        (&app.base, &w.supervisor_token),
        (&pod_b.base, &w.agent_token),
    ];
    for (base, token) in calls {
        assert_eq!(get(&app, base, token).await.status(), StatusCode::OK);
    }
    let refused = get(&app, &pod_b.base, &w.supervisor_token).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&refused, "ratelimit"), "\"tenant\";r=0;t=1");
    // Another tenant is not affected.
    assert_eq!(
        get(&app, &app.base, &w.b_token).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn while_redis_is_away_each_pod_limits_on_its_own() {
    // Nothing listens on port 1: every Redis command fails at once.
    let away = [
        ("PORTAL__RATE_LIMIT__ENABLED", "true"),
        ("PORTAL__REDIS__URL", "redis://127.0.0.1:1"),
    ];
    let app = TestApp::spawn_with(&away).await;
    let w = World::new(&app).await;
    limit(&app, w.a, 100, 2).await;
    for _ in 0..2 {
        let response = get(&app, &app.base, &w.agent_token).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "fails open to the local limit"
        );
        assert!(header(&response, "ratelimit").starts_with("\"agent\";"));
    }
    let refused = get(&app, &app.base, &w.agent_token).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&refused, "retry-after"), "1");
}

#[tokio::test]
async fn unauthenticated_requests_and_probes_are_not_counted() {
    let app = TestApp::spawn_with(LIMITED).await;
    let w = World::new(&app).await;
    limit(&app, w.a, 100, 1).await;
    for _ in 0..3 {
        let response = app
            .client
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .unwrap();
        assert!(response.headers().get("ratelimit").is_none());
        let anonymous = get(&app, &app.base, "not-a-token").await;
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
        assert!(anonymous.headers().get("ratelimit").is_none());
    }
    assert_eq!(
        get(&app, &app.base, &w.agent_token).await.status(),
        StatusCode::OK
    );
}
