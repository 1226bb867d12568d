//! Propagation of agents' changes to the State Manager and Genesys Cloud, and the profile's
//! enrichment: each platform service is a real HTTP server the test starts.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

const SM_ID: &str = "sm-conv-1";
const GENESYS_ID: &str = "genesys-conv-1";

/// Both services answering every change; Genesys with the assigned agent on the conversation.
struct Platform {
    state_manager: MockServer,
    genesys: MockServer,
}

impl Platform {
    async fn start() -> Self {
        let platform = Self {
            state_manager: MockServer::start().await,
            genesys: MockServer::start().await,
        };
        Mock::given(method("POST"))
            .and(path("/oauth/token"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({ "access_token": "t-1", "expires_in": 3600 })),
            )
            .mount(&platform.genesys)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("/api/v2/conversations/messages/{GENESYS_ID}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": GENESYS_ID,
                "participants": [
                    { "id": "p-customer", "purpose": "customer", "state": "connected" },
                    { "id": "p-agent", "purpose": "agent", "userId": "user-alice", "state": "connected" }
                ]
            })))
            .mount(&platform.genesys)
            .await;
        platform
    }

    async fn accept_everything(&self) {
        for server in [&self.state_manager, &self.genesys] {
            Mock::given(method("POST"))
                .respond_with(ResponseTemplate::new(202))
                .mount(server)
                .await;
            Mock::given(method("PATCH"))
                .respond_with(ResponseTemplate::new(200))
                .mount(server)
                .await;
        }
    }

    async fn app(&self, extra: &[(&str, &str)]) -> TestApp {
        let sm = self.state_manager.uri();
        let genesys = self.genesys.uri();
        let mut env = vec![
            ("PORTAL__STATE_MANAGER__URL", sm.as_str()),
            ("PORTAL__STATE_MANAGER__TIMEOUT_MS", "500"),
            ("PORTAL__STATE_MANAGER__ENRICHMENT_TIMEOUT_MS", "200"),
            ("PORTAL__GENESYS__API_URL", genesys.as_str()),
            ("PORTAL__GENESYS__LOGIN_URL", genesys.as_str()),
            ("PORTAL__GENESYS__CLIENT_ID", "portal"),
            ("PORTAL__GENESYS__CLIENT_SECRET", "secret"),
            ("PORTAL__GENESYS__TIMEOUT_MS", "500"),
            ("PORTAL__PROPAGATION__POLL_INTERVAL_MS", "50"),
            ("PORTAL__PROPAGATION__LEASE_MS", "5000"),
            ("PORTAL__GENESYS__MAX_ATTEMPTS", "2"),
            ("PORTAL__GENESYS__BACKOFF_MAX_MS", "100"),
            ("PORTAL__STATE_MANAGER__BACKOFF_MAX_MS", "100"),
            ("PORTAL__PROPAGATION__BACKOFF_INITIAL_MS", "20"),
            ("PORTAL__PROPAGATION__BACKOFF_MAX_MS", "100"),
            ("PORTAL__PROPAGATION__MAX_ATTEMPTS", "100"),
        ];
        // The circuit stays closed unless a test says otherwise (it has tests of its own).
        for key in [
            "PORTAL__STATE_MANAGER__CIRCUIT_FAILURES",
            "PORTAL__GENESYS__CIRCUIT_FAILURES",
        ] {
            if !extra.iter().any(|(k, _)| *k == key) {
                env.push((key, "1000"));
            }
        }
        env.extend_from_slice(extra);
        TestApp::spawn_with(&env).await
    }

    /// The State Manager's change requests so far: (idempotency key, type).
    async fn state_manager_changes(&self) -> Vec<(String, String)> {
        self.state_manager
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path().ends_with("/changes"))
            .map(|r| {
                let body: Value = r.body_json().unwrap();
                (
                    r.headers["idempotency-key"].to_str().unwrap().to_string(),
                    body["type"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// Genesys's change requests so far: method and path.
    async fn genesys_changes(&self) -> Vec<(String, String)> {
        self.genesys
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.method.as_str() != "GET" && r.url.path().starts_with("/api/"))
            .map(|r| (r.method.to_string(), r.url.path().to_string()))
            .collect()
    }
}

/// Alice's conversation, known to the platform; Alice and Oscar are Genesys users.
async fn platform_conversation(app: &TestApp, w: &World) -> Uuid {
    let customer = app.customer(w.a, "Paula", "+34600000001").await;
    let id = app
        .conversation(w.a, customer, "active", Some(w.agent), 1)
        .await;
    sqlx::query("UPDATE conversations SET state_manager_id = $2, genesys_conversation_id = $3 WHERE id = $1")
        .bind(id)
        .bind(SM_ID)
        .bind(GENESYS_ID)
        .execute(&app.owner)
        .await
        .unwrap();
    for (agent, user) in [(w.agent, "user-alice"), (w.other_agent, "user-oscar")] {
        sqlx::query("UPDATE agents SET genesys_user_id = $2 WHERE id = $1")
            .bind(agent)
            .bind(user)
            .execute(&app.owner)
            .await
            .unwrap();
    }
    id
}

/// Waits until the conversation's `sync.state` is `state`; answers the conversation.
async fn wait_for_sync(app: &TestApp, w: &World, id: Uuid, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, conversation) = app
            .get(&format!("/api/conversations/{id}"), &w.supervisor_token)
            .await;
        if conversation["sync"]["state"] == state {
            return conversation;
        }
        assert!(
            Instant::now() < deadline,
            "sync never became {state}: {conversation}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `sync` states the conversation's `conversation:updated` events carried, in order.
async fn synced_events(app: &TestApp, w: &World, id: Uuid) -> Vec<String> {
    app.events(w.a)
        .await
        .into_iter()
        .filter(|(_, kind, payload)| {
            kind == "conversation:updated" && payload["conversation"]["id"] == json!(id)
        })
        .filter_map(|(_, _, payload)| {
            payload["conversation"]["sync"]["state"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

#[tokio::test]
async fn a_transfer_and_a_close_reach_the_state_manager_and_genesys_in_order() {
    let platform = Platform::start().await;
    platform.accept_everything().await;
    let app = platform.app(&[]).await;
    let w = World::new(&app).await;
    let id = platform_conversation(&app, &w).await;

    let (status, transferred) = app
        .post(
            &format!("/api/conversations/{id}/transfer"),
            &w.agent_token,
            json!({ "to_agent_id": w.other_agent, "note": "billing question" }),
        )
        .await;
    assert_eq!(status, 200, "{transferred}");
    // Committed locally at once; the platform hears of it after.
    assert_eq!(transferred["assignee"]["id"], json!(w.other_agent));
    assert_eq!(transferred["sync"]["state"], "pending");
    wait_for_sync(&app, &w, id, "synced").await;
    let (status, closed) = app
        .post(
            &format!("/api/conversations/{id}/close"),
            &w.supervisor_token,
            json!({ "reason": "resolved" }),
        )
        .await;
    assert_eq!(status, 200, "{closed}");
    let closed = wait_for_sync(&app, &w, id, "synced").await;
    assert!(closed["sync"].get("reason").is_none(), "{closed}");

    let changes = platform.state_manager_changes().await;
    let kinds: Vec<&str> = changes.iter().map(|(_, kind)| kind.as_str()).collect();
    assert_eq!(kinds, ["transferred", "closed"]);
    assert_ne!(changes[0].0, changes[1].0, "each change has its own key");
    let first: Value = platform.state_manager.received_requests().await.unwrap()[0]
        .body_json()
        .unwrap();
    assert_eq!(first["state_manager_id"], SM_ID);
    assert_eq!(first["previous_agent_id"], json!(w.agent));
    assert_eq!(first["assigned_agent_id"], json!(w.other_agent));
    assert_eq!(first["note"], "billing question");
    assert_eq!(first["by_agent_id"], json!(w.agent));
    // This Genesys still lists Alice on the conversation, so the close finds Oscar, whom it
    // would disconnect, gone already: nothing to do there (the Genesys client's own tests
    // cover the disconnect).
    assert_eq!(
        platform.genesys_changes().await,
        [(
            "POST".to_string(),
            format!("/api/v2/conversations/{GENESYS_ID}/participants/p-agent/replace/agent")
        )]
    );
    let replace: Value = platform
        .genesys
        .received_requests()
        .await
        .unwrap()
        .iter()
        .find(|r| r.url.path().ends_with("/replace/agent"))
        .unwrap()
        .body_json()
        .unwrap();
    assert_eq!(
        replace,
        json!({ "userId": "user-oscar", "transferType": "Unattended" })
    );
    let states = synced_events(&app, &w, id).await;
    assert_eq!(
        states,
        ["pending", "synced", "pending", "synced"],
        "each change of sync is pushed"
    );
}

#[tokio::test]
async fn changes_made_while_the_state_manager_is_down_arrive_later_once_each_in_order() {
    let platform = Platform::start().await;
    Mock::given(method("POST"))
        .and(path_regex("^/conversations/"))
        .respond_with(ResponseTemplate::new(503).set_body_string("maintenance"))
        .up_to_n_times(6)
        .with_priority(1)
        .mount(&platform.state_manager)
        .await;
    platform.accept_everything().await;
    let app = platform.app(&[]).await;
    let w = World::new(&app).await;
    let id = platform_conversation(&app, &w).await;

    // Released to the queue, taken back, closed: three changes in a row.
    for (token, body) in [
        (&w.agent_token, json!({ "assigned_agent_id": null })),
        (&w.agent_token, json!({ "assigned_agent_id": w.agent })),
        (&w.agent_token, json!({ "state": "closed" })),
    ] {
        let (status, answer) = app
            .patch(&format!("/api/conversations/{id}"), token, body)
            .await;
        assert_eq!(status, 200, "{answer}");
    }
    wait_for_sync(&app, &w, id, "synced").await;

    let changes = platform.state_manager_changes().await;
    assert_eq!(
        changes.len(),
        9,
        "six refused attempts and three accepted: {changes:?}"
    );
    let mut keys: Vec<&str> = Vec::new();
    for (key, _) in &changes {
        if !keys.contains(&key.as_str()) {
            keys.push(key);
        }
    }
    let kinds: Vec<&str> = keys
        .iter()
        .map(|k| changes.iter().find(|(key, _)| key == k).unwrap().1.as_str())
        .collect();
    assert_eq!(
        kinds,
        ["released", "assigned", "closed"],
        "in the order they were made"
    );
    // A later change is never attempted while an earlier one waits: the attempts of each key
    // are consecutive, and the last attempt of each is the accepted one.
    let accepted: Vec<&str> = changes[6..].iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(accepted.len(), 3);
    assert_eq!(accepted.last(), keys.last());
    let runs = changes.windows(2).filter(|p| p[0].0 != p[1].0).count();
    assert_eq!(runs, 2, "each change's attempts come together: {changes:?}");
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM integration_outbox")
        .fetch_one(&app.owner)
        .await
        .unwrap();
    assert_eq!(outbox, 0);
}

#[tokio::test]
async fn a_transfer_genesys_refuses_is_kept_with_sync_failed_and_genesyss_reason() {
    let platform = Platform::start().await;
    Mock::given(method("POST"))
        .and(path_regex("/replace/agent$"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "message": "The target user is not available", "code": "bad.request", "status": 400
        })))
        .mount(&platform.genesys)
        .await;
    platform.accept_everything().await;
    let app = platform.app(&[]).await;
    let w = World::new(&app).await;
    let id = platform_conversation(&app, &w).await;

    let (status, _) = app
        .post(
            &format!("/api/conversations/{id}/transfer"),
            &w.agent_token,
            json!({ "to_agent_id": w.other_agent }),
        )
        .await;
    assert_eq!(status, 200);
    let failed = wait_for_sync(&app, &w, id, "failed").await;
    let reason = failed["sync"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("genesys: "), "{reason}");
    assert!(
        reason.contains("The target user is not available"),
        "{reason}"
    );
    assert!(failed["sync"]["at"].is_string());
    // Kept: the portal does not undo what the agent saw succeed.
    assert_eq!(failed["assignee"]["id"], json!(w.other_agent));
    // The new assignee sees it too, in the list and live.
    let (_, list) = app.get("/api/conversations", &w.other_agent_token).await;
    assert_eq!(list["items"][0]["sync"]["state"], "failed");
    assert!(
        synced_events(&app, &w, id)
            .await
            .contains(&"failed".to_string())
    );
    // The State Manager, another target, was told anyway.
    assert_eq!(platform.state_manager_changes().await.len(), 1);
}

#[tokio::test]
async fn an_agent_without_a_genesys_user_fails_the_transfer_there_with_why() {
    let platform = Platform::start().await;
    platform.accept_everything().await;
    let app = platform.app(&[]).await;
    let w = World::new(&app).await;
    let id = platform_conversation(&app, &w).await;
    sqlx::query("UPDATE agents SET genesys_user_id = NULL WHERE id = $1")
        .bind(w.other_agent)
        .execute(&app.owner)
        .await
        .unwrap();
    app.post(
        &format!("/api/conversations/{id}/transfer"),
        &w.agent_token,
        json!({ "to_agent_id": w.other_agent }),
    )
    .await;
    let failed = wait_for_sync(&app, &w, id, "failed").await;
    assert!(
        failed["sync"]["reason"]
            .as_str()
            .unwrap()
            .contains("has no Genesys Cloud user id"),
        "{failed}"
    );
    assert!(platform.genesys_changes().await.is_empty());
}

#[tokio::test]
async fn a_customer_edit_reaches_the_state_manager() {
    let platform = Platform::start().await;
    platform.accept_everything().await;
    Mock::given(method("GET"))
        .and(path("/customers/sm-cust-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": "sm-cust-1" })))
        .mount(&platform.state_manager)
        .await;
    let app = platform.app(&[]).await;
    let w = World::new(&app).await;
    let conversation = platform_conversation(&app, &w).await;
    let customer: Uuid = sqlx::query_scalar("UPDATE customers SET state_manager_id = 'sm-cust-1' WHERE id = (SELECT customer_id FROM conversations WHERE id = $1) RETURNING id")
        .bind(conversation)
        .fetch_one(&app.owner)
        .await
        .unwrap();
    let url = format!("{}/api/customers/{customer}", app.base);
    let etag = app
        .client
        .get(&url)
        .bearer_auth(&w.agent_token)
        .send()
        .await
        .unwrap()
        .headers()["etag"]
        .to_str()
        .unwrap()
        .to_string();
    let edited = app
        .client
        .patch(&url)
        .bearer_auth(&w.agent_token)
        .header("If-Match", etag)
        .json(&json!({ "email": "paula@example.com" }))
        .send()
        .await
        .unwrap();
    assert_eq!(edited.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(15);
    let profile = loop {
        let (_, profile) = app
            .get(&format!("/api/customers/{customer}"), &w.agent_token)
            .await;
        if profile["sync"]["state"] == "synced" {
            break profile;
        }
        assert!(Instant::now() < deadline, "never synced: {profile}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(profile["external_ids"]["state_manager"], "sm-cust-1");
    let requests = platform.state_manager.received_requests().await.unwrap();
    let patch = requests
        .iter()
        .find(|r| r.method.as_str() == "PATCH")
        .unwrap();
    assert_eq!(patch.url.path(), "/customers/sm-cust-1");
    assert!(patch.headers.contains_key("idempotency-key"));
    let body: Value = patch.body_json().unwrap();
    assert_eq!(body["email"], "paula@example.com");
    assert_eq!(body["phone_e164"], "+34600000001");
}

#[tokio::test]
async fn a_profile_is_enriched_by_the_state_manager_and_answered_without_it_while_it_hangs() {
    let platform = Platform::start().await;
    Mock::given(method("GET"))
        .and(path("/customers/sm-known"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "sm-known",
            "email": "from-sm@example.com",
            "attributes": { "tier": "gold", "language": "es" }
        })))
        .mount(&platform.state_manager)
        .await;
    Mock::given(method("GET"))
        .and(path("/customers/sm-slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(10)))
        .mount(&platform.state_manager)
        .await;
    let app = platform.app(&[]).await;
    let w = World::new(&app).await;
    let mut ids = Vec::new();
    for (n, (sm, attributes)) in [
        ("sm-known", json!({ "tier": "silver" })),
        ("sm-slow", json!({})),
    ]
    .into_iter()
    .enumerate()
    {
        let customer = app.customer(w.a, "Paula", &format!("+3460000000{n}")).await;
        sqlx::query("UPDATE customers SET state_manager_id = $2, attributes = $3 WHERE id = $1")
            .bind(customer)
            .bind(sm)
            .bind(attributes)
            .execute(&app.owner)
            .await
            .unwrap();
        ids.push(customer);
    }
    let (status, known) = app
        .get(&format!("/api/customers/{}", ids[0]), &w.supervisor_token)
        .await;
    assert_eq!(status, 200);
    assert_eq!(known["enrichment"], "enriched");
    assert_eq!(known["email"], "from-sm@example.com");
    // The portal's own value wins; what it lacks is added.
    assert_eq!(
        known["attributes"],
        json!({ "tier": "silver", "language": "es" })
    );

    let started = Instant::now();
    let (status, slow) = app
        .get(&format!("/api/customers/{}", ids[1]), &w.supervisor_token)
        .await;
    assert_eq!(status, 200, "{slow}");
    assert_eq!(slow["enrichment"], "unavailable");
    assert_eq!(slow["display_name"], "Paula");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Cached: asked once however often the profile is opened.
    app.get(&format!("/api/customers/{}", ids[0]), &w.supervisor_token)
        .await;
    let asked = platform
        .state_manager
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/customers/sm-known")
        .count();
    assert_eq!(asked, 1);
}

#[tokio::test]
async fn readiness_reports_each_integration_and_metrics_the_backlog_without_making_the_api_unready()
{
    let platform = Platform::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&platform.state_manager)
        .await;
    let app = platform
        .app(&[
            ("PORTAL__STATE_MANAGER__CIRCUIT_FAILURES", "2"),
            ("PORTAL__STATE_MANAGER__CIRCUIT_OPEN_MS", "60000"),
        ])
        .await;
    let w = World::new(&app).await;
    let id = platform_conversation(&app, &w).await;
    app.patch(
        &format!("/api/conversations/{id}"),
        &w.agent_token,
        json!({ "state": "waiting" }),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let ready = loop {
        let response = app
            .client
            .get(format!("{}/readyz", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "the API stays ready");
        let body: Value = response.json().await.unwrap();
        if body["integrations"]["state_manager"] == "circuit open" {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "the circuit never opened: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ready["integrations"]["genesys"], "ok");
    assert_eq!(ready["propagation"]["state_manager"]["waiting"], 1);
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("portal_api_propagation_outbox_changes{target=\"state_manager\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portal_api_integration_circuit_open{service=\"state_manager\"} 1"),
        "{metrics}"
    );
}
