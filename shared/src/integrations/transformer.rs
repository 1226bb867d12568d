//! The Outbound Transformer client: hands one outbound message over for delivery to WhatsApp.
//!
//! The contract (documented in the README): `POST {transformer.url}` with the JSON body
//! [`OutboundMessage`] and the header `Idempotency-Key: <message id>`, so the transformer can
//! drop a message it has already accepted when we retry after a timeout. A 2xx answer means
//! accepted; its JSON body may carry WhatsApp's id as `external_id`. Whether a failure is
//! worth retrying is decided once, for every client, by [`CallError`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::client::{CallError, ClientMetrics, Retry, ServiceClient};
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

#[derive(Debug, Clone)]
pub struct TransformerClient {
    client: ServiceClient,
    url: String,
}

impl TransformerClient {
    pub fn new(settings: &TransformerSettings, metrics: &ClientMetrics) -> anyhow::Result<Self> {
        Ok(Self {
            client: ServiceClient::new("transformer", settings.client(), metrics)?,
            url: settings.url.clone(),
        })
    }

    /// The longest one delivery attempt can take.
    pub fn timeout(&self) -> Duration {
        self.client.timeout()
    }

    /// False while its circuit is open.
    pub fn is_available(&self) -> bool {
        self.client.is_available()
    }

    /// One attempt: the outbox retries a retryable failure later, under a new lease.
    #[tracing::instrument(skip(self, message), fields(message_id = %message.message_id))]
    pub async fn deliver(&self, message: &OutboundMessage) -> Result<Accepted, CallError> {
        let answer = self
            .client
            .call("deliver", Retry::Once, |http| {
                http.post(&self.url)
                    .header("Idempotency-Key", message.message_id.to_string())
                    .json(message)
            })
            .await?;
        // An empty or unexpected body still means accepted; the id is a bonus.
        Ok(serde_json::from_slice(&answer.body).unwrap_or_default())
    }
}
