//! Redis is a cache: its absence never fails a sync.

use crate::helpers::*;

/// With Redis unreachable (`redis://127.0.0.1:1`), the sync still succeeds: Synced with
/// `cached: false` (the summary line says the cache was not refreshed) and the rows written.
#[tokio::test]
async fn redis_down_still_syncs_without_caching() {
    let h = Harness::new().await;
    let tenant = h.tenant_with_account("770077", "EAAG-r").await;
    mount_pages(
        &h.server,
        "770077",
        "EAAG-r",
        &[vec![
            template("901", "a", "APPROVED"),
            named_template("902", "b"),
        ]],
    )
    .await;
    let settings = h.settings(&[("PORTAL__REDIS__URL", "redis://127.0.0.1:1")]);

    let started = std::time::Instant::now();
    let summary = h.sync(&settings, tenant).await;

    assert_eq!(synced(&summary), (counts(2, 2, 0, 0), false), "{summary}");
    assert!(
        summary.to_string().contains("cache not refreshed"),
        "{summary}"
    );
    assert!(!summary.failed());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "a dead Redis does not hold the sync up"
    );
    let rows = h.rows(tenant).await;
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.deleted_at.is_none()));
    assert_eq!(
        cached(tenant).await,
        None,
        "the real Redis was not written either"
    );
}
