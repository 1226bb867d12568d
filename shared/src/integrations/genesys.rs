//! Genesys Cloud: where WhatsApp interactions are routed. A transfer or close in the portal
//! is made there too, through the Conversations API for messaging (documented in the README):
//!
//! - `POST {login_url}/oauth/token` (client credentials, HTTP Basic with the client id and
//!   secret, `grant_type=client_credentials`) → `{access_token, expires_in}`;
//! - `GET /api/v2/conversations/messages/{conversationId}` → its `participants`;
//! - `POST /api/v2/conversations/{conversationId}/participants/{participantId}/replace/agent`
//!   with `{"userId": …, "transferType": "Unattended"}`, or `…/replace/queue` with
//!   `{"queueId": …}`: the routing participant (the agent's, or the ACD's while queued) is
//!   replaced;
//! - `PATCH /api/v2/conversations/messages/{conversationId}/participants/{participantId}`
//!   with `{"state": "disconnected"}`: the agent leaves on close.
//!
//! Genesys takes no idempotency key, so every change first reads the participants and counts
//! an effect already in place (the target agent already on it, the agent already gone) as done.
//! The token is cached until `token_refresh_margin_secs` before it expires and fetched once for
//! all callers; a 401 fetches a new one and retries once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;

use super::client::{Answer, CallError, ClientMetrics, Retry, ServiceClient, base_url, endpoint};
use crate::config::GenesysSettings;

/// What the portal asks of Genesys Cloud; [`GenesysCloud`] in production, a real HTTP server
/// in tests and in the development stack.
#[async_trait]
pub trait Genesys: Send + Sync + std::fmt::Debug {
    /// Routes the conversation to the user (a transfer, or an assignment).
    async fn transfer_to_agent(&self, conversation: &str, user: &str) -> Result<(), CallError>;

    /// Routes the conversation back to a queue.
    async fn transfer_to_queue(&self, conversation: &str, queue: &str) -> Result<(), CallError>;

    /// Disconnects the user's participant (any agent's when `user` is `None`).
    async fn disconnect_agent(
        &self,
        conversation: &str,
        user: Option<&str>,
    ) -> Result<(), CallError>;

    /// False while its circuit is open.
    fn is_available(&self) -> bool;

    /// The longest one of these calls can take: a token and the participants (each read
    /// retried), then the change.
    fn timeout(&self) -> Duration;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Participant {
    id: String,
    purpose: Option<String>,
    user_id: Option<String>,
    queue_id: Option<String>,
    state: Option<String>,
}

impl Participant {
    fn is_present(&self) -> bool {
        !matches!(
            self.state.as_deref(),
            Some("disconnected" | "terminated" | "converting")
        )
    }

    fn is(&self, purpose: &str) -> bool {
        self.purpose.as_deref() == Some(purpose)
    }
}

#[derive(Debug, Deserialize)]
struct MessagingConversation {
    #[serde(default)]
    participants: Vec<Participant>,
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

#[derive(Debug, Clone)]
struct Token {
    value: Arc<SecretString>,
    refresh_at: Instant,
}

#[derive(Debug)]
pub struct GenesysCloud {
    client: ServiceClient,
    api: Url,
    login: Url,
    client_id: String,
    client_secret: SecretString,
    refresh_margin: Duration,
    /// Held while a token is fetched, so concurrent callers wait for that one fetch.
    token: Mutex<Option<Token>>,
}

impl GenesysCloud {
    /// `None` when `genesys.api_url` is unset.
    pub fn from_settings(
        settings: &GenesysSettings,
        metrics: &ClientMetrics,
    ) -> anyhow::Result<Option<Self>> {
        let (Some(api), Some(login), Some(client_id), Some(client_secret)) = (
            &settings.api_url,
            &settings.login_url,
            &settings.client_id,
            &settings.client_secret,
        ) else {
            return Ok(None);
        };
        Ok(Some(Self {
            client: ServiceClient::new("genesys", settings.client(), metrics)?,
            api: base_url(api)?,
            login: base_url(login)?,
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            refresh_margin: Duration::from_secs(settings.token_refresh_margin_secs),
            token: Mutex::new(None),
        }))
    }

    /// The cached token, or a new one: one fetch however many callers ask at once.
    async fn token(&self) -> Result<Arc<SecretString>, CallError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.refresh_at) {
            return Ok(token.value.clone());
        }
        let url = endpoint(&self.login, &["oauth", "token"]);
        let answer = self
            .client
            .call("oauth_token", Retry::Safe, |http| {
                http.post(url.clone())
                    .basic_auth(&self.client_id, Some(self.client_secret.expose_secret()))
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body("grant_type=client_credentials")
            })
            .await?;
        let fresh: TokenAnswer = answer.json("genesys")?;
        let lifetime = Duration::from_secs(fresh.expires_in);
        let token = Token {
            value: Arc::new(SecretString::from(fresh.access_token)),
            // A token shorter-lived than the margin is still used once.
            refresh_at: Instant::now() + lifetime.saturating_sub(self.refresh_margin),
        };
        *cached = Some(token.clone());
        Ok(token.value)
    }

    /// Drops the cached token if it is still the one that was refused.
    async fn forget(&self, refused: &Arc<SecretString>) {
        let mut cached = self.token.lock().await;
        if cached
            .as_ref()
            .is_some_and(|t| Arc::ptr_eq(&t.value, refused))
        {
            *cached = None;
        }
    }

    /// A call with the bearer token; a 401 gets a new token and one more try.
    async fn authed(
        &self,
        operation: &'static str,
        retry: Retry,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Answer, CallError> {
        let token = self.token().await?;
        let send = |token: Arc<SecretString>| {
            self.client.call(operation, retry, {
                let build = &build;
                move |http| build(http).bearer_auth(token.expose_secret())
            })
        };
        match send(token.clone()).await {
            Err(CallError::Rejected { status, .. })
                if status == StatusCode::UNAUTHORIZED.as_u16() =>
            {
                self.forget(&token).await;
                send(self.token().await?).await
            }
            other => other,
        }
    }

    async fn participants(&self, conversation: &str) -> Result<Vec<Participant>, CallError> {
        let url = endpoint(
            &self.api,
            &["api", "v2", "conversations", "messages", conversation],
        );
        let answer = self
            .authed("get_conversation", Retry::Safe, |http| {
                http.get(url.clone())
            })
            .await?;
        Ok(answer
            .json::<MessagingConversation>("genesys")?
            .participants)
    }

    /// The participant routing the conversation now: the agent's, or the queue's (ACD).
    fn router(participants: &[Participant]) -> Result<&Participant, CallError> {
        participants
            .iter()
            .rev()
            .find(|p| p.is_present() && (p.is("agent") || p.is("acd")))
            .ok_or_else(|| CallError::Rejected {
                status: StatusCode::CONFLICT.as_u16(),
                reason: "genesys: the conversation has no agent or queue participant to transfer"
                    .into(),
            })
    }

    async fn replace(
        &self,
        operation: &'static str,
        conversation: &str,
        participant: &str,
        kind: &str,
        body: serde_json::Value,
    ) -> Result<(), CallError> {
        let url = endpoint(
            &self.api,
            &[
                "api",
                "v2",
                "conversations",
                conversation,
                "participants",
                participant,
                "replace",
                kind,
            ],
        );
        self.authed(operation, Retry::Once, |http| {
            http.post(url.clone()).json(&body)
        })
        .await
        .map(drop)
    }
}

#[async_trait]
impl Genesys for GenesysCloud {
    async fn transfer_to_agent(&self, conversation: &str, user: &str) -> Result<(), CallError> {
        let participants = self.participants(conversation).await?;
        if participants
            .iter()
            .any(|p| p.is("agent") && p.is_present() && p.user_id.as_deref() == Some(user))
        {
            return Ok(());
        }
        let from = Self::router(&participants)?;
        self.replace(
            "transfer_to_agent",
            conversation,
            &from.id,
            "agent",
            json!({ "userId": user, "transferType": "Unattended" }),
        )
        .await
    }

    async fn transfer_to_queue(&self, conversation: &str, queue: &str) -> Result<(), CallError> {
        let participants = self.participants(conversation).await?;
        let from = Self::router(&participants)?;
        if from.is("acd") && from.queue_id.as_deref() == Some(queue) {
            return Ok(());
        }
        self.replace(
            "transfer_to_queue",
            conversation,
            &from.id,
            "queue",
            json!({ "queueId": queue }),
        )
        .await
    }

    async fn disconnect_agent(
        &self,
        conversation: &str,
        user: Option<&str>,
    ) -> Result<(), CallError> {
        let participants = self.participants(conversation).await?;
        let Some(agent) = participants.iter().rev().find(|p| {
            p.is("agent") && p.is_present() && user.is_none_or(|u| p.user_id.as_deref() == Some(u))
        }) else {
            return Ok(());
        };
        let url = endpoint(
            &self.api,
            &[
                "api",
                "v2",
                "conversations",
                "messages",
                conversation,
                "participants",
                &agent.id,
            ],
        );
        self.authed("disconnect", Retry::Once, |http| {
            http.patch(url.clone())
                .json(&json!({ "state": "disconnected" }))
        })
        .await
        .map(drop)
    }

    fn is_available(&self) -> bool {
        self.client.is_available()
    }

    fn timeout(&self) -> Duration {
        self.client.longest_read().saturating_mul(2) + self.client.timeout()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

    use super::*;

    fn settings(server: &MockServer) -> GenesysSettings {
        GenesysSettings {
            api_url: Some(server.uri()),
            login_url: Some(server.uri()),
            client_id: Some("client".into()),
            client_secret: Some(SecretString::from("secret")),
            token_refresh_margin_secs: 60,
            timeout_ms: 1000,
            connect_timeout_ms: 500,
            max_attempts: 2,
            backoff_initial_ms: 10,
            backoff_max_ms: 100,
            circuit_failures: 50,
            circuit_open_ms: 100,
        }
    }

    fn genesys(server: &MockServer) -> GenesysCloud {
        GenesysCloud::from_settings(&settings(server), &ClientMetrics::default())
            .unwrap()
            .unwrap()
    }

    /// Hands out `token-1`, `token-2`, … living `expires_in` seconds, slowly, so concurrent
    /// callers overlap.
    struct Tokens {
        issued: Arc<AtomicUsize>,
        expires_in: u64,
    }

    impl Respond for Tokens {
        fn respond(&self, _: &Request) -> ResponseTemplate {
            let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
            ResponseTemplate::new(200)
                .set_delay(Duration::from_millis(100))
                .set_body_json(
                    json!({ "access_token": format!("token-{n}"), "expires_in": self.expires_in }),
                )
        }
    }

    async fn token_endpoint(server: &MockServer, expires_in: u64) -> Arc<AtomicUsize> {
        let issued = Arc::new(AtomicUsize::new(0));
        Mock::given(method("POST"))
            .and(path("/oauth/token"))
            .and(header("authorization", "Basic Y2xpZW50OnNlY3JldA=="))
            .respond_with(Tokens {
                issued: issued.clone(),
                expires_in,
            })
            .mount(server)
            .await;
        issued
    }

    async fn conversation(server: &MockServer, participants: serde_json::Value) {
        Mock::given(method("GET"))
            .and(path("/api/v2/conversations/messages/conv-1"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({ "id": "conv-1", "participants": participants })),
            )
            .mount(server)
            .await;
    }

    fn agent_on_it() -> serde_json::Value {
        json!([
            { "id": "p-customer", "purpose": "customer", "state": "connected" },
            { "id": "p-agent", "purpose": "agent", "userId": "user-a", "state": "connected" }
        ])
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_token_request() {
        let server = MockServer::start().await;
        let issued = token_endpoint(&server, 3600).await;
        conversation(&server, agent_on_it()).await;
        let genesys = Arc::new(genesys(&server));
        let calls: Vec<_> = (0..10)
            .map(|_| {
                let genesys = genesys.clone();
                tokio::spawn(
                    async move { genesys.disconnect_agent("conv-1", Some("user-b")).await },
                )
            })
            .collect();
        for call in calls {
            call.await.unwrap().unwrap();
        }
        assert_eq!(issued.load(Ordering::SeqCst), 1);
        let requests = server.received_requests().await.unwrap();
        assert!(
            requests
                .iter()
                .filter(|r| r.url.path().starts_with("/api/"))
                .all(
                    |r| r.headers.get("authorization").and_then(|v| v.to_str().ok())
                        == Some("Bearer token-1")
                )
        );
    }

    #[tokio::test]
    async fn a_token_is_refreshed_before_it_expires_and_after_a_401() {
        let server = MockServer::start().await;
        // Shorter-lived than the refresh margin: every call needs a new one.
        let issued = token_endpoint(&server, 30).await;
        conversation(&server, agent_on_it()).await;
        let genesys = genesys(&server);
        genesys
            .disconnect_agent("conv-1", Some("user-b"))
            .await
            .unwrap();
        genesys
            .disconnect_agent("conv-1", Some("user-b"))
            .await
            .unwrap();
        assert_eq!(issued.load(Ordering::SeqCst), 2);

        let server = MockServer::start().await;
        let issued = token_endpoint(&server, 3600).await;
        Mock::given(method("GET"))
            .and(header("authorization", "Bearer token-1"))
            .respond_with(ResponseTemplate::new(401))
            .mount(&server)
            .await;
        conversation(&server, agent_on_it()).await;
        let genesys = self::genesys(&server);
        genesys
            .disconnect_agent("conv-1", Some("user-b"))
            .await
            .unwrap();
        assert_eq!(
            issued.load(Ordering::SeqCst),
            2,
            "the refused token is replaced once"
        );
    }

    #[tokio::test]
    async fn a_transfer_replaces_the_agent_and_a_repeat_finds_it_done() {
        let server = MockServer::start().await;
        token_endpoint(&server, 3600).await;
        conversation(&server, agent_on_it()).await;
        Mock::given(method("POST"))
            .and(path(
                "/api/v2/conversations/conv-1/participants/p-agent/replace/agent",
            ))
            .and(body_json(
                json!({ "userId": "user-b", "transferType": "Unattended" }),
            ))
            .respond_with(ResponseTemplate::new(202))
            .expect(1)
            .mount(&server)
            .await;
        let genesys = genesys(&server);
        genesys.transfer_to_agent("conv-1", "user-b").await.unwrap();
        // The agent is on it already: nothing to do.
        genesys.transfer_to_agent("conv-1", "user-a").await.unwrap();
    }

    #[tokio::test]
    async fn a_close_disconnects_the_agents_participant() {
        let server = MockServer::start().await;
        token_endpoint(&server, 3600).await;
        conversation(&server, agent_on_it()).await;
        Mock::given(method("PATCH"))
            .and(path(
                "/api/v2/conversations/messages/conv-1/participants/p-agent",
            ))
            .and(body_json(json!({ "state": "disconnected" })))
            .respond_with(ResponseTemplate::new(202))
            .expect(1)
            .mount(&server)
            .await;
        genesys(&server)
            .disconnect_agent("conv-1", Some("user-a"))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_refused_transfer_carries_genesyss_reason() {
        let server = MockServer::start().await;
        token_endpoint(&server, 3600).await;
        conversation(&server, agent_on_it()).await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({
                "message": "The target user is not available", "code": "bad.request", "status": 400
            })))
            .mount(&server)
            .await;
        let err = genesys(&server)
            .transfer_to_agent("conv-1", "user-b")
            .await
            .unwrap_err();
        assert!(
            matches!(err, CallError::Rejected { status: 400, ref reason } if reason.contains("not available")),
            "{err:?}"
        );
    }
}
