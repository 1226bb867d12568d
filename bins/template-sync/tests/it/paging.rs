//! A full sync over several pages: every page fetched with the decrypted token, every template
//! stored as WhatsApp describes it, and the Redis cache refreshed with its TTL.

use serde_json::Value;

use crate::helpers::*;

const WABA: &str = "102290129340398";
const TOKEN: &str = "EAAGm0PX4ZCpsBAPaGe-tenant-a";

/// Three pages linked by `after` cursors (the last with a cursor but no `next`): all five
/// templates are stored (fetched 5 / created 5), with header, body, footer and buttons, the
/// quality score and the parameter format; the cache key holds them, expiring after
/// `templates.cache_ttl_secs`; every request carried `Bearer <decrypted token>` (the mocks match
/// on it, so a wrong token would have failed the sync).
#[tokio::test]
async fn three_pages_are_stored_and_cached_with_the_ttl() {
    let h = Harness::new().await;
    let tenant = h.tenant_with_account(WABA, TOKEN).await;
    let pages = vec![
        vec![
            template("900000000000001", "order_shipped", "APPROVED"),
            named_template("900000000000002", "promo_today"),
        ],
        vec![
            template("900000000000003", "appointment_reminder", "PENDING"),
            template("900000000000004", "payment_failed", "REJECTED"),
        ],
        vec![template("900000000000005", "account_update", "PAUSED")],
    ];
    mount_pages(&h.server, WABA, TOKEN, &pages).await;
    let settings = h.settings(&[("PORTAL__TEMPLATES__CACHE_TTL_SECS", "7200")]);

    let summary = h.sync(&settings, tenant).await;

    assert_eq!(synced(&summary), (counts(5, 5, 0, 0), true), "{summary}");
    let requests = h.requests().await;
    assert_eq!(requests.len(), 3, "one request per page");
    for request in &requests {
        assert_eq!(
            request.headers.get("authorization").unwrap(),
            &format!("Bearer {TOKEN}"),
        );
    }

    let rows = h.rows(tenant).await;
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r.deleted_at.is_none()));
    let shipped = h.row(tenant, "900000000000001").await;
    let sent = template("900000000000001", "order_shipped", "APPROVED");
    assert_eq!(shipped.name, "order_shipped");
    assert_eq!(shipped.language, "en_US");
    assert_eq!(shipped.category, "UTILITY");
    assert_eq!(shipped.status, "APPROVED");
    assert_eq!(shipped.parameter_format, "POSITIONAL");
    assert_eq!(shipped.components, sent["components"]);
    let types: Vec<&str> = shipped
        .components
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["HEADER", "BODY", "FOOTER", "BUTTONS"]);
    assert_eq!(shipped.quality_rating.as_deref(), Some("GREEN"));
    let promo = h.row(tenant, "900000000000002").await;
    assert_eq!(
        (
            promo.language.as_str(),
            promo.category.as_str(),
            promo.parameter_format.as_str()
        ),
        ("pt_BR", "MARKETING", "NAMED")
    );
    assert_eq!(promo.quality_rating.as_deref(), Some("YELLOW"));
    let statuses: Vec<&str> = rows.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(
        statuses,
        ["APPROVED", "APPROVED", "PENDING", "REJECTED", "PAUSED"]
    );

    // The cache: every template, ordered by name, as the API serves them.
    let cached_list = cached(tenant).await.expect("the cache key is set");
    let names: Vec<&str> = cached_list
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "account_update",
            "appointment_reminder",
            "order_shipped",
            "payment_failed",
            "promo_today"
        ]
    );
    let cached_shipped = cached_list
        .iter()
        .find(|t| t["external_id"] == "900000000000001")
        .unwrap();
    assert_eq!(cached_shipped["components"], sent["components"]);
    assert_eq!(cached_shipped["quality_rating"], "GREEN");
    assert_eq!(cached_shipped["status"], "APPROVED");
    assert!(cached_shipped.get("deleted_at").is_none_or(Value::is_null));
    let ttl = cache_ttl(tenant).await;
    assert!(
        (7190..=7200).contains(&ttl),
        "TTL {ttl} ≈ templates.cache_ttl_secs"
    );
}

/// Another tenant's templates are not touched (nor cached under its key) by a sync of this one.
#[tokio::test]
async fn a_sync_touches_only_its_own_tenant() {
    let h = Harness::new().await;
    let a = h.tenant_with_account("1001", "EAAG-a").await;
    let b = h.tenant_with_account("2002", "EAAG-b").await;
    mount_pages(
        &h.server,
        "1001",
        "EAAG-a",
        &[vec![template("11", "a_only", "APPROVED")]],
    )
    .await;
    mount_pages(
        &h.server,
        "2002",
        "EAAG-b",
        &[vec![template("22", "b_only", "APPROVED")]],
    )
    .await;
    let settings = h.settings(&[]);

    assert_eq!(synced(&h.sync(&settings, b).await).0, counts(1, 1, 0, 0));
    // A's sync sees only A's rows: B's template is not "missing upstream" for A.
    assert_eq!(synced(&h.sync(&settings, a).await).0, counts(1, 1, 0, 0));

    assert_eq!(h.row(b, "22").await.deleted_at, None);
    assert_eq!(h.rows(a).await.len(), 1);
    assert_eq!(cached_ids(a).await, ["11"]);
    assert_eq!(cached_ids(b).await, ["22"]);
}
