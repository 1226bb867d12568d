//! Authentication: from a bearer token to a [`TenantCtx`].
//!
//! The token is verified with the configured keys (HS256 secret in development, RS256/ES256 from
//! the Auth Service's JWKS in production); the algorithm is fixed by configuration, never taken
//! from the token alone, which closes `alg: none` and HS/RS key confusion. Then the agent must
//! exist and be active in the token's tenant. The effective role is the lower of the token's
//! and the agent record's, so a demotion takes effect before old tokens expire.

mod claims;
mod jwks;

pub use claims::Claims;

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;

use crate::agents::{self, Role};
use crate::config::AuthSettings;
use crate::ids::{AgentId, TenantId};
use crate::tenancy::{Db, TenantCtx};
use crate::{Error, Result};

use jwks::JwksCache;

#[derive(Debug, Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    keys: KeySource,
    issuer: String,
    audience: String,
    leeway: u64,
    db: Db,
}

enum KeySource {
    Hs256(DecodingKey),
    Jwks(JwksCache),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Hs256(_) => f.write_str("Hs256(<redacted>)"),
            Self::Jwks(cache) => f.debug_tuple("Jwks").field(cache).finish(),
        }
    }
}

/// Algorithms accepted from a JWKS; HS256 is accepted only with the configured secret.
const JWKS_ALGORITHMS: [Algorithm; 2] = [Algorithm::RS256, Algorithm::ES256];

impl Authenticator {
    pub fn new(settings: &AuthSettings, db: Db) -> Result<Self> {
        let keys = match (&settings.jwt_secret, &settings.jwks_url) {
            (Some(secret), None) => {
                KeySource::Hs256(DecodingKey::from_secret(secret.expose_secret().as_bytes()))
            }
            (None, Some(url)) => KeySource::Jwks(JwksCache::new(
                url.clone(),
                Duration::from_secs(settings.jwks_cache_secs),
                Duration::from_secs(settings.jwks_min_refresh_secs),
                Duration::from_millis(settings.jwks_timeout_ms),
            )?),
            _ => {
                return Err(Error::invalid(
                    "auth.jwt_secret",
                    "set exactly one of auth.jwt_secret and auth.jwks_url",
                ));
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                keys,
                issuer: settings.issuer.clone(),
                audience: settings.audience.clone(),
                leeway: settings.leeway_secs,
                db,
            }),
        })
    }

    /// Verifies the token and the agent behind it.
    pub async fn authenticate(&self, token: &str) -> Result<TenantCtx> {
        Ok(self.authenticate_session(token).await?.0)
    }

    /// As [`Authenticator::authenticate`], also returning when the token expires (seconds since
    /// the epoch): a long-lived connection must end then unless it is given a fresh token.
    #[tracing::instrument(skip_all, fields(tenant_id, agent_id))]
    pub async fn authenticate_session(&self, token: &str) -> Result<(TenantCtx, i64)> {
        let claims = self.verify(token).await?;
        let span = tracing::Span::current();
        span.record("tenant_id", tracing::field::display(claims.tenant_id));
        span.record("agent_id", tracing::field::display(claims.sub));

        let token_role = claims
            .highest_role()
            .ok_or_else(|| Error::Forbidden("the token grants no known role".into()))?;
        let tenant = TenantId(claims.tenant_id);
        let agent_id = AgentId(claims.sub);
        let mut tx = self.inner.db.begin_for(tenant).await?;
        let agent = agents::find(&mut tx, agent_id).await?;
        tx.commit().await?;
        match agent {
            Some(agent) if agent.active => Ok((
                TenantCtx::new(tenant, agent_id, token_role.min(agent.role)),
                claims.exp,
            )),
            _ => Err(Error::Forbidden(
                "the token's subject is not an active agent of its tenant".into(),
            )),
        }
    }

    /// Checks signature, algorithm, issuer, audience and validity period; returns the claims.
    pub async fn verify(&self, token: &str) -> Result<Claims> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| unauthorized("the token is malformed"))?;
        let key = match &self.inner.keys {
            KeySource::Hs256(key) => {
                if header.alg != Algorithm::HS256 {
                    return Err(unauthorized(&format!(
                        "algorithm {:?} is not accepted",
                        header.alg
                    )));
                }
                key.clone()
            }
            KeySource::Jwks(cache) => {
                if !JWKS_ALGORITHMS.contains(&header.alg) {
                    return Err(unauthorized(&format!(
                        "algorithm {:?} is not accepted",
                        header.alg
                    )));
                }
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| unauthorized("the token has no key id (kid)"))?;
                cache.key(kid, header.alg).await?
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.inner.issuer]);
        validation.set_audience(&[&self.inner.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.inner.leeway;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
            unauthorized(match e.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::ImmatureSignature => "the token is not valid yet",
                ErrorKind::InvalidIssuer => "the token's issuer is not accepted",
                ErrorKind::InvalidAudience => "the token's audience is not accepted",
                ErrorKind::InvalidSignature => "the token's signature is invalid",
                ErrorKind::InvalidAlgorithm => "the token's algorithm does not match its key",
                ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim",
                _ => "the token is malformed",
            })
        })?;
        Ok(data.claims)
    }
}

fn unauthorized(reason: &str) -> Error {
    Error::Unauthorized(reason.to_string())
}

/// Mints an HS256 token, for development and demos only: production tokens come from the
/// Auth Service. Refuses when the service verifies with a JWKS, where such a token would be
/// useless and its minting a sign of a misconfigured environment.
pub fn mint_dev_token(
    settings: &AuthSettings,
    tenant_id: TenantId,
    agent_id: AgentId,
    roles: &[Role],
    ttl: Duration,
) -> Result<String> {
    let secret = match (&settings.jwt_secret, &settings.jwks_url) {
        (Some(secret), None) => secret,
        _ => {
            return Err(Error::invalid(
                "auth.jwks_url",
                "development tokens can only be minted when the service verifies HS256 with auth.jwt_secret",
            ));
        }
    };
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: agent_id.0,
        tenant_id: tenant_id.0,
        roles: roles.iter().map(|r| r.as_str().to_string()).collect(),
        exp: now + ttl.as_secs() as i64,
        nbf: Some(now),
        iat: Some(now),
        iss: settings.issuer.clone(),
        aud: claims::Audience::One(settings.audience.clone()),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose_secret().as_bytes()),
    )
    .map_err(Error::internal)
}
