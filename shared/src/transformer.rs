//! The Outbound Transformer client: hands one outbound message over for delivery to WhatsApp.
//!
//! The contract (documented in the README): `POST {transformer.url}` with the JSON body
//! [`OutboundMessage`] and the header `Idempotency-Key: <message id>`, so the transformer can
//! drop a message it has already accepted when we retry after a timeout. A 2xx answer means
//! accepted; its JSON body may carry WhatsApp's id as `external_id`. Whether a failure is
//! worth retrying is decided here, once, by [`DeliveryError`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use crate::config::TransformerSettings;
use crate::ids::{AgentId, ConversationId, MessageId, TenantId};
use crate::messages::TemplateContent;

/// What the transformer receives for one message.
#[derive(Debug, Clone, Serialize)]
pub struct OutboundMessage {
    pub message_id: MessageId,
    pub tenant_id: TenantId,
    pub conversation_id: ConversationId,
    pub state_manager_id: Option<String>,
    pub genesys_conversation_id: Option<String>,
    /// The customer's number, E.164.
    pub to: Option<String>,
    pub sender_agent_id: Option<AgentId>,
    pub content: OutboundContent,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum OutboundContent {
    Text {
        text: String,
    },
    Template {
        template: TemplateContent,
        text: String,
    },
}

/// The transformer took the message.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Accepted {
    pub external_id: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum DeliveryError {
    /// The transformer refused the message (a 4xx): sending it again will not help.
    #[error("{0}")]
    Rejected(String),
    /// A timeout, a connection failure, a 5xx, 408 or 429: worth another attempt later.
    #[error("{reason}")]
    Retryable {
        reason: String,
        /// The transformer's `Retry-After`, if it gave one in seconds.
        retry_after: Option<Duration>,
    },
}

#[derive(Debug, Clone)]
pub struct TransformerClient {
    http: reqwest::Client,
    url: String,
    timeout: Duration,
}

/// How much of an error response body is kept in a failure reason.
const BODY_EXCERPT_CHARS: usize = 300;

impl TransformerClient {
    pub fn new(settings: &TransformerSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .connect_timeout(Duration::from_millis(settings.timeout_ms.min(5000)))
            .user_agent(concat!("agent-portal/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            url: settings.url.clone(),
            timeout: Duration::from_millis(settings.timeout_ms),
        })
    }

    /// The longest one delivery attempt can take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    #[tracing::instrument(skip(self, message), fields(otel.kind = "client", http.request.method = "POST", message_id = %message.message_id))]
    pub async fn deliver(&self, message: &OutboundMessage) -> Result<Accepted, DeliveryError> {
        let mut trace = http::HeaderMap::new();
        crate::telemetry::inject_context(&mut trace);
        let response = self
            .http
            .post(&self.url)
            .headers(trace)
            .header("Idempotency-Key", message.message_id.to_string())
            .json(message)
            .send()
            .await
            .map_err(|e| DeliveryError::Retryable {
                reason: if e.is_timeout() {
                    "the transformer did not answer in time".to_string()
                } else {
                    format!("could not reach the transformer: {e}")
                },
                retry_after: None,
            })?;
        let status = response.status();
        if status.is_success() {
            // An empty or unexpected body still means accepted; the id is a bonus.
            let body = response.bytes().await.unwrap_or_default();
            return Ok(serde_json::from_slice(&body).unwrap_or_default());
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.text().await.unwrap_or_default();
        let excerpt: String = body.chars().take(BODY_EXCERPT_CHARS).collect();
        let reason = format!("the transformer answered {status}: {excerpt}");
        let retryable = status.is_server_error()
            || status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS;
        Err(if retryable {
            DeliveryError::Retryable {
                reason,
                retry_after,
            }
        } else {
            DeliveryError::Rejected(reason)
        })
    }
}
