//! Who may connect, for how long, and which conversation rooms they may join.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::client::Client;
use crate::helpers::*;

#[tokio::test]
async fn a_bad_handshake_is_refused_with_the_reason() {
    let app = TestApp::spawn().await;
    let rt = Realtime::spawn(&app, &[]).await;
    let w = World::new(&app).await;

    let cases: Vec<(Value, &str)> = vec![
        (
            json!({}),
            "invalid handshake: auth must be an object with a string `token`",
        ),
        (json!({"token": 42}), "invalid handshake"),
        (
            json!({"token": "not.a.jwt"}),
            "unauthorized: the token is malformed",
        ),
        (
            json!({"token": w.agent_token, "last_seq": -1}),
            "invalid handshake: last_seq must be 0 or more",
        ),
    ];
    for (auth, reason) in cases {
        let message = Client::refused(&rt.base, auth.clone()).await;
        assert!(message.starts_with(reason), "{auth}: {message}");
    }

    let mut expired = claims(w.a, w.agent, &["agent"]);
    expired["exp"] = json!(chrono::Utc::now().timestamp() - 3600);
    let message = Client::refused(&rt.base, json!({"token": sign_hs256(&expired, SECRET)})).await;
    assert_eq!(message, "unauthorized: the token has expired");

    let forged = sign_hs256(
        &claims(w.a, w.agent, &["agent"]),
        "another-secret-0123456789abcdefghij",
    );
    let message = Client::refused(&rt.base, json!({"token": forged})).await;
    assert_eq!(message, "unauthorized: the token's signature is invalid");

    app.deactivate(w.other_agent).await;
    let message = Client::refused(&rt.base, json!({"token": w.other_agent_token})).await;
    assert_eq!(
        message,
        "forbidden: the token's subject is not an active agent of its tenant"
    );

    // And a good token is accepted.
    Client::connect(&rt.base, &w.agent_token, None).await;
}

#[tokio::test]
async fn a_connection_ends_when_its_token_expires_unless_refreshed() {
    let app = TestApp::spawn().await;
    let rt = Realtime::spawn(&app, &[]).await;
    let w = World::new(&app).await;
    let short = |agent: Uuid| {
        let mut c = claims(w.a, agent, &["agent"]);
        c["exp"] = json!(chrono::Utc::now().timestamp() + 2);
        sign_hs256(&c, SECRET)
    };

    let mut expiring = Client::connect(&rt.base, &short(w.agent), None).await;
    let mut refreshed = Client::connect(&rt.base, &short(w.other_agent), None).await;

    // A token of another agent does not extend this connection.
    let ack = refreshed
        .ack("auth:refresh", json!({"token": w.agent_token}))
        .await;
    assert_eq!(ack["ok"], false, "{ack}");
    assert_eq!(ack["error"]["status"], 403);
    let ack = refreshed
        .ack("auth:refresh", json!({"token": "garbage"}))
        .await;
    assert_eq!(ack["error"]["status"], 401, "{ack}");
    let ack = refreshed
        .ack("auth:refresh", json!({"token": w.other_agent_token}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");

    let before_close = expiring.closed().await;
    assert_eq!(before_close.len(), 1, "{before_close:?}");
    assert_eq!(before_close[0].0, "auth:expired");
    // The refreshed one outlives its first token.
    refreshed.quiet(1500).await;
    let ack = refreshed
        .ack("conversation:leave", json!(Uuid::new_v4()))
        .await;
    assert_eq!(ack["ok"], true, "still connected: {ack}");
}

#[tokio::test]
async fn with_realtime_switched_off_connections_are_refused_and_readiness_says_disabled() {
    let app = TestApp::spawn().await;
    let rt = Realtime::spawn(&app, &[("PORTAL__REALTIME__ENABLED", "false")]).await;
    let w = World::new(&app).await;
    let message = Client::refused(&rt.base, json!({"token": w.agent_token})).await;
    assert_eq!(message, "realtime is disabled");
    let (status, body) = rt.readiness().await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "disabled");
    // The API does not depend on it.
    let (status, _) = app.get("/api/conversations", &w.agent_token).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn joining_a_conversation_the_agent_may_not_see_is_refused_as_if_it_did_not_exist() {
    let app = TestApp::spawn().await;
    let rt = Realtime::spawn(&app, &[]).await;
    let w = World::new(&app).await;
    let own = conversation_of(&app, &w, Some(w.agent), "active").await;
    let others = conversation_of(&app, &w, Some(w.other_agent), "active").await;
    let queued = conversation_of(&app, &w, None, "waiting").await;
    let b_customer = app.customer(w.b, "Bea", "+4915100000001").await;
    let other_tenants = app.conversation(w.b, b_customer, "waiting", None, 1).await;

    let agent = Client::connect(&rt.base, &w.agent_token, None).await;
    for id in [own, queued] {
        let ack = agent.ack("conversation:join", json!(id)).await;
        assert_eq!(ack, json!({"ok": true, "conversation_id": id}));
    }
    let ack = agent
        .ack("conversation:join", json!({"conversation_id": own}))
        .await;
    assert_eq!(ack["ok"], true, "the object form works too: {ack}");

    let missing = agent.ack("conversation:join", json!(Uuid::new_v4())).await;
    assert_eq!(missing["ok"], false);
    assert_eq!(missing["error"]["status"], 404);
    for id in [others, other_tenants] {
        let ack = agent.ack("conversation:join", json!(id)).await;
        assert_eq!(ack, missing, "{id}");
    }
    let bad = agent.ack("conversation:join", json!("nope")).await;
    assert_eq!(bad["error"]["status"], 400, "{bad}");
    assert!(
        bad["error"]["detail"]
            .as_str()
            .unwrap()
            .starts_with("conversation_id")
    );

    // A supervisor may open any conversation of the tenant, and no other tenant's.
    let supervisor = Client::connect(&rt.base, &w.supervisor_token, None).await;
    let ack = supervisor.ack("conversation:join", json!(others)).await;
    assert_eq!(ack["ok"], true, "{ack}");
    let ack = supervisor
        .ack("conversation:join", json!(other_tenants))
        .await;
    assert_eq!(ack, missing);
}
