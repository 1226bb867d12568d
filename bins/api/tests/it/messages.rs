//! Message history, sending, idempotency, status rules, search, and who may touch what.

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::*;

fn ids(body: &Value) -> Vec<Uuid> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

fn history(conversation: Uuid, query: &str) -> String {
    format!("/api/conversations/{conversation}/messages?{query}")
}

/// Agent A's active conversation in tenant A.
async fn assigned_conversation(app: &TestApp, w: &World) -> Uuid {
    let c = app.customer(w.a, "Paula Pérez", "+34600000001").await;
    app.conversation(w.a, c, "active", Some(w.agent), 5).await
}

#[tokio::test]
async fn history_pages_newest_first_in_both_directions_and_stays_stable() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let conv = assigned_conversation(&app, &w).await;
    // m[0] is the oldest.
    let mut m = Vec::new();
    for i in 0..7 {
        m.push(
            app.message(w.a, conv, "inbound", &format!("message {i}"), 70 - i * 10)
                .await,
        );
    }

    let (status, first) = app.get(&history(conv, "limit=3"), &w.agent_token).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(ids(&first), vec![m[6], m[5], m[4]]);
    assert_eq!(
        (first["has_older"].as_bool(), first["has_newer"].as_bool()),
        (Some(true), Some(false))
    );

    // A message arriving between pages does not shift the older pages.
    let newest = app.message(w.a, conv, "inbound", "arrived later", 0).await;
    let older = first["older_cursor"].as_str().unwrap();
    let (_, second) = app
        .get(
            &history(conv, &format!("limit=3&before={older}")),
            &w.agent_token,
        )
        .await;
    assert_eq!(ids(&second), vec![m[3], m[2], m[1]]);
    assert_eq!(
        (second["has_older"].as_bool(), second["has_newer"].as_bool()),
        (Some(true), Some(true))
    );
    let older = second["older_cursor"].as_str().unwrap();
    let (_, last) = app
        .get(
            &history(conv, &format!("limit=3&before={older}")),
            &w.agent_token,
        )
        .await;
    assert_eq!(ids(&last), vec![m[0]]);
    assert_eq!(last["has_older"], false);

    // Catching up from the first page's newest message finds what arrived since.
    let newer = first["newer_cursor"].as_str().unwrap();
    let (_, caught_up) = app
        .get(&history(conv, &format!("after={newer}")), &w.agent_token)
        .await;
    assert_eq!(ids(&caught_up), vec![newest]);
    assert_eq!(caught_up["has_newer"], false);
    // Nothing newer still: an empty page that keeps the cursor for the next poll.
    let newer = caught_up["newer_cursor"].as_str().unwrap();
    let (_, empty) = app
        .get(&history(conv, &format!("after={newer}")), &w.agent_token)
        .await;
    assert_eq!(ids(&empty), Vec::<Uuid>::new());
    assert_eq!(empty["newer_cursor"].as_str(), Some(newer));

    // `after` reads the messages just newer than the cursor, still newest first.
    let from = second["newer_cursor"].as_str().unwrap(); // m[3]
    let (_, forward) = app
        .get(
            &history(conv, &format!("limit=2&after={from}")),
            &w.agent_token,
        )
        .await;
    assert_eq!(ids(&forward), vec![m[5], m[4]]);
    assert_eq!(
        (
            forward["has_older"].as_bool(),
            forward["has_newer"].as_bool()
        ),
        (Some(true), Some(true))
    );
}

#[tokio::test]
async fn history_parameters_are_checked() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let conv = assigned_conversation(&app, &w).await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("before=garbage", "before"),
        ("after=garbage", "after"),
    ] {
        let (status, body) = app.get(&history(conv, query), &w.agent_token).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
    }
    let (_, page) = app.get(&history(conv, ""), &w.agent_token).await;
    assert_eq!(page["items"], json!([]));
    app.message(w.a, conv, "inbound", "hi", 1).await;
    let (_, page) = app.get(&history(conv, ""), &w.agent_token).await;
    let c = page["newer_cursor"].as_str().unwrap().to_string();
    // Both: the gap between two positions, here empty.
    let (status, body) = app
        .get(
            &history(conv, &format!("before={c}&after={c}")),
            &w.agent_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["items"], json!([]));
}

#[tokio::test]
async fn sending_stores_a_pending_message_with_its_outbox_row_activity_and_event() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let conv = assigned_conversation(&app, &w).await;
    let before: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT last_activity_at FROM conversations WHERE id = $1")
            .bind(conv)
            .fetch_one(&app.owner)
            .await
            .unwrap();

    let (status, message, headers) = app
        .send(
            conv,
            &w.agent_token,
            json!({"type": "text", "text": "Hola Paula,\n your order ships today"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{message}");
    let id = message["id"].as_str().unwrap();
    assert_eq!(headers["location"], format!("/api/messages/{id}").as_str());
    assert!(headers.get("idempotent-replayed").is_none());
    assert_eq!(message["status"], "pending");
    assert_eq!(message["direction"], "outbound");
    assert_eq!(message["content_type"], "text");
    assert_eq!(
        message["sender"],
        json!({"type": "agent", "agent_id": w.agent})
    );
    assert_eq!(message["conversation_id"], json!(conv));
    assert_eq!(app.outbox_len().await, 1);

    let (status, conversation) = app
        .get(&format!("/api/conversations/{conv}"), &w.agent_token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        conversation["last_message_preview"],
        "Hola Paula, your order ships today"
    );
    let after: chrono::DateTime<chrono::Utc> = conversation["last_activity_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(after > before);

    let events = app.events(w.a).await;
    let (_, kind, payload) = events.last().unwrap();
    assert_eq!(kind, "message:new");
    assert_eq!(payload["message"]["id"], id);
    assert_eq!(payload["conversation"]["id"], json!(conv));

    let (status, fetched) = app
        .get(&format!("/api/messages/{id}"), &w.agent_token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, message);
}

#[tokio::test]
async fn sending_checks_content_role_and_state() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let conv = assigned_conversation(&app, &w).await;
    let send = |body: Value| {
        let app = &app;
        let token = w.agent_token.clone();
        async move { app.send(conv, &token, body, None).await }
    };

    let (status, body, _) = send(json!({"type": "text", "text": "x".repeat(4097)})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "text");
    // 4096 characters is WhatsApp's limit, counted in characters, not bytes.
    let (status, body, _) = send(json!({"type": "text", "text": "é".repeat(4096)})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body, _) = send(json!({"type": "text", "text": "  \n "})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "text");
    // A template that was never synced is refused (templates.rs covers the rest).
    let (status, body, _) = send(json!({"type": "template", "template": {"name": "order_update", "language": "en_US", "parameters": ["Ana"]}})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "template.name");
    let (status, body, _) = send(json!({"type": "sticker"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body, _) = send(json!({"text": "no type"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Someone else's conversation: invisible to an agent; an unassigned one: visible, but
    // only its assignee (nobody yet) or a supervisor may write in it.
    let c2 = app.customer(w.a, "Queue Person", "+34600000002").await;
    let waiting = app.conversation(w.a, c2, "waiting", None, 1).await;
    let (status, body, _) = app
        .send(
            waiting,
            &w.agent_token,
            json!({"type": "text", "text": "hi"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _, _) = app
        .send(
            conv,
            &w.other_agent_token,
            json!({"type": "text", "text": "hi"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body, _) = app
        .send(
            conv,
            &w.supervisor_token,
            json!({"type": "text", "text": "supervisor here"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    let closed = app.conversation(w.a, c2, "closed", Some(w.agent), 1).await;
    let (status, body, _) = app
        .send(
            closed,
            &w.agent_token,
            json!({"type": "text", "text": "too late"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_message_and_refuses_a_different_body() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let conv = assigned_conversation(&app, &w).await;
    let body = json!({"type": "text", "text": "Your refund is on its way"});

    let (status, first, _) = app
        .send(conv, &w.agent_token, body.clone(), Some("key-1"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let (status, again, headers) = app
        .send(conv, &w.agent_token, body.clone(), Some("key-1"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(again["id"], first["id"]);

    let (status, problem, _) = app
        .send(
            conv,
            &w.agent_token,
            json!({"type": "text", "text": "something else"}),
            Some("key-1"),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");

    // Concurrent retries of one request store one message.
    let sends = (0..6).map(|_| app.send(conv, &w.agent_token, body.clone(), Some("key-2")));
    let results = futures::future::join_all(sends).await;
    let mut stored: Vec<String> = results
        .iter()
        .map(|(status, m, _)| {
            assert_eq!(*status, StatusCode::ACCEPTED, "{m}");
            m["id"].as_str().unwrap().to_string()
        })
        .collect();
    stored.dedup();
    assert_eq!(stored.len(), 1, "one message for one key: {stored:?}");

    // A key belongs to its agent: the supervisor's "key-1" is a different request.
    let (status, other, _) = app
        .send(conv, &w.supervisor_token, body.clone(), Some("key-1"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_ne!(other["id"], first["id"]);

    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&app.owner)
        .await
        .unwrap();
    assert_eq!(count, 3);
    assert_eq!(app.outbox_len().await, 3);
    let new_events = app
        .events(w.a)
        .await
        .into_iter()
        .filter(|(_, kind, _)| kind == "message:new")
        .count();
    assert_eq!(new_events, 3);

    let (status, problem, _) = app
        .send(conv, &w.agent_token, body, Some(&"k".repeat(256)))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");
}

#[tokio::test]
async fn a_status_only_moves_forward() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let conv = assigned_conversation(&app, &w).await;
    let id = app.send_text(conv, &w.agent_token, "hello").await;
    let path = format!("/api/messages/{id}/status");
    let events_of = |events: Vec<(i64, String, Value)>| {
        events
            .into_iter()
            .filter(|(_, kind, _)| kind == "message:status")
            .map(|(_, _, p)| p["message"]["status"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };

    for status in ["sent", "delivered", "read"] {
        let (code, body) = app
            .patch(&path, &w.agent_token, json!({"status": status}))
            .await;
        assert_eq!(code, StatusCode::OK, "{body}");
        assert_eq!(body["status"], status);
    }
    // A late `delivered` after `read`: refused with the status that stands.
    let (code, body) = app
        .patch(&path, &w.agent_token, json!({"status": "delivered"}))
        .await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["current_status"], "read");
    let (code, body) = app
        .patch(&path, &w.agent_token, json!({"status": "failed"}))
        .await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    // The same status again is a no-op.
    let (code, body) = app
        .patch(&path, &w.agent_token, json!({"status": "read"}))
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let times = &body["status_times"];
    assert!(
        times["sent_at"].is_string()
            && times["delivered_at"].is_string()
            && times["read_at"].is_string()
    );
    assert_eq!(
        events_of(app.events(w.a).await),
        ["sent", "delivered", "read"]
    );

    // Failed from pending, with a reason; a reason with another status is refused.
    let other = app.send_text(conv, &w.agent_token, "second").await;
    let path = format!("/api/messages/{other}/status");
    let (code, body) = app
        .patch(
            &path,
            &w.agent_token,
            json!({"status": "sent", "failure_reason": "no"}),
        )
        .await;
    assert_eq!(
        code,
        StatusCode::BAD_REQUEST,
        "a reason goes with failed only: {body}"
    );
    let (code, body) = app
        .patch(
            &path,
            &w.agent_token,
            json!({"status": "failed", "failure_reason": "customer blocked the number"}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["failure_reason"], "customer blocked the number");
    let (code, body) = app
        .patch(&path, &w.agent_token, json!({"status": "sent"}))
        .await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["current_status"], "failed");
    let (code, _) = app
        .patch(&path, &w.agent_token, json!({"status": "gone"}))
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    // An agent who may see the message but is not the assignee may not change it.
    let c2 = app.customer(w.a, "Queue", "+34600000003").await;
    let waiting = app.conversation(w.a, c2, "waiting", None, 1).await;
    let queued = app
        .message(w.a, waiting, "inbound", "anyone there?", 1)
        .await;
    let (code, _) = app
        .patch(
            &format!("/api/messages/{queued}/status"),
            &w.agent_token,
            json!({"status": "read"}),
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn another_tenants_or_agents_messages_behave_like_missing_ones() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let conv = assigned_conversation(&app, &w).await;
    let message = app.send_text(conv, &w.agent_token, "private").await;
    let missing = Uuid::new_v4();
    let text = json!({"type": "text", "text": "hi"});

    for token in [&w.b_token, &w.other_agent_token] {
        for (conv_id, msg_id) in [(conv, message), (missing, missing)] {
            let (status, body) = app.get(&history(conv_id, ""), token).await;
            assert_eq!(
                (status, body["detail"].clone()),
                (StatusCode::NOT_FOUND, json!("conversation not found"))
            );
            let (status, body, _) = app.send(conv_id, token, text.clone(), None).await;
            assert_eq!(
                (status, body["detail"].clone()),
                (StatusCode::NOT_FOUND, json!("conversation not found"))
            );
            let (status, body) = app.get(&format!("/api/messages/{msg_id}"), token).await;
            assert_eq!(
                (status, body["detail"].clone()),
                (StatusCode::NOT_FOUND, json!("message not found"))
            );
            let (status, body) = app
                .patch(
                    &format!("/api/messages/{msg_id}/status"),
                    token,
                    json!({"status": "read"}),
                )
                .await;
            assert_eq!(
                (status, body["detail"].clone()),
                (StatusCode::NOT_FOUND, json!("message not found"))
            );
            let (status, body) = app
                .get(
                    &format!("/api/messages/search?q=private&conversation_id={conv_id}"),
                    token,
                )
                .await;
            assert_eq!(
                (status, body["detail"].clone()),
                (StatusCode::NOT_FOUND, json!("conversation not found"))
            );
        }
        let (status, body) = app.get("/api/messages/search?q=private", token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["items"], json!([]), "search shows nothing of it");
    }
    assert_eq!(
        app.message_status(message).await,
        "pending",
        "nothing changed it"
    );
}

#[tokio::test]
async fn search_ranks_highlights_pages_and_respects_visibility() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let mine = assigned_conversation(&app, &w).await;
    let c2 = app.customer(w.a, "Otto", "+34600000004").await;
    let others = app
        .conversation(w.a, c2, "active", Some(w.other_agent), 1)
        .await;
    let queue = app.conversation(w.a, c2, "waiting", None, 1).await;
    let b_customer = app.customer(w.b, "Bea", "+34600000005").await;
    let b_conv = app
        .conversation(w.b, b_customer, "active", Some(w.b_supervisor), 1)
        .await;

    let strong = app
        .message(
            w.a,
            mine,
            "inbound",
            "refund refund: where is my refund for order 77?",
            50,
        )
        .await;
    let weak = app
        .message(
            w.a,
            mine,
            "inbound",
            "I asked about a refund yesterday and nothing happened since then",
            40,
        )
        .await;
    let spanish = app
        .message(
            w.a,
            mine,
            "inbound",
            "¿Dónde está mi reembolso? El pedido no llegó",
            30,
        )
        .await;
    let html = app
        .message(
            w.a,
            mine,
            "inbound",
            "Tom & Jerry <3 refund <script>alert(1)</script>",
            20,
        )
        .await;
    let in_queue = app
        .message(w.a, queue, "inbound", "refund please", 10)
        .await;
    let hidden = app
        .message(w.a, others, "inbound", "refund for Otto", 10)
        .await;
    app.message(w.b, b_conv, "inbound", "refund in tenant b", 10)
        .await;
    app.message(w.a, mine, "inbound", "nothing relevant here", 5)
        .await;

    let search = |q: &str, token: &str| {
        let path = format!("/api/messages/search?{q}");
        let token = token.to_string();
        let app = &app;
        async move {
            let (status, body) = app.get(&path, &token).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            body
        }
    };
    let hits = |body: &Value| -> Vec<Uuid> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["message"]["id"].as_str().unwrap().parse().unwrap())
            .collect()
    };

    // The agent sees its own conversation and the queue, not another agent's or tenant's.
    let body = search("q=refund", &w.agent_token).await;
    let found = hits(&body);
    assert_eq!(found.len(), 4, "{body}");
    assert_eq!(found[0], strong, "three mentions rank first: {body}");
    for id in [weak, html, in_queue] {
        assert!(found.contains(&id));
    }
    assert!(!found.contains(&hidden));
    let first = &body["items"][0];
    assert_eq!(first["conversation"]["id"], json!(mine));
    assert_eq!(
        first["conversation"]["customer"]["display_name"],
        "Paula Pérez"
    );
    assert!(
        first["snippet"]
            .as_str()
            .unwrap()
            .contains("<mark>refund</mark>"),
        "{first}"
    );
    let escaped = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["message"]["id"] == json!(html))
        .unwrap();
    // The customer's text cannot inject markup: only <mark> is HTML in a snippet.
    let snippet = escaped["snippet"].as_str().unwrap();
    assert!(
        snippet.starts_with("Tom &amp; Jerry &lt;3 <mark>refund</mark>"),
        "{snippet}"
    );
    assert!(!snippet.contains("<script"), "{snippet}");

    // A supervisor sees the whole tenant.
    assert_eq!(
        hits(&search("q=refund", &w.supervisor_token).await).len(),
        5
    );
    assert_eq!(hits(&search("q=refund", &w.b_token).await).len(), 1);

    // Pages follow the ranking without repeating.
    let mut seen = Vec::new();
    let mut query = "q=refund&limit=2".to_string();
    loop {
        let page = search(&query, &w.supervisor_token).await;
        seen.extend(hits(&page));
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("q=refund&limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(seen, hits(&search("q=refund", &w.supervisor_token).await));

    // Any language, whole words, phrases, exclusions, one conversation.
    assert_eq!(
        hits(&search("q=reembolso", &w.agent_token).await),
        vec![spanish]
    );
    assert_eq!(
        hits(&search("q=%22refund%20please%22", &w.agent_token).await),
        vec![in_queue]
    );
    assert_eq!(
        hits(&search("q=refund%20-yesterday%20-order", &w.agent_token).await),
        vec![in_queue, html]
    );
    assert_eq!(
        hits(&search(&format!("q=refund&conversation_id={queue}"), &w.agent_token).await),
        vec![in_queue]
    );

    // Words are letters and digits: a query without any finds nothing; a long one is refused.
    for q in ["q=", "q=%21%21%21"] {
        let (status, body) = app
            .get(&format!("/api/messages/search?{q}"), &w.agent_token)
            .await;
        assert_eq!(
            (status, &body["items"]),
            (StatusCode::OK, &json!([])),
            "{q}"
        );
    }
    let (status, body) = app
        .get(
            &format!("/api/messages/search?q={}", "a".repeat(201)),
            &w.agent_token,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "q");
}
