//! The `template-sync` executable: summary lines on stdout and its exit statuses (0 synced,
//! 1 a tenant failed or the run was stopped, 2 it could not start).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

const WABA: &str = "990099";
const TOKEN: &str = "EAAG-binary";

/// Starts the executable with only `env` (and `args`) so the caller's environment cannot leak
/// into its configuration.
fn start(env: &[(String, String)], args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_template-sync"))
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("PORTAL__TELEMETRY__LOG_FILTER", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (without blocking the runtime) up to 10 s for the process; its status, stdout, stderr.
async fn finish(mut child: Child) -> (i32, String, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("template-sync did not exit");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let output = child.wait_with_output().unwrap();
    (
        output
            .status
            .code()
            .expect("exited, not killed by a signal"),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// The plain summary lines (stdout also carries the JSON log lines).
fn summary_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| l.starts_with("tenant "))
        .collect()
}

/// `--tenant <id>` synced: status 0 and its summary line. A refusal from WhatsApp: status 1 and
/// an `error:` line. No `whatsapp.token_key`, or an invalid setting: status 2 and the reason on
/// stderr.
#[tokio::test]
async fn exit_statuses_and_summary_lines() {
    let h = Harness::new().await;
    let tenant = h.tenant_with_account(WABA, TOKEN).await;
    mount_pages(
        &h.server,
        WABA,
        TOKEN,
        &[vec![template("1", "a", "APPROVED")]],
    )
    .await;
    let env = h.env(&[]);
    let id = tenant.to_string();

    let (status, stdout, stderr) = finish(start(&env, &["--tenant", &id])).await;
    assert_eq!(status, 0, "{stdout}\n{stderr}");
    assert!(
        summary_lines(&stdout).contains(
            &format!("tenant {id}: fetched 1 / created 1 / updated 0 / deleted 0").as_str()
        ),
        "{stdout}"
    );

    h.server.reset().await;
    Mock::given(method("GET"))
        .and(path(templates_path(WABA)))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(
                json!({"error": {"code": 100, "message": "Unsupported get request"}}),
            ),
        )
        .mount(&h.server)
        .await;
    let (status, stdout, stderr) = finish(start(&env, &[])).await;
    assert_eq!(status, 1, "{stdout}\n{stderr}");
    let lines = summary_lines(&stdout);
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(
        lines[0].starts_with(&format!("tenant {id}: error: ")),
        "{stdout}"
    );
    assert!(lines[0].contains("Unsupported get request"), "{stdout}");

    let without_key: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| k != "PORTAL__WHATSAPP__TOKEN_KEY")
        .cloned()
        .collect();
    let (status, stdout, stderr) = finish(start(&without_key, &[])).await;
    assert_eq!(status, 2, "{stdout}\n{stderr}");
    assert!(stderr.contains("token_key"), "{stderr}");

    let mut invalid = env.clone();
    invalid.push(("PORTAL__WHATSAPP__MAX_ATTEMPTS".into(), "0".into()));
    let (status, _, stderr) = finish(start(&invalid, &[])).await;
    assert_eq!(status, 2, "{stderr}");
    assert!(stderr.contains("max_attempts"), "{stderr}");
}

/// SIGTERM while a page is in flight: the run stops after that answer, prints the `stopped`
/// line, exits 1, and writes nothing.
#[tokio::test]
async fn sigterm_stops_the_run_with_status_1() {
    let h = Harness::new().await;
    let tenant = h.tenant_with_account(WABA, TOKEN).await;
    mount_pages_delayed(
        &h.server,
        WABA,
        TOKEN,
        &[
            vec![template("1", "a", "APPROVED")],
            vec![template("2", "b", "APPROVED")],
        ],
        Duration::from_millis(300),
    )
    .await;

    let child = start(&h.env(&[]), &[]);
    h.wait_for_requests(1).await;
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (status, stdout, stderr) = finish(child).await;

    assert_eq!(status, 1, "{stdout}\n{stderr}");
    assert_eq!(
        summary_lines(&stdout),
        [format!("tenant {tenant}: stopped before finishing; nothing written").as_str()],
        "{stdout}"
    );
    assert_eq!(h.requests().await.len(), 1, "no page after the signal");
    assert!(h.rows(tenant).await.is_empty());
}
