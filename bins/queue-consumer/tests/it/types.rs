//! Each notification type is applied and visible through the REST API and as a Redis event.

use serde_json::json;

use crate::helpers::{Harness, created, received};

#[tokio::test]
async fn every_type_is_applied_and_published() {
    let h = Harness::new().await;
    let consumer = h.start(&[]).await;
    let w = &h.world;

    // conversation.created: a new customer, a waiting conversation in the queue.
    h.publish(
        w.a,
        "conversation.created",
        created("sm-1", "+447946001800", "Paula Pérez"),
    )
    .await;
    let event = h.next_event("conversation:new").await;
    assert_eq!(event["tenant_id"], json!(w.a));
    assert_eq!(event["payload"]["conversation"]["state_manager_id"], "sm-1");
    let conversation = h.conversation("sm-1").await;
    assert_eq!(conversation["state"], "waiting");
    assert_eq!(conversation["assignee"], json!(null));
    assert_eq!(conversation["customer"]["display_name"], "Paula Pérez");
    assert_eq!(conversation["customer"]["phone"], "+447946001800");
    let id = conversation["id"].as_str().unwrap().to_string();
    // The agent may take it, so it is in the agent's list too.
    let (status, list) = h
        .app
        .get("/api/conversations?state=waiting", &w.agent_token)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["items"][0]["id"], json!(id));

    // conversation.updated: the platform assigns it; assigning a waiting one makes it active.
    h.publish(
        w.a,
        "conversation.updated",
        json!({ "state_manager_id": "sm-1", "assigned_agent_id": w.agent }),
    )
    .await;
    let event = h.next_event("conversation:updated").await;
    assert_eq!(
        event["payload"]["conversation"]["assignee"]["id"],
        json!(w.agent)
    );
    assert_eq!(event["payload"]["previous"]["state"], "waiting");
    let (_, conversation) = h
        .app
        .get(&format!("/api/conversations/{id}"), &w.agent_token)
        .await;
    assert_eq!(conversation["state"], "active");
    assert_eq!(conversation["assignee"]["display_name"], "Alice Agent");
    // The other agent no longer sees it: it is not in the queue any more.
    let (status, _) = h
        .app
        .get(&format!("/api/conversations/{id}"), &w.other_agent_token)
        .await;
    assert_eq!(status, 404);

    // message.received: the customer's message, in the history and as the list's preview.
    h.publish(
        w.a,
        "message.received",
        received("sm-1", "wamid.IN1", "  Hola, ¿mi pedido?  "),
    )
    .await;
    let event = h.next_event("message:new").await;
    assert_eq!(event["payload"]["message"]["external_id"], "wamid.IN1");
    let (status, history) = h
        .app
        .get(&format!("/api/conversations/{id}/messages"), &w.agent_token)
        .await;
    assert_eq!(status, 200, "{history}");
    let message = &history["items"][0];
    assert_eq!(message["direction"], "inbound");
    assert_eq!(message["sender"]["type"], "customer");
    assert_eq!(message["text"], "Hola, ¿mi pedido?");
    assert_eq!(message["status"], "delivered");
    assert_eq!(message["external_id"], "wamid.IN1");
    let conversation = h.conversation("sm-1").await;
    assert_eq!(conversation["last_message_preview"], "Hola, ¿mi pedido?");

    // A media message: its caption is its text.
    h.publish(
        w.a,
        "message.received",
        json!({ "state_manager_id": "sm-1", "whatsapp_message_id": "wamid.IN2",
                "sent_at": "2026-11-24T10:00:00Z",
                "media": { "url": "https://cdn.example.com/receipt.jpg", "mime_type": "image/jpeg", "caption": "the receipt" } }),
    )
    .await;
    let event = h.next_event("message:new").await;
    assert_eq!(event["payload"]["message"]["content_type"], "media");
    assert_eq!(event["payload"]["message"]["text"], "the receipt");
    assert_eq!(
        event["payload"]["message"]["media"]["url"],
        "https://cdn.example.com/receipt.jpg"
    );

    // message.status: a receipt for an outbound message, by its WhatsApp id.
    let conversation_id: uuid::Uuid = id.parse().unwrap();
    let outbound = h
        .app
        .message(w.a, conversation_id, "outbound", "Let me check", 1)
        .await;
    sqlx::query("UPDATE messages SET external_id = 'wamid.OUT1' WHERE id = $1")
        .bind(outbound)
        .execute(&h.app.owner)
        .await
        .unwrap();
    h.publish(
        w.a,
        "message.status",
        json!({ "whatsapp_message_id": "wamid.OUT1", "status": "read", "timestamp": "2026-11-24T10:00:05Z" }),
    )
    .await;
    let event = h.next_event("message:status").await;
    assert_eq!(event["payload"]["message"]["status"], "read");
    let (_, message) = h
        .app
        .get(&format!("/api/messages/{outbound}"), &w.agent_token)
        .await;
    assert_eq!(message["status"], "read");

    // customer.updated: the new name, and the open conversation is sent again.
    h.publish(
        w.a,
        "customer.updated",
        json!({ "phone_e164": "+447946001800", "display_name": "Paula P. Ruiz" }),
    )
    .await;
    let event = h.next_event("conversation:updated").await;
    assert_eq!(
        event["payload"]["conversation"]["customer"]["display_name"],
        "Paula P. Ruiz"
    );
    let conversation = h.conversation("sm-1").await;
    assert_eq!(conversation["customer"]["display_name"], "Paula P. Ruiz");

    // conversation.closed.
    h.publish(
        w.a,
        "conversation.closed",
        json!({ "state_manager_id": "sm-1", "reason": "resolved by bot" }),
    )
    .await;
    let event = h.next_event("conversation:updated").await;
    assert_eq!(event["payload"]["conversation"]["state"], "closed");
    let conversation = h.conversation("sm-1").await;
    assert_eq!(conversation["state"], "closed");
    assert_eq!(conversation["close_reason"], "resolved by bot");

    // A late update cannot reopen it.
    h.publish(
        w.a,
        "conversation.updated",
        json!({ "state_manager_id": "sm-1", "state": "waiting" }),
    )
    .await;
    h.wait_count("SELECT count(*) FROM processed_notifications", 8)
        .await;
    assert_eq!(h.conversation("sm-1").await["state"], "closed");

    // Nothing of this reached tenant B.
    let (_, b_list) = h.app.get("/api/conversations", &w.b_token).await;
    assert_eq!(b_list["items"], json!([]));
    assert_eq!(
        consumer
            .metric("portal_queue_consumer_messages_total{outcome=\"applied\"}")
            .await,
        7.0
    );
    assert_eq!(
        consumer
            .metric("portal_queue_consumer_messages_total{outcome=\"unchanged\"}")
            .await,
        1.0
    );
    consumer.stop().await;
    h.finish().await;
}

#[tokio::test]
async fn a_redelivered_event_id_is_applied_once() {
    let h = Harness::new().await;
    let consumer = h.start(&[]).await;
    let w = &h.world;
    h.publish(
        w.a,
        "conversation.created",
        created("sm-dup", "+34600111222", "Dora"),
    )
    .await;
    h.next_event("conversation:new").await;

    let event_id = uuid::Uuid::now_v7();
    let message = crate::helpers::envelope(
        event_id,
        w.a,
        "message.received",
        received("sm-dup", "wamid.D1", "once"),
    );
    for _ in 0..3 {
        h.publish_envelope(&message).await;
    }
    // The same message under a new event id (upstream re-published it): one row still.
    h.publish(
        w.a,
        "message.received",
        received("sm-dup", "wamid.D1", "once"),
    )
    .await;
    h.wait_count("SELECT count(*) FROM processed_notifications", 3)
        .await;
    while consumer
        .metric("portal_queue_consumer_messages_total{outcome=\"duplicate\"}")
        .await
        < 2.0
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(h.count("SELECT count(*) FROM messages").await, 1);
    assert_eq!(
        h.count("SELECT count(*) FROM events WHERE event_type = 'message:new'")
            .await,
        1
    );
    assert_eq!(h.depth("").await, 0);
    assert_eq!(h.depth(".dlq").await, 0);
    consumer.stop().await;
    h.finish().await;
}

#[tokio::test]
async fn a_backlog_is_applied_in_batches_with_the_same_outcomes_as_one_by_one() {
    let h = Harness::new().await;
    let w = &h.world;
    // Everything is queued before the consumer starts, so its lanes take it in batches.
    h.publish(
        w.a,
        "conversation.created",
        created("sm-a", "+447700900101", "Ann"),
    )
    .await;
    h.publish(
        w.b,
        "conversation.created",
        created("sm-b", "+447700900102", "Ben"),
    )
    .await;
    let repeated = crate::helpers::envelope(
        uuid::Uuid::now_v7(),
        w.a,
        "message.received",
        received("sm-a", "wamid.A-rep", "said twice"),
    );
    for i in 0..40 {
        let (tenant, smid) = if i % 2 == 0 {
            (w.a, "sm-a")
        } else {
            (w.b, "sm-b")
        };
        h.publish(
            tenant,
            "message.received",
            received(smid, &format!("wamid.{i}"), &format!("m{i}")),
        )
        .await;
        if i == 10 || i == 30 {
            h.publish_envelope(&repeated).await;
        }
        if i == 20 {
            h.publish_raw(b"not json", lapin::types::FieldTable::default())
                .await;
            // A conversation that never comes: its batch is refused and retried one by one.
            h.publish(
                w.a,
                "message.received",
                received("sm-none", "wamid.X", "lost"),
            )
            .await;
        }
    }
    h.publish(
        w.a,
        "customer.updated",
        json!({ "phone_e164": "+447700900101", "display_name": "Ann Z." }),
    )
    .await;

    // One lane: both tenants' messages are applied in the same transactions, and the refused
    // one is sorted out tenant by tenant, then message by message.
    let consumer = h
        .start(&[
            ("PORTAL__CONSUMER__CONCURRENCY", "1"),
            ("PORTAL__CONSUMER__MISSING_RETRY_MS", "200"),
            ("PORTAL__CONSUMER__MISSING_WAIT_SECS", "1"),
        ])
        .await;
    let letters = h.dead_letters(2).await;
    let mut reasons: Vec<&str> = letters.iter().map(|l| l.reason.as_str()).collect();
    reasons.sort();
    assert_eq!(reasons, ["not_json", "unknown_reference"]);
    h.wait_count("SELECT count(*) FROM messages", 41).await;
    for (tenant, n) in [(w.a, 21), (w.b, 20)] {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_one(&h.app.owner)
            .await
            .unwrap();
        assert_eq!(count, n);
        // Every event once, numbered without gaps.
        let kinds = h.event_types(tenant).await;
        let new_messages = kinds.iter().filter(|k| *k == "message:new").count();
        assert_eq!(new_messages as i64, n);
    }
    // In each conversation, the messages in the order they were published.
    let expected: Vec<String> = (0..40)
        .filter(|i| i % 2 == 1)
        .map(|i| format!("m{i}"))
        .collect();
    assert_eq!(h.texts("sm-b").await, expected);
    h.wait_count(
        "SELECT count(*) FROM customers WHERE display_name = 'Ann Z.'",
        1,
    )
    .await;
    assert_eq!(
        consumer
            .metric("portal_queue_consumer_messages_total{outcome=\"duplicate\"}")
            .await,
        1.0
    );
    consumer.stop().await;
    h.finish().await;
}

#[tokio::test]
async fn tenants_sharing_a_lane_are_applied_in_one_transaction_each_in_its_order() {
    let h = Harness::new().await;
    let w = &h.world;
    let tenants = [
        (w.a, "sm-a", "+447700900101", 0),
        (w.b, "sm-b", "+447700900102", 1),
    ];
    for (tenant, smid, phone, _) in tenants {
        h.publish(tenant, "conversation.created", created(smid, phone, "Cy"))
            .await;
    }
    for i in 0..60 {
        let (tenant, smid, _, _) = tenants[i % 2];
        h.publish(
            tenant,
            "message.received",
            received(smid, &format!("wamid.{i}"), &format!("m{i}")),
        )
        .await;
    }
    // One lane, and time enough for the whole backlog to reach it while it waits.
    let consumer = h
        .start(&[
            ("PORTAL__CONSUMER__CONCURRENCY", "1"),
            ("PORTAL__CONSUMER__BATCH_LINGER_MS", "1000"),
        ])
        .await;
    h.wait_count("SELECT count(*) FROM messages", 60).await;
    for (tenant, smid, _, first) in tenants {
        let expected: Vec<String> = (first..60).step_by(2).map(|i| format!("m{i}")).collect();
        assert_eq!(h.texts(smid).await, expected);
        let kinds = h.event_types(tenant).await;
        assert_eq!(kinds[0], "conversation:new");
        assert!(kinds[1..].iter().all(|k| *k == "message:new"));
        assert_eq!(kinds.len(), 31);
    }
    // A transaction held more messages than either tenant sent: the tenants went together.
    let transactions = consumer
        .metric("portal_queue_consumer_batch_messages_count")
        .await;
    let up_to_32 = consumer
        .metric("portal_queue_consumer_batch_messages_bucket{le=\"32.0\"}")
        .await;
    assert!(
        transactions > up_to_32,
        "{transactions} transactions, {up_to_32} of them with at most 32 messages"
    );
    consumer.stop().await;
    h.finish().await;
}
