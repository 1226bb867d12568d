//! Events reach Redis only after their transaction commits: published at once by the process
//! that made them, or by a relay when that process could not (Redis down, a crash).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use portal_shared::auth::Authenticator;
use portal_shared::config::Settings;
use portal_shared::events::{self, EventRelay, Replay};
use portal_shared::tenancy::Db;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::helpers::*;

fn redis_url() -> String {
    std::env::var("PORTAL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The events published on `channel` from now on, as JSON.
async fn subscribe(channel: &str) -> impl futures::Stream<Item = Value> + Unpin {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(channel).await.unwrap();
    Box::pin(
        pubsub
            .into_on_message()
            .map(|msg| serde_json::from_str(&msg.get_payload::<String>().unwrap()).unwrap()),
    )
}

async fn next(stream: &mut (impl futures::Stream<Item = Value> + Unpin)) -> Value {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("no event published within 10 s")
        .unwrap()
}

async fn unpublished(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM unpublished_events")
        .fetch_one(&app.owner)
        .await
        .unwrap()
}

async fn wait_until_all_published(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while unpublished(app).await > 0 {
        assert!(Instant::now() < deadline, "events stayed unpublished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn readiness(app: &TestApp) -> (StatusCode, Value) {
    let resp = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

fn relay(app: &TestApp, redis: &str) -> EventRelay {
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_lazy(&app.app_url)
        .unwrap();
    EventRelay::new(
        Db::new(pool),
        events::redis_connection(redis).unwrap(),
        app.channel.clone(),
        Duration::from_millis(50),
        Duration::ZERO,
        Duration::from_secs(3600),
    )
}

#[tokio::test]
async fn a_change_is_published_right_after_it_commits() {
    let app = TestApp::spawn_with(&[("PORTAL__EVENTS__RELAY_ENABLED", "false")]).await;
    let mut stream = subscribe(&app.channel).await;
    let w = World::new(&app).await;
    let c = app.customer(w.a, "Paula", "+34600000001").await;
    let conv = app.conversation(w.a, c, "active", Some(w.agent), 1).await;

    let (status, _) = app
        .post(
            &format!("/api/conversations/{conv}/close"),
            &w.agent_token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let event = next(&mut stream).await;
    let (seq, kind, payload) = app.events(w.a).await.pop().unwrap();
    assert_eq!(event["type"], kind.as_str());
    assert_eq!(event["type"], "conversation:updated");
    assert_eq!(event["tenant_id"], json!(w.a));
    assert_eq!(event["seq"], seq);
    assert_eq!(event["payload"], payload);
    assert_eq!(event["payload"]["conversation"]["state"], "closed");
    wait_until_all_published(&app).await;
    assert_eq!(readiness(&app).await.1["checks"]["redis"], "ok");

    // A change that fails writes no event, so nothing is published.
    let (status, _) = app
        .post(
            &format!("/api/conversations/{}/close", Uuid::new_v4()),
            &w.agent_token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stream.next())
            .await
            .is_err(),
        "nothing else was published"
    );
}

#[tokio::test]
async fn events_made_while_redis_is_down_are_relayed_in_order_afterwards() {
    // Nothing listens on port 1: this API cannot reach Redis, and has no relay.
    let app = TestApp::spawn_with(&[
        ("PORTAL__REDIS__URL", "redis://127.0.0.1:1"),
        ("PORTAL__EVENTS__RELAY_ENABLED", "false"),
    ])
    .await;
    let mut stream = subscribe(&app.channel).await;
    let w = World::new(&app).await;
    let c = app.customer(w.a, "Paula", "+34600000001").await;
    let conv = app.conversation(w.a, c, "active", Some(w.agent), 1).await;
    for text in ["one", "two", "three"] {
        // The API keeps answering while Redis is down.
        app.send_text(conv, &w.agent_token, text).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        unpublished(&app).await,
        3,
        "nothing was lost, nothing published"
    );
    // Readiness shows the outage but the API stays ready: the events wait in Postgres. The
    // messages wait in the outbox (no dispatcher here), which readiness reports too.
    let (status, ready) = readiness(&app).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["checks"]["postgres"], "ok");
    assert_ne!(ready["checks"]["redis"], "ok", "{ready}");
    assert_eq!(ready["outbox"]["waiting"], 3, "{ready}");

    let relay = relay(&app, &redis_url());
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(relay.run(stop.clone()));
    let mut texts = Vec::new();
    let mut seqs = Vec::new();
    for _ in 0..3 {
        let event = next(&mut stream).await;
        assert_eq!(event["type"], "message:new");
        texts.push(
            event["payload"]["message"]["text"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        seqs.push(event["seq"].as_i64().unwrap());
    }
    assert_eq!(texts, ["one", "two", "three"]);
    assert_eq!(seqs, [1, 2, 3]);
    wait_until_all_published(&app).await;
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn two_relays_publish_each_event_once() {
    let app = TestApp::spawn_with(&[("PORTAL__EVENTS__RELAY_ENABLED", "false")]).await;
    let tenant = app.tenant().await;
    sqlx::query(
        "WITH appended AS ( \
             INSERT INTO events (tenant_id, seq, event_type, payload) \
             SELECT $1, s, 'conversation:updated', jsonb_build_object('n', s) \
             FROM generate_series(1, 1200) s RETURNING tenant_id, seq \
         ) \
         INSERT INTO unpublished_events (tenant_id, seq) SELECT tenant_id, seq FROM appended",
    )
    .bind(tenant)
    .execute(&app.owner)
    .await
    .unwrap();
    let mut stream = subscribe(&app.channel).await;

    let (mut first, mut second) = (relay(&app, &redis_url()), relay(&app, &redis_url()));
    let (a, b) = tokio::join!(
        async {
            let mut n = 0;
            while let Ok(k @ 1..) = first.relay_once().await {
                n += k;
            }
            n
        },
        async {
            let mut n = 0;
            while let Ok(k @ 1..) = second.relay_once().await {
                n += k;
            }
            n
        }
    );
    assert_eq!(a + b, 1200, "the relays shared the work: {a} + {b}");
    let mut seen = HashSet::new();
    for _ in 0..1200 {
        let event = next(&mut stream).await;
        assert!(
            seen.insert(event["seq"].as_i64().unwrap()),
            "published twice: {event}"
        );
    }
    assert_eq!(unpublished(&app).await, 0);
}

#[tokio::test]
async fn replay_sends_what_a_client_missed_or_tells_it_to_resync() {
    let app = TestApp::spawn_with(&[("PORTAL__EVENTS__RELAY_ENABLED", "false")]).await;
    let w = World::new(&app).await;
    // Ten events; the first four are five days old (past the 72 h retention), all published.
    sqlx::query(
        "INSERT INTO events (tenant_id, seq, event_type, payload, created_at) \
         SELECT $1, s, 'conversation:updated', jsonb_build_object('n', s), \
                CASE WHEN s <= 4 THEN now() - interval '5 days' ELSE now() END \
         FROM generate_series(1, 10) s",
    )
    .bind(w.a)
    .execute(&app.owner)
    .await
    .unwrap();
    sqlx::query("INSERT INTO tenant_event_counters (tenant_id, last_seq) VALUES ($1, 10)")
        .bind(w.a)
        .execute(&app.owner)
        .await
        .unwrap();

    // The realtime service's path: a token becomes a tenant context, then a tenant transaction.
    let settings = Settings::load_from(
        None,
        [
            ("PORTAL__AUTH__JWT_SECRET".to_string(), SECRET.to_string()),
            ("PORTAL__DATABASE__URL".to_string(), app.app_url.clone()),
        ],
    )
    .unwrap();
    let db = Db::new(portal_shared::db::pool(&settings.database).unwrap());
    let auth = Authenticator::new(&settings.auth, db.clone()).unwrap();
    let ctx = auth.authenticate(&w.supervisor_token).await.unwrap();
    let replay = |after: i64, limit: u32| {
        let (db, ctx) = (db.clone(), ctx.clone());
        async move {
            let mut tx = db.begin(&ctx).await.unwrap();
            let replay = events::replay(&mut tx, after, limit).await.unwrap();
            tx.commit().await.unwrap();
            match replay {
                Replay::Events { events, more } => {
                    Some((events.iter().map(|e| e.seq).collect::<Vec<_>>(), more))
                }
                Replay::Resync => None,
            }
        }
    };
    assert_eq!(replay(6, 2).await, Some((vec![7, 8], true)));
    assert_eq!(replay(8, 10).await, Some((vec![9, 10], false)));
    assert_eq!(replay(10, 10).await, Some((vec![], false)), "up to date");
    assert_eq!(replay(11, 10).await, None, "a seq from another history");
    assert_eq!(
        replay(2, 10).await,
        Some((vec![3, 4, 5, 6, 7, 8, 9, 10], false))
    );

    // Pruning removes the published events past retention, and only those.
    sqlx::query(
        "WITH appended AS ( \
             INSERT INTO events (tenant_id, seq, event_type, payload, created_at) \
             VALUES ($1, 11, 'conversation:updated', '{}', now() - interval '5 days') \
             RETURNING tenant_id, seq \
         ) \
         INSERT INTO unpublished_events (tenant_id, seq) SELECT tenant_id, seq FROM appended",
    )
    .bind(w.a)
    .execute(&app.owner)
    .await
    .unwrap();
    sqlx::query("UPDATE tenant_event_counters SET last_seq = 11 WHERE tenant_id = $1")
        .bind(w.a)
        .execute(&app.owner)
        .await
        .unwrap();
    let relay = EventRelay::new(
        db.clone(),
        events::redis_connection(&redis_url()).unwrap(),
        app.channel.clone(),
        Duration::from_millis(50),
        Duration::ZERO,
        Duration::from_secs(72 * 3600),
    );
    assert_eq!(relay.prune_once().await.unwrap(), 4);
    assert_eq!(
        relay.prune_once().await.unwrap(),
        0,
        "the unpublished one stays"
    );
    assert_eq!(
        replay(2, 10).await,
        None,
        "what it missed was pruned: resync"
    );
    assert_eq!(replay(4, 10).await, Some(((5..=11).collect(), false)));

    // Another tenant's client sees none of it.
    let other = auth.authenticate(&w.b_token).await.unwrap();
    let mut tx = db.begin(&other).await.unwrap();
    assert_eq!(
        events::replay(&mut tx, 0, 10).await.unwrap(),
        Replay::Events {
            events: vec![],
            more: false
        }
    );
}
