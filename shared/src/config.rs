//! Layered configuration: compiled-in defaults, then an optional file, then `PORTAL__` variables.
//!
//! Every binary loads the same [`Settings`]; each reads the sections it needs. Values are
//! checked once at start so a bad deployment fails with the name of the key at fault instead
//! of misbehaving later. Secrets are [`SecretString`]s: `Debug` and logs never show them.

use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::integrations::client::ClientSettings;

/// Environment variables with this prefix override everything else (`PORTAL__HTTP__PORT`).
pub const ENV_PREFIX: &str = "PORTAL";
/// Names an optional configuration file (TOML) read before the environment.
pub const CONFIG_FILE_ENV: &str = "PORTAL_CONFIG_FILE";

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub environment: Environment,
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub amqp: AmqpSettings,
    pub consumer: ConsumerSettings,
    pub auth: AuthSettings,
    pub transformer: TransformerSettings,
    pub dispatcher: DispatcherSettings,
    pub state_manager: StateManagerSettings,
    pub genesys: GenesysSettings,
    pub propagation: DispatcherSettings,
    pub rate_limit: RateLimitSettings,
    pub events: EventsSettings,
    pub presence: PresenceSettings,
    pub realtime: RealtimeSettings,
    pub whatsapp: WhatsappSettings,
    pub templates: TemplatesSettings,
    pub telemetry: TelemetrySettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    pub host: String,
    /// 0 lets the operating system choose (tests); the default is the service's own port.
    pub port: Option<u16>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long in-flight requests get to finish after SIGTERM.
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub max_connections: u32,
    pub min_connections: u32,
    pub acquire_timeout_ms: u64,
    /// Per-statement limit set on every connection, so one slow query cannot hold a connection forever.
    pub statement_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    pub url: SecretString,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AmqpSettings {
    pub url: SecretString,
}

/// The queue consumer (`bins/queue-consumer`) of `agent.notifications`.
#[derive(Debug, Clone, Deserialize)]
pub struct ConsumerSettings {
    /// The queue; its dead-letter exchange, dead-letter queue and wait queue are named after it
    /// (`{queue}.dlx`, `{queue}.dlq`, `{queue}.wait`).
    pub queue: String,
    /// Unacknowledged messages the broker may hand this process at once.
    pub prefetch: u16,
    /// Lanes applying messages at once. Each tenant's messages go to one lane, so they are
    /// applied in the order they arrived, and a backlog is applied in batches.
    pub concurrency: u16,
    /// A lane that finds more than one message waiting is busy: it waits up to this long for
    /// its batch to fill before applying it, because a transaction's fixed cost dominates a
    /// small batch's. A lone message on an idle lane is applied at once. 0 turns waiting off.
    pub batch_linger_ms: u64,
    /// The queue's `x-delivery-limit`: a message delivered this often without being
    /// acknowledged (the consumer keeps crashing on it) is dead-lettered by the broker.
    pub delivery_limit: u32,
    /// Reconnecting to the broker: the first delay, doubled up to the maximum, with jitter.
    pub reconnect_initial_ms: u64,
    pub reconnect_max_ms: u64,
    /// Retrying a message whose transaction failed for a transient reason (Postgres down, a
    /// concurrent transaction won): the first delay, doubled up to the maximum, with jitter.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// A message naming a conversation or agent the tenant does not have yet waits this long in
    /// the wait queue before it is tried again ...
    pub missing_retry_ms: u64,
    /// ... and is dead-lettered (`unknown_reference`) once this long has passed since it was
    /// first received.
    pub missing_wait_secs: u64,
    /// A receipt for a WhatsApp id no message has is kept this long, then dead-lettered
    /// (`unknown_message`).
    pub receipt_wait_secs: u64,
    /// How often kept receipts and processed ids are swept, and the queue depth sampled.
    pub sweep_interval_secs: u64,
    /// Applied `event_id`s are remembered this long (a redelivery older than this would apply
    /// again).
    pub processed_retention_hours: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    /// HS256 shared secret (development). Exactly one of this and `jwks_url` is set.
    pub jwt_secret: Option<SecretString>,
    /// JWKS document of the Auth Service (production): RS256 and ES256 keys.
    pub jwks_url: Option<String>,
    pub issuer: String,
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// How long fetched keys are trusted before they are fetched again.
    pub jwks_cache_secs: u64,
    /// At most one JWKS fetch per this interval, however many unknown `kid`s arrive.
    pub jwks_min_refresh_secs: u64,
    pub jwks_timeout_ms: u64,
}

/// The Outbound Transformer, which hands our messages to WhatsApp.
#[derive(Debug, Clone, Deserialize)]
pub struct TransformerSettings {
    /// The endpoint outbound messages are POSTed to.
    pub url: String,
    /// One delivery attempt's limit, connection included.
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// Consecutive failed attempts that open the circuit: deliveries then wait without calling.
    pub circuit_failures: u32,
    /// How long the circuit stays open before one attempt probes the transformer again.
    pub circuit_open_ms: u64,
}

impl TransformerSettings {
    /// Deliveries are attempted once per claim: the outbox retries.
    pub fn client(&self) -> ClientSettings {
        client_settings(
            [self.timeout_ms, self.connect_timeout_ms],
            1,
            [0, 0],
            self.circuit_failures,
            self.circuit_open_ms,
        )
    }
}

/// The State Manager, the platform's system of record for conversations and customers.
#[derive(Debug, Clone, Deserialize)]
pub struct StateManagerSettings {
    /// Its base URL (`https://state-manager.internal/v1`); unset, nothing calls it: profiles are
    /// not enriched, changes are not propagated to it, and unknown conversations are waited for.
    pub url: Option<String>,
    /// Sent as `Authorization: Bearer …` when set.
    pub token: Option<SecretString>,
    /// One request's limit, connection included.
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// Attempts of a read (the consumer fetching a conversation), with backoff between them.
    pub max_attempts: u32,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    pub circuit_failures: u32,
    pub circuit_open_ms: u64,
    /// The profile waits at most this long for the State Manager's fields, then answers without.
    pub enrichment_timeout_ms: u64,
    /// How long a customer's State Manager fields are reused before they are fetched again.
    pub enrichment_cache_secs: u64,
    /// Customers whose fields are cached, at most.
    pub enrichment_cache_entries: u64,
}

impl StateManagerSettings {
    pub fn client(&self) -> ClientSettings {
        client_settings(
            [self.timeout_ms, self.connect_timeout_ms],
            self.max_attempts,
            [self.backoff_initial_ms, self.backoff_max_ms],
            self.circuit_failures,
            self.circuit_open_ms,
        )
    }
}

/// A service client's settings from the keys every service section has (milliseconds).
fn client_settings(
    [timeout_ms, connect_timeout_ms]: [u64; 2],
    max_attempts: u32,
    [backoff_initial_ms, backoff_max_ms]: [u64; 2],
    circuit_failures: u32,
    circuit_open_ms: u64,
) -> ClientSettings {
    ClientSettings {
        timeout: Duration::from_millis(timeout_ms),
        connect_timeout: Duration::from_millis(connect_timeout_ms),
        max_attempts,
        backoff_initial: Duration::from_millis(backoff_initial_ms),
        backoff_max: Duration::from_millis(backoff_max_ms),
        circuit_failures,
        circuit_open: Duration::from_millis(circuit_open_ms),
    }
}

/// Genesys Cloud, where interactions are routed: transfers and disconnects are made there too.
#[derive(Debug, Clone, Deserialize)]
pub struct GenesysSettings {
    /// The region's API base URL (`https://api.mypurecloud.de`); unset, nothing calls Genesys.
    pub api_url: Option<String>,
    /// The region's login base URL (`https://login.mypurecloud.de`), for the OAuth token.
    pub login_url: Option<String>,
    /// An OAuth client with the client-credentials grant.
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    /// A token is refreshed this long before it expires.
    pub token_refresh_margin_secs: u64,
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// Attempts of a read (the conversation's participants), with backoff between them.
    pub max_attempts: u32,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    pub circuit_failures: u32,
    pub circuit_open_ms: u64,
}

impl GenesysSettings {
    pub fn client(&self) -> ClientSettings {
        client_settings(
            [self.timeout_ms, self.connect_timeout_ms],
            self.max_attempts,
            [self.backoff_initial_ms, self.backoff_max_ms],
            self.circuit_failures,
            self.circuit_open_ms,
        )
    }
}

/// An outbox dispatcher: `dispatcher` delivers pending messages (see the README's send
/// lifecycle), `propagation` the changes the State Manager and Genesys must hear of.
#[derive(Debug, Clone, Deserialize)]
pub struct DispatcherSettings {
    /// Run a dispatcher in this process. Any number may run; each message is delivered by one.
    pub enabled: bool,
    /// Deliveries in flight at once in this process.
    pub concurrency: u32,
    /// How often to look for due messages when nothing wakes the dispatcher sooner.
    pub poll_interval_ms: u64,
    /// How long a claimed message is left to its dispatcher before another may take it over
    /// (a dispatcher that died mid-attempt). Must exceed the timeout of the service it calls.
    pub lease_ms: u64,
    /// Attempts before a message that keeps meeting 5xx or timeouts is marked failed.
    pub max_attempts: u32,
    /// Delay before the first retry; doubled each time up to `backoff_max_ms`, with jitter.
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
}

/// REST rate limits (see [`crate::rate_limit`]): requests per second and burst, per tenant and
/// per agent; a tenant's own limits (`tenants.rate_limit_*`) replace the defaults.
#[derive(Debug, Clone, Deserialize)]
pub struct RateLimitSettings {
    pub enabled: bool,
    pub tenant_per_sec: u32,
    pub tenant_burst: u32,
    pub agent_per_sec: u32,
    pub agent_burst: u32,
    /// Prefix of the Redis keys (`{prefix}:tenant:{id}`, `{prefix}:agent:{id}`).
    pub key_prefix: String,
    /// How long a tenant's own limits are used before they are read again.
    pub tenant_limits_cache_secs: u64,
}

/// Publishing event rows to Redis pub/sub for the realtime service.
#[derive(Debug, Clone, Deserialize)]
pub struct EventsSettings {
    /// Publish this process's events right after their transactions commit.
    pub publish: bool,
    /// The Redis pub/sub channel every event goes to.
    pub channel: String,
    /// Run a relay in this process: it publishes events still unpublished after `relay_min_age_ms`.
    pub relay_enabled: bool,
    pub relay_interval_ms: u64,
    /// How old an unpublished event must be before the relay takes it from its publisher.
    pub relay_min_age_ms: u64,
    /// How long published events are kept for replay; the relay deletes older ones. A client
    /// that reconnects after a longer gap is told to resync.
    pub retention_hours: u64,
}

/// Which agents are connected to the realtime service (kept in Redis).
#[derive(Debug, Clone, Deserialize)]
pub struct PresenceSettings {
    /// A connection counts as online this long after its last refresh.
    pub ttl_secs: u64,
}

/// The Socket.IO service for agents' browsers (`bins/realtime`).
#[derive(Debug, Clone, Deserialize)]
pub struct RealtimeSettings {
    /// Off: the service refuses every connection with `realtime is disabled` and reports
    /// itself disabled; the API is unaffected (browsers fall back to polling it).
    pub enabled: bool,
    /// A reconnecting client that missed more events than this is told to resync instead.
    pub replay_max_events: u32,
    /// How long an event that arrived ahead of a missing one waits for it before the missing
    /// one is read from Postgres (its publisher may have died; the relay is slower).
    pub gap_wait_ms: u64,
    /// Packets queued for one socket; a socket that falls this far behind is disconnected
    /// and catches up by replay when it reconnects.
    pub max_buffered_packets: usize,
    /// Engine.IO heartbeat: a ping every `ping_interval_ms`, and a client that has not
    /// answered within `ping_timeout_ms` is gone.
    pub ping_interval_ms: u64,
    pub ping_timeout_ms: u64,
    /// The largest packet a client may send; a larger one closes its connection (clients send
    /// only small requests: join, leave, a token).
    pub max_payload_bytes: u64,
    /// What one socket may emit: this many events per second, with bursts of `emit_burst`;
    /// an emit over it is answered with a 429 and not done.
    pub emits_per_sec: u32,
    pub emit_burst: u32,
    /// Conversations one connection may have joined at once.
    pub max_joined_conversations: usize,
    /// Live connections one agent may hold, on every pod together (a tab each); another is
    /// refused at the handshake. Not enforced while Redis is away.
    pub max_connections_per_agent: u64,
}

/// The WhatsApp Business Management API (Meta's Graph API), where templates come from.
#[derive(Debug, Clone, Deserialize)]
pub struct WhatsappSettings {
    /// Tests and the local stand-in point it elsewhere.
    pub api_base_url: String,
    pub api_version: String,
    /// Encrypts tenants' access tokens at rest: 32 bytes, base64. Needed to store a token and to
    /// sync templates; without it the rest of the service works.
    pub token_key: Option<SecretString>,
    /// One request's limit, connection included.
    pub timeout_ms: u64,
    /// Attempts per request on throttling, 5xx and timeouts, before the tenant's sync fails.
    pub max_attempts: u32,
    /// Retry delay: doubled per attempt up to `backoff_max_ms`, with jitter; a retry hint from
    /// WhatsApp wins when longer (up to the maximum).
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TemplatesSettings {
    /// How long a tenant's template list stays in the Redis cache.
    pub cache_ttl_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TelemetrySettings {
    /// `json` (production) or `pretty` (a terminal).
    pub log_format: LogFormat,
    /// A `tracing` filter, e.g. `info,sqlx=warn`; `RUST_LOG` wins when set.
    pub log_filter: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// The configuration could not be loaded or is invalid; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

const DEFAULTS: &str = r#"
environment = "production"

[http]
host = "0.0.0.0"
max_body_bytes = 1048576
shutdown_grace_secs = 20

[database]
url = "postgres://portal_api@127.0.0.1:5432/portal"
max_connections = 20
min_connections = 0
acquire_timeout_ms = 3000
statement_timeout_ms = 5000

[redis]
url = "redis://127.0.0.1:6379"

[amqp]
url = "amqp://guest:guest@127.0.0.1:5672/%2f"

[consumer]
queue = "agent.notifications"
prefetch = 2048
concurrency = 16
batch_linger_ms = 100
delivery_limit = 20
reconnect_initial_ms = 500
reconnect_max_ms = 30000
retry_initial_ms = 100
retry_max_ms = 10000
missing_retry_ms = 5000
missing_wait_secs = 300
receipt_wait_secs = 3600
sweep_interval_secs = 30
processed_retention_hours = 336

[auth]
issuer = "agent-portal-auth"
audience = "agent-portal"
leeway_secs = 30
jwks_cache_secs = 600
jwks_min_refresh_secs = 30
jwks_timeout_ms = 3000

[transformer]
url = "http://127.0.0.1:8090/messages"
timeout_ms = 10000
connect_timeout_ms = 2000
circuit_failures = 5
circuit_open_ms = 5000

[state_manager]
timeout_ms = 3000
connect_timeout_ms = 1000
max_attempts = 3
backoff_initial_ms = 100
backoff_max_ms = 2000
circuit_failures = 5
circuit_open_ms = 5000
enrichment_timeout_ms = 300
enrichment_cache_secs = 60
enrichment_cache_entries = 10000

[genesys]
token_refresh_margin_secs = 60
timeout_ms = 5000
connect_timeout_ms = 1000
max_attempts = 3
backoff_initial_ms = 100
backoff_max_ms = 2000
circuit_failures = 5
circuit_open_ms = 5000

[propagation]
enabled = true
concurrency = 8
poll_interval_ms = 1000
lease_ms = 60000
max_attempts = 10
backoff_initial_ms = 1000
backoff_max_ms = 60000

[dispatcher]
enabled = true
concurrency = 16
poll_interval_ms = 1000
lease_ms = 30000
max_attempts = 10
backoff_initial_ms = 1000
backoff_max_ms = 60000

[rate_limit]
enabled = true
tenant_per_sec = 500
tenant_burst = 1000
agent_per_sec = 20
agent_burst = 40
key_prefix = "portal:ratelimit"
tenant_limits_cache_secs = 60

[events]
publish = true
channel = "portal:events"
relay_enabled = true
relay_interval_ms = 1000
relay_min_age_ms = 2000
retention_hours = 72

[presence]
ttl_secs = 60

[realtime]
enabled = true
replay_max_events = 5000
gap_wait_ms = 250
max_buffered_packets = 1024
ping_interval_ms = 25000
ping_timeout_ms = 20000
max_payload_bytes = 16384
emits_per_sec = 10
emit_burst = 30
max_joined_conversations = 100
max_connections_per_agent = 20

[whatsapp]
api_base_url = "https://graph.facebook.com"
api_version = "v23.0"
timeout_ms = 10000
max_attempts = 5
backoff_initial_ms = 1000
backoff_max_ms = 60000

[templates]
cache_ttl_secs = 86400

[telemetry]
log_format = "json"
log_filter = "info"
"#;

impl Settings {
    /// Defaults, then the file named by `PORTAL_CONFIG_FILE` (if any), then `PORTAL__*` variables.
    pub fn load() -> Result<Self, ConfigError> {
        let file = std::env::var(CONFIG_FILE_ENV).ok();
        Self::load_from(file.as_deref().map(Path::new), std::env::vars())
    }

    /// As [`Settings::load`], with the file and the environment given (tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).required(true));
        }
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(env)),
        );
        let settings: Settings = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("{key}: {why}")));
        if self.database.max_connections == 0 {
            return bad("database.max_connections", "must be at least 1");
        }
        if self.database.min_connections > self.database.max_connections {
            return bad(
                "database.min_connections",
                "must not exceed database.max_connections",
            );
        }
        for (key, url, schemes) in [
            (
                "database.url",
                &self.database.url,
                &["postgres", "postgresql"][..],
            ),
            ("redis.url", &self.redis.url, &["redis", "rediss"][..]),
            ("amqp.url", &self.amqp.url, &["amqp", "amqps"][..]),
        ] {
            let scheme = url.expose_secret().split("://").next().unwrap_or_default();
            if !url.expose_secret().contains("://") || !schemes.contains(&scheme) {
                return bad(
                    key,
                    &format!("must be a URL starting with {}://", schemes.join(":// or ")),
                );
            }
        }
        match (&self.auth.jwt_secret, &self.auth.jwks_url) {
            (Some(_), Some(_)) => {
                return bad(
                    "auth.jwt_secret",
                    "set either auth.jwt_secret (HS256) or auth.jwks_url, not both",
                );
            }
            (None, None) => {
                return bad(
                    "auth.jwt_secret",
                    "one of auth.jwt_secret (HS256) or auth.jwks_url must be set",
                );
            }
            (Some(secret), None) if secret.expose_secret().len() < 32 => {
                return bad("auth.jwt_secret", "must be at least 32 bytes long");
            }
            (None, Some(url)) if !(url.starts_with("https://") || url.starts_with("http://")) => {
                return bad("auth.jwks_url", "must be an http(s) URL");
            }
            _ => {}
        }
        if self.auth.issuer.is_empty() {
            return bad("auth.issuer", "must not be empty");
        }
        if self.auth.audience.is_empty() {
            return bad("auth.audience", "must not be empty");
        }
        if self.http.max_body_bytes == 0 {
            return bad("http.max_body_bytes", "must be at least 1");
        }
        let transformer = &self.transformer;
        if !(transformer.url.starts_with("http://") || transformer.url.starts_with("https://")) {
            return bad("transformer.url", "must be an http(s) URL");
        }
        if transformer.timeout_ms == 0 {
            return bad("transformer.timeout_ms", "must be at least 1");
        }
        let whatsapp = &self.whatsapp;
        if !(whatsapp.api_base_url.starts_with("https://")
            || whatsapp.api_base_url.starts_with("http://"))
        {
            return bad("whatsapp.api_base_url", "must be an http(s) URL");
        }
        if whatsapp.max_attempts == 0 || whatsapp.timeout_ms == 0 {
            return bad(
                "whatsapp.max_attempts",
                "max_attempts and timeout_ms must be at least 1",
            );
        }
        if let Some(key) = &whatsapp.token_key
            && crate::whatsapp::TokenCipher::new(key).is_err()
        {
            return bad("whatsapp.token_key", "must be 32 bytes, base64-encoded");
        }
        if self.templates.cache_ttl_secs == 0 {
            return bad("templates.cache_ttl_secs", "must be at least 1");
        }
        let realtime = &self.realtime;
        if realtime.max_buffered_packets == 0 {
            return bad("realtime.max_buffered_packets", "must be at least 1");
        }
        if realtime.ping_interval_ms == 0 || realtime.ping_timeout_ms == 0 {
            return bad(
                "realtime.ping_interval_ms",
                "ping_interval_ms and ping_timeout_ms must be at least 1",
            );
        }
        if realtime.max_payload_bytes < 1024
            || realtime.emits_per_sec == 0
            || realtime.emit_burst == 0
            || realtime.max_joined_conversations == 0
            || realtime.max_connections_per_agent == 0
        {
            return bad(
                "realtime.max_payload_bytes",
                "max_payload_bytes must be at least 1024, and emits_per_sec, emit_burst, max_joined_conversations and max_connections_per_agent at least 1",
            );
        }
        let consumer = &self.consumer;
        if consumer.queue.is_empty() || consumer.queue.len() > 200 {
            return bad("consumer.queue", "must be 1 to 200 characters");
        }
        if consumer.prefetch == 0 || consumer.concurrency == 0 {
            return bad(
                "consumer.prefetch",
                "prefetch and concurrency must be at least 1",
            );
        }
        if consumer.delivery_limit == 0 {
            return bad("consumer.delivery_limit", "must be at least 1");
        }
        // Longer would hold deliveries past any sensible latency, and SIGTERM's grace with them.
        if consumer.batch_linger_ms > 1000 {
            return bad("consumer.batch_linger_ms", "must be at most 1000");
        }
        if consumer.missing_retry_ms == 0 || consumer.sweep_interval_secs == 0 {
            return bad(
                "consumer.missing_retry_ms",
                "missing_retry_ms and sweep_interval_secs must be at least 1",
            );
        }
        let integrations = [
            (
                "state_manager",
                "url",
                self.state_manager.url.as_ref(),
                self.state_manager.timeout_ms,
            ),
            (
                "genesys",
                "api_url",
                self.genesys.api_url.as_ref(),
                self.genesys.timeout_ms,
            ),
            (
                "genesys",
                "login_url",
                self.genesys.login_url.as_ref(),
                self.genesys.timeout_ms,
            ),
        ];
        for (service, key, url, timeout_ms) in integrations {
            if url.is_some_and(|u| !(u.starts_with("http://") || u.starts_with("https://"))) {
                return bad(&format!("{service}.{key}"), "must be an http(s) URL");
            }
            if timeout_ms == 0 {
                return bad(&format!("{service}.timeout_ms"), "must be at least 1");
            }
        }
        for (key, circuit_open_ms) in [
            (
                "transformer.circuit_open_ms",
                self.transformer.circuit_open_ms,
            ),
            (
                "state_manager.circuit_open_ms",
                self.state_manager.circuit_open_ms,
            ),
            ("genesys.circuit_open_ms", self.genesys.circuit_open_ms),
        ] {
            if circuit_open_ms < 1000 {
                return bad(key, "must be at least 1000");
            }
        }
        if self.state_manager.max_attempts == 0 || self.genesys.max_attempts == 0 {
            return bad(
                "state_manager.max_attempts",
                "max_attempts must be at least 1",
            );
        }
        if self.genesys.api_url.is_some()
            && (self.genesys.login_url.is_none()
                || self.genesys.client_id.is_none()
                || self.genesys.client_secret.is_none())
        {
            return bad(
                "genesys.client_id",
                "genesys.api_url needs genesys.login_url, genesys.client_id and genesys.client_secret",
            );
        }
        // The longest attempt a propagation makes: Genesys's token, participants, then the change.
        let propagation_timeout = self
            .state_manager
            .timeout_ms
            .max(3 * self.genesys.timeout_ms);
        for (key, dispatcher, timeout_ms) in [
            ("dispatcher", &self.dispatcher, transformer.timeout_ms),
            ("propagation", &self.propagation, propagation_timeout),
        ] {
            if dispatcher.concurrency == 0 {
                return bad(&format!("{key}.concurrency"), "must be at least 1");
            }
            if dispatcher.poll_interval_ms == 0 {
                return bad(&format!("{key}.poll_interval_ms"), "must be at least 1");
            }
            // A lease shorter than an attempt would let a second dispatcher start while the
            // first is still waiting for its answer.
            if dispatcher.lease_ms <= timeout_ms {
                return bad(
                    &format!("{key}.lease_ms"),
                    &format!("must be greater than the attempt's timeout ({timeout_ms} ms)"),
                );
            }
            if dispatcher.max_attempts == 0 {
                return bad(&format!("{key}.max_attempts"), "must be at least 1");
            }
            if dispatcher.backoff_initial_ms == 0
                || dispatcher.backoff_max_ms < dispatcher.backoff_initial_ms
            {
                return bad(
                    &format!("{key}.backoff_max_ms"),
                    "backoff_initial_ms must be at least 1 and backoff_max_ms at least backoff_initial_ms",
                );
            }
        }
        let limits = &self.rate_limit;
        if [
            limits.tenant_per_sec,
            limits.tenant_burst,
            limits.agent_per_sec,
            limits.agent_burst,
        ]
        .contains(&0)
        {
            return bad(
                "rate_limit.tenant_per_sec",
                "tenant_per_sec, tenant_burst, agent_per_sec and agent_burst must be at least 1",
            );
        }
        if self.events.channel.is_empty() {
            return bad("events.channel", "must not be empty");
        }
        if self.presence.ttl_secs == 0 {
            return bad("presence.ttl_secs", "must be at least 1");
        }
        if self.events.retention_hours == 0 {
            return bad("events.retention_hours", "must be at least 1");
        }
        if self.events.relay_interval_ms == 0 {
            return bad("events.relay_interval_ms", "must be at least 1");
        }
        Ok(())
    }
}

impl HttpSettings {
    pub fn port_or(&self, default: u16) -> u16 {
        self.port.unwrap_or(default)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const SECRET: (&str, &str) = (
        "PORTAL__AUTH__JWT_SECRET",
        "0123456789abcdef0123456789abcdef",
    );

    #[test]
    fn environment_overrides_defaults() {
        let s = Settings::load_from(
            None,
            env(&[
                SECRET,
                ("PORTAL__HTTP__PORT", "9999"),
                ("PORTAL__DATABASE__MAX_CONNECTIONS", "7"),
            ]),
        )
        .unwrap();
        assert_eq!(s.http.port, Some(9999));
        assert_eq!(s.database.max_connections, 7);
        assert_eq!(s.auth.audience, "agent-portal");
    }

    #[test]
    fn variables_without_the_prefix_are_ignored() {
        let s = Settings::load_from(None, env(&[SECRET, ("HTTP__PORT", "1")])).unwrap();
        assert_eq!(s.http.port, None);
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let err = Settings::load_from(None, env(&[SECRET, ("PORTAL__HTTP__PORT", "eighty")]))
            .unwrap_err();
        assert!(err.to_string().contains("port"), "{err}");
        let err = Settings::load_from(
            None,
            env(&[SECRET, ("PORTAL__REDIS__URL", "localhost:6379")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("redis.url"), "{err}");
        let err = Settings::load_from(
            None,
            env(&[SECRET, ("PORTAL__CONSUMER__BATCH_LINGER_MS", "60000")]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("consumer.batch_linger_ms"),
            "{err}"
        );
    }

    #[test]
    fn exactly_one_key_source_is_required() {
        let err = Settings::load_from(None, env(&[])).unwrap_err();
        assert!(err.to_string().contains("auth.jwt_secret"), "{err}");
        let err = Settings::load_from(
            None,
            env(&[SECRET, ("PORTAL__AUTH__JWKS_URL", "https://auth/jwks")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
        let err =
            Settings::load_from(None, env(&[("PORTAL__AUTH__JWT_SECRET", "short")])).unwrap_err();
        assert!(err.to_string().contains("32 bytes"), "{err}");
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let s = Settings::load_from(
            None,
            env(&[
                SECRET,
                ("PORTAL__DATABASE__URL", "postgres://u:hunter2@db/portal"),
            ]),
        )
        .unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains(SECRET.1), "{debug}");
    }

    #[test]
    fn a_file_sits_between_defaults_and_environment() {
        let dir = std::env::temp_dir().join(format!("portal-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("portal.toml");
        std::fs::write(&file, "[http]\nport = 7000\nmax_body_bytes = 10\n").unwrap();
        let s = Settings::load_from(Some(&file), env(&[SECRET, ("PORTAL__HTTP__PORT", "7001")]))
            .unwrap();
        assert_eq!(s.http.port, Some(7001));
        assert_eq!(s.http.max_body_bytes, 10);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
