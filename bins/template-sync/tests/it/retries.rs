//! Throttling, server errors and timeouts are retried with backoff up to
//! `whatsapp.max_attempts` (4 here); other refusals are not.

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

const WABA: &str = "440055667788";
const TOKEN: &str = "EAAG-retry-token";

/// Mounts a one-shot failure in front of page `index` (the page mock answers afterwards).
async fn fail_once(h: &Harness, index: usize, response: ResponseTemplate) {
    page_mock(WABA, TOKEN, index)
        .respond_with(response)
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .named("one failure")
        .mount(&h.server)
        .await;
}

/// One failure of each retryable kind in front of the page, then the page: each tenant is
/// synced after exactly one retry (two requests) and its template stored.
/// - HTTP 429 with `Retry-After: 0`;
/// - HTTP 400 with the throttling code 80008 (WhatsApp Business Account rate limit);
/// - HTTP 500.
#[tokio::test]
async fn one_throttle_or_server_error_then_success_is_synced() {
    let h = Harness::new().await;
    let settings = h.settings(&[]);
    let cases = [
        (
            "429 Retry-After: 0",
            ResponseTemplate::new(429)
                .insert_header("retry-after", "0")
                .set_body_json(
                    json!({"error": {"code": 4, "message": "Application request limit reached"}}),
                ),
        ),
        (
            "400 code 80008",
            ResponseTemplate::new(400)
                .set_body_json(json!({"error": {"code": 80008, "message": "throttled"}})),
        ),
        (
            "500",
            ResponseTemplate::new(500).set_body_string("Internal Server Error"),
        ),
    ];
    for (case, response) in cases {
        h.server.reset().await;
        let tenant = h.tenant_with_account(WABA, TOKEN).await;
        fail_once(&h, 0, response).await;
        mount_pages(
            &h.server,
            WABA,
            TOKEN,
            &[vec![template("701", "order_shipped", "APPROVED")]],
        )
        .await;

        let summary = h.sync(&settings, tenant).await;

        assert_eq!(
            synced(&summary),
            (counts(1, 1, 0, 0), true),
            "{case}: {summary}"
        );
        assert_eq!(h.requests().await.len(), 2, "{case}: one retry");
        h.server.verify().await;
        assert_eq!(h.rows(tenant).await.len(), 1, "{case}");
    }
}

/// A request that outlives `whatsapp.timeout_ms` is retried: synced after one retry.
#[tokio::test]
async fn a_timed_out_request_is_retried() {
    let h = Harness::new().await;
    let tenant = h.tenant_with_account(WABA, TOKEN).await;
    let data = [template("701", "order_shipped", "APPROVED")];
    fail_once(
        &h,
        0,
        ResponseTemplate::new(200)
            .set_body_json(page_body(WABA, &data, 0, 1))
            .set_delay(Duration::from_millis(600)),
    )
    .await;
    mount_pages(&h.server, WABA, TOKEN, &[data.to_vec()]).await;

    let summary = h
        .sync(
            &h.settings(&[("PORTAL__WHATSAPP__TIMEOUT_MS", "150")]),
            tenant,
        )
        .await;

    assert_eq!(synced(&summary).0, counts(1, 1, 0, 0), "{summary}");
    assert_eq!(h.requests().await.len(), 2);
}

/// A failure on a later page retries that page with its cursor; earlier pages are not
/// fetched again and nothing is lost.
#[tokio::test]
async fn a_retry_on_a_later_page_keeps_its_cursor() {
    let h = Harness::new().await;
    let tenant = h.tenant_with_account(WABA, TOKEN).await;
    fail_once(&h, 1, ResponseTemplate::new(503)).await;
    mount_pages(
        &h.server,
        WABA,
        TOKEN,
        &[
            vec![template("701", "a", "APPROVED")],
            vec![template("702", "b", "APPROVED")],
            vec![template("703", "c", "APPROVED")],
        ],
    )
    .await;

    let summary = h.sync(&h.settings(&[]), tenant).await;

    assert_eq!(synced(&summary).0, counts(3, 3, 0, 0), "{summary}");
    let afters: Vec<Option<String>> = h
        .requests()
        .await
        .iter()
        .map(|r| {
            r.url
                .query_pairs()
                .find(|(k, _)| k == "after")
                .map(|(_, v)| v.into_owned())
        })
        .collect();
    assert_eq!(
        afters,
        [None, Some(cursor(1)), Some(cursor(1)), Some(cursor(2))]
    );
    h.server.verify().await;
}

/// A persistent 500: exactly `max_attempts` (4) requests, then `Failed` naming the attempts;
/// nothing written.
#[tokio::test]
async fn persistent_500_fails_after_max_attempts() {
    let h = Harness::new().await;
    let tenant = h.tenant_with_account(WABA, TOKEN).await;
    Mock::given(method("GET"))
        .and(path(templates_path(WABA)))
        .respond_with(ResponseTemplate::new(500).set_body_json(
            json!({"error": {"code": 2, "message": "Service temporarily unavailable"}}),
        ))
        .expect(4)
        .mount(&h.server)
        .await;

    let summary = h.sync(&h.settings(&[]), tenant).await;

    let error = failed(&summary);
    assert!(error.contains("after 4 attempts"), "{error}");
    assert!(error.contains("Service temporarily unavailable"), "{error}");
    assert!(summary.failed());
    h.server.verify().await;
    assert!(h.rows(tenant).await.is_empty());
    assert_eq!(cached(tenant).await, None);
}

/// Persistent throttling: `max_attempts` requests, then `Failed` saying it is still throttled.
#[tokio::test]
async fn persistent_throttling_fails_after_max_attempts() {
    let h = Harness::new().await;
    let tenant = h.tenant_with_account(WABA, TOKEN).await;
    Mock::given(method("GET"))
        .and(path(templates_path(WABA)))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "0")
                .set_body_json(json!({"error": {"code": 130429, "message": "Rate limit hit"}})),
        )
        .expect(4)
        .mount(&h.server)
        .await;

    let error = failed(&h.sync(&h.settings(&[]), tenant).await);

    assert!(error.contains("throttled after 4 attempts"), "{error}");
    h.server.verify().await;
}

/// A refusal that no retry can fix (400, code 100 "Invalid parameter") fails at once: one
/// request.
#[tokio::test]
async fn a_plain_400_is_not_retried() {
    let h = Harness::new().await;
    let tenant = h.tenant_with_account(WABA, TOKEN).await;
    Mock::given(method("GET"))
        .and(path(templates_path(WABA)))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": {"code": 100, "message": "Invalid parameter", "type": "OAuthException"}}),
        ))
        .expect(1)
        .mount(&h.server)
        .await;

    let error = failed(&h.sync(&h.settings(&[]), tenant).await);

    assert!(error.contains("Invalid parameter"), "{error}");
    assert!(error.contains("code 100"), "{error}");
    h.server.verify().await;
}
