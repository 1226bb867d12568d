//! Two runs of the same tenant at once: the advisory lock lets one sync and the other skip.

use std::collections::HashSet;
use std::time::Duration;

use portal_shared::ids::TenantId;
use portal_shared::templates::sync::{Outcome, Summary};
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

const WABA: &str = "660011";
const TOKEN: &str = "EAAG-concurrent";

/// Two `run(.., Some(tenant), ..)` started together against a slow WhatsApp (each page takes
/// 150 ms): exactly one is Synced (created 3), the other Skipped without calling WhatsApp (so the
/// stub saw each page once); the table holds each template once. The lock is released with the
/// transaction: a run afterwards syncs (and finds nothing to create).
#[tokio::test]
async fn a_second_concurrent_run_skips_the_tenant() {
    let h = Harness::new().await;
    let tenant = h.tenant_with_account(WABA, TOKEN).await;
    mount_pages_delayed(
        &h.server,
        WABA,
        TOKEN,
        &[
            vec![
                template("801", "a", "APPROVED"),
                template("802", "b", "APPROVED"),
            ],
            vec![template("803", "c", "APPROVED")],
        ],
        Duration::from_millis(150),
    )
    .await;
    let settings = h.settings(&[]);
    let one = || template_sync::run(&settings, Some(TenantId(tenant)), CancellationToken::new());

    let (first, second) = tokio::join!(one(), one());

    let mut outcomes: Vec<Outcome> = [first.unwrap(), second.unwrap()]
        .into_iter()
        .flatten()
        .map(|s| s.outcome)
        .collect();
    outcomes.sort_by_key(|o| matches!(o, Outcome::Skipped));
    assert_eq!(
        outcomes,
        [
            Outcome::Synced {
                counts: counts(3, 3, 0, 0),
                cached: true
            },
            Outcome::Skipped
        ]
    );
    assert_eq!(
        h.requests().await.len(),
        2,
        "only the syncing run called WhatsApp"
    );
    let rows = h.rows(tenant).await;
    let ids: HashSet<&str> = rows.iter().map(|r| r.external_id.as_str()).collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(ids, HashSet::from(["801", "802", "803"]));
    assert_eq!(cached_ids(tenant).await, ["801", "802", "803"]);

    let summary = h.sync(&settings, tenant).await;
    assert_eq!(synced(&summary).0, counts(3, 0, 0, 0), "{summary}");
    assert!(!Summary::failed(&summary), "a skip is not a failure either");
}
