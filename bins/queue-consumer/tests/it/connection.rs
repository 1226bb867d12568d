//! The broker connection: lost mid-stream, lost between commit and ack, two consumers, and a
//! stop (SIGTERM) in the middle of a stream.

use std::time::Duration;

use crate::helpers::{Harness, Proxy, created, received};

/// Publishes `conversation.created` for `sm-{i}` and waits until they are applied.
async fn conversations(h: &Harness, n: usize) {
    for i in 0..n {
        h.publish(
            h.world.a,
            "conversation.created",
            created(&format!("sm-{i}"), &format!("+4477009{i:05}"), "C"),
        )
        .await;
    }
    h.wait_count("SELECT count(*) FROM conversations", n as i64)
        .await;
}

async fn messages(h: &Harness, conversations: usize, n: usize) {
    for i in 0..n {
        h.publish(
            h.world.a,
            "message.received",
            received(
                &format!("sm-{}", i % conversations),
                &format!("wamid.M{i}"),
                &format!("message {i}"),
            ),
        )
        .await;
    }
}

/// Each message stored once, with one event each.
async fn assert_each_message_once(h: &Harness, n: i64) {
    h.wait_count("SELECT count(*) FROM messages", n).await;
    h.wait_count("SELECT count(DISTINCT external_id) FROM messages", n)
        .await;
    assert_eq!(
        h.count("SELECT count(*) FROM events WHERE event_type = 'message:new'")
            .await,
        n
    );
}

#[tokio::test]
async fn a_connection_lost_mid_stream_loses_nothing_and_readiness_shows_it() {
    let h = Harness::new().await;
    let proxy = Proxy::start().await;
    let consumer = h.start_via(&proxy.url, &[]).await;
    consumer.wait_ready(true).await;
    conversations(&h, 5).await;
    messages(&h, 5, 300).await;
    while h.count("SELECT count(*) FROM messages").await < 50 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    proxy.down();
    consumer.wait_ready(false).await;
    let (_, body) = consumer.get("/readyz").await;
    assert!(body.contains("not connected"), "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.up();
    consumer.wait_ready(true).await;

    assert_each_message_once(&h, 300).await;
    h.wait_count("SELECT count(*) FROM processed_notifications", 305)
        .await;
    assert_eq!(h.depth("").await, 0);
    assert_eq!(h.depth(".dlq").await, 0);
    consumer.stop().await;
    h.finish().await;
}

#[tokio::test]
async fn killed_between_commit_and_ack_the_redelivery_is_a_no_op() {
    let h = Harness::new().await;
    let proxy = Proxy::start().await;
    let consumer = h.start_via(&proxy.url, &[]).await;
    consumer.wait_ready(true).await;
    conversations(&h, 1).await;

    // The consumer receives the message, commits it and acknowledges; the acknowledgement is
    // held in the proxy and then lost with the connection, as if the process had died.
    proxy.stall();
    messages(&h, 1, 1).await;
    h.wait_count("SELECT count(*) FROM messages", 1).await;
    proxy.cut();

    // The broker redelivers it; the consumer finds its event id applied and only acknowledges.
    while consumer
        .metric("portal_queue_consumer_messages_total{outcome=\"duplicate\"}")
        .await
        < 1.0
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_each_message_once(&h, 1).await;
    assert_eq!(h.depth("").await, 0);
    consumer.stop().await;
    h.finish().await;
}

#[tokio::test]
async fn two_consumers_apply_each_message_once() {
    let h = Harness::new().await;
    let first = h.start(&[]).await;
    let second = h.start(&[]).await;
    conversations(&h, 20).await;
    messages(&h, 20, 200).await;
    // Upstream publishes the first 50 again, same event ids: redeliveries to either consumer.
    let again: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT jsonb_build_object('event_id', event_id) FROM processed_notifications \
         WHERE type = 'message.received' ORDER BY processed_at LIMIT 50",
    )
    .fetch_all(&h.app.owner)
    .await
    .unwrap();
    assert!(!again.is_empty());
    for row in &again {
        let event_id: uuid::Uuid = serde_json::from_value(row["event_id"].clone()).unwrap();
        h.publish_envelope(&crate::helpers::envelope(
            event_id,
            h.world.a,
            "message.received",
            received("sm-0", "wamid.again", "again"),
        ))
        .await;
    }

    assert_each_message_once(&h, 200).await;
    let mut duplicates = 0.0;
    for _ in 0..500 {
        duplicates = first
            .metric("portal_queue_consumer_messages_total{outcome=\"duplicate\"}")
            .await
            + second
                .metric("portal_queue_consumer_messages_total{outcome=\"duplicate\"}")
                .await;
        if duplicates >= again.len() as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(duplicates, again.len() as f64);
    // Both took a share.
    for consumer in [&first, &second] {
        assert!(
            consumer
                .metric("portal_queue_consumer_consumed_total")
                .await
                > 0.0
        );
    }
    first.stop().await;
    second.stop().await;
    h.finish().await;
}

#[tokio::test]
async fn a_stop_finishes_what_is_in_flight_and_leaves_the_rest_queued() {
    let h = Harness::new().await;
    let setup = h.start(&[]).await;
    conversations(&h, 4).await;
    setup.stop().await;
    messages(&h, 4, 2000).await;

    let consumer = h.start(&[("PORTAL__CONSUMER__PREFETCH", "20")]).await;
    while h.count("SELECT count(*) FROM messages").await < 30 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    consumer.stop().await;

    // Everything applied was acknowledged, everything else is still queued: nothing lost,
    // nothing half-done.
    let applied = h.count("SELECT count(*) FROM messages").await;
    assert!(applied < 2000, "the stop came too late to test anything");
    assert_eq!(i64::from(h.depth("").await), 2000 - applied);

    let again = h.start(&[]).await;
    assert_each_message_once(&h, 2000).await;
    assert_eq!(
        again
            .metric("portal_queue_consumer_messages_total{outcome=\"duplicate\"}")
            .await,
        0.0
    );
    again.stop().await;
    h.finish().await;
}
