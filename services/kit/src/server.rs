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

/// How long our clients keep an idle pooled connection: shorter than the default
/// `HTTP_HEADER_READ_TIMEOUT_MS`, after which a server of the fleet closes an idle one, so the
/// client retires it first and never sends a request on a connection being closed.
pub const CLIENT_POOL_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

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
        let metrics_for_connections = metrics.clone();
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
        let stopping = async move {
            tokio::select! {
                _ = crate::shutdown::signal_received() => {}
                _ = stop.cancelled() => {}
            }
            readiness.start_draining();
            tracing::info!(?drain_delay, "draining");
            tokio::time::sleep(drain_delay).await;
        };
        accept(listener, app, &config, &metrics_for_connections, stopping).await;
        Ok(())
    }
}

/// Serves connections until `stopping` completes, then lets each finish its request in flight
/// (idle ones close at once) and returns once all are closed. Every connection is bounded: its
/// request head must arrive within the header-read time-out, which on an idle keep-alive
/// connection also bounds the wait for the next request; its head may be at most
/// `max_header_bytes`; and at most `max_connections` are served at once, any more answered 503
/// at once, before they cost a task or a buffer.
async fn accept(
    listener: TcpListener,
    app: Router,
    config: &HttpConfig,
    metrics: &Metrics,
    stopping: impl Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use std::sync::Arc;

    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_header_size(config.max_header_bytes)
        .max_headers(64);
    let slots = Arc::new(tokio::sync::Semaphore::new(config.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(stopping);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait for some to be freed, as axum's serve.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stopping => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics.http_connections_refused.inc();
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = tower::ServiceExt::map_request(
            app.clone(),
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request
            },
        );
        let connection = graceful.watch(http.serve_connection(
            TokioIo::new(stream),
            hyper_util::service::TowerToHyperService::new(service),
        ));
        let open = metrics.http_connections_open.clone();
        open.inc();
        tokio::spawn(async move {
            // A client that breaks off or times out is routine, not an error of the server's.
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended");
            }
            open.dec();
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The answer to a connection beyond the cap: a 503 the client can read, then the close, with
/// nothing read from it and a bound on the time spent writing.
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let body = r#"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"The server holds as many connections as it may; try again in a moment."}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: {}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        crate::problem::CONTENT_TYPE,
        body.len()
    );
    let write = async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), write).await;
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
