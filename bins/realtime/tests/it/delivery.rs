//! Live events: each reaches exactly the sockets that must see it, once, in sequence order,
//! whichever realtime process they are connected to.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::client::Client;
use crate::helpers::*;

/// `value` with every RFC 3339 timestamp in one notation.
fn same_instants(value: &Value) -> Value {
    match value {
        Value::String(s) => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => json!(t.timestamp_micros()),
            Err(_) => value.clone(),
        },
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), same_instants(v)))
            .collect(),
        other => other.clone(),
    }
}

/// The next event's name and sequence number.
async fn next(client: &mut Client) -> (String, i64) {
    let (name, payload) = client.next().await;
    (name, payload["seq"].as_i64().unwrap())
}

#[tokio::test]
async fn every_event_reaches_exactly_the_rooms_it_should() {
    let app = TestApp::spawn().await;
    let rt = Realtime::spawn(&app, &[]).await;
    let w = World::new(&app).await;
    let own = conversation_of(&app, &w, Some(w.agent), "active").await;
    let queued = conversation_of(&app, &w, None, "waiting").await;
    let b_customer = app.customer(w.b, "Bea", "+4915100000001").await;
    let b_conversation = app
        .conversation(w.b, b_customer, "active", Some(w.b_supervisor), 1)
        .await;

    let mut agent = Client::connect(&rt.base, &w.agent_token, None).await;
    let mut other = Client::connect(&rt.base, &w.other_agent_token, None).await;
    let mut supervisor = Client::connect(&rt.base, &w.supervisor_token, None).await;
    let mut b = Client::connect(&rt.base, &w.b_token, None).await;

    // A message in the agent's conversation: the agent and the supervisors, nobody else.
    let message = app.send_text(own, &w.agent_token, "hello").await;
    let (name, payload) = agent.next().await;
    assert_eq!(name, "message:new");
    assert_eq!(payload["seq"], 1);
    assert_eq!(payload["message"]["id"], json!(message));
    assert_eq!(payload["message"]["text"], "hello");
    assert_eq!(payload["conversation"]["id"], json!(own));
    assert_eq!(next(&mut supervisor).await, ("message:new".into(), 1));

    // A queued conversation taken by the other agent: every agent who could have taken it
    // learns it is gone, and the supervisors.
    let (status, body) = app
        .patch(
            &format!("/api/conversations/{queued}"),
            &w.other_agent_token,
            json!({"assigned_agent_id": w.other_agent}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for client in [&mut agent, &mut other, &mut supervisor] {
        let (name, payload) = client.next().await;
        assert_eq!(name, "conversation:updated");
        assert_eq!(payload["seq"], 2);
        // The conversation as the REST API returns it (timestamps may differ in notation:
        // `Z` or `+00:00`).
        assert_eq!(
            same_instants(&payload["conversation"]),
            same_instants(&body)
        );
        // Without an assignee before, `previous` has no `assignee_id` (never `null`).
        assert_eq!(payload["previous"], json!({"state": "waiting"}));
    }

    // Another tenant's change reaches that tenant only.
    let (status, _) = app
        .post(
            &format!("/api/conversations/{b_conversation}/close"),
            &w.b_token,
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(next(&mut b).await, ("conversation:updated".into(), 1));

    for client in [&mut agent, &mut other, &mut supervisor, &mut b] {
        client.quiet(300).await;
    }
}

#[tokio::test]
async fn an_agent_that_loses_a_conversation_leaves_its_room() {
    let app = TestApp::spawn().await;
    let rt = Realtime::spawn(&app, &[]).await;
    let w = World::new(&app).await;
    let own = conversation_of(&app, &w, Some(w.agent), "active").await;
    let mut agent = Client::connect(&rt.base, &w.agent_token, None).await;
    let mut other = Client::connect(&rt.base, &w.other_agent_token, None).await;
    let ack = agent.ack("conversation:join", json!(own)).await;
    assert_eq!(ack["ok"], true);

    let (status, body) = app
        .post(
            &format!("/api/conversations/{own}/transfer"),
            &w.agent_token,
            json!({"to_agent_id": w.other_agent}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // In its own room and the conversation's, the agent still hears of the transfer once.
    assert_eq!(next(&mut agent).await, ("conversation:updated".into(), 1));
    assert_eq!(next(&mut other).await, ("conversation:updated".into(), 1));
    agent.quiet(200).await;

    // The conversation's later events no longer reach it.
    app.send_text(own, &w.other_agent_token, "now mine").await;
    assert_eq!(next(&mut other).await, ("message:new".into(), 2));
    agent.quiet(300).await;
    // And it can no longer join.
    let ack = agent.ack("conversation:join", json!(own)).await;
    assert_eq!(ack["error"]["status"], 404, "{ack}");
}

#[tokio::test]
async fn two_realtime_processes_deliver_each_event_once_and_in_order() {
    let app = TestApp::spawn().await;
    let first = Realtime::spawn(&app, &[]).await;
    let second = Realtime::spawn(&app, &[]).await;
    let w = World::new(&app).await;
    let own = conversation_of(&app, &w, Some(w.agent), "active").await;
    let mut clients = vec![
        Client::connect(&first.base, &w.supervisor_token, None).await,
        Client::connect(&second.base, &w.supervisor_token, None).await,
        Client::connect(&second.base, &w.agent_token, None).await,
        Client::connect(&first.base, &w.agent_token, None).await,
    ];

    // Sent concurrently by several requests, so commits and publishes interleave.
    let texts: Vec<String> = (0..30).map(|i| format!("m{i}")).collect();
    futures::future::join_all(texts.iter().map(|t| app.send_text(own, &w.agent_token, t))).await;
    let expected: Vec<i64> = (1..=30).collect();
    for client in &mut clients {
        assert_eq!(client.seqs(30).await, expected);
        client.quiet(200).await;
    }

    // One process stopping (its clients reconnect elsewhere) leaves the other serving.
    first.stop().await;
    app.send_text(own, &w.agent_token, "still served").await;
    assert_eq!(clients[1].seqs(1).await, [31]);
    assert_eq!(clients[2].seqs(1).await, [31]);
}

#[tokio::test]
async fn supervisors_see_agents_come_online_and_go_offline() {
    let app = TestApp::spawn().await;
    let rt = Realtime::spawn(&app, &[]).await;
    let w = World::new(&app).await;
    let mut supervisor = Client::connect(&rt.base, &w.supervisor_token, None).await;
    // Its own arrival.
    assert_eq!(
        supervisor.presence().await,
        json!({"agent_id": w.supervisor, "online": true})
    );
    let online = |body: &Value, id: Uuid| {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == json!(id))
            .unwrap()["online"]
            .clone()
    };

    let agent = Client::connect(&rt.base, &w.agent_token, None).await;
    assert_eq!(
        supervisor.presence().await,
        json!({"agent_id": w.agent, "online": true})
    );
    let (_, body) = app.get("/api/agents?limit=100", &w.supervisor_token).await;
    assert_eq!(online(&body, w.agent), true);

    // A second tab changes nothing; closing both takes the agent offline.
    let tab = Client::connect(&rt.base, &w.agent_token, None).await;
    supervisor.no_presence(200).await;
    agent.disconnect().await;
    supervisor.no_presence(200).await;
    tab.disconnect().await;
    assert_eq!(
        supervisor.presence().await,
        json!({"agent_id": w.agent, "online": false})
    );
    let (_, body) = app.get("/api/agents?limit=100", &w.supervisor_token).await;
    assert_eq!(online(&body, w.agent), false);
}
