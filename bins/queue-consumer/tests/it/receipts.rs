//! Delivery receipts: out of order, ahead of their message, and never lost.

use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::Harness;

fn receipt(wamid: &str, status: &str) -> serde_json::Value {
    json!({ "whatsapp_message_id": wamid, "status": status, "timestamp": "2026-11-24T10:00:00Z" })
}

#[tokio::test]
async fn receipts_out_of_order_never_move_a_status_backwards() {
    let h = Harness::new().await;
    let consumer = h.start(&[]).await;
    let w = &h.world;
    let customer = h.app.customer(w.a, "Rita", "+447700900321").await;
    let conversation = h
        .app
        .conversation(w.a, customer, "active", Some(w.agent), 1)
        .await;
    let sent = h
        .app
        .message(w.a, conversation, "outbound", "Your order shipped", 5)
        .await;
    let failing = h
        .app
        .message(w.a, conversation, "outbound", "Tracking link", 4)
        .await;
    sqlx::query("UPDATE messages SET external_id = 'wamid.' || replace(id::text, '-', '') WHERE id IN ($1, $2)")
        .bind(sent)
        .bind(failing)
        .execute(&h.app.owner)
        .await
        .unwrap();
    let wamid = |id: uuid::Uuid| format!("wamid.{}", id.simple());

    for status in ["read", "delivered", "sent"] {
        h.publish(w.a, "message.status", receipt(&wamid(sent), status))
            .await;
    }
    h.publish(
        w.a,
        "message.status",
        json!({ "whatsapp_message_id": wamid(failing), "status": "failed", "timestamp": "2026-11-24T10:00:00Z",
                "error": { "code": 131026, "title": "Message undeliverable" } }),
    )
    .await;
    h.wait_count("SELECT count(*) FROM processed_notifications", 4)
        .await;

    let (_, message) = h
        .app
        .get(&format!("/api/messages/{sent}"), &w.agent_token)
        .await;
    assert_eq!(message["status"], "read");
    let (_, message) = h
        .app
        .get(&format!("/api/messages/{failing}"), &w.agent_token)
        .await;
    assert_eq!(message["status"], "failed");
    assert_eq!(message["failure_reason"], "131026: Message undeliverable");
    // One status event each: the late `delivered` and `sent` changed nothing.
    assert_eq!(
        h.count("SELECT count(*) FROM events WHERE event_type = 'message:status'")
            .await,
        2
    );
    assert_eq!(
        consumer
            .metric("portal_queue_consumer_messages_total{outcome=\"unchanged\"}")
            .await,
        2.0
    );
    consumer.stop().await;
    h.finish().await;
}

#[tokio::test]
async fn a_receipt_ahead_of_its_message_is_kept_and_applied_when_the_message_gets_its_id() {
    let transformer = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "external_id": "wamid.EARLY" })),
        )
        .mount(&transformer)
        .await;
    let url = format!("{}/messages", transformer.uri());
    let h = Harness::with_api(&[
        ("PORTAL__DISPATCHER__ENABLED", "true"),
        ("PORTAL__TRANSFORMER__URL", url.as_str()),
    ])
    .await;
    let consumer = h.start(&[]).await;
    let w = &h.world;
    let customer = h.app.customer(w.a, "Eli", "+447700900777").await;
    let conversation = h
        .app
        .conversation(w.a, customer, "active", Some(w.agent), 1)
        .await;

    // WhatsApp's receipt overtakes the transformer's answer.
    h.publish(w.a, "message.status", receipt("wamid.EARLY", "delivered"))
        .await;
    h.wait_count("SELECT count(*) FROM pending_receipts", 1)
        .await;
    assert_eq!(
        consumer
            .metric("portal_queue_consumer_messages_total{outcome=\"receipt_kept\"}")
            .await,
        1.0
    );

    let id = h
        .app
        .send_text(conversation, &w.agent_token, "On its way")
        .await;
    let row = h.app.wait_for_status(id, "delivered").await;
    assert_eq!(row["external_id"], "wamid.EARLY");
    assert_eq!(h.count("SELECT count(*) FROM pending_receipts").await, 0);
    assert_eq!(h.depth(".dlq").await, 0);
    consumer.stop().await;
    h.finish().await;
}

#[tokio::test]
async fn a_receipt_whose_message_never_appears_is_dead_lettered_after_the_wait() {
    let h = Harness::new().await;
    let consumer = h
        .start(&[
            ("PORTAL__CONSUMER__RECEIPT_WAIT_SECS", "1"),
            ("PORTAL__CONSUMER__SWEEP_INTERVAL_SECS", "1"),
        ])
        .await;
    let w = &h.world;
    let event_id = h
        .publish(w.a, "message.status", receipt("wamid.NEVER", "read"))
        .await;
    h.wait_count("SELECT count(*) FROM pending_receipts", 1)
        .await;

    let letters = h.dead_letters(1).await;
    assert_eq!(letters[0].reason, "unknown_message");
    assert!(
        letters[0].detail.contains("wamid.NEVER"),
        "{}",
        letters[0].detail
    );
    let body: serde_json::Value = serde_json::from_slice(&letters[0].body).unwrap();
    assert_eq!(body["event_id"], json!(event_id));
    assert_eq!(body["data"]["whatsapp_message_id"], "wamid.NEVER");
    h.wait_count("SELECT count(*) FROM pending_receipts", 0)
        .await;
    consumer.stop().await;
    h.finish().await;
}
