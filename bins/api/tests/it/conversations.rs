//! The conversation list, its filters and cursors, the actions, and who may see and do what.

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::*;

fn ids(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

fn s(id: Uuid) -> String {
    id.to_string()
}

#[tokio::test]
async fn pages_follow_the_sort_and_stay_stable_when_rows_arrive_between_them() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let c = app.customer(w.a, "Paula", "+34600000001").await;
    let mut expected = Vec::new();
    for minutes in 1..=7 {
        expected.push(s(app.conversation(w.a, c, "waiting", None, minutes).await));
    }
    // Newest activity first by default.
    let (status, first) = app
        .get("/api/conversations?limit=3", &w.supervisor_token)
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(ids(&first), expected[0..3]);
    // A conversation arriving now would sort first; it must not shift the next page.
    app.conversation(w.a, c, "waiting", None, 0).await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = app
        .get(
            &format!("/api/conversations?limit=3&cursor={cursor}"),
            &w.supervisor_token,
        )
        .await;
    assert_eq!(ids(&second), expected[3..6]);
    let cursor = second["next_cursor"].as_str().unwrap();
    let (_, last) = app
        .get(
            &format!("/api/conversations?limit=3&cursor={cursor}"),
            &w.supervisor_token,
        )
        .await;
    assert_eq!(ids(&last), expected[6..7]);
    assert!(
        last.get("next_cursor").is_none(),
        "the last page has no cursor: {last}"
    );

    // Ascending by creation.
    let (_, asc) = app
        .get(
            "/api/conversations?sort=created_at&direction=asc&limit=2",
            &w.supervisor_token,
        )
        .await;
    assert_eq!(ids(&asc), vec![expected[6].clone(), expected[5].clone()]);
    // A cursor keeps the order it was made in, whatever `sort` and `direction` say.
    let cursor = asc["next_cursor"].as_str().unwrap();
    let (status, body) = app
        .get(
            &format!("/api/conversations?cursor={cursor}&limit=2"),
            &w.supervisor_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), vec![expected[4].clone(), expected[3].clone()]);
}

#[tokio::test]
async fn an_empty_list_and_bad_parameters() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let (status, body) = app.get("/api/conversations", &w.supervisor_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"], json!([]));
    assert!(body.get("next_cursor").is_none());

    for (query, field, expected) in [
        ("limit=0", "limit", StatusCode::UNPROCESSABLE_ENTITY),
        ("limit=101", "limit", StatusCode::UNPROCESSABLE_ENTITY),
        ("limit=ten", "limit", StatusCode::BAD_REQUEST),
        ("cursor=garbage", "cursor", StatusCode::UNPROCESSABLE_ENTITY),
        (
            "cursor=ld.1.0123",
            "cursor",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("state=open", "state", StatusCode::BAD_REQUEST),
        ("sort=name", "sort", StatusCode::BAD_REQUEST),
        (
            &format!("q={}", "a".repeat(101)),
            "q",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (status, body) = app
            .get(&format!("/api/conversations?{query}"), &w.supervisor_token)
            .await;
        assert_eq!(status, expected, "{query}: {body}");
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
    }

    // What the document accepts is answered: a well-formed cursor is a position, exclusive
    // filters and a query without a letter or digit match nothing, a blank one filters nothing.
    let c = app.customer(w.a, "Nina", "+4930111111").await;
    app.conversation(w.a, c, "waiting", None, 5).await;
    for (query, found) in [
        (
            "cursor=ld.9999999999999999.ffffffffffffffffffffffffffffffff",
            1,
        ),
        (
            "cursor=la.9999999999999999.ffffffffffffffffffffffffffffffff",
            0,
        ),
        (
            "unassigned=true&assigned_agent_id=00000000-0000-0000-0000-000000000001",
            0,
        ),
        ("q=%2B%2D%2A", 0),
        ("q=%20%20", 1),
    ] {
        let (status, body) = app
            .get(&format!("/api/conversations?{query}"), &w.supervisor_token)
            .await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        assert_eq!(
            body["items"].as_array().unwrap().len(),
            found,
            "{query}: {body}"
        );
    }
}

#[tokio::test]
async fn filters_by_state_assignee_unassigned_and_customer_search() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let maria = app
        .customer(
            w.a,
            "María José Fernández",
            "+34 600 123 456".replace(' ', "").as_str(),
        )
        .await;
    let john = app.customer(w.a, "John Smith", "+447700900123").await;
    let active = s(app
        .conversation(w.a, maria, "active", Some(w.agent), 1)
        .await);
    let waiting = s(app.conversation(w.a, john, "waiting", None, 2).await);
    let held = s(app
        .conversation(w.a, john, "waiting", Some(w.other_agent), 3)
        .await);
    let closed = s(app
        .conversation(w.a, maria, "closed", Some(w.agent), 4)
        .await);
    let t = &w.supervisor_token;

    let app_ref = &app;
    let q = |query: &'static str| async move {
        ids(&app_ref
            .get(&format!("/api/conversations?{query}"), t)
            .await
            .1)
    };
    assert_eq!(q("state=active").await, vec![active.clone()]);
    assert_eq!(
        q("state=waiting&state=closed").await,
        vec![waiting.clone(), held.clone(), closed.clone()]
    );
    assert_eq!(q("unassigned=true").await, vec![waiting.clone()]);
    let (_, body) = app
        .get(
            &format!("/api/conversations?assigned_agent_id={}", w.agent),
            t,
        )
        .await;
    assert_eq!(ids(&body), vec![active.clone(), closed.clone()]);
    // Name: any case, partial, across words; phone: any formatting, partial digits.
    assert_eq!(
        q("q=JOSÉ%20fern").await,
        vec![active.clone(), closed.clone()]
    );
    assert_eq!(q("q=smi").await, vec![waiting.clone(), held.clone()]);
    assert_eq!(
        q("q=(600)%20123-45").await,
        vec![active.clone(), closed.clone()]
    );
    assert_eq!(q("q=0900123").await, vec![waiting.clone(), held.clone()]);
    assert_eq!(q("q=nobody").await, Vec::<String>::new());
    assert_eq!(
        q("q=smi&state=waiting&unassigned=true").await,
        vec![waiting.clone()]
    );

    // The list carries what the row shows: customer name and phone, assignee name.
    let (_, body) = app.get("/api/conversations?state=active", t).await;
    let row = &body["items"][0];
    assert_eq!(row["customer"]["display_name"], "María José Fernández");
    assert_eq!(row["customer"]["phone"], "+34600123456");
    assert_eq!(row["assignee"]["display_name"], "Alice Agent");

    let (status, counts) = app.get("/api/conversations/counts?q=smi", t).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(counts, json!({"active": 0, "waiting": 2, "closed": 0}));
    let (_, counts) = app.get("/api/conversations/counts", &w.agent_token).await;
    assert_eq!(
        counts,
        json!({"active": 1, "waiting": 1, "closed": 1}),
        "an agent counts only what it sees"
    );
}

#[tokio::test]
async fn an_agent_sees_its_own_and_unassigned_waiting_ones_only() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let c = app.customer(w.a, "Cleo", "+33612345678").await;
    let mine = s(app.conversation(w.a, c, "active", Some(w.agent), 1).await);
    let queue = s(app.conversation(w.a, c, "waiting", None, 2).await);
    let theirs = app
        .conversation(w.a, c, "active", Some(w.other_agent), 3)
        .await;
    let cb = app.customer(w.b, "Other", "+33612345679").await;
    let other_tenant = app.conversation(w.b, cb, "waiting", None, 1).await;

    let (_, body) = app.get("/api/conversations", &w.agent_token).await;
    assert_eq!(ids(&body), vec![mine, queue]);
    let (_, body) = app.get("/api/conversations", &w.supervisor_token).await;
    assert_eq!(body["items"].as_array().unwrap().len(), 3);

    // Another agent's conversation, another tenant's, and a missing one answer alike, on every endpoint.
    let missing = Uuid::new_v4();
    for id in [theirs, other_tenant, missing] {
        let path = format!("/api/conversations/{id}");
        let token = &w.agent_token;
        let answers = [
            app.get(&path, token).await,
            app.patch(&path, token, json!({"state": "waiting"})).await,
            app.post(
                &format!("{path}/transfer"),
                token,
                json!({"to_agent_id": w.supervisor}),
            )
            .await,
            app.post(&format!("{path}/close"), token, json!({})).await,
        ];
        for (status, body) in answers {
            assert_eq!(status, StatusCode::NOT_FOUND, "{id}: {body}");
            assert_eq!(body["detail"], "conversation not found");
        }
    }
    // A supervisor of tenant B cannot reach tenant A's conversations either.
    let (status, _) = app
        .get(&format!("/api/conversations/{theirs}"), &w.b_token)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .post(
            &format!("/api/conversations/{theirs}/close"),
            &w.b_token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn two_agents_taking_the_same_conversation_one_wins_one_gets_409() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let c = app.customer(w.a, "Race", "+4912345678901").await;
    for _ in 0..5 {
        let id = app.conversation(w.a, c, "waiting", None, 1).await;
        let path = format!("/api/conversations/{id}");
        let take_a = app.patch(&path, &w.agent_token, json!({"assigned_agent_id": w.agent}));
        let take_b = app.patch(
            &path,
            &w.other_agent_token,
            json!({"assigned_agent_id": w.other_agent}),
        );
        let ((sa, ba), (sb, bb)) = tokio::join!(take_a, take_b);
        let mut statuses = vec![sa, sb];
        statuses.sort();
        assert_eq!(
            statuses,
            vec![StatusCode::OK, StatusCode::CONFLICT],
            "{ba} / {bb}"
        );
        let winner = if sa == StatusCode::OK { &ba } else { &bb };
        assert_eq!(winner["state"], "active");
        let history: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM conversation_assignments WHERE conversation_id = $1",
        )
        .bind(id)
        .fetch_one(&app.owner)
        .await
        .unwrap();
        assert_eq!(history, 1, "exactly one assignment recorded");
    }
}

#[tokio::test]
async fn state_transitions_are_enforced_and_each_change_writes_one_event() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let c = app.customer(w.a, "Tess", "+4930123456").await;
    let id = app.conversation(w.a, c, "waiting", None, 1).await;
    let path = format!("/api/conversations/{id}");
    let t = &w.agent_token;

    let (status, body) = app
        .patch(&path, &w.supervisor_token, json!({"state": "active"}))
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "active needs an assignee: {body}"
    );
    let (status, _) = app.patch(&path, t, json!({"state": "active"})).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "an agent changes the state of its own conversations only"
    );
    // A merge patch without fields changes nothing; `null` for a state is refused.
    let events_before = app.events(w.a).await.len();
    let (status, body) = app.patch(&path, t, json!({})).await;
    assert_eq!(
        (status, body["state"].clone()),
        (StatusCode::OK, json!("waiting"))
    );
    assert_eq!(
        app.events(w.a).await.len(),
        events_before,
        "{{}} writes no event"
    );
    let (status, body) = app.patch(&path, t, json!({"state": null})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, body) = app
        .patch(&path, t, json!({"assigned_agent_id": w.agent}))
        .await;
    assert_eq!(
        (status, body["state"].clone()),
        (StatusCode::OK, json!("active"))
    );
    let (_, body) = app.patch(&path, t, json!({"state": "waiting"})).await;
    assert_eq!(body["state"], "waiting");
    assert_eq!(
        body["assignee"]["id"],
        s(w.agent),
        "on hold, still assigned"
    );
    let (_, body) = app
        .patch(&path, t, json!({"assigned_agent_id": null}))
        .await;
    assert!(body["assignee"].is_null());
    let (_, body) = app
        .patch(&path, t, json!({"assigned_agent_id": w.agent}))
        .await;
    assert_eq!(body["state"], "active");
    // Same again: no change, no event.
    let (status, _) = app
        .patch(&path, t, json!({"assigned_agent_id": w.agent}))
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = app
        .post(&format!("{path}/close"), t, json!({"reason": "solved"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["state"].clone(), body["close_reason"].clone()),
        (json!("closed"), json!("solved"))
    );
    assert!(body["closed_at"].is_string());
    let (status, _) = app.post(&format!("{path}/close"), t, json!({})).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "closing a closed conversation is a no-op"
    );
    let (status, _) = app.patch(&path, t, json!({"state": "active"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "nothing leaves closed");
    let (status, _) = app
        .post(
            &format!("{path}/transfer"),
            &w.supervisor_token,
            json!({"to_agent_id": w.other_agent}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    let events = app.events(w.a).await;
    let seqs: Vec<i64> = events.iter().map(|e| e.0).collect();
    assert_eq!(
        seqs,
        vec![1, 2, 3, 4, 5],
        "take, hold, release, take, close"
    );
    assert!(events.iter().all(|e| e.1 == "conversation:updated"));
    assert_eq!(events[4].2["conversation"]["state"], "closed");
    // Each event also says where the conversation came from (the realtime service tells the
    // queue and the agent that lost it): the first take was from the unassigned queue.
    assert_eq!(events[0].2["previous"], json!({"state": "waiting"}));
    assert!(app.events(w.b).await.is_empty());
}

#[tokio::test]
async fn transfer_goes_to_an_active_agent_of_the_same_tenant_and_is_recorded() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let c = app.customer(w.a, "Theo", "+4930123457").await;
    let id = app.conversation(w.a, c, "active", Some(w.agent), 1).await;
    let path = format!("/api/conversations/{id}/transfer");
    let inactive = app.agent(w.a, "Ivy Inactive", "agent").await;
    app.deactivate(inactive).await;

    for (target, why) in [
        (inactive, "inactive"),
        (w.b_supervisor, "other tenant"),
        (Uuid::new_v4(), "unknown"),
        (w.agent, "same agent"),
    ] {
        let (status, body) = app
            .post(&path, &w.agent_token, json!({"to_agent_id": target}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{why}: {body}");
        assert_eq!(body["errors"][0]["field"], "to_agent_id", "{why}");
    }
    let (status, body) = app
        .post(
            &path,
            &w.agent_token,
            json!({"to_agent_id": w.other_agent, "note": "x".repeat(1001)}),
        )
        .await;
    assert_eq!(
        (status, body["errors"][0]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("note"))
    );

    let (status, body) = app
        .post(
            &path,
            &w.agent_token,
            json!({"to_agent_id": w.other_agent, "note": "VIP, speaks French"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["assignee"]["id"], s(w.other_agent));
    let (kind, from, to, note): (String, Uuid, Uuid, String) = sqlx::query_as(
        "SELECT kind::text, from_agent_id, to_agent_id, note FROM conversation_assignments WHERE conversation_id = $1",
    )
    .bind(id)
    .fetch_one(&app.owner)
    .await
    .unwrap();
    assert_eq!(
        (kind.as_str(), from, to, note.as_str()),
        ("transferred", w.agent, w.other_agent, "VIP, speaks French")
    );
    // Now it is the other agent's: the first agent no longer sees it.
    let (status, _) = app
        .get(&format!("/api/conversations/{id}"), &w.agent_token)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn agents_act_only_on_their_own_and_supervisors_on_all() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let c = app.customer(w.a, "Una", "+4930123458").await;
    let queued = app.conversation(w.a, c, "waiting", None, 1).await;
    let path = format!("/api/conversations/{queued}");
    // Visible in the queue, but an agent may only take it, not close, transfer or hand it to someone else.
    let (status, _) = app
        .post(&format!("{path}/close"), &w.agent_token, json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .patch(
            &path,
            &w.agent_token,
            json!({"assigned_agent_id": w.other_agent}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A supervisor assigns it to anyone active, and may close anything.
    let (status, body) = app
        .patch(
            &path,
            &w.supervisor_token,
            json!({"assigned_agent_id": w.other_agent}),
        )
        .await;
    assert_eq!(
        (status, body["state"].clone()),
        (StatusCode::OK, json!("active"))
    );
    let (status, _) = app
        .post(&format!("{path}/close"), &w.supervisor_token, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn agents_list_is_the_tenants_active_agents_by_name() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let gone = app.agent(w.a, "Zed Gone", "agent").await;
    app.deactivate(gone).await;
    let (status, body) = app.get("/api/agents", &w.agent_token).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["display_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Alice Agent", "Oscar Other", "Sue Supervisor"]);
    let (_, body) = app
        .get("/api/agents?include_inactive=true&limit=2", &w.agent_token)
        .await;
    assert_eq!(body["items"].as_array().unwrap().len(), 2);
    let cursor = body["next_cursor"].as_str().unwrap();
    let (_, body) = app
        .get(
            &format!("/api/agents?include_inactive=true&limit=2&cursor={cursor}"),
            &w.agent_token,
        )
        .await;
    let names: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["display_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Sue Supervisor", "Zed Gone"]);
    let (_, body) = app.get("/api/agents", &w.b_token).await;
    assert_eq!(
        body["items"].as_array().unwrap().len(),
        1,
        "tenant B sees only its own agent"
    );
}

#[tokio::test]
async fn probes_metrics_docs_and_unknown_routes() {
    let app = TestApp::spawn().await;
    let client = &app.client;
    let get = |p: &'static str| client.get(format!("{}{p}", app.base)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), StatusCode::OK);
    let ready = get("/readyz").await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let spec: Value = get("/openapi.json").await.unwrap().json().await.unwrap();
    assert!(
        spec["paths"]["/conversations"]["get"].is_object(),
        "{}",
        spec["paths"]
    );
    assert_eq!(get("/docs/").await.unwrap().status(), StatusCode::OK);
    let w = World::new(&app).await;
    app.get("/api/conversations", &w.agent_token).await;
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"portal_api_http_requests_total{route="listConversations",method="GET",status="200"} 1"#), "{metrics}");
    assert!(metrics.contains("portal_api_http_request_duration_seconds_bucket"));
    assert!(metrics.contains(r#"portal_api_db_pool_connections{state="max"} 5"#));
    let (status, body) = app.get("/api/nothing-here", &w.agent_token).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // Too large a body is refused before it is read.
    let big = json!({"reason": "x".repeat(2 * 1024 * 1024)});
    let (status, _) = app
        .post(
            &format!("/api/conversations/{}/close", Uuid::new_v4()),
            &w.agent_token,
            big,
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn readiness_reports_postgres_down() {
    let app = TestApp::spawn_with(&[(
        "PORTAL__DATABASE__URL",
        "postgres://portal_test_app@127.0.0.1:1/none",
    )])
    .await;
    let resp = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = resp.json().await.unwrap();
    assert_ne!(body["checks"]["postgres"], "ok");
    assert_eq!(
        app.client
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}
