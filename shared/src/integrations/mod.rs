//! The platform's HTTP services, each behind a small trait so the services take the trait and
//! tests and the development stack put real HTTP servers behind it: the State Manager, Genesys
//! Cloud and the Outbound Transformer, all called through [`client::ServiceClient`] (timeouts,
//! retries of what is safe to retry, a circuit breaker, trace context, metrics); and the
//! [`propagation`] of the portal's changes to them.

pub mod client;
pub mod genesys;
pub mod propagation;
pub mod state_manager;
pub mod transformer;

use std::sync::Arc;

use crate::config::Settings;
use client::ClientMetrics;
use genesys::{Genesys, GenesysCloud};
use state_manager::{HttpStateManager, StateManager};
use transformer::TransformerClient;

/// The clients of the platform's services a process uses, built from the settings.
#[derive(Debug, Clone)]
pub struct Integrations {
    pub transformer: TransformerClient,
    pub state_manager: Option<Arc<dyn StateManager>>,
    pub genesys: Option<Arc<dyn Genesys>>,
}

impl Integrations {
    pub fn from_settings(settings: &Settings, metrics: &ClientMetrics) -> anyhow::Result<Self> {
        Ok(Self {
            transformer: TransformerClient::new(&settings.transformer, metrics)?,
            state_manager: HttpStateManager::from_settings(&settings.state_manager, metrics)?
                .map(|c| Arc::new(c) as Arc<dyn StateManager>),
            genesys: GenesysCloud::from_settings(&settings.genesys, metrics)?
                .map(|c| Arc::new(c) as Arc<dyn Genesys>),
        })
    }

    /// Each service for `/readyz`: `ok`, `circuit open` (failing just now), or `not configured`.
    pub fn report(&self) -> serde_json::Value {
        let state = |available: Option<bool>| match available {
            None => "not configured",
            Some(true) => "ok",
            Some(false) => "circuit open",
        };
        serde_json::json!({
            "transformer": state(Some(self.transformer.is_available())),
            "state_manager": state(self.state_manager.as_ref().map(|c| c.is_available())),
            "genesys": state(self.genesys.as_ref().map(|c| c.is_available())),
        })
    }
}
