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
