//! The REST contract seen from outside: the served document is the committed snapshot, a
//! schema-driven fuzzer finds nothing against the running API with an agent's and a
//! supervisor's token, and the TypeScript program built from the generated client (what the
//! frontend does) passes. `scripts/contract` lints the snapshot, compiles the client and checks
//! breaking changes before these run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use portal_shared::demo;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::{TestApp, token};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The demo tenant behind a running API, and tokens for its agent and supervisor.
async fn demo_api() -> (TestApp, String, String) {
    let app = TestApp::spawn().await;
    demo::load(&app.owner, 40).await.unwrap();
    let agent = token(demo::TENANT, demo::AGENT, "agent");
    let supervisor = token(demo::TENANT, demo::SUPERVISOR, "supervisor");
    (app, agent, supervisor)
}

#[tokio::test]
async fn the_served_document_is_the_committed_snapshot() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let served: Value = response.json().await.unwrap();
    let path = repo_root().join("docs/openapi.json");
    let rendered = format!("{}\n", serde_json::to_string_pretty(&served).unwrap());
    if std::env::var_os("UPDATE_OPENAPI_SNAPSHOT").is_some() {
        std::fs::write(&path, &rendered).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "docs/openapi.json differs from what the API serves: review the change, then run \
         `UPDATE_OPENAPI_SNAPSHOT=1 ./scripts/test the_served_document` and commit the file"
    );
}

/// Runs a child process to its end off the runtime's threads, which keep serving the API.
async fn run(mut command: Command) -> std::io::Result<Output> {
    tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

/// Where `scripts/test` installed schemathesis (`PORTAL_SCHEMATHESIS` overrides).
fn schemathesis() -> PathBuf {
    std::env::var_os("PORTAL_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_default();
            Path::new(&home).join(".cache/agent-portal/tools/schemathesis/bin/schemathesis")
        })
}

/// One fuzzing run as `role`; returns schemathesis's report when it failed.
async fn fuzz(app: &TestApp, token: &str, role: &str) -> Option<String> {
    let examples = std::env::var("PORTAL_FUZZ_EXAMPLES").unwrap_or_else(|_| "25".into());
    // It keeps a cache of crashes in its working directory: a scratch one, so runs stay
    // independent and the checkout clean.
    let scratch =
        std::env::temp_dir().join(format!("portal-schemathesis-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&scratch).unwrap();
    let mut command = Command::new(schemathesis());
    command
        .current_dir(&scratch)
        .arg("--config-file")
        .arg(repo_root().join("contracts/schemathesis.toml"))
        .arg("run")
        .arg(format!("{}/openapi.json", app.base))
        .args(["--url", &format!("{}/api", app.base)])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--max-examples", &examples])
        .args(["--seed", "1"])
        // Nothing kept between runs: each one is reproducible from its seed alone.
        .args(["--generation-database", "none"])
        .env("NO_COLOR", "1");
    let output = run(command).await.unwrap_or_else(|e| {
        panic!(
            "{:?} did not start ({e}); ./scripts/test installs it",
            schemathesis()
        )
    });
    let _ = std::fs::remove_dir_all(&scratch);
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("schemathesis as {role}:\n{report}");
    (!output.status.success()).then_some(report)
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_nothing_as_an_agent_or_a_supervisor() {
    let (app, agent, supervisor) = demo_api().await;
    let mut failures = Vec::new();
    for (token, role) in [(agent, "agent"), (supervisor, "supervisor")] {
        if let Some(report) = fuzz(&app, &token, role).await {
            failures.push(format!("as {role}:\n{report}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_typescript_client_lists_opens_sends_and_reads_back() {
    let (app, agent, supervisor) = demo_api().await;
    let program = repo_root().join("contracts/build/portal.js");
    let mut command = Command::new("node");
    command
        .arg(&program)
        .env("API_URL", &app.base)
        .env("AGENT_TOKEN", agent)
        .env("SUPERVISOR_TOKEN", supervisor);
    let output = run(command)
        .await
        .unwrap_or_else(|e| panic!("node {program:?} did not start ({e}); run ./scripts/contract"));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{report}");
}

// What schemathesis found, kept as regression tests.

#[tokio::test]
async fn nul_characters_match_nothing_or_are_refused_never_a_500() {
    let app = TestApp::spawn().await;
    let w = testkit::World::new(&app).await;
    let c = app.customer(w.a, "Nora", "+4930222222").await;
    let conv = app.conversation(w.a, c, "active", Some(w.agent), 5).await;
    let t = &w.supervisor_token;
    for path in [
        "/api/conversations?q=No%00ra",
        "/api/conversations/counts?q=%00",
        "/api/messages/search?q=a%00b",
    ] {
        let (status, body) = app.get(path, t).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let (status, _) = app
        .post(
            "/api/templates/validate",
            t,
            json!({"name": "a\u{0}b", "language": "en"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "no template has a NUL in its name"
    );
    let refused = [
        (
            format!("/api/conversations/{conv}/messages"),
            json!({"type": "text", "text": "hi\u{0}"}),
            "text",
        ),
        (
            format!("/api/conversations/{conv}/messages"),
            json!({"type": "template", "template": {"name": "t", "language": "en", "parameters": ["\u{0}"]}}),
            "template.parameters",
        ),
        (
            format!("/api/conversations/{conv}/transfer"),
            json!({"to_agent_id": w.other_agent, "note": "\u{0}"}),
            "note",
        ),
        (
            format!("/api/conversations/{conv}/close"),
            json!({"reason": "\u{0}"}),
            "reason",
        ),
    ];
    for (path, body, field) in refused {
        let (status, problem) = app.post(&path, t, body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {problem}"
        );
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
}

#[tokio::test]
async fn bodies_are_read_as_strictly_as_the_document_declares_them() {
    let app = TestApp::spawn().await;
    let w = testkit::World::new(&app).await;
    let c = app.customer(w.a, "Olga", "+4930333333").await;
    let conv = app.conversation(w.a, c, "active", Some(w.agent), 5).await;
    let t = &w.supervisor_token;
    // poem-openapi alone reads `false` into a string and `null` into any optional field.
    for (path, body) in [
        (
            format!("/api/conversations/{conv}/transfer"),
            json!({"to_agent_id": w.other_agent, "note": false}),
        ),
        (
            format!("/api/conversations/{conv}/close"),
            json!({"reason": 7}),
        ),
        (
            format!("/api/conversations/{conv}/messages"),
            json!({"type": "text", "text": 42}),
        ),
    ] {
        let (status, problem) = app.post(&path, t, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {problem}");
    }
    let (status, problem) = app
        .patch(
            &format!("/api/conversations/{conv}"),
            t,
            json!({"state": null}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    // Where the document says nullable, `null` is the same as absent.
    let (status, body) = app
        .post(
            &format!("/api/conversations/{conv}/close"),
            t,
            json!({"reason": null}),
        )
        .await;
    assert_eq!(
        (status, body.get("close_reason")),
        (StatusCode::OK, None),
        "{body}"
    );
}

#[tokio::test]
async fn a_method_a_path_does_not_have_is_a_405_that_lists_the_ones_it_has() {
    let app = TestApp::spawn().await;
    let w = testkit::World::new(&app).await;
    let response = app
        .client
        .delete(format!(
            "{}/api/conversations/{}",
            app.base,
            uuid::Uuid::new_v4()
        ))
        .bearer_auth(&w.agent_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "GET, PATCH");
}
