//! Limits on the socket: connections per agent, emits per second, conversations joined per
//! connection, packet size. Each is refused with the reason, and nothing else is affected.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::client::Client;
use crate::helpers::*;

#[tokio::test]
async fn an_agent_over_its_connections_is_refused_at_the_handshake() {
    let app = TestApp::spawn().await;
    let rt = Realtime::spawn(
        &app,
        &[("PORTAL__REALTIME__MAX_CONNECTIONS_PER_AGENT", "2")],
    )
    .await;
    let w = World::new(&app).await;
    let _first = Client::connect(&rt.base, &w.agent_token, None).await;
    let _second = Client::connect(&rt.base, &w.agent_token, None).await;
    // The two count once the pod has recorded them in Redis.
    let deadline = Instant::now() + Duration::from_secs(10);
    let message = loop {
        let mut third = Client::open(&rt.base, json!({ "token": w.agent_token })).await;
        match third.outcome().await {
            Err(message) => break message,
            Ok(()) => third.disconnect().await,
        }
        assert!(
            Instant::now() < deadline,
            "a third connection was never refused"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        message,
        "too many connections: this agent has 2 open already (close a tab)"
    );
    // Another agent is not affected.
    Client::connect(&rt.base, &w.other_agent_token, None).await;
}

#[tokio::test]
async fn emits_over_the_sockets_rate_are_answered_429_and_not_done() {
    let app = TestApp::spawn().await;
    let rt = Realtime::spawn(
        &app,
        &[
            ("PORTAL__REALTIME__EMITS_PER_SEC", "1"),
            ("PORTAL__REALTIME__EMIT_BURST", "2"),
        ],
    )
    .await;
    let w = World::new(&app).await;
    let id = conversation_of(&app, &w, Some(w.agent), "active").await;
    let agent = Client::connect(&rt.base, &w.agent_token, None).await;
    let other = Client::connect(&rt.base, &w.other_agent_token, None).await;
    assert_eq!(agent.ack("conversation:leave", json!(id)).await["ok"], true);
    assert_eq!(agent.ack("conversation:leave", json!(id)).await["ok"], true);
    let refused = agent.ack("conversation:join", json!(id)).await;
    assert_eq!(refused["ok"], false);
    assert_eq!(refused["error"]["status"], 429);
    // Another socket has its own allowance.
    assert_eq!(other.ack("conversation:leave", json!(id)).await["ok"], true);
    // A second later one more is allowed.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(agent.ack("conversation:join", json!(id)).await["ok"], true);
}

#[tokio::test]
async fn a_connection_may_have_so_many_conversations_open() {
    let app = TestApp::spawn().await;
    let rt = Realtime::spawn(&app, &[("PORTAL__REALTIME__MAX_JOINED_CONVERSATIONS", "1")]).await;
    let w = World::new(&app).await;
    let first = conversation_of(&app, &w, Some(w.agent), "active").await;
    let second = conversation_of(&app, &w, Some(w.agent), "active").await;
    let agent = Client::connect(&rt.base, &w.agent_token, None).await;
    assert_eq!(
        agent.ack("conversation:join", json!(first)).await["ok"],
        true
    );
    // Joining the same one again is not one more.
    assert_eq!(
        agent.ack("conversation:join", json!(first)).await["ok"],
        true
    );
    let refused = agent.ack("conversation:join", json!(second)).await;
    assert_eq!(refused["error"]["status"], 429);
    assert_eq!(
        refused["error"]["detail"],
        "at most 1 conversations may be open on one connection: leave one first"
    );
    agent.ack("conversation:leave", json!(first)).await;
    assert_eq!(
        agent.ack("conversation:join", json!(second)).await["ok"],
        true
    );
}

#[tokio::test]
async fn a_packet_over_the_size_limit_is_refused_and_others_are_not_affected() {
    let app = TestApp::spawn().await;
    let rt = Realtime::spawn(&app, &[("PORTAL__REALTIME__MAX_PAYLOAD_BYTES", "2048")]).await;
    let w = World::new(&app).await;
    let bystander = Client::connect(&rt.base, &w.other_agent_token, None).await;
    // An Engine.IO session opened by long-polling, as a browser's first request does; its
    // open packet (`0{...}`) names the session.
    let http = reqwest::Client::new();
    let session = || async {
        let open = http
            .get(format!("{}/socket.io/?EIO=4&transport=polling", rt.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let handshake: serde_json::Value = serde_json::from_str(&open[1..]).unwrap();
        let sid = handshake["sid"].as_str().unwrap().to_string();
        format!("{}/socket.io/?EIO=4&transport=polling&sid={sid}", rt.base)
    };
    // The Socket.IO connect packet, as a client sends it: within the limit.
    let small = format!("40{}", json!({ "token": w.agent_token }));
    let accepted = http.post(session().await).body(small).send().await.unwrap();
    assert_eq!(accepted.status(), reqwest::StatusCode::OK);
    let huge = format!("40{}", json!({ "token": "x".repeat(8192) }));
    let refused = http.post(session().await).body(huge).send().await.unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::PAYLOAD_TOO_LARGE);
    let id = conversation_of(&app, &w, Some(w.other_agent), "active").await;
    assert_eq!(
        bystander.ack("conversation:join", json!(id)).await["ok"],
        true
    );
}

/// Generated handshake `auth` payloads: anything that is not a valid token for an active agent
/// is refused with a reason, a valid one beside junk is accepted, and the service keeps serving.
#[tokio::test]
async fn any_handshake_payload_is_answered_and_the_service_keeps_serving() {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;

    let app = TestApp::spawn().await;
    let rt = Realtime::spawn(&app, &[]).await;
    let w = World::new(&app).await;
    let junk = proptest::prop_oneof![
        proptest::strategy::Just(serde_json::Value::Null),
        proptest::arbitrary::any::<i64>().prop_map(serde_json::Value::from),
        ".{0,64}".prop_map(serde_json::Value::from),
        proptest::collection::vec(".{0,8}", 0..4).prop_map(|v| json!(v)),
    ];
    let token = proptest::prop_oneof![
        proptest::strategy::Just(json!(w.agent_token)),
        junk.clone(),
        "[A-Za-z0-9_.-]{0,300}".prop_map(serde_json::Value::from),
    ];
    let auth = (token, junk.clone(), junk)
        .prop_map(|(token, seq, extra)| json!({ "token": token, "last_seq": seq, "extra": extra }));
    let mut runner = TestRunner::deterministic();
    for _ in 0..48 {
        let payload = auth.new_tree(&mut runner).unwrap().current();
        let valid = payload["token"] == json!(w.agent_token)
            && (payload["last_seq"].is_null()
                || payload["last_seq"].as_i64().is_some_and(|seq| seq >= 0));
        let mut client = Client::open(&rt.base, payload.clone()).await;
        match client.outcome().await {
            Ok(()) => assert!(valid, "accepted {payload}"),
            Err(reason) => {
                assert!(!valid, "refused {payload}: {reason}");
                assert!(!reason.is_empty(), "refused {payload} without a reason");
            }
        }
        client.disconnect().await;
    }
    let (status, _) = rt.readiness().await;
    assert_eq!(status, 200);
    Client::connect(&rt.base, &w.other_agent_token, None).await;
}
