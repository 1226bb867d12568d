//! A stop (SIGTERM) takes effect between pages and before the commit: the run ends `Stopped`
//! and nothing is written.

use std::time::{Duration, Instant};

use portal_shared::ids::TenantId;
use portal_shared::templates::sync::{Outcome, Summary};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

const WABA: &str = "880088";
const TOKEN: &str = "EAAG-stop";

/// Runs one tenant's sync and cancels its token once the stub has received `after_requests`
/// requests.
async fn run_and_stop(
    h: &Harness,
    settings: &portal_shared::config::Settings,
    only: Option<uuid::Uuid>,
    after_requests: usize,
) -> Vec<Summary> {
    let stop = CancellationToken::new();
    let (summaries, ()) = tokio::join!(
        template_sync::run(settings, only.map(TenantId), stop.clone()),
        async {
            h.wait_for_requests(after_requests).await;
            stop.cancel();
        }
    );
    summaries.unwrap()
}

fn three_pages() -> Vec<Vec<serde_json::Value>> {
    vec![
        vec![template("1", "a", "APPROVED")],
        vec![template("2", "b", "APPROVED")],
        vec![template("3", "c", "APPROVED")],
    ]
}

/// Cancelled while the first of three (slow) pages is in flight: that answer is awaited, no
/// further page is requested, the outcome is Stopped, no row and no cache entry exist.
#[tokio::test]
async fn stopped_while_the_first_page_is_in_flight() {
    let h = Harness::new().await;
    let tenant = h.tenant_with_account(WABA, TOKEN).await;
    mount_pages_delayed(
        &h.server,
        WABA,
        TOKEN,
        &three_pages(),
        Duration::from_millis(200),
    )
    .await;

    let summaries = run_and_stop(&h, &h.settings(&[]), Some(tenant), 1).await;

    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].outcome, Outcome::Stopped, "{}", summaries[0]);
    assert!(summaries[0].failed(), "a stopped run exits with a failure");
    assert_eq!(h.requests().await.len(), 1, "no page after the stop");
    assert!(h.rows(tenant).await.is_empty());
    assert_eq!(cached(tenant).await, None);
}

/// Cancelled between pages (while page 2 of 3 is in flight, after page 1 arrived): Stopped,
/// page 3 never requested, nothing written.
#[tokio::test]
async fn stopped_between_pages() {
    let h = Harness::new().await;
    let tenant = h.tenant_with_account(WABA, TOKEN).await;
    let pages = three_pages();
    for (index, data) in pages.iter().enumerate() {
        let delay = if index == 1 { 200 } else { 0 };
        page_mock(WABA, TOKEN, index)
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(page_body(WABA, data, index, pages.len()))
                    .set_delay(Duration::from_millis(delay)),
            )
            .mount(&h.server)
            .await;
    }

    let summaries = run_and_stop(&h, &h.settings(&[]), Some(tenant), 2).await;

    assert_eq!(summaries[0].outcome, Outcome::Stopped, "{}", summaries[0]);
    assert_eq!(h.requests().await.len(), 2, "page 3 never requested");
    assert!(h.rows(tenant).await.is_empty());
    assert_eq!(cached(tenant).await, None);
}

/// Cancelled while the last page is in flight, on a tenant synced before with other data: the
/// sync may have applied the changes inside its transaction, but the stop rolls them back: the
/// old rows are unchanged (none updated, none marked deleted, no new one) and so is the cache.
#[tokio::test]
async fn stopped_on_the_last_page_rolls_everything_back() {
    let h = Harness::new().await;
    let tenant = h.tenant_with_account(WABA, TOKEN).await;
    let settings = h.settings(&[]);
    mount_pages(
        &h.server,
        WABA,
        TOKEN,
        &[vec![
            template("1", "a", "APPROVED"),
            template("9", "z", "APPROVED"),
        ]],
    )
    .await;
    assert_eq!(
        synced(&h.sync(&settings, tenant).await).0,
        counts(2, 2, 0, 0)
    );
    let before = h.rows(tenant).await;

    // Now: 1 changed, 9 gone, 2 and 3 new; the single page is slow.
    h.server.reset().await;
    mount_pages_delayed(
        &h.server,
        WABA,
        TOKEN,
        &[vec![
            template("1", "a", "PAUSED"),
            template("2", "b", "APPROVED"),
            template("3", "c", "APPROVED"),
        ]],
        Duration::from_millis(200),
    )
    .await;
    let summaries = run_and_stop(&h, &settings, Some(tenant), 1).await;

    assert_eq!(summaries[0].outcome, Outcome::Stopped, "{}", summaries[0]);
    assert_eq!(h.rows(tenant).await, before, "nothing written");
    assert_eq!(cached_ids(tenant).await, ["1", "9"]);
}

/// Cancelled while waiting to retry (a long backoff after a 500): Stopped at once, without
/// waiting out the backoff or trying again.
#[tokio::test]
async fn stopped_during_a_retry_backoff() {
    let h = Harness::new().await;
    let tenant = h.tenant_with_account(WABA, TOKEN).await;
    Mock::given(method("GET"))
        .and(path(templates_path(WABA)))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"error": {"code": 1}})))
        .mount(&h.server)
        .await;
    let settings = h.settings(&[
        ("PORTAL__WHATSAPP__BACKOFF_INITIAL_MS", "20000"),
        ("PORTAL__WHATSAPP__BACKOFF_MAX_MS", "20000"),
    ]);

    let started = Instant::now();
    let summaries = run_and_stop(&h, &settings, Some(tenant), 1).await;

    assert_eq!(summaries[0].outcome, Outcome::Stopped, "{}", summaries[0]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(h.requests().await.len(), 1, "no retry after the stop");
    assert!(h.rows(tenant).await.is_empty());
}

/// Syncing every tenant, a stop during the first tenant's sync leaves it Stopped and starts no
/// further tenant: that one is reported stopped too (so the run exits 1), and the second
/// account's WhatsApp is never called.
#[tokio::test]
async fn a_stop_starts_no_further_tenant() {
    let h = Harness::new().await;
    let a = h.tenant_with_account("1001", "EAAG-a").await;
    let b = h.tenant_with_account("2002", "EAAG-b").await;
    for (waba, token) in [("1001", "EAAG-a"), ("2002", "EAAG-b")] {
        mount_pages_delayed(
            &h.server,
            waba,
            token,
            &[vec![template("1", "a", "APPROVED")]],
            Duration::from_millis(200),
        )
        .await;
    }
    // Tenants are synced in id order.
    let (first, second) = if a < b { (a, b) } else { (b, a) };

    let summaries = run_and_stop(&h, &h.settings(&[]), None, 1).await;

    assert_eq!(summaries.len(), 2, "{summaries:?}");
    assert_eq!(summaries[0].tenant_id, TenantId(first));
    assert_eq!(summaries[1].tenant_id, TenantId(second));
    assert!(summaries.iter().all(|s| s.outcome == Outcome::Stopped));
    assert_eq!(h.requests().await.len(), 1);
    assert!(h.rows(first).await.is_empty());
    assert!(h.rows(second).await.is_empty());
}
