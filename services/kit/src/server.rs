//! Serving HTTP the same way in every process, services and gateway alike: `/livez`, `/readyz`
//! and `/metrics` beside the process's own routes, the shared middleware, and a graceful stop
//! (turn unready, wait for load balancers to notice, finish what is in flight).

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::HttpConfig;
use crate::health::{HealthState, Readiness, livez, readyz};
use crate::metrics::{Metrics, Scrape, serve_metrics};

pub struct HttpServer {
    name: &'static str,
    listener: TcpListener,
    config: HttpConfig,
    metrics: Metrics,
    readiness: Readiness,
    cors: Option<tower_http::cors::CorsLayer>,
}

impl HttpServer {
    /// Binds at once, so a taken port fails start-up rather than the first request.
    pub async fn bind(name: &'static str, config: HttpConfig) -> anyhow::Result<Self> {
        let address = format!("{}:{}", config.host, config.port);
        let listener = TcpListener::bind(&address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        Ok(Self {
            name,
            listener,
            config,
            metrics: Metrics::new(name),
            readiness: Readiness::default(),
            cors: None,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// Lets browsers on `origins` call the API (CORS). It wraps everything, fallbacks included,
    /// so preflight requests are answered before any route or method check.
    pub fn allow_origins(mut self, origins: &[axum::http::HeaderValue]) -> Self {
        use axum::http::{Method, header};
        use tower_http::cors::{AllowOrigin, CorsLayer};

        if origins.is_empty() {
            return self;
        }
        let traceparent = header::HeaderName::from_static(crate::trace::TRACEPARENT);
        let request_id = header::HeaderName::from_static("x-request-id");
        self.cors = Some(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins.iter().cloned()))
                .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    traceparent,
                    request_id.clone(),
                ])
                .expose_headers([header::LOCATION, header::RETRY_AFTER, request_id])
                .max_age(std::time::Duration::from_secs(600)),
        );
        self
    }

    /// Serves `routes` until SIGTERM, SIGINT or `stop`; returns once no request is in flight.
    /// `/readyz` also checks `database` when there is one.
    pub async fn serve(
        self,
        routes: Router,
        database: Option<PgPool>,
        stop: CancellationToken,
    ) -> anyhow::Result<()> {
        let Self {
            name,
            listener,
            config,
            metrics,
            readiness,
            cors,
        } = self;
        let ops = Router::new()
            .route("/livez", get(livez))
            .route("/readyz", get(readyz))
            .with_state(HealthState {
                readiness: readiness.clone(),
                pool: database.clone(),
            })
            .merge(
                Router::new()
                    .route("/metrics", get(serve_metrics))
                    .with_state(Scrape {
                        metrics: metrics.clone(),
                        pool: database,
                    }),
            );
        let app = crate::http::finish_router(
            routes.merge(ops),
            metrics,
            config.request_timeout,
            config.body_limit_bytes,
        );
        let app = match cors {
            Some(cors) => app.layer(cors),
            None => app,
        };
        // While draining, every answer closes its connection: a client's pooled keep-alive
        // connection retires after its next answer instead of being cut under a request sent on
        // it at the moment the listener closes.
        let app = app.layer(axum::middleware::map_response_with_state(
            readiness.clone(),
            close_while_draining,
        ));

        tracing::info!(service = name, address = %listener.local_addr()?, "listening");
        let drain_delay = config.shutdown_drain_delay;
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = crate::shutdown::signal_received() => {}
                _ = stop.cancelled() => {}
            }
            readiness.start_draining();
            tracing::info!(?drain_delay, "draining");
            tokio::time::sleep(drain_delay).await;
        })
        .await?;
        Ok(())
    }
}

async fn close_while_draining(
    axum::extract::State(readiness): axum::extract::State<Readiness>,
    mut response: axum::response::Response,
) -> axum::response::Response {
    if readiness.is_draining() {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}
