//! Failures that no retry fixes: an invalid token, malformed answers, a missing account, a
//! token that no longer decrypts. Each fails only its tenant and writes nothing.

use portal_shared::ids::TenantId;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

/// Two tenants, synced together (`run(.., None, ..)`): B's token is invalid (400, Graph error
/// 190), so B fails at once (one request, no retry) with a message naming the access token
/// (and not containing the token itself), while A is still synced.
#[tokio::test]
async fn an_invalid_token_fails_that_tenant_only() {
    let h = Harness::new().await;
    let a = h.tenant_with_account("1001", "EAAG-good-token").await;
    let b = h.tenant_with_account("2002", "EAAG-revoked-token").await;
    mount_pages(
        &h.server,
        "1001",
        "EAAG-good-token",
        &[vec![template("11", "welcome", "APPROVED")]],
    )
    .await;
    Mock::given(method("GET"))
        .and(path(templates_path("2002")))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "message": "Error validating access token: Session has expired on Friday.",
            "type": "OAuthException", "code": 190, "error_subcode": 463,
            "fbtrace_id": "AbCdEf123"
        }})))
        .expect(1)
        .mount(&h.server)
        .await;

    let summaries = template_sync::run(&h.settings(&[]), None, CancellationToken::new())
        .await
        .unwrap();

    assert_eq!(summaries.len(), 2, "{summaries:?}");
    let of = |t| {
        summaries
            .iter()
            .find(|s| s.tenant_id == TenantId(t))
            .unwrap()
    };
    assert_eq!(synced(of(a)), (counts(1, 1, 0, 0), true));
    let error = failed(of(b));
    assert!(error.contains("access token"), "{error}");
    assert!(error.contains("190"), "{error}");
    assert!(
        !error.contains("EAAG-revoked-token"),
        "no secret in the summary: {error}"
    );
    assert!(!of(b).to_string().contains("EAAG-revoked-token"));
    h.server.verify().await;
    assert_eq!(h.rows(a).await.len(), 1);
    assert!(h.rows(b).await.is_empty());
    assert_eq!(cached(b).await, None);
}

/// A 200 whose body is not JSON fails the tenant as malformed. On a fresh tenant: no row, no
/// cache key. After an earlier sync: its templates are untouched (none marked deleted) and the
/// cache keeps the earlier list.
#[tokio::test]
async fn malformed_json_fails_and_writes_nothing() {
    let h = Harness::new().await;
    let tenant = h.tenant_with_account("3003", "EAAG-t").await;
    let settings = h.settings(&[]);
    let not_json = || {
        Mock::given(method("GET"))
            .and(path(templates_path("3003")))
            .respond_with(ResponseTemplate::new(200).set_body_string("not json"))
            .expect(1)
    };
    not_json().mount(&h.server).await;
    let error = failed(&h.sync(&settings, tenant).await);
    assert!(error.contains("malformed"), "{error}");
    assert!(
        error.contains("not json"),
        "the start of the body is shown: {error}"
    );
    h.server.verify().await;
    assert!(h.rows(tenant).await.is_empty());
    assert_eq!(cached(tenant).await, None);

    h.server.reset().await;
    mount_pages(
        &h.server,
        "3003",
        "EAAG-t",
        &[vec![
            template("31", "a", "APPROVED"),
            template("32", "b", "APPROVED"),
        ]],
    )
    .await;
    assert_eq!(
        synced(&h.sync(&settings, tenant).await).0,
        counts(2, 2, 0, 0)
    );
    let before = h.rows(tenant).await;

    h.server.reset().await;
    not_json().mount(&h.server).await;
    let summary = h.sync(&settings, tenant).await;

    let error = failed(&summary);
    assert!(error.contains("malformed"), "{error}");
    h.server.verify().await;
    assert_eq!(h.rows(tenant).await, before, "nothing written");
    assert_eq!(cached_ids(tenant).await, ["31", "32"]);
}

/// JSON without a `data` array, and a template without a name (on the second page, after a good
/// first page), are malformed too: failed, nothing written.
#[tokio::test]
async fn answers_without_data_or_with_a_nameless_template_fail() {
    let h = Harness::new().await;
    let tenant = h.tenant_with_account("3003", "EAAG-t").await;
    let settings = h.settings(&[]);
    Mock::given(method("GET"))
        .and(path(templates_path("3003")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"templates": []})))
        .mount(&h.server)
        .await;
    let error = failed(&h.sync(&settings, tenant).await);
    assert!(error.contains("data"), "{error}");

    h.server.reset().await;
    let mut nameless = template("42", "x", "APPROVED");
    nameless.as_object_mut().unwrap().remove("name");
    mount_pages(
        &h.server,
        "3003",
        "EAAG-t",
        &[vec![template("41", "fine", "APPROVED")], vec![nameless]],
    )
    .await;
    let error = failed(&h.sync(&settings, tenant).await);
    assert!(error.contains("malformed template"), "{error}");
    assert!(error.contains("42"), "{error}");
    assert!(h.rows(tenant).await.is_empty());
    assert_eq!(cached(tenant).await, None);
}

/// Account problems fail the tenant before WhatsApp is called: a tenant without an account
/// ("no WhatsApp Business Account"), and a token sealed under another key (the key was rotated:
/// the message names `token_key`).
#[tokio::test]
async fn a_missing_account_or_undecryptable_token_fails() {
    use base64::Engine;
    let h = Harness::new().await;
    let without = h.app.tenant().await;
    let summary = h.sync(&h.settings(&[]), without).await;
    assert!(
        failed(&summary).contains("no WhatsApp Business Account"),
        "{summary}"
    );

    let tenant = h.tenant_with_account("5005", "EAAG-t").await;
    let other_key = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let summary = h
        .sync(
            &h.settings(&[("PORTAL__WHATSAPP__TOKEN_KEY", other_key.as_str())]),
            tenant,
        )
        .await;
    assert!(failed(&summary).contains("token_key"), "{summary}");

    assert!(h.requests().await.is_empty());
}

/// Without `whatsapp.token_key` the run cannot start: an error, not a summary.
#[tokio::test]
async fn no_token_key_means_the_run_cannot_start() {
    let h = Harness::new().await;
    let mut settings = h.settings(&[]);
    settings.whatsapp.token_key = None;

    let err = template_sync::run(&settings, None, CancellationToken::new())
        .await
        .unwrap_err();

    assert!(err.to_string().contains("token_key"), "{err}");
}
