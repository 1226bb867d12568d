//! Messages that cannot be applied go to the dead-letter queue with their reason, without
//! blocking the queue; a message that names something not there yet waits for it first.

use lapin::types::FieldTable;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{Harness, created, envelope, received};

#[tokio::test]
async fn each_poison_kind_is_dead_lettered_with_its_reason_and_the_queue_flows_on() {
    let h = Harness::new().await;
    let consumer = h
        .start(&[
            ("PORTAL__CONSUMER__MISSING_RETRY_MS", "200"),
            ("PORTAL__CONSUMER__MISSING_WAIT_SECS", "1"),
        ])
        .await;
    let w = &h.world;
    h.publish(
        w.a,
        "conversation.created",
        created("sm-p", "+447700900123", "Pia"),
    )
    .await;
    h.next_event("conversation:new").await;

    let not_json = b"{\"version\": 1, \"event_id\": ".to_vec();
    h.publish_raw(&not_json, FieldTable::default()).await;
    let no_customer = envelope(
        Uuid::now_v7(),
        w.a,
        "conversation.created",
        json!({ "conversation": { "state_manager_id": "sm-x" } }),
    );
    h.publish_envelope(&no_customer).await;
    let unknown_type = envelope(Uuid::now_v7(), w.a, "conversation.deleted", json!({}));
    h.publish_envelope(&unknown_type).await;
    let unknown_tenant = envelope(
        Uuid::now_v7(),
        Uuid::new_v4(),
        "customer.updated",
        json!({ "phone_e164": "+447700900123", "display_name": "Mallory" }),
    );
    h.publish_envelope(&unknown_tenant).await;
    // Against the conversation rules: active without an assignee.
    let rejected = envelope(
        Uuid::now_v7(),
        w.a,
        "conversation.updated",
        json!({ "state_manager_id": "sm-p", "state": "active" }),
    );
    h.publish_envelope(&rejected).await;
    // Another tenant's conversation is as missing as one that does not exist.
    let elsewhere = envelope(
        Uuid::now_v7(),
        w.b,
        "message.received",
        received("sm-p", "wamid.B1", "hi"),
    );
    h.publish_envelope(&elsewhere).await;
    // And the queue still flows: this one is applied.
    h.publish(
        w.a,
        "message.received",
        received("sm-p", "wamid.P1", "still here"),
    )
    .await;
    h.next_event("message:new").await;

    let letters = h.dead_letters(6).await;
    let by_reason = |reason: &str| {
        letters
            .iter()
            .find(|l| l.reason == reason)
            .unwrap_or_else(|| panic!("no dead letter for {reason}: {letters:?}"))
    };
    let l = by_reason("not_json");
    assert_eq!(l.body, not_json);
    let l = by_reason("schema_violation");
    assert!(l.detail.contains("/data"), "{}", l.detail);
    assert!(l.detail.contains("customer"), "{}", l.detail);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&l.body).unwrap(),
        no_customer
    );
    // The publisher's headers travel with the dead letter.
    assert!(queue_consumer::forward::header_text(&l.headers, "traceparent").is_some());
    let l = by_reason("unknown_type");
    assert!(l.detail.contains("conversation.deleted"), "{}", l.detail);
    let l = by_reason("unknown_tenant");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&l.body).unwrap(),
        unknown_tenant
    );
    let l = by_reason("rejected");
    assert!(l.detail.contains("assignee"), "{}", l.detail);
    let l = by_reason("unknown_reference");
    assert!(l.detail.contains("conversation"), "{}", l.detail);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&l.body).unwrap(),
        elsewhere
    );
    assert!(
        queue_consumer::forward::header_i64(&l.headers, queue_consumer::forward::WAITS_HEADER)
            .unwrap()
            >= 1
    );

    // Nothing of them was applied, nothing is left behind.
    assert_eq!(h.count("SELECT count(*) FROM messages").await, 1);
    assert_eq!(
        h.count("SELECT count(*) FROM customers WHERE display_name = 'Mallory'")
            .await,
        0
    );
    assert_eq!(h.conversation("sm-p").await["state"], "waiting");
    assert_eq!(h.depth("").await, 0);
    assert_eq!(h.depth(".wait").await, 0);
    assert_eq!(
        consumer
            .metric("portal_queue_consumer_dead_lettered_total{reason=\"unknown_reference\"}")
            .await,
        1.0
    );
    consumer.stop().await;
    h.finish().await;
}

#[tokio::test]
async fn a_message_ahead_of_its_conversation_waits_for_it() {
    let h = Harness::new().await;
    let consumer = h
        .start(&[("PORTAL__CONSUMER__MISSING_RETRY_MS", "300")])
        .await;
    let w = &h.world;
    // Published before the conversation exists, and assigned to an agent that is provisioned
    // only later: both wait instead of failing.
    h.publish(
        w.a,
        "message.received",
        received("sm-late", "wamid.L1", "first words"),
    )
    .await;
    let agent = Uuid::new_v4();
    h.publish(
        w.a,
        "conversation.created",
        json!({ "conversation": { "state_manager_id": "sm-late", "assigned_agent_id": agent },
                "customer": { "phone_e164": "+447700900999" } }),
    )
    .await;
    while consumer
        .metric("portal_queue_consumer_messages_total{outcome=\"waiting\"}")
        .await
        < 2.0
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(h.count("SELECT count(*) FROM conversations").await, 0);

    sqlx::query("INSERT INTO agents (tenant_id, id, display_name, role) VALUES ($1, $2, 'Late Larry', 'agent')")
        .bind(w.a)
        .bind(agent)
        .execute(&h.app.owner)
        .await
        .unwrap();
    let event = h.next_event("conversation:new").await;
    assert_eq!(event["payload"]["conversation"]["state"], "active");
    assert_eq!(
        event["payload"]["conversation"]["assignee"]["id"],
        json!(agent)
    );
    // A customer without a name is shown by the phone.
    assert_eq!(
        event["payload"]["conversation"]["customer"]["display_name"],
        "+447700900999"
    );
    let event = h.next_event("message:new").await;
    assert_eq!(event["payload"]["message"]["text"], "first words");
    assert_eq!(h.depth(".dlq").await, 0);
    consumer.stop().await;
    h.finish().await;
}

#[tokio::test]
async fn a_conversation_the_tenant_lacks_is_fetched_from_the_state_manager_instead_of_waiting() {
    let state_manager = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .and(wiremock::matchers::path("/conversations/sm-elsewhere"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(json!({
            "id": "sm-elsewhere",
            "state": "waiting",
            "genesys_conversation_id": "gen-77",
            "customer": { "id": "sm-cust-77", "phone_e164": "+447700900777", "display_name": "Greta" }
        })))
        .mount(&state_manager)
        .await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .respond_with(wiremock::ResponseTemplate::new(404))
        .mount(&state_manager)
        .await;
    let h = Harness::new().await;
    let url = state_manager.uri();
    // Waiting would take minutes: only the fetch can make this test pass in time.
    let consumer = h
        .start(&[
            ("PORTAL__STATE_MANAGER__URL", url.as_str()),
            ("PORTAL__CONSUMER__MISSING_RETRY_MS", "600000"),
        ])
        .await;
    let w = &h.world;
    h.publish(
        w.a,
        "message.received",
        received("sm-elsewhere", "wamid.E1", "hello from nowhere"),
    )
    .await;
    let event = h.next_event("conversation:new").await;
    assert_eq!(
        event["payload"]["conversation"]["state_manager_id"],
        "sm-elsewhere"
    );
    assert_eq!(
        event["payload"]["conversation"]["genesys_conversation_id"],
        "gen-77"
    );
    assert_eq!(
        event["payload"]["conversation"]["customer"]["display_name"],
        "Greta"
    );
    let event = h.next_event("message:new").await;
    assert_eq!(event["payload"]["message"]["text"], "hello from nowhere");
    assert_eq!(
        h.count("SELECT count(*) FROM customers WHERE state_manager_id = 'sm-cust-77'")
            .await,
        1
    );
    assert_eq!(
        consumer
            .metric("portal_queue_consumer_conversations_fetched_total")
            .await,
        1.0
    );
    // One the State Manager does not know either still waits.
    h.publish(
        w.a,
        "message.received",
        received("sm-nowhere", "wamid.E2", "lost"),
    )
    .await;
    while consumer
        .metric("portal_queue_consumer_messages_total{outcome=\"waiting\"}")
        .await
        < 1.0
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(h.depth(".dlq").await, 0);
    consumer.stop().await;
    h.finish().await;
}
