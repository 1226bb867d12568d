//! The customer profile: what it shows, and who may see it.

use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn the_profile_shows_the_customer_their_contacts_and_conversations_by_state() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let customer = app.customer(w.a, "Paula Pérez", "+34600000001").await;
    sqlx::query(
        "UPDATE customers SET email = 'paula@example.com', attributes = '{\"tier\": \"gold\"}' \
         WHERE id = $1",
    )
    .bind(customer)
    .execute(&app.owner)
    .await
    .unwrap();
    app.conversation(w.a, customer, "closed", Some(w.agent), 300)
        .await;
    app.conversation(w.a, customer, "closed", Some(w.agent), 200)
        .await;
    let open = app
        .conversation(w.a, customer, "active", Some(w.agent), 10)
        .await;

    let (status, profile) = app
        .get(&format!("/api/customers/{customer}"), &w.supervisor_token)
        .await;
    assert_eq!(status, StatusCode::OK, "{profile}");
    assert_eq!(profile["id"], customer.to_string());
    assert_eq!(profile["display_name"], "Paula Pérez");
    assert_eq!(profile["phone"], "+34600000001");
    assert_eq!(profile["email"], "paula@example.com");
    assert_eq!(profile["attributes"], json!({"tier": "gold"}));
    assert_eq!(
        profile["conversations"],
        json!({"active": 1, "waiting": 0, "closed": 2})
    );
    assert_eq!(
        profile["open_conversation"],
        json!({"id": open.to_string(), "state": "active"})
    );
    assert_eq!(profile["enrichment"], "not_configured");
    let first: chrono::DateTime<chrono::Utc> = profile["first_contact_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let last: chrono::DateTime<chrono::Utc> = profile["last_contact_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let age = |t: chrono::DateTime<chrono::Utc>| (chrono::Utc::now() - t).num_minutes();
    assert!((299..=301).contains(&age(first)), "{profile}");
    assert!((9..=11).contains(&age(last)), "{profile}");

    // A customer without conversations (yet) has no contact times and no open conversation.
    let new = app.customer(w.a, "Nuno Novo", "+351910000001").await;
    let (status, profile) = app
        .get(&format!("/api/customers/{new}"), &w.supervisor_token)
        .await;
    assert_eq!(status, StatusCode::OK, "{profile}");
    for absent in [
        "first_contact_at",
        "last_contact_at",
        "open_conversation",
        "email",
    ] {
        assert!(profile.get(absent).is_none(), "{absent}: {profile}");
    }
    assert_eq!(
        profile["conversations"],
        json!({"active": 0, "waiting": 0, "closed": 0})
    );
}

#[tokio::test]
async fn an_agent_sees_a_customer_only_through_a_conversation_it_may_see() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    // Through its own conversation, even closed.
    let own = app.customer(w.a, "Olga Own", "+48600000001").await;
    app.conversation(w.a, own, "closed", Some(w.agent), 60)
        .await;
    // Through an unassigned waiting one, which it may take.
    let queued = app.customer(w.a, "Quentin Queue", "+33600000001").await;
    app.conversation(w.a, queued, "waiting", None, 5).await;
    // Another agent's customer; one with no conversation; another tenant's; a missing one.
    let others = app.customer(w.a, "Otto Other", "+49150000001").await;
    let theirs = app
        .conversation(w.a, others, "active", Some(w.other_agent), 5)
        .await;
    let lonely = app.customer(w.a, "Lena Lonely", "+39300000001").await;
    let b_customer = app.customer(w.b, "Bea Beta", "+34600000002").await;
    app.conversation(w.b, b_customer, "waiting", None, 5).await;

    for visible in [own, queued] {
        let (status, body) = app
            .get(&format!("/api/customers/{visible}"), &w.agent_token)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, missing_body) = app
        .get(
            &format!("/api/customers/{}", Uuid::new_v4()),
            &w.agent_token,
        )
        .await;
    for hidden in [others, lonely, b_customer] {
        let (status, body) = app
            .get(&format!("/api/customers/{hidden}"), &w.agent_token)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body, missing_body, "exactly like a missing one");
    }
    // Another tenant's supervisor: every customer of tenant A is missing.
    let (status, body) = app.get(&format!("/api/customers/{own}"), &w.b_token).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body, missing_body);
    // A supervisor sees every customer of its tenant, and every conversation of it.
    let (status, body) = app
        .get(&format!("/api/customers/{others}"), &w.supervisor_token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["open_conversation"]["id"], theirs.to_string());
    let (status, _) = app
        .get(&format!("/api/customers/{lonely}"), &w.supervisor_token)
        .await;
    assert_eq!(status, StatusCode::OK);

    // The agent sees its own customer, but not the open conversation another agent holds.
    app.conversation(w.a, own, "active", Some(w.other_agent), 1)
        .await;
    let (status, body) = app
        .get(&format!("/api/customers/{own}"), &w.agent_token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("open_conversation").is_none(), "{body}");
    assert_eq!(body["conversations"]["active"], 1);
}

/// GET's ETag, then a PATCH with it as `If-Match`: (status, body, the new ETag).
async fn read_etag(app: &TestApp, customer: Uuid, token: &str) -> String {
    let resp = app
        .client
        .get(format!("{}/api/customers/{customer}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.headers()["etag"].to_str().unwrap().to_string()
}

async fn patch(
    app: &TestApp,
    customer: Uuid,
    token: &str,
    if_match: Option<&str>,
    body: serde_json::Value,
) -> (StatusCode, serde_json::Value, Option<String>) {
    let mut req = app
        .client
        .patch(format!("{}/api/customers/{customer}", app.base))
        .bearer_auth(token)
        .json(&body);
    if let Some(tag) = if_match {
        req = req.header("If-Match", tag);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let etag = resp
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_string());
    if !status.is_success() {
        assert_eq!(
            resp.headers()["content-type"],
            "application/problem+json",
            "{status}"
        );
    }
    (status, resp.json().await.unwrap(), etag)
}

#[tokio::test]
async fn a_change_needs_the_etag_it_is_based_on_and_lost_updates_are_refused() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let customer = app.customer(w.a, "Paula", "+34600000001").await;
    let first = read_etag(&app, customer, &w.supervisor_token).await;

    let (status, body, _) = patch(
        &app,
        customer,
        &w.supervisor_token,
        None,
        json!({"display_name": "Paula P."}),
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_REQUIRED, "{body}");

    let (status, body, second) = patch(
        &app,
        customer,
        &w.supervisor_token,
        Some(&first),
        json!({"display_name": "Paula Pérez", "email": "paula@example.com", "attributes": {"tier": "gold"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["display_name"], "Paula Pérez");
    assert_eq!(body["email"], "paula@example.com");
    assert_eq!(body["attributes"], json!({"tier": "gold"}));
    let second = second.unwrap();
    assert_ne!(second, first);
    assert_eq!(read_etag(&app, customer, &w.supervisor_token).await, second);

    // Someone else's change came first: the first ETag is stale, and nothing is written.
    let (status, body, _) = patch(
        &app,
        customer,
        &w.supervisor_token,
        Some(&first),
        json!({"display_name": "Lost"}),
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
    let (_, profile) = app
        .get(&format!("/api/customers/{customer}"), &w.supervisor_token)
        .await;
    assert_eq!(profile["display_name"], "Paula Pérez");

    // `{}` and an unchanged value change nothing, the ETag included; `null` removes the email.
    let (status, _, tag) = patch(
        &app,
        customer,
        &w.supervisor_token,
        Some(&second),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, tag.as_deref()),
        (StatusCode::OK, Some(second.as_str()))
    );
    let (_, _, tag) = patch(
        &app,
        customer,
        &w.supervisor_token,
        Some(&second),
        json!({"display_name": "Paula Pérez"}),
    )
    .await;
    assert_eq!(tag.as_deref(), Some(second.as_str()));
    let (status, body, _) = patch(
        &app,
        customer,
        &w.supervisor_token,
        Some(&format!("\"1\", {second}")),
        json!({"email": null}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("email").is_none(), "{body}");
    let (status, _, _) = patch(
        &app,
        customer,
        &w.supervisor_token,
        Some("*"),
        json!({"display_name": "Paula"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn phones_are_normalised_in_the_tenants_region_and_bad_input_names_its_field() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let customer = app.customer(w.a, "Paula", "+34600000001").await;
    app.customer(w.a, "Someone Else", "+34600000099").await;
    let edit = |body: serde_json::Value| {
        let app = &app;
        let token = w.supervisor_token.clone();
        async move { patch(app, customer, &token, Some("*"), body).await }
    };

    // International formats need no region.
    let (status, body, _) = edit(json!({"phone": "+44 7946 001800"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["phone"], "+447946001800");
    let (_, body, _) = edit(json!({"phone": "0049 151 12345678"})).await;
    assert_eq!(body["phone"], "+4915112345678");
    // A national number needs the tenant's region.
    let (status, body, _) = edit(json!({"phone": "600 12 34 56"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "phone", "{body}");
    sqlx::query("UPDATE tenants SET phone_region = 'ES' WHERE id = $1")
        .bind(w.a)
        .execute(&app.owner)
        .await
        .unwrap();
    let (status, body, _) = edit(json!({"phone": "600 12 34 56"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["phone"], "+34600123456");
    // Not a number, not a valid one, or another customer's: refused, and nothing changes.
    for (phone, want) in [
        ("call me maybe", StatusCode::UNPROCESSABLE_ENTITY),
        ("+34 12", StatusCode::UNPROCESSABLE_ENTITY),
        ("+34 600 000 099", StatusCode::CONFLICT),
    ] {
        let (status, body, _) = edit(json!({"phone": phone})).await;
        assert_eq!(status, want, "{phone}: {body}");
        if want == StatusCode::UNPROCESSABLE_ENTITY {
            assert_eq!(body["errors"][0]["field"], "phone", "{body}");
        }
    }
    let (_, profile) = app
        .get(&format!("/api/customers/{customer}"), &w.supervisor_token)
        .await;
    assert_eq!(profile["phone"], "+34600123456");

    // The other fields: declared constraints, strict types, the attributes' limits.
    for (body, field, want) in [
        (
            json!({"display_name": ""}),
            "display_name",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"display_name": "   "}),
            "display_name",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"display_name": 7}),
            "display_name",
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"display_name": null}),
            "display_name",
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"email": "not an email"}),
            "email",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"email": false}), "email", StatusCode::BAD_REQUEST),
        (
            json!({"attributes": [1]}),
            "attributes",
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"attributes": {"a": {"b": {"c": {"d": {"e": {}}}}}}}),
            "attributes",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"attributes": {"big": "x".repeat(17_000)}}),
            "attributes",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (status, problem, _) = edit(body.clone()).await;
        assert_eq!(status, want, "{body}: {problem}");
        if want == StatusCode::UNPROCESSABLE_ENTITY {
            assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
        }
    }
}

#[tokio::test]
async fn a_new_name_reaches_the_open_conversations_in_the_same_transaction() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let customer = app.customer(w.a, "Paula", "+34600000001").await;
    let open = app
        .conversation(w.a, customer, "active", Some(w.agent), 5)
        .await;
    app.conversation(w.a, customer, "closed", Some(w.agent), 500)
        .await;
    let before = app.events(w.a).await.len();

    // The agent working the conversation may correct its customer.
    let (status, body, _) = patch(
        &app,
        customer,
        &w.agent_token,
        Some("*"),
        json!({"display_name": "Paula Pérez"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let events = app.events(w.a).await;
    let new: Vec<_> = events[before..].iter().collect();
    assert_eq!(
        new.len(),
        1,
        "one event, for the open conversation only: {new:?}"
    );
    assert_eq!(new[0].1, "conversation:updated");
    assert_eq!(new[0].2["conversation"]["id"], open.to_string());
    assert_eq!(
        new[0].2["conversation"]["customer"]["display_name"],
        "Paula Pérez"
    );
    let (_, list) = app
        .get("/api/conversations?q=P%C3%A9rez", &w.supervisor_token)
        .await;
    assert_eq!(list["items"][0]["id"], open.to_string(), "{list}");

    // Attributes are not in the list: no event for them.
    patch(
        &app,
        customer,
        &w.agent_token,
        Some("*"),
        json!({"attributes": {"vip": true}}),
    )
    .await;
    assert_eq!(app.events(w.a).await.len(), events.len());
}

#[tokio::test]
async fn a_customer_the_caller_may_not_see_cannot_be_changed_and_answers_as_a_missing_one() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let others = app.customer(w.a, "Otto Other", "+49150000001").await;
    app.conversation(w.a, others, "active", Some(w.other_agent), 5)
        .await;
    let b_customer = app.customer(w.b, "Bea Beta", "+34600000002").await;
    let body = json!({"display_name": "Changed"});
    let (status, missing, _) = patch(
        &app,
        Uuid::new_v4(),
        &w.agent_token,
        Some("*"),
        body.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for (customer, token) in [
        (others, &w.agent_token),
        (b_customer, &w.supervisor_token),
        (others, &w.b_token),
    ] {
        let (status, problem, _) = patch(&app, customer, token, Some("*"), body.clone()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
        assert_eq!(problem, missing);
    }
    let (_, profile) = app
        .get(&format!("/api/customers/{others}"), &w.supervisor_token)
        .await;
    assert_eq!(profile["display_name"], "Otto Other");
}

#[tokio::test]
async fn the_history_pages_through_conversations_newest_first_with_their_timelines() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let customer = app.customer(w.a, "Paula", "+34600000001").await;
    let oldest = app.conversation(w.a, customer, "waiting", None, 300).await;
    let middle = app.conversation(w.a, customer, "waiting", None, 200).await;
    let newest = app.conversation(w.a, customer, "waiting", None, 100).await;
    let elsewhere = app.customer(w.a, "Someone Else", "+34600000002").await;
    app.conversation(w.a, elsewhere, "waiting", None, 50).await;
    // The oldest: taken by the agent, transferred with a note, closed with a reason.
    let path = format!("/api/conversations/{oldest}");
    let (status, body) = app
        .patch(
            &path,
            &w.supervisor_token,
            json!({"assigned_agent_id": w.agent}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .post(
            &format!("{path}/transfer"),
            &w.agent_token,
            json!({"to_agent_id": w.other_agent, "note": "billing question"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .post(
            &format!("{path}/close"),
            &w.supervisor_token,
            json!({"reason": "resolved"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let url = format!("/api/customers/{customer}/history?limit=2");
    let (status, first) = app.get(&url, &w.supervisor_token).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let ids = |page: &serde_json::Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["conversation"]["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&first), [newest.to_string(), middle.to_string()]);
    assert_eq!(first["items"][0]["timeline"], json!([]));
    let cursor = first["next_cursor"].as_str().unwrap();
    let (status, second) = app
        .get(&format!("{url}&cursor={cursor}"), &w.supervisor_token)
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(ids(&second), [oldest.to_string()]);
    assert!(second.get("next_cursor").is_none(), "{second}");
    let entry = &second["items"][0];
    assert_eq!(entry["conversation"]["state"], "closed");
    let steps: Vec<&str> = entry["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["assigned", "transferred", "closed"], "{entry}");
    let transfer = &entry["timeline"][1];
    assert_eq!(transfer["from_agent_id"], w.agent.to_string());
    assert_eq!(transfer["to_agent_id"], w.other_agent.to_string());
    assert_eq!(transfer["by_agent_id"], w.agent.to_string());
    assert_eq!(transfer["note"], "billing question");
    assert_eq!(entry["timeline"][2]["reason"], "resolved");

    // An agent gets the conversations it may see: the two waiting ones, not the one closed
    // by another agent; another tenant, and a customer it may not see, get a 404.
    let (status, page) = app
        .get(
            &format!("/api/customers/{customer}/history"),
            &w.agent_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(ids(&page), [newest.to_string(), middle.to_string()]);
    let (_, missing) = app
        .get(
            &format!("/api/customers/{}/history", Uuid::new_v4()),
            &w.supervisor_token,
        )
        .await;
    let (status, body) = app
        .get(&format!("/api/customers/{customer}/history"), &w.b_token)
        .await;
    assert_eq!((status, &body), (StatusCode::NOT_FOUND, &missing));
    let lonely = app.customer(w.a, "Lena Lonely", "+39300000001").await;
    let (status, body) = app
        .get(&format!("/api/customers/{lonely}/history"), &w.agent_token)
        .await;
    assert_eq!((status, &body), (StatusCode::NOT_FOUND, &missing));
    // A malformed cursor is a 422 naming it.
    let (status, body) = app
        .get(
            &format!("/api/customers/{customer}/history?cursor=nope"),
            &w.supervisor_token,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "cursor", "{body}");
}

/// The page query, run as the app role under row-level security, reads a page of
/// `conversations_by_customer_created`, whatever the customer's history and the tenant's size.
#[tokio::test]
async fn a_history_page_reads_about_limit_rows_of_an_index_under_rls() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let customer = app.customer(w.a, "Paula", "+34600000001").await;
    let other = app.customer(w.a, "Other", "+34600000002").await;
    sqlx::query(
        "INSERT INTO conversations (tenant_id, id, customer_id, state, created_at, last_activity_at, closed_at) \
         SELECT $1, gen_random_uuid(), CASE WHEN i % 4 = 0 THEN $2 ELSE $3 END, 'closed', \
                now() - make_interval(mins => i), now() - make_interval(mins => i), now() \
         FROM generate_series(1, 8000) AS i",
    )
    .bind(w.a)
    .bind(customer)
    .bind(other)
    .execute(&app.owner)
    .await
    .unwrap();
    sqlx::query("ANALYZE conversations")
        .execute(&app.owner)
        .await
        .unwrap();
    let (at, id): (chrono::DateTime<chrono::Utc>, Uuid) = sqlx::query_as(
        "SELECT created_at, id FROM conversations WHERE customer_id = $1 ORDER BY created_at DESC, id DESC OFFSET 500 LIMIT 1",
    )
    .bind(customer)
    .fetch_one(&app.owner)
    .await
    .unwrap();

    let app_role = sqlx::PgPool::connect(&app.app_url).await.unwrap();
    for (agent, after) in [
        (None, None),
        (None, Some((at, id))),
        (Some(w.agent), Some((at, id))),
    ] {
        let mut tx = app_role.begin().await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SET LOCAL app.tenant_id = '{}'",
            w.a
        )))
        .execute(&mut *tx)
        .await
        .unwrap();
        let (plan,): (serde_json::Value,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "EXPLAIN (ANALYZE, FORMAT JSON) {}",
            portal_shared::conversations::CUSTOMER_HISTORY_SQL
        )))
        .bind(w.a)
        .bind(customer)
        .bind(agent)
        .bind(after.map(|(at, _)| at))
        .bind(after.map(|(_, id)| id))
        .bind(26_i64)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        tx.rollback().await.unwrap();
        let scan = find_node(&plan[0]["Plan"], "conversations_by_customer_created")
            .unwrap_or_else(|| panic!("the page is not read from the index: {plan:#}"));
        // For a supervisor, exactly a page (and one more, to tell whether another follows).
        // An agent's page skips the conversations it may not see: a customer has few.
        let read = scan["Actual Rows"].as_f64().unwrap()
            + scan["Rows Removed by Filter"].as_f64().unwrap_or(0.0);
        if agent.is_none() {
            assert!(read <= 26.0, "the scan reads more than a page: {plan:#}");
        }
        assert!(!plan.to_string().contains("\"Sort\""), "no sort: {plan:#}");
    }
}

fn find_node<'a>(node: &'a serde_json::Value, index: &str) -> Option<&'a serde_json::Value> {
    if node["Index Name"] == index {
        return Some(node);
    }
    node["Plans"]
        .as_array()?
        .iter()
        .find_map(|child| find_node(child, index))
}
