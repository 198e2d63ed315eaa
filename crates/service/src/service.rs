//! Start-up and shutdown, the same for every service: bind, serve `/livez`, `/readyz` and
//! `/metrics` (on the operations port) at once, run migrations (retrying while the database is away), then start the
//! outbox relay, retention and the workers; a service that checks tokens is ready only once it
//! holds the signing keys. On SIGTERM: turn unready, drain HTTP, stop workers after
//! their current event, flush the outbox.

use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use futures::future::BoxFuture;
use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureProducer;
use shared_events::Topic;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use fleet_auth::{AuthConfig, RemoteKeys};
use fleet_database::Probe;
use fleet_http::health::Readiness;
use fleet_http::server::HttpServer;
use fleet_messaging::inbox::{EventHandler, InboxConsumer};
use fleet_messaging::kafka::Kafka;
use fleet_messaging::outbox::Relay;
use fleet_messaging::retention::Retention;
use fleet_telemetry::metrics::Metrics;

use crate::KitConfig;
use crate::keys::KeyTable;

/// What makes a service itself.
#[derive(Debug, Clone, Copy)]
pub struct ServiceSpec {
    /// The service name: event `source`, consumer group, metrics label.
    pub name: &'static str,
    pub migrations: &'static Migrator,
}

type Worker = Box<dyn FnOnce(CancellationToken) -> BoxFuture<'static, ()> + Send>;

pub struct Service {
    spec: ServiceSpec,
    config: KitConfig,
    pool: PgPool,
    migration_pool: Option<PgPool>,
    kafka: Kafka,
    producer: FutureProducer,
    server: HttpServer,
    routes: Router,
    workers: Vec<Worker>,
    auth: Option<AuthConfig>,
    stop: CancellationToken,
}

impl Service {
    /// Binds the listener and creates the clients; nothing waits on the database or broker yet.
    pub async fn build(spec: ServiceSpec, config: KitConfig) -> anyhow::Result<Self> {
        let server = HttpServer::bind(spec.name, config.http.clone()).await?;
        let pool = fleet_database::pool(&config.database).context("invalid DATABASE_URL")?;
        let migration_pool = fleet_database::migration_pool(&config.database)
            .context("invalid DATABASE_MIGRATION_URL")?;
        let kafka = Kafka::new(&config.messaging);
        let producer = kafka
            .producer()
            .context("cannot create the Kafka producer")?;
        Ok(Self {
            spec,
            config,
            pool,
            migration_pool,
            kafka,
            producer,
            server,
            routes: Router::new(),
            workers: Vec::new(),
            auth: None,
            stop: CancellationToken::new(),
        })
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// The operations port as bound: `/livez`, `/readyz` and `/metrics`.
    pub fn ops_port(&self) -> u16 {
        self.server.ops_port()
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn metrics(&self) -> &Metrics {
        self.server.metrics()
    }

    /// Cancelling it shuts the service down as SIGTERM does (tests use it).
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Checks access tokens against the user service's published keys: handlers take a
    /// [`fleet_auth::Caller`]. The service is not ready until it holds keys, fetched or kept
    /// in its schema from an earlier fetch.
    pub fn with_auth(mut self, config: AuthConfig) -> Self {
        self.auth = Some(config);
        self
    }

    /// Serves the service's OpenAPI document at `/openapi.json`, with the answers the kit's
    /// extractors give (see [`fleet_http::api::document_rejections`]).
    pub fn with_api_doc(mut self, doc: utoipa::openapi::OpenApi) -> Self {
        let doc = serde_json::to_value(&doc).expect("an OpenAPI document serializes");
        let doc = std::sync::Arc::new(fleet_http::api::document_rejections(doc));
        self.routes = self.routes.route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        );
        self
    }

    /// The service's own HTTP routes, state already applied.
    pub fn with_routes(mut self, routes: Router) -> Self {
        self.routes = self.routes.merge(routes);
        self
    }

    /// Consumes `topics` in the service's consumer group, applying each event once.
    pub fn consume<H: EventHandler>(
        mut self,
        topics: &[Topic],
        handler: H,
    ) -> anyhow::Result<Self> {
        let consumer = self
            .kafka
            .consumer(self.spec.name, self.server.metrics().clone())
            .context("cannot create the Kafka consumer")?;
        // Its replay topic too: what its `dlq replay` sends back.
        let replay_topic = self
            .kafka
            .name(&shared_events::topic::replay_of(self.spec.name));
        let names: Vec<String> = topics
            .iter()
            .map(|t| self.kafka.topic(*t))
            .chain([replay_topic.clone()])
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        consumer.subscribe(&names).context("cannot subscribe")?;
        let inbox = InboxConsumer {
            pool: self.pool.clone(),
            consumer,
            dlq_producer: self.producer.clone(),
            handler,
            max_retries: self.config.messaging.consumer_max_retries,
            batch_size: self.config.messaging.consumer_batch_size,
            metrics: self.server.metrics().clone(),
            group: self.kafka.name(self.spec.name),
            replay_topic,
        };
        self.workers
            .push(Box::new(move |stop| Box::pin(inbox.run(stop))));
        Ok(self)
    }

    /// Runs `worker` in the background once migrations are done, until shutdown (a reconciler,
    /// say). It must return soon after its token is cancelled.
    pub fn with_worker<F, Fut>(mut self, worker: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.workers
            .push(Box::new(move |stop| Box::pin(worker(stop))));
        self
    }

    /// Serves until SIGTERM, SIGINT or the stop token, then shuts down gracefully.
    pub async fn run(self) -> anyhow::Result<()> {
        let Self {
            spec,
            config,
            pool,
            migration_pool,
            kafka,
            producer,
            server,
            routes,
            workers,
            auth,
            stop,
        } = self;

        let metrics = server.metrics().clone();
        let readiness = server.readiness();
        let background = CancellationToken::new();
        let tasks = TaskTracker::new();

        let relay = Relay {
            pool: pool.clone(),
            producer,
            kafka,
            metrics: metrics.clone(),
            batch_size: config.messaging.outbox_batch_size,
            poll_interval: config.messaging.outbox_poll_interval,
            busy_poll_interval: config.messaging.outbox_busy_poll_interval,
        };
        let keys = auth
            .map(|config| RemoteKeys::kept_in(config, std::sync::Arc::new(KeyTable(pool.clone()))))
            .transpose()
            .context("cannot make the client that fetches the signing keys")?;
        let routes = match keys.clone() {
            Some(keys) => {
                // Unready from the start until keys are held.
                readiness.await_keys();
                tasks.spawn(keys.clone().run(readiness.clone(), background.clone()));
                routes.layer(axum::Extension(keys))
            }
            None => routes,
        };
        let after_migrations = AfterMigrations {
            relay,
            retention: Retention {
                pool: pool.clone(),
                metrics: metrics.clone(),
                config: config.messaging.retention.clone(),
            },
            keys,
            workers,
        };
        tasks.spawn(start_workers(
            spec,
            pool.clone(),
            migration_pool,
            readiness.clone(),
            after_migrations,
            tasks.clone(),
            background.clone(),
        ));

        server
            .serve(routes, Some(std::sync::Arc::new(Probe(pool.clone()))), stop)
            .await?;

        // No request is in flight any more: stop the workers and flush the outbox.
        background.cancel();
        tasks.close();
        if tokio::time::timeout(Duration::from_secs(15), tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("background tasks did not stop in time");
        }
        pool.close().await;
        tracing::info!(service = spec.name, "stopped");
        Ok(())
    }
}

/// What starts once the migrations have run.
struct AfterMigrations {
    relay: Relay,
    retention: Retention,
    /// Keys fetched before the `signing_keys` table existed are kept then.
    keys: Option<RemoteKeys>,
    workers: Vec<Worker>,
}

async fn start_workers(
    spec: ServiceSpec,
    pool: PgPool,
    migration_pool: Option<PgPool>,
    readiness: Readiness,
    after: AfterMigrations,
    tasks: TaskTracker,
    stop: CancellationToken,
) {
    let AfterMigrations {
        relay,
        retention,
        keys,
        workers,
    } = after;
    let migrator = match fleet_database::migrator(spec.migrations).await {
        Ok(migrator) => migrator,
        Err(e) => {
            tracing::error!(error = %e, "the migrations are invalid; the service stays unready");
            return;
        }
    };
    let mut wait = Duration::from_millis(250);
    loop {
        let outcome = tokio::select! {
            _ = stop.cancelled() => return,
            outcome = migrator.run(migration_pool.as_ref().unwrap_or(&pool)) => outcome,
        };
        match outcome {
            Ok(()) => break,
            Err(e) => tracing::warn!(error = %e, "migrations failed; retrying"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => wait = (wait * 2).min(Duration::from_secs(10)),
        }
    }
    // A connection of its own is of no more use.
    if let Some(migration_pool) = migration_pool {
        migration_pool.close().await;
    }
    readiness.set_migrated();
    tracing::info!(service = spec.name, "migrations done");
    if let Some(keys) = keys {
        keys.keep_unkept().await;
    }
    tasks.spawn(relay.run(stop.clone()));
    tasks.spawn(retention.run(stop.clone()));
    for consumer in workers {
        tasks.spawn(consumer(stop.clone()));
    }
}
