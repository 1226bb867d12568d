//! What Redis may do to the stream (reorder, repeat, drop, restart) never reaches a client.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::client::Client;
use crate::helpers::*;

/// The tenant's event `seq` as it is published (the events table's row).
async fn published_form(app: &TestApp, tenant: uuid::Uuid, seq: i64) -> String {
    let row: Value = sqlx::query_scalar(
        "SELECT jsonb_build_object('tenant_id', tenant_id, 'seq', seq, 'type', event_type, \
         'payload', payload, 'created_at', created_at) FROM events WHERE tenant_id = $1 AND seq = $2",
    )
    .bind(tenant)
    .bind(seq)
    .fetch_one(&app.owner)
    .await
    .unwrap();
    row.to_string()
}

#[tokio::test]
async fn events_reordered_repeated_or_lost_on_redis_reach_clients_once_and_in_order() {
    // Nothing publishes by itself: the test plays the publishers.
    let app = TestApp::spawn_with(&[
        ("PORTAL__EVENTS__PUBLISH", "false"),
        ("PORTAL__EVENTS__RELAY_ENABLED", "false"),
    ])
    .await;
    let rt = Realtime::spawn(&app, &[]).await;
    let w = World::new(&app).await;
    let own = conversation_of(&app, &w, Some(w.agent), "active").await;
    let mut client = Client::connect(&rt.base, &w.supervisor_token, None).await;
    for i in 0..5 {
        app.send_text(own, &w.agent_token, &format!("m{i}")).await;
    }
    let redis = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let mut publish = async |seq: i64| {
        let event = published_form(&app, w.a, seq).await;
        redis::cmd("PUBLISH")
            .arg(&app.channel)
            .arg(event)
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
    };

    // Out of order and twice: held back until the first arrives, then once each.
    for seq in [3, 2, 2, 3] {
        publish(seq).await;
    }
    client.quiet(50).await;
    publish(1).await;
    assert_eq!(client.seqs(3).await, [1, 2, 3]);

    // 4 is never published: after the gap wait it is read from Postgres.
    let started = Instant::now();
    publish(5).await;
    publish(1).await;
    assert_eq!(client.seqs(2).await, [4, 5]);
    assert!(started.elapsed() >= Duration::from_millis(100));
    client.quiet(300).await;
}

#[tokio::test]
async fn a_redis_restart_mid_stream_loses_nothing_and_sockets_stay_connected() {
    let mut redis = OwnRedis::start();
    let url = redis.url();
    let app = TestApp::spawn_with(&[
        ("PORTAL__REDIS__URL", url.as_str()),
        ("PORTAL__EVENTS__RELAY_INTERVAL_MS", "100"),
        ("PORTAL__EVENTS__RELAY_MIN_AGE_MS", "200"),
    ])
    .await;
    let rt = Realtime::spawn(&app, &[("PORTAL__REDIS__URL", url.as_str())]).await;
    let w = World::new(&app).await;
    let own = conversation_of(&app, &w, Some(w.agent), "active").await;
    let mut client = Client::connect(&rt.base, &w.supervisor_token, None).await;
    for i in 0..3 {
        app.send_text(own, &w.agent_token, &format!("before {i}"))
            .await;
    }
    assert_eq!(client.seqs(3).await, [1, 2, 3]);

    redis.stop();
    // Readiness shows the outage.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = rt.readiness().await;
        if status == 503 {
            assert_ne!(body["checks"]["redis_subscription"], "ok");
            assert_eq!(body["checks"]["postgres"], "ok");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readiness did not notice: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The API keeps working; its events wait in Postgres.
    for i in 0..3 {
        app.send_text(own, &w.agent_token, &format!("during {i}"))
            .await;
    }
    client.quiet(300).await;

    redis.restart();
    assert_eq!(client.seqs(3).await, [4, 5, 6], "what was missed, in order");
    rt.wait_ready().await;
    app.send_text(own, &w.agent_token, "after").await;
    assert_eq!(client.seqs(1).await, [7]);
    client.quiet(500).await;
    // The socket was never dropped: it answers on the same connection.
    let ack = client.ack("conversation:join", json!(own)).await;
    assert_eq!(ack["ok"], true);
}
