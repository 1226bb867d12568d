//! The official JavaScript `socket.io-client` (from npm, as the portal uses it) against the
//! service: see `e2e/socketio-client/client.mjs` for the checks.

use std::path::PathBuf;
use std::process::Command;

use crate::helpers::*;

#[tokio::test]
async fn the_official_javascript_client_connects_upgrades_and_recovers() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../e2e/socketio-client");
    assert!(
        dir.join("node_modules/socket.io-client").exists(),
        "run `npm ci --prefix e2e/socketio-client` first (./scripts/test does)"
    );
    let app = TestApp::spawn().await;
    let rt = Realtime::spawn(&app, &[]).await;
    let w = World::new(&app).await;
    let conversation = conversation_of(&app, &w, Some(w.agent), "active").await;

    let mut node = Command::new("node");
    node.arg("client.mjs")
        .current_dir(&dir)
        .env("REALTIME_URL", &rt.base)
        .env("API_URL", &app.base)
        .env("AGENT_TOKEN", &w.agent_token)
        .env("CONVERSATION_ID", conversation.to_string());
    let out = tokio::task::spawn_blocking(move || node.output())
        .await
        .unwrap()
        .expect("node must be installed");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
