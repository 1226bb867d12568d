//! Reconnection: a client that says the last `seq` it saw gets what it missed, in order and
//! once, before live events; or `resync` when that is no longer possible.

use serde_json::json;

use crate::client::Client;
use crate::helpers::*;

#[tokio::test]
async fn a_client_that_reconnects_gets_what_it_missed_in_order_then_live_events() {
    let app = TestApp::spawn().await;
    let rt = Realtime::spawn(&app, &[]).await;
    let w = World::new(&app).await;
    let own = conversation_of(&app, &w, Some(w.agent), "active").await;
    let others = conversation_of(&app, &w, Some(w.other_agent), "active").await;

    let mut supervisor = Client::connect(&rt.base, &w.supervisor_token, None).await;
    let mut agent = Client::connect(&rt.base, &w.agent_token, None).await;
    for text in ["one", "two", "three"] {
        app.send_text(own, &w.agent_token, text).await;
    }
    assert_eq!(supervisor.seqs(3).await, [1, 2, 3]);
    assert_eq!(agent.seqs(3).await, [1, 2, 3]);
    supervisor.disconnect().await;
    agent.disconnect().await;

    // Missed while away: two in the agent's conversation, one in another agent's.
    app.send_text(own, &w.agent_token, "four").await;
    app.send_text(others, &w.other_agent_token, "not for the agent")
        .await;
    app.send_text(own, &w.agent_token, "six").await;

    let mut supervisor = Client::connect(&rt.base, &w.supervisor_token, Some(3)).await;
    let mut agent = Client::connect(&rt.base, &w.agent_token, Some(3)).await;
    assert_eq!(supervisor.seqs(3).await, [4, 5, 6]);
    let (name, payload) = agent.next().await;
    assert_eq!(
        (name.as_str(), payload["message"]["text"].as_str()),
        ("message:new", Some("four"))
    );
    assert_eq!(agent.seqs(1).await, [6]);

    // Then live.
    app.send_text(own, &w.agent_token, "seven").await;
    assert_eq!(supervisor.seqs(1).await, [7]);
    assert_eq!(agent.seqs(1).await, [7]);
    supervisor.quiet(300).await;
    agent.quiet(100).await;
}

#[tokio::test]
async fn a_reconnect_during_a_stream_of_events_misses_none_and_repeats_none() {
    let app = TestApp::spawn().await;
    let rt = Realtime::spawn(&app, &[]).await;
    let w = World::new(&app).await;
    let own = conversation_of(&app, &w, Some(w.agent), "active").await;

    // Events keep coming while clients connect, replay and go live.
    let producer = {
        let token = w.agent_token.clone();
        let app = &app;
        async move {
            for i in 0..60 {
                app.send_text(own, &token, &format!("m{i}")).await;
            }
        }
    };
    let consumers = async {
        let mut seen = Vec::new();
        for after in [0, 5, 15, 30] {
            // A client can only have seen events that exist.
            while (app.events(w.a).await.len() as i64) < after {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            let client = Client::connect(&rt.base, &w.supervisor_token, Some(after)).await;
            seen.push((after, client));
        }
        seen
    };
    let ((), clients) = tokio::join!(producer, consumers);
    for (after, mut client) in clients {
        let expected: Vec<i64> = (after + 1..=60).collect();
        assert_eq!(client.seqs(expected.len()).await, expected, "from {after}");
        client.quiet(100).await;
    }
}

#[tokio::test]
async fn a_gap_past_retention_or_too_long_gets_resync() {
    let app = TestApp::spawn().await;
    let rt = Realtime::spawn(&app, &[("PORTAL__REALTIME__REPLAY_MAX_EVENTS", "4")]).await;
    let w = World::new(&app).await;
    let own = conversation_of(&app, &w, Some(w.agent), "active").await;
    for i in 0..5 {
        app.send_text(own, &w.agent_token, &format!("m{i}")).await;
    }

    // Within reach: replayed.
    let mut client = Client::connect(&rt.base, &w.supervisor_token, Some(1)).await;
    assert_eq!(client.seqs(4).await, [2, 3, 4, 5]);
    client.disconnect().await;

    // Too many missed (5 > 4): reload.
    let mut client = Client::connect(&rt.base, &w.supervisor_token, Some(0)).await;
    let (name, payload) = client.next().await;
    assert_eq!(name, "resync");
    assert_eq!(
        payload,
        json!({"reason": "too many events were missed", "seq": 5})
    );
    client.disconnect().await;

    // Pruned by retention: reload, then live from the present.
    sqlx::query("DELETE FROM events WHERE tenant_id = $1 AND seq <= 3")
        .bind(w.a)
        .execute(&app.owner)
        .await
        .unwrap();
    let mut client = Client::connect(&rt.base, &w.supervisor_token, Some(2)).await;
    let (name, payload) = client.next().await;
    assert_eq!(name, "resync");
    assert_eq!(
        payload,
        json!({"reason": "the missed events are no longer kept", "seq": 5})
    );
    app.send_text(own, &w.agent_token, "live").await;
    assert_eq!(client.seqs(1).await, [6]);

    // A sequence number from no history of this tenant.
    let mut client = Client::connect(&rt.base, &w.supervisor_token, Some(99)).await;
    let (name, payload) = client.next().await;
    assert_eq!(name, "resync");
    assert_eq!(payload["seq"], 6);
}
