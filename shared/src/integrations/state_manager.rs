//! The State Manager: the platform's system of record for conversations and customers.
//!
//! The contract (documented in the README), relative to `state_manager.url`, every request
//! with `X-Tenant-Id: <tenant uuid>`, `Authorization: Bearer <state_manager.token>` when one
//! is configured, and the W3C trace context:
//!
//! - `GET /conversations/{state_manager_id}` → 200 [`RemoteConversation`], or 404;
//! - `GET /customers/{state_manager_id}` → 200 [`RemoteCustomer`], or 404;
//! - `POST /conversations/{state_manager_id}/changes` with a [`ConversationChange`] → 2xx;
//! - `PATCH /customers/{state_manager_id}` with a [`CustomerChange`] → 2xx.
//!
//! Writes carry `Idempotency-Key`: the same key for every attempt of one change, so a repeat
//! after a timeout is dropped by the State Manager.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use uuid::Uuid;

use super::client::{CallError, ClientMetrics, Retry, ServiceClient, base_url, endpoint};
use super::propagation::{ConversationChange, CustomerChange};
use crate::config::StateManagerSettings;
use crate::conversations::ConversationState;
use crate::ids::{AgentId, TenantId};

/// A conversation as the State Manager holds it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RemoteConversation {
    pub id: String,
    pub state: Option<ConversationState>,
    pub genesys_conversation_id: Option<String>,
    pub assigned_agent_id: Option<AgentId>,
    pub customer: RemoteCustomerRef,
}

/// The customer of a [`RemoteConversation`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RemoteCustomerRef {
    pub id: Option<String>,
    pub phone_e164: String,
    pub display_name: Option<String>,
}

/// A customer as the State Manager holds it: the profile takes what the portal lacks.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RemoteCustomer {
    pub id: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub phone_e164: Option<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, serde_json::Value>,
}

/// What the portal asks of the State Manager; [`HttpStateManager`] in production, a real
/// HTTP server in tests and in the development stack.
#[async_trait]
pub trait StateManager: Send + Sync + std::fmt::Debug {
    /// `None`: the State Manager does not know it.
    async fn conversation(
        &self,
        tenant: TenantId,
        id: &str,
    ) -> Result<Option<RemoteConversation>, CallError>;

    async fn customer(
        &self,
        tenant: TenantId,
        id: &str,
    ) -> Result<Option<RemoteCustomer>, CallError>;

    async fn conversation_changed(
        &self,
        tenant: TenantId,
        idempotency_key: Uuid,
        change: &ConversationChange,
    ) -> Result<(), CallError>;

    async fn customer_changed(
        &self,
        tenant: TenantId,
        idempotency_key: Uuid,
        change: &CustomerChange,
    ) -> Result<(), CallError>;

    /// False while its circuit is open.
    fn is_available(&self) -> bool;

    /// The longest one call can take.
    fn timeout(&self) -> Duration;
}

#[derive(Debug, Clone)]
pub struct HttpStateManager {
    client: ServiceClient,
    url: Url,
    token: Option<SecretString>,
}

impl HttpStateManager {
    /// `None` when `state_manager.url` is unset.
    pub fn from_settings(
        settings: &StateManagerSettings,
        metrics: &ClientMetrics,
    ) -> anyhow::Result<Option<Self>> {
        let Some(url) = &settings.url else {
            return Ok(None);
        };
        Ok(Some(Self {
            client: ServiceClient::new("state_manager", settings.client(), metrics)?,
            url: base_url(url)?,
            token: settings.token.clone(),
        }))
    }

    fn request(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        tenant: TenantId,
        path: &[&str],
    ) -> reqwest::RequestBuilder {
        let request = http
            .request(method, endpoint(&self.url, path))
            .header("X-Tenant-Id", tenant.to_string());
        match &self.token {
            Some(token) => request.bearer_auth(token.expose_secret()),
            None => request,
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        tenant: TenantId,
        path: &[&str],
    ) -> Result<Option<T>, CallError> {
        match self
            .client
            .call(operation, Retry::Safe, |http| {
                self.request(http, reqwest::Method::GET, tenant, path)
            })
            .await
        {
            Ok(answer) => answer.json("the state manager").map(Some),
            Err(CallError::Rejected { status, .. }) if status == StatusCode::NOT_FOUND.as_u16() => {
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }
}

#[async_trait]
impl StateManager for HttpStateManager {
    async fn conversation(
        &self,
        tenant: TenantId,
        id: &str,
    ) -> Result<Option<RemoteConversation>, CallError> {
        self.get("get_conversation", tenant, &["conversations", id])
            .await
    }

    async fn customer(
        &self,
        tenant: TenantId,
        id: &str,
    ) -> Result<Option<RemoteCustomer>, CallError> {
        self.get("get_customer", tenant, &["customers", id]).await
    }

    async fn conversation_changed(
        &self,
        tenant: TenantId,
        idempotency_key: Uuid,
        change: &ConversationChange,
    ) -> Result<(), CallError> {
        let id = change.state_manager_id.as_deref().unwrap_or_default();
        let path = ["conversations", id, "changes"];
        self.client
            .call("conversation_changed", Retry::Once, |http| {
                self.request(http, reqwest::Method::POST, tenant, &path)
                    .header("Idempotency-Key", idempotency_key.to_string())
                    .json(change)
            })
            .await
            .map(drop)
    }

    async fn customer_changed(
        &self,
        tenant: TenantId,
        idempotency_key: Uuid,
        change: &CustomerChange,
    ) -> Result<(), CallError> {
        let path = ["customers", change.state_manager_id.as_str()];
        self.client
            .call("customer_changed", Retry::Once, |http| {
                self.request(http, reqwest::Method::PATCH, tenant, &path)
                    .header("Idempotency-Key", idempotency_key.to_string())
                    .json(change)
            })
            .await
            .map(drop)
    }

    fn is_available(&self) -> bool {
        self.client.is_available()
    }

    fn timeout(&self) -> Duration {
        self.client.timeout()
    }
}
