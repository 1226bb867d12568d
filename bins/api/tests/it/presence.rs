//! Who is online: connections recorded in Redis by the realtime service, shown in the agent list.

use std::time::Duration;

use portal_shared::events;
use portal_shared::ids::{AgentId, TenantId};
use portal_shared::presence::Presence;
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::*;

fn presence_with_ttl(ttl: Duration) -> Presence {
    let url =
        std::env::var("PORTAL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    Presence::new(events::redis_connection(&url).unwrap(), ttl)
}

/// `online` of each listed agent, by id.
async fn online(app: &TestApp, token: &str) -> Vec<(Uuid, Value)> {
    let (status, body) = app.get("/api/agents?limit=100", token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["id"].as_str().unwrap().parse().unwrap(),
                a["online"].clone(),
            )
        })
        .collect()
}

fn of(list: &[(Uuid, Value)], agent: Uuid) -> Value {
    list.iter().find(|(id, _)| *id == agent).unwrap().1.clone()
}

#[tokio::test]
async fn the_agent_list_shows_who_is_connected_on_any_pod() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let presence = presence_with_ttl(Duration::from_secs(30));
    let (a, agent) = (TenantId(w.a), AgentId(w.agent));

    let list = online(&app, &w.supervisor_token).await;
    assert_eq!(of(&list, w.agent), Value::Bool(false));

    // Two connections (say, two tabs on two pods): online until both are gone.
    // The first connection brings the agent online; the second changes nothing.
    assert!(presence.connected(a, agent, "pod-1/sock-1").await.unwrap());
    assert!(!presence.connected(a, agent, "pod-2/sock-7").await.unwrap());
    let list = online(&app, &w.supervisor_token).await;
    assert_eq!(of(&list, w.agent), Value::Bool(true));
    assert_eq!(of(&list, w.other_agent), Value::Bool(false));
    assert!(
        !presence
            .disconnected(a, agent, "pod-1/sock-1")
            .await
            .unwrap()
    );
    assert_eq!(
        of(&online(&app, &w.agent_token).await, w.agent),
        Value::Bool(true)
    );
    assert!(
        presence
            .disconnected(a, agent, "pod-2/sock-7")
            .await
            .unwrap()
    );
    assert_eq!(
        of(&online(&app, &w.agent_token).await, w.agent),
        Value::Bool(false)
    );

    // A connection whose pod died stops counting when its TTL runs out.
    let short = presence_with_ttl(Duration::from_millis(300));
    assert!(short.connected(a, agent, "pod-3/sock-1").await.unwrap());
    assert_eq!(
        of(&online(&app, &w.agent_token).await, w.agent),
        Value::Bool(true)
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        of(&online(&app, &w.agent_token).await, w.agent),
        Value::Bool(false)
    );

    // Presence is per tenant: the same agent id online in another tenant changes nothing here.
    presence
        .connected(TenantId(w.b), AgentId(w.other_agent), "pod-1/sock-2")
        .await
        .unwrap();
    assert_eq!(
        of(&online(&app, &w.agent_token).await, w.other_agent),
        Value::Bool(false)
    );
}

#[tokio::test]
async fn with_redis_down_the_agent_list_still_answers_with_online_unknown() {
    let app = TestApp::spawn_with(&[("PORTAL__REDIS__URL", "redis://127.0.0.1:1")]).await;
    let w = World::new(&app).await;
    let list = online(&app, &w.supervisor_token).await;
    assert!(!list.is_empty());
    assert!(list.iter().all(|(_, online)| online.is_null()), "{list:?}");
}
