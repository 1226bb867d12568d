//! Signing keys from the Auth Service's JWKS document, cached.
//!
//! Keys are fetched on first use and kept for `cache_ttl`. A token with a `kid` we do not know
//! triggers a refetch (the Auth Service rotated its keys), but at most once per `min_refresh`,
//! so a flood of tokens with made-up `kid`s cannot turn into a flood of requests upstream.
//! When the endpoint fails, keys we already hold keep working; with none, the caller gets
//! `Unavailable` (503) rather than a misleading 401.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::{Mutex, RwLock};

use crate::{Error, Result};

pub(super) struct JwksCache {
    url: String,
    client: reqwest::Client,
    cache_ttl: Duration,
    min_refresh: Duration,
    keys: RwLock<Keys>,
    /// Serialises fetches: concurrent misses wait for one request instead of each sending one.
    fetching: Mutex<()>,
}

#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, (Option<Algorithm>, DecodingKey)>,
    fetched_at: Option<Instant>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    pub(super) fn new(
        url: String,
        cache_ttl: Duration,
        min_refresh: Duration,
        timeout: Duration,
    ) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(Error::internal)?;
        Ok(Self {
            url,
            client,
            cache_ttl,
            min_refresh,
            keys: RwLock::default(),
            fetching: Mutex::new(()),
        })
    }

    /// The key for `kid`, usable with `alg`.
    pub(super) async fn key(&self, kid: &str, alg: Algorithm) -> Result<DecodingKey> {
        if let Some(found) = self.lookup(kid, alg, |age| age < self.cache_ttl).await {
            return found;
        }
        let _guard = self.fetching.lock().await;
        // Another request may have refreshed while we waited for the lock.
        if let Some(found) = self.lookup(kid, alg, |age| age < self.min_refresh).await {
            return found;
        }
        let recently_fetched = self
            .keys
            .read()
            .await
            .fetched_at
            .is_some_and(|at| at.elapsed() < self.min_refresh);
        if !recently_fetched {
            match self.fetch().await {
                Ok(fresh) => *self.keys.write().await = fresh,
                Err(err) => {
                    tracing::warn!(error = %err, url = %self.url, "fetching the JWKS failed");
                    // Serve what we have, however old, rather than reject every token.
                    return match self.lookup(kid, alg, |_| true).await {
                        Some(found) => found,
                        None => Err(Error::Unavailable(
                            "the signing keys cannot be fetched".into(),
                        )),
                    };
                }
            }
        }
        self.lookup(kid, alg, |_| true).await.unwrap_or_else(|| {
            Err(Error::Unauthorized(
                "the token's key id (kid) is not known".into(),
            ))
        })
    }

    /// `Some` when the cache holds `kid` and is fresh by `fresh`; the inner result checks `alg`.
    async fn lookup(
        &self,
        kid: &str,
        alg: Algorithm,
        fresh: impl Fn(Duration) -> bool,
    ) -> Option<Result<DecodingKey>> {
        let keys = self.keys.read().await;
        let age = keys.fetched_at?.elapsed();
        if !fresh(age) {
            return None;
        }
        let (key_alg, key) = keys.by_kid.get(kid)?;
        Some(match key_alg {
            Some(key_alg) if *key_alg != alg => Err(Error::Unauthorized(
                "the token's algorithm does not match its key".into(),
            )),
            _ => Ok(key.clone()),
        })
    }

    async fn fetch(&self) -> anyhow::Result<Keys> {
        let set: JwkSet = self
            .client
            .get(&self.url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let mut by_kid = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            let alg = jwk
                .common
                .key_algorithm
                .and_then(|a| a.to_string().parse::<Algorithm>().ok());
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    by_kid.insert(kid, (alg, key));
                }
                Err(err) => tracing::warn!(%kid, error = %err, "skipping an unusable JWKS key"),
            }
        }
        tracing::info!(keys = by_kid.len(), url = %self.url, "fetched the JWKS");
        Ok(Keys {
            by_kid,
            fetched_at: Some(Instant::now()),
        })
    }
}
