//! Enriching a profile from the State Manager: with a short timeout, so a slow or dead State
//! Manager costs the profile at most that long (nothing at all while its circuit is open), and
//! a cache, so an agent opening the same customer again does not wait again.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;

use super::{CustomerProfile, Enrichment};
use crate::config::StateManagerSettings;
use crate::ids::TenantId;
use crate::integrations::state_manager::{RemoteCustomer, StateManager};

#[derive(Debug, Clone)]
pub struct Enricher {
    state_manager: Arc<dyn StateManager>,
    timeout: Duration,
    /// `None`: the State Manager does not know the customer (cached as well).
    cache: Cache<(TenantId, String), Option<Arc<RemoteCustomer>>>,
}

impl Enricher {
    pub fn new(state_manager: Arc<dyn StateManager>, settings: &StateManagerSettings) -> Self {
        Self {
            state_manager,
            timeout: Duration::from_millis(settings.enrichment_timeout_ms),
            cache: Cache::builder()
                .max_capacity(settings.enrichment_cache_entries)
                .time_to_live(Duration::from_secs(settings.enrichment_cache_secs))
                .build(),
        }
    }

    /// Adds what the State Manager holds and the portal does not, and says whether it could.
    pub(super) async fn enrich(&self, tenant: TenantId, profile: &mut CustomerProfile) {
        let Some(id) = profile.external_ids.state_manager.clone() else {
            profile.enrichment = Enrichment::NotLinked;
            return;
        };
        let key = (tenant, id);
        let remote = match self.cache.get(&key).await {
            Some(cached) => cached,
            None => {
                let fetched =
                    tokio::time::timeout(self.timeout, self.state_manager.customer(tenant, &key.1))
                        .await;
                match fetched {
                    Ok(Ok(remote)) => {
                        let remote = remote.map(Arc::new);
                        self.cache.insert(key, remote.clone()).await;
                        remote
                    }
                    Ok(Err(err)) => {
                        tracing::info!(error = %err, "profile answered without the State Manager");
                        profile.enrichment = Enrichment::Unavailable;
                        return;
                    }
                    Err(_) => {
                        tracing::info!(
                            timeout_ms = self.timeout.as_millis() as u64,
                            "the State Manager did not answer in time; profile answered without it"
                        );
                        profile.enrichment = Enrichment::Unavailable;
                        return;
                    }
                }
            }
        };
        let Some(remote) = remote else {
            profile.enrichment = Enrichment::NotLinked;
            return;
        };
        if profile.email.is_none() {
            profile.email.clone_from(&remote.email);
        }
        for (key, value) in &remote.attributes {
            profile
                .attributes
                .entry(key.clone())
                .or_insert_with(|| value.clone());
        }
        profile.enrichment = Enrichment::Enriched;
    }
}
