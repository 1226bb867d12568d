//! Every way a token can be refused, with HS256 and with keys from a JWKS server.

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

async fn status_with(app: &TestApp, token: &str) -> (StatusCode, Value) {
    app.get("/api/conversations", token).await
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

#[tokio::test]
async fn hs256_tokens_are_refused_for_every_defect_with_401() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let good = claims(w.a, w.agent, &["agent"]);
    let now = chrono::Utc::now().timestamp();

    let (status, _) = app
        .request(Method::GET, "/api/conversations", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "missing token");

    let cases: Vec<(&str, String)> = vec![
        ("malformed", "not.a.jwt".to_string()),
        (
            "expired",
            sign_hs256(&with(good.clone(), "exp", json!(now - 3600)), SECRET),
        ),
        (
            "not yet valid",
            sign_hs256(&with(good.clone(), "nbf", json!(now + 3600)), SECRET),
        ),
        (
            "wrong issuer",
            sign_hs256(&with(good.clone(), "iss", json!("someone-else")), SECRET),
        ),
        (
            "wrong audience",
            sign_hs256(&with(good.clone(), "aud", json!("other-app")), SECRET),
        ),
        (
            "wrong secret",
            sign_hs256(&good, "another-secret-another-secret-0123456789"),
        ),
        ("alg none", unsigned_token(&good)),
        ("RS256 where HS256 is configured", sign_rs256(&good, "k1")),
        (
            "missing exp",
            sign_hs256(
                &{
                    let mut c = good.clone();
                    c.as_object_mut().unwrap().remove("exp");
                    c
                },
                SECRET,
            ),
        ),
    ];
    for (case, token) in cases {
        let (status, body) = status_with(&app, &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {body}");
        assert_eq!(body["status"], 401, "{case}: {body}");
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{case}: {body}"
        );
    }

    let (status, _) = status_with(&app, &sign_hs256(&good, SECRET)).await;
    assert_eq!(status, StatusCode::OK, "the untampered token works");
}

#[tokio::test]
async fn a_valid_token_for_an_unknown_or_inactive_agent_is_403() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;

    let stranger = token(w.a, uuid::Uuid::new_v4(), "agent");
    let (status, body) = status_with(&app, &stranger).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // An agent of tenant B presenting tenant A's id is not an agent of A.
    let (status, _) = status_with(&app, &token(w.a, w.b_supervisor, "supervisor")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    app.deactivate(w.agent).await;
    let (status, _) = status_with(&app, &w.agent_token).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, _) = status_with(
        &app,
        &sign_hs256(&claims(w.a, w.supervisor, &["janitor"]), SECRET),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a token without a known role"
    );
}

#[tokio::test]
async fn a_token_claiming_more_than_the_agent_record_gets_the_lesser_role() {
    let app = TestApp::spawn().await;
    let w = World::new(&app).await;
    let customer = app.customer(w.a, "Carla", "+4915112345678").await;
    let others = app
        .conversation(w.a, customer, "active", Some(w.other_agent), 1)
        .await;
    // The agent record says "agent"; the token says "admin": the agent still cannot see others' work.
    let inflated = token(w.a, w.agent, "admin");
    let (status, _) = app
        .get(&format!("/api/conversations/{others}"), &inflated)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

fn unsigned_token(claims: &Value) -> String {
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(claims)
    )
}

const RSA_PEM: &[u8] = include_bytes!("../fixtures/rsa_private.pem");
const EC_PEM: &[u8] = include_bytes!("../fixtures/ec_private.pem");

fn sign_rs256(claims: &Value, kid: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(RSA_PEM).unwrap(),
    )
    .unwrap()
}

fn sign_es256(claims: &Value, kid: &str) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_pem(EC_PEM).unwrap()).unwrap()
}

fn jwks(keys: &[(&str, Algorithm)]) -> Value {
    let keys = keys
        .iter()
        .map(|(kid, alg)| {
            let key = match alg {
                Algorithm::RS256 => EncodingKey::from_rsa_pem(RSA_PEM).unwrap(),
                _ => EncodingKey::from_ec_pem(EC_PEM).unwrap(),
            };
            let mut jwk = Jwk::from_encoding_key(&key, *alg).unwrap();
            jwk.common.key_id = Some(kid.to_string());
            jwk
        })
        .collect();
    serde_json::to_value(JwkSet { keys }).unwrap()
}

#[tokio::test]
async fn jwks_keys_verify_rs256_and_es256_and_refuse_hs256() {
    let jwks_server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/jwks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(jwks(&[
            ("rsa-1", Algorithm::RS256),
            ("ec-1", Algorithm::ES256),
        ])))
        .mount(&jwks_server)
        .await;
    let url = format!("{}/jwks", jwks_server.uri());
    let app = TestApp::spawn_with(&[
        ("PORTAL__AUTH__JWKS_URL", &url),
        ("PORTAL__AUTH__JWKS_MIN_REFRESH_SECS", "3600"),
    ])
    .await;
    let w = World::new(&app).await;
    let c = claims(w.a, w.agent, &["agent"]);

    assert_eq!(
        status_with(&app, &sign_rs256(&c, "rsa-1")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        status_with(&app, &sign_es256(&c, "ec-1")).await.0,
        StatusCode::OK
    );
    // HS256 signed with the RSA public key's bytes is the classic confusion attack.
    assert_eq!(
        status_with(&app, &sign_hs256(&c, SECRET)).await.0,
        StatusCode::UNAUTHORIZED
    );
    // A token naming the RSA key but claiming ES256.
    assert_eq!(
        status_with(&app, &sign_es256(&c, "rsa-1")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_with(&app, &sign_rs256(&c, "unknown-kid")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_with(&app, &sign_rs256(&c, "another-unknown"))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );

    // Keys are cached, and unknown kids refetch at most once per minimum refresh interval
    // (an hour here): made-up kids cannot make us hammer the Auth Service.
    let fetches = jwks_server.received_requests().await.unwrap().len();
    assert_eq!(fetches, 1, "JWKS fetches");
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_jwks_so_rotated_keys_work() {
    let jwks_server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/jwks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(jwks(&[("old", Algorithm::RS256)])))
        .up_to_n_times(1)
        .mount(&jwks_server)
        .await;
    Mock::given(method("GET"))
        .and(path("/jwks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(jwks(&[("new", Algorithm::RS256)])))
        .mount(&jwks_server)
        .await;
    let url = format!("{}/jwks", jwks_server.uri());
    let app = TestApp::spawn_with(&[
        ("PORTAL__AUTH__JWKS_URL", &url),
        ("PORTAL__AUTH__JWKS_MIN_REFRESH_SECS", "0"),
    ])
    .await;
    let w = World::new(&app).await;
    let c = claims(w.a, w.agent, &["agent"]);
    assert_eq!(
        status_with(&app, &sign_rs256(&c, "old")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        status_with(&app, &sign_rs256(&c, "new")).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_unreachable_jwks_is_503_not_401() {
    let jwks_server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/jwks"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&jwks_server)
        .await;
    let url = format!("{}/jwks", jwks_server.uri());
    let app = TestApp::spawn_with(&[("PORTAL__AUTH__JWKS_URL", &url)]).await;
    let w = World::new(&app).await;
    let (status, body) =
        status_with(&app, &sign_rs256(&claims(w.a, w.agent, &["agent"]), "k")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
}
