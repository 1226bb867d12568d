//! Later runs: unchanged templates are left alone, changed ones updated, vanished ones marked
//! deleted (and dropped from the cache), unknown statuses kept as text.

use std::time::Duration;

use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

const WABA: &str = "330011223344";
const TOKEN: &str = "EAAG-resync-token";

/// Run 2 over unchanged data writes nothing: created 0 / updated 0 / deleted 0, and neither
/// `updated_at` nor `synced_at` of any row moves. Run 3 (one template changed, one with the
/// unknown status `SOME_NEW_STATUS`, one gone upstream): updated 2, deleted 1; the unknown
/// status is stored verbatim; the vanished template keeps its row with `deleted_at` set and
/// leaves the cache. Run 4 (the template is back): its row is restored (`deleted_at` cleared,
/// counted as updated) and it is cached again.
#[tokio::test]
async fn unchanged_changed_removed_and_unknown_statuses() {
    let h = Harness::new().await;
    let tenant = h.tenant_with_account(WABA, TOKEN).await;
    let settings = h.settings(&[]);
    let first = vec![
        vec![
            template("501", "order_shipped", "APPROVED"),
            template("502", "payment_due", "APPROVED"),
        ],
        vec![template("503", "old_promo", "APPROVED")],
    ];
    mount_pages(&h.server, WABA, TOKEN, &first).await;
    assert_eq!(
        synced(&h.sync(&settings, tenant).await),
        (counts(3, 3, 0, 0), true)
    );
    let before = h.rows(tenant).await;

    // Transactions started later have a later now(): a rewrite would be visible.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let summary = h.sync(&settings, tenant).await;
    assert_eq!(synced(&summary), (counts(3, 0, 0, 0), true), "{summary}");
    assert_eq!(
        h.rows(tenant).await,
        before,
        "no row rewritten, timestamps unchanged"
    );
    assert_eq!(cached_ids(tenant).await, ["503", "501", "502"]);

    // Upstream changes: 501 paused with a red quality score, 502 gets a status nobody knows
    // yet, 503 is gone.
    h.server.reset().await;
    let mut paused = template("501", "order_shipped", "PAUSED");
    paused["quality_score"]["score"] = "RED".into();
    mount_pages(
        &h.server,
        WABA,
        TOKEN,
        &[vec![
            paused,
            template("502", "payment_due", "SOME_NEW_STATUS"),
        ]],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let summary = h.sync(&settings, tenant).await;
    assert_eq!(synced(&summary), (counts(2, 0, 2, 1), true), "{summary}");

    let shipped = h.row(tenant, "501").await;
    assert_eq!(shipped.status, "PAUSED");
    assert_eq!(shipped.quality_rating.as_deref(), Some("RED"));
    assert!(shipped.updated_at > before[0].updated_at);
    assert!(shipped.synced_at > before[0].synced_at);
    assert_eq!(shipped.deleted_at, None);
    let due = h.row(tenant, "502").await;
    assert_eq!(due.status, "SOME_NEW_STATUS", "an unknown status is kept");
    let gone = h.row(tenant, "503").await;
    assert!(gone.deleted_at.is_some(), "a vanished template is marked");
    assert_eq!(gone.name, "old_promo", "its row is kept");
    assert_eq!(h.rows(tenant).await.len(), 3);
    assert_eq!(
        cached_ids(tenant).await,
        ["501", "502"],
        "the deleted template left the cache"
    );
    let cached_list = cached(tenant).await.unwrap();
    assert_eq!(cached_list[1]["status"], "SOME_NEW_STATUS");

    // A fourth run with the same data: nothing more to delete.
    let summary = h.sync(&settings, tenant).await;
    assert_eq!(synced(&summary).0, counts(2, 0, 0, 0), "{summary}");

    // 503 is back upstream.
    h.server.reset().await;
    mount_pages(
        &h.server,
        WABA,
        TOKEN,
        &[vec![
            template("501", "order_shipped", "PAUSED"),
            template("502", "payment_due", "SOME_NEW_STATUS"),
            template("503", "old_promo", "APPROVED"),
        ]],
    )
    .await;
    let summary = h.sync(&settings, tenant).await;
    // 501's quality score went back to GREEN in this answer: updated too.
    assert_eq!(synced(&summary).0, counts(3, 0, 2, 0), "{summary}");
    assert_eq!(h.row(tenant, "503").await.deleted_at, None, "restored");
    assert_eq!(cached_ids(tenant).await, ["503", "501", "502"]);
}

/// The change detection hashes the template's content, not its bytes: the same template with
/// its keys in another order (JSON objects are unordered) is not an update.
#[tokio::test]
async fn reordered_keys_are_not_a_change() {
    let h = Harness::new().await;
    let tenant = h.tenant_with_account(WABA, TOKEN).await;
    let settings = h.settings(&[]);
    let body = r#"{"data":[{"id":"601","name":"welcome","language":"en_US","status":"APPROVED",
        "category":"UTILITY","parameter_format":"POSITIONAL",
        "components":[{"type":"BODY","text":"Welcome {{1}}","example":{"body_text":[["Ana"]]}}],
        "quality_score":{"score":"GREEN","date":1732000000}}],
        "paging":{"cursors":{"before":"b","after":"a"}}}"#;
    let reordered = r#"{"paging":{"cursors":{"after":"a","before":"b"}},"data":[{
        "quality_score":{"date":1732000000,"score":"GREEN"},
        "components":[{"example":{"body_text":[["Ana"]]},"text":"Welcome {{1}}","type":"BODY"}],
        "parameter_format":"POSITIONAL","category":"UTILITY","status":"APPROVED",
        "language":"en_US","name":"welcome","id":"601"}]}"#;
    for (run, body) in [body, reordered].into_iter().enumerate() {
        h.server.reset().await;
        Mock::given(method("GET"))
            .and(path(templates_path(WABA)))
            .respond_with(ResponseTemplate::new(200).set_body_string(body))
            .mount(&h.server)
            .await;
        let summary = h.sync(&settings, tenant).await;
        let expected = if run == 0 {
            counts(1, 1, 0, 0)
        } else {
            counts(1, 0, 0, 0)
        };
        assert_eq!(synced(&summary).0, expected, "run {run}: {summary}");
    }
}

/// A template listed on two pages (it moved while WhatsApp was being paged) is stored and
/// counted once.
#[tokio::test]
async fn a_template_listed_twice_counts_once() {
    let h = Harness::new().await;
    let tenant = h.tenant_with_account(WABA, TOKEN).await;
    let pages = vec![
        vec![template("601", "welcome", "APPROVED")],
        vec![
            template("601", "welcome", "APPROVED"),
            template("602", "bye", "APPROVED"),
        ],
    ];
    mount_pages(&h.server, WABA, TOKEN, &pages).await;
    let summary = h.sync(&h.settings(&[]), tenant).await;
    assert_eq!(synced(&summary), (counts(2, 2, 0, 0), true), "{summary}");
    assert_eq!(h.rows(tenant).await.len(), 2);
}
