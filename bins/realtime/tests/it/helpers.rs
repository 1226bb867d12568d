//! The realtime service under test, beside a `TestApp` (the API) sharing its database and
//! event channel, and a private Redis server for tests that stop Redis.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use portal_shared::config::Settings;
use reqwest::StatusCode;
use serde_json::Value;
pub use testkit::*;

pub struct Realtime {
    pub base: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Realtime {
    /// A realtime process for `app`'s database and channel, with extra `PORTAL__*` settings.
    pub async fn spawn(app: &TestApp, extra: &[(&str, &str)]) -> Self {
        // RUST_LOG=realtime=debug shows the service's logs with a failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let mut env: Vec<(String, String)> = [
            ("PORTAL__DATABASE__URL", app.app_url.as_str()),
            ("PORTAL__DATABASE__MAX_CONNECTIONS", "5"),
            ("PORTAL__HTTP__SHUTDOWN_GRACE_SECS", "1"),
            ("PORTAL__EVENTS__CHANNEL", app.channel.as_str()),
            ("PORTAL__AUTH__JWT_SECRET", SECRET),
            ("PORTAL__REALTIME__GAP_WAIT_MS", "100"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let settings = Settings::load_from(None, env).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(realtime::run(settings, listener, async {
            let _ = rx.await;
        }));
        let realtime = Self {
            base,
            shutdown: Some(tx),
            server: Some(server),
        };
        realtime.wait_ready().await;
        realtime
    }

    pub async fn readiness(&self) -> (StatusCode, Value) {
        let resp = reqwest::get(format!("{}/readyz", self.base)).await.unwrap();
        (resp.status(), resp.json().await.unwrap())
    }

    /// Waits until readiness says ready (or disabled), so its subscription is up.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, body) = self.readiness().await;
            if status == StatusCode::OK {
                return;
            }
            assert!(Instant::now() < deadline, "realtime not ready: {body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }
}

/// A Redis server of the test's own, on a free port, that the test may stop and restart.
pub struct OwnRedis {
    pub port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Self { port, child: None };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (it is on every machine of this kind)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An active conversation of tenant A assigned to `agent`, with a customer of its own.
pub async fn conversation_of(
    app: &TestApp,
    w: &World,
    agent: Option<uuid::Uuid>,
    state: &str,
) -> uuid::Uuid {
    let phone = format!("+3460{:07}", rand_digits());
    let customer = app.customer(w.a, "Carla", &phone).await;
    app.conversation(w.a, customer, state, agent, 1).await
}

fn rand_digits() -> u32 {
    uuid::Uuid::new_v4().as_u128() as u32 % 10_000_000
}
