//! Row-level security is in force for the application role, whatever the SQL asks for.

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::helpers::*;

#[tokio::test]
async fn the_app_role_sees_only_the_tenant_it_set_and_nothing_without_one() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let ca = app.customer(w.a, "Ann", "+441111111111").await;
    let cb = app.customer(w.b, "Ben", "+442222222222").await;
    let a1 = app.conversation(w.a, ca, "waiting", None, 1).await;
    let b1 = app.conversation(w.b, cb, "waiting", None, 1).await;

    let mut conn = PgConnection::connect(&app.app_url).await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(w.a.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let ids: Vec<(uuid::Uuid, uuid::Uuid)> =
        sqlx::query_as("SELECT id, tenant_id FROM conversations")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    assert_eq!(
        ids,
        vec![(a1, w.a)],
        "tenant A sees only its own conversation, not {b1}"
    );
    // Writing a row for another tenant is refused by the policy's WITH CHECK.
    let err = sqlx::query(
        "INSERT INTO customers (tenant_id, id, display_name) VALUES ($1, gen_random_uuid(), 'x')",
    )
    .bind(w.b)
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
    tx.rollback().await.unwrap();

    // After the transaction the setting is gone: no tenant, no rows, in every tenant table.
    for table in [
        "tenants",
        "agents",
        "customers",
        "customer_search_terms",
        "conversations",
        "conversation_assignments",
        "events",
    ] {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(n, 0, "{table} with no tenant set");
    }
}

#[tokio::test]
async fn the_app_role_owns_nothing_and_cannot_bypass_rls() {
    let app = TestApp::spawn().await;
    let mut conn = PgConnection::connect(&app.app_url).await.unwrap();
    let (superuser, bypass): (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(!superuser && !bypass);
    let owned: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(owned, 0);
    let forced: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname <> '_sqlx_migrations' \
         AND NOT (c.relrowsecurity AND c.relforcerowsecurity)",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(forced, 0, "every table has RLS enabled and forced");
}

#[tokio::test]
async fn migrations_go_all_the_way_down_and_up_again() {
    let app = TestApp::spawn().await;
    let owner_url = portal_shared::db::with_user(&app.app_url, "postgres").unwrap();
    portal_shared::db::migrate_down(&owner_url, 0)
        .await
        .unwrap();
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> '_sqlx_migrations'")
        .fetch_one(&app.owner)
        .await
        .unwrap();
    assert_eq!(tables, 0);
    portal_shared::db::migrate_up(&owner_url).await.unwrap();
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> '_sqlx_migrations'")
        .fetch_one(&app.owner)
        .await
        .unwrap();
    assert!(tables >= 8, "{tables}");
}

#[tokio::test]
async fn the_service_refuses_to_start_as_a_role_that_bypasses_rls() {
    let app = TestApp::spawn().await;
    let owner_url = portal_shared::db::with_user(&app.app_url, "postgres").unwrap();
    let settings = portal_shared::config::Settings::load_from(
        None,
        vec![
            ("PORTAL__DATABASE__URL".to_string(), owner_url),
            ("PORTAL__AUTH__JWT_SECRET".to_string(), SECRET.to_string()),
        ],
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = api::run(settings, listener, async {}).await.unwrap_err();
    assert!(err.to_string().contains("BYPASSRLS"), "{err}");
}
