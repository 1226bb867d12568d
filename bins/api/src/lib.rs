//! The Agent Portal REST API as a library: [`run`] serves it on a listener the caller bound,
//! so `main` binds the configured port and tests bind port 0.

pub mod http;
pub mod openapi;
pub mod routes;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use poem::listener::{Acceptor, TcpAcceptor};
use poem::{EndpointExt, Route, Server, get};
use poem_openapi::OpenApiService;
use portal_shared::auth::Authenticator;
use portal_shared::config::Settings;
use portal_shared::conversations::ConversationService;
use portal_shared::customers::{CustomerService, Enricher};
use portal_shared::events;
use portal_shared::integrations::Integrations;
use portal_shared::integrations::propagation::{Propagation, Propagator, Targets};
use portal_shared::messages::{Dispatcher, MessageService};
use portal_shared::presence::Presence;
use portal_shared::rate_limit::RateLimiter;
use portal_shared::templates::cache::TemplateCache;
use portal_shared::templates::service::TemplateService;
use portal_shared::tenancy::Db;
use portal_shared::whatsapp::TokenCipher;
use secrecy::ExposeSecret;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::http::metrics::{Metrics, PartMetrics};
use crate::routes::admin::AdminApi;
use crate::routes::agents::AgentsApi;
use crate::routes::conversations::ConversationsApi;
use crate::routes::customers::CustomersApi;
use crate::routes::messages::MessagesApi;
use crate::routes::templates::TemplatesApi;

pub const DEFAULT_PORT: u16 = 8080;

type Apis = (
    ConversationsApi,
    MessagesApi,
    AgentsApi,
    TemplatesApi,
    AdminApi,
    CustomersApi,
);

/// The services behind the routes.
struct Services {
    conversations: ConversationService,
    customers: CustomerService,
    messages: MessageService,
    presence: Presence,
    templates: TemplateService,
    cipher: Option<TokenCipher>,
}

fn api_service(db: &Db, services: Services) -> OpenApiService<Apis, ()> {
    let Services {
        conversations,
        customers,
        messages,
        presence,
        templates,
        cipher,
    } = services;
    OpenApiService::new(
        (
            ConversationsApi {
                service: conversations,
            },
            MessagesApi { service: messages },
            AgentsApi {
                db: db.clone(),
                presence,
            },
            TemplatesApi { service: templates },
            AdminApi {
                db: db.clone(),
                cipher,
            },
            CustomersApi { service: customers },
        ),
        "Agent Portal API",
        openapi::CONTRACT_VERSION,
    )
    .description(
        "Conversations, customers, messages, agents and WhatsApp templates for the agent portal.",
    )
    .server("/api")
}

/// Serves the API on `listener` until `shutdown` completes, then drains in-flight requests
/// for at most the configured grace period.
pub async fn run(
    settings: Settings,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let db = Db::connect(&settings.database).await?;
    let stop_events = CancellationToken::new();
    let redis = events::redis_connection(settings.redis.url.expose_secret())?;
    let (db, event_tasks) = events::start_publishing(db, redis.clone(), &settings, &stop_events);
    let presence = Presence::new(
        redis.clone(),
        Duration::from_secs(settings.presence.ttl_secs),
    );
    let authenticator = Authenticator::new(&settings.auth, db.clone())?;
    let parts = PartMetrics::default();
    let metrics = Metrics::new(db.clone(), &parts);
    let integrations = Integrations::from_settings(&settings, &parts.clients)?;

    // The dispatchers run beside the API (see the README's send lifecycle and propagation);
    // the services wake them when they queue something.
    let queued = Arc::new(Notify::new());
    let propagation = Propagation {
        targets: Targets::configured(&settings),
        wake: Arc::new(Notify::new()),
    };
    let stop_dispatchers = CancellationToken::new();
    let mut dispatchers = Vec::new();
    if settings.dispatcher.enabled {
        let dispatcher = Dispatcher::new(
            db.clone(),
            integrations.transformer.clone(),
            settings.dispatcher.clone(),
            queued.clone(),
            parts.deliveries.clone(),
        );
        dispatchers.push(tokio::spawn(dispatcher.run(stop_dispatchers.clone())));
    }
    if settings.propagation.enabled && propagation.targets != Targets::default() {
        let propagator = Propagator::new(
            db.clone(),
            integrations.state_manager.clone(),
            integrations.genesys.clone(),
            settings.propagation.clone(),
            propagation.wake.clone(),
            parts.propagation.clone(),
        );
        dispatchers.push(tokio::spawn(propagator.run(stop_dispatchers.clone())));
    }
    let enricher = integrations
        .state_manager
        .clone()
        .map(|sm| Enricher::new(sm, &settings.state_manager));

    let max_body_bytes = settings.http.max_body_bytes;
    let templates = TemplateService::new(
        db.clone(),
        TemplateCache::new(
            redis.clone(),
            Duration::from_secs(settings.templates.cache_ttl_secs),
        ),
    );
    let cipher = settings
        .whatsapp
        .token_key
        .as_ref()
        .map(TokenCipher::new)
        .transpose()?;
    let api = api_service(
        &db,
        Services {
            conversations: ConversationService::new(db.clone(), propagation.clone()),
            customers: CustomerService::new(db.clone(), propagation, enricher),
            messages: MessageService::new(db.clone(), queued),
            presence,
            templates,
            cipher,
        },
    );
    let docs = api.swagger_ui();
    let spec = openapi::document(&api.spec())?;
    let methods = Arc::new(openapi::Methods::of(&spec));
    let app = Route::new()
        .nest("/api", api.around(http::rate_limit::headers))
        .nest("/docs", docs)
        .at(
            "/openapi.json",
            get(routes::health::openapi).data(routes::health::Document(spec)),
        )
        .at("/healthz", get(routes::health::healthz))
        .at("/readyz", get(routes::health::readyz))
        .at("/metrics", get(routes::health::metrics))
        .around(move |ep, req| http::body_limit::limit_body(ep, req, max_body_bytes))
        .around(http::metrics::observe)
        .catch_all_error(http::problem::problem_for_poem_error)
        .around({
            let methods = methods.clone();
            move |ep, req| http::allow::allow(ep, req, methods.clone())
        })
        .around(move |ep, req| http::trace::trace(ep, req, methods.clone()))
        .data(db.clone())
        .data(routes::health::Redis(redis.clone()))
        .data(integrations)
        .data(authenticator)
        .data(RateLimiter::new(
            db.clone(),
            redis.clone(),
            settings.rate_limit.clone(),
        ))
        .data(metrics);

    let acceptor = TcpAcceptor::from_tokio(listener)?;
    let local = acceptor.local_addr();
    tracing::info!(addr = ?local, "api listening");
    let served = Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(app, shutdown, Some(settings.http.shutdown_grace()))
        .await;
    stop_dispatchers.cancel();
    for dispatcher in dispatchers {
        if let Err(err) = dispatcher.await {
            tracing::error!(error = %err, "a dispatcher task failed");
        }
    }
    // Last, so the events of the dispatchers' final changes are still published.
    events::stop_publishing(&stop_events, event_tasks).await;
    served?;
    db.close().await;
    tracing::info!("api stopped");
    Ok(())
}
