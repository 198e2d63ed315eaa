//! Serving HTTP the same way in every process, services and gateway alike: the process's own
//! routes with `/livez` and `/readyz` beside them on the API port, and `/livez`, `/readyz` and
//! `/metrics` on the operations port (`OPS_PORT`), the only place metrics are served, for
//! Prometheus and the kubelet's probes rather than for clients. Both listeners get the shared
//! middleware, the same hardening and a graceful stop (turn unready, wait for load balancers to
//! notice, finish what is in flight).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use fleet_telemetry::metrics::{Metrics, serve_metrics};

use crate::HttpConfig;
use crate::health::{Database, HealthState, Readiness, livez, readyz};

/// How long our clients keep an idle pooled connection: shorter than the default
/// `HTTP_HEADER_READ_TIMEOUT_MS`, after which a server of the fleet closes an idle one, so the
/// client retires it first and never sends a request on a connection being closed.
pub const CLIENT_POOL_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

pub struct HttpServer {
    name: &'static str,
    listener: TcpListener,
    /// The operations port's listener: probes and `/metrics`.
    ops_listener: TcpListener,
    config: HttpConfig,
    metrics: Metrics,
    readiness: Readiness,
    cors: Option<tower_http::cors::CorsLayer>,
}

impl HttpServer {
    /// Binds both listeners at once, so a taken port fails start-up rather than the first
    /// request.
    pub async fn bind(name: &'static str, config: HttpConfig) -> anyhow::Result<Self> {
        let address = format!("{}:{}", config.host, config.port);
        let listener = TcpListener::bind(&address)
            .await
            .with_context(|| format!("cannot listen on {address} (HTTP_HOST, HTTP_PORT)"))?;
        let ops_address = format!("{}:{}", config.ops_host, config.ops_port);
        let ops_listener = TcpListener::bind(&ops_address).await.with_context(|| {
            format!("cannot listen on {ops_address} for /metrics and probes (OPS_HOST, OPS_PORT)")
        })?;
        Ok(Self {
            name,
            listener,
            ops_listener,
            config,
            metrics: Metrics::new(name),
            readiness: Readiness::default(),
            cors: None,
        })
    }

    /// The API port as bound (the one chosen when `HTTP_PORT` is 0).
    pub fn port(&self) -> u16 {
        self.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    /// The operations port as bound (the one chosen when `OPS_PORT` is 0).
    pub fn ops_port(&self) -> u16 {
        self.ops_addr().map(|a| a.port()).unwrap_or_default()
    }

    /// The API listener's address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The operations listener's address.
    pub fn ops_addr(&self) -> std::io::Result<SocketAddr> {
        self.ops_listener.local_addr()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// Lets browsers on `origins` call the API (CORS). It wraps everything, fallbacks included,
    /// so preflight requests are answered before any route or method check. The operations
    /// port is not for browsers: no CORS there.
    pub fn allow_origins(mut self, origins: &[axum::http::HeaderValue]) -> Self {
        use axum::http::{Method, header};
        use tower_http::cors::{AllowOrigin, CorsLayer};

        if origins.is_empty() {
            return self;
        }
        let traceparent = header::HeaderName::from_static(fleet_telemetry::trace::TRACEPARENT);
        let request_id = header::HeaderName::from_static("x-request-id");
        // A rent's key: sent by a client, or chosen by the gateway and read back from the answer.
        let idempotency_key = header::HeaderName::from_static("idempotency-key");
        self.cors = Some(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins.iter().cloned()))
                .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    traceparent,
                    request_id.clone(),
                    idempotency_key.clone(),
                ])
                .expose_headers([
                    header::LOCATION,
                    header::RETRY_AFTER,
                    request_id,
                    idempotency_key,
                ])
                .max_age(std::time::Duration::from_secs(600)),
        );
        self
    }

    /// Serves `routes` (on the API port) and the operations port until SIGTERM, SIGINT or
    /// `stop`; returns once no request is in flight on either. `/readyz` also checks `database`
    /// when there is one.
    pub async fn serve(
        self,
        routes: Router,
        database: Option<Arc<dyn Database>>,
        stop: CancellationToken,
    ) -> anyhow::Result<()> {
        let Self {
            name,
            listener,
            ops_listener,
            config,
            metrics,
            readiness,
            cors,
        } = self;
        let probes = Router::new()
            .route("/livez", get(livez))
            .route("/readyz", get(readyz))
            .with_state(HealthState {
                readiness: readiness.clone(),
                database: database.clone(),
            });
        let scrape = Router::new().route(
            "/metrics",
            get({
                let metrics = metrics.clone();
                move || {
                    if let Some(database) = &database {
                        database.record(&metrics);
                    }
                    std::future::ready(serve_metrics(&metrics))
                }
            }),
        );
        let finish = |routes: Router, cors: Option<tower_http::cors::CorsLayer>| {
            let app = crate::api::finish_router(
                routes,
                metrics.clone(),
                config.request_timeout,
                config.body_limit_bytes,
            );
            let app = match cors {
                Some(cors) => app.layer(cors),
                None => app,
            };
            // While draining, every answer closes its connection: a client's pooled keep-alive
            // connection retires after its next answer instead of being cut under a request sent
            // on it at the moment the listener closes.
            app.layer(axum::middleware::map_response_with_state(
                readiness.clone(),
                close_while_draining,
            ))
        };
        let api = finish(routes.merge(probes.clone()), cors);
        let ops = finish(probes.merge(scrape), None);

        tracing::info!(
            service = name,
            address = %listener.local_addr()?,
            ops_address = %ops_listener.local_addr()?,
            "listening"
        );
        let drain_delay = config.shutdown_drain_delay;
        let closing = CancellationToken::new();
        let stopping = async {
            tokio::select! {
                _ = crate::shutdown::signal_received() => {}
                _ = stop.cancelled() => {}
            }
            readiness.start_draining();
            tracing::info!(?drain_delay, "draining");
            tokio::time::sleep(drain_delay).await;
            closing.cancel();
        };
        tokio::join!(
            stopping,
            accept(listener, api, &config, &metrics, closing.cancelled()),
            accept(ops_listener, ops, &config, &metrics, closing.cancelled()),
        );
        Ok(())
    }
}

/// Serves connections until `stopping` completes, then lets each finish its request in flight
/// (idle ones close at once) and returns once all are closed. Every connection is bounded: its
/// request head must arrive within the header-read time-out, which on an idle keep-alive
/// connection also bounds the wait for the next request; its head may be at most
/// `max_header_bytes`; and at most `max_connections` are served at once on each listener, any
/// more answered 503 at once, before they cost a task or a buffer (a flood of the API port
/// leaves the operations port its own connections).
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
        let retirement = Retirement::new(config);
        let service = tower::ServiceExt::map_request(
            app.clone(),
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request
            },
        );
        let service =
            tower::ServiceExt::map_response(service, move |response| retirement.answered(response));
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

/// When a connection retires: after a bounded age or number of answers, its next answer says
/// `Connection: close`, so its client opens a new connection, which Kubernetes may give to
/// another replica (one added by the autoscaler, say). Closing after an answer, never while
/// idle, leaves no moment where a client could send a request on a connection being closed.
#[derive(Clone)]
struct Retirement {
    born: std::time::Instant,
    answers: std::sync::Arc<std::sync::atomic::AtomicU64>,
    max_age: Option<std::time::Duration>,
    max_answers: Option<u64>,
}

impl Retirement {
    fn new(config: &HttpConfig) -> Self {
        Self {
            born: std::time::Instant::now(),
            answers: std::sync::Arc::default(),
            max_age: config.connection_max_age,
            max_answers: config.connection_max_requests,
        }
    }

    fn answered(&self, mut response: axum::response::Response) -> axum::response::Response {
        let answers = self
            .answers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let old = self.max_age.is_some_and(|age| self.born.elapsed() >= age);
        if old || self.max_answers.is_some_and(|max| answers >= max) {
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use fleet_config::Env;

    struct Running {
        api: String,
        ops: String,
        ops_addr: SocketAddr,
        stop: CancellationToken,
        served: tokio::task::JoinHandle<anyhow::Result<()>>,
    }

    /// A server on two free loopback ports with `settings`, serving `/hello` on its API.
    async fn serve(settings: &[(&str, &str)]) -> Running {
        let mut pairs = vec![
            ("HTTP_HOST", "127.0.0.1"),
            ("HTTP_PORT", "0"),
            ("OPS_PORT", "0"),
        ];
        pairs.extend_from_slice(settings);
        let mut env = Env::from_pairs(pairs);
        let config = HttpConfig::read(&mut env, 8080);
        env.finish().unwrap();
        let server = HttpServer::bind("kit-test", config).await.unwrap();
        assert_ne!(server.port(), 0);
        assert_ne!(server.ops_port(), 0);
        assert_ne!(server.port(), server.ops_port());
        let (api, ops_addr) = (server.local_addr().unwrap(), server.ops_addr().unwrap());
        let stop = CancellationToken::new();
        let routes = Router::new().route("/hello", get(|| async { "hello" }));
        let served = tokio::spawn(server.serve(routes, None, stop.clone()));
        Running {
            api: format!("http://{api}"),
            ops: format!("http://{ops_addr}"),
            ops_addr,
            stop,
            served,
        }
    }

    async fn status(url: String) -> u16 {
        reqwest::get(url).await.unwrap().status().as_u16()
    }

    #[tokio::test]
    async fn metrics_are_served_only_on_the_operations_port_and_probes_on_both() {
        let server = serve(&[]).await;
        assert_eq!(status(format!("{}/hello", server.api)).await, 200);

        let on_api = reqwest::get(format!("{}/metrics", server.api))
            .await
            .unwrap();
        assert_eq!(on_api.status(), 404);
        assert_eq!(
            on_api.headers()["content-type"],
            crate::problem::CONTENT_TYPE
        );
        let scrape = reqwest::get(format!("{}/metrics", server.ops))
            .await
            .unwrap();
        assert_eq!(scrape.status(), 200);
        let metrics = scrape.text().await.unwrap();
        assert!(
            metrics.contains(r#"http_requests_total{method="GET",route="/hello",status="200",service="kit-test"} 1"#),
            "{metrics}"
        );
        assert!(
            metrics.contains("process_resident_memory_bytes"),
            "{metrics}"
        );

        for base in [&server.api, &server.ops] {
            for probe in ["/livez", "/readyz"] {
                assert_eq!(status(format!("{base}{probe}")).await, 200, "{base}{probe}");
            }
        }
        // The API's routes are the API port's alone.
        assert_eq!(status(format!("{}/hello", server.ops)).await, 404);
        server.stop.cancel();
        server.served.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn the_operations_port_is_capped_and_times_out_slow_heads_as_the_api_port() {
        let server = serve(&[
            ("HTTP_MAX_CONNECTIONS", "2"),
            ("HTTP_HEADER_READ_TIMEOUT_MS", "300"),
        ])
        .await;
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut stream = tokio::net::TcpStream::connect(server.ops_addr)
                .await
                .unwrap();
            stream
                .write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
                .await
                .unwrap();
            held.push(stream);
        }
        // Give the server a moment to take both before the third arrives.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut third = tokio::net::TcpStream::connect(server.ops_addr)
            .await
            .unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(2), third.read_to_string(&mut answer))
            .await
            .expect("the connection beyond the cap is answered at once")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");

        // The heads never finished: both are closed after the header-read time-out.
        for stream in &mut held {
            let mut rest = Vec::new();
            tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut rest))
                .await
                .expect("a slow head is closed after the time-out")
                .ok();
        }
        assert_eq!(status(format!("{}/livez", server.ops)).await, 200);
        server.stop.cancel();
        server.served.await.unwrap().unwrap();
    }

    /// Sends `GET /hello` on `stream` and reads the whole answer.
    async fn hello(stream: &mut tokio::net::TcpStream) -> String {
        stream
            .write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        while !answer.ends_with(b"\r\n\r\nhello") {
            let n = stream.read(&mut buf).await.unwrap();
            assert_ne!(n, 0, "closed before the answer: {answer:?}");
            answer.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(answer).unwrap().to_ascii_lowercase()
    }

    /// Whether the server closed `stream` (end of stream within a second).
    async fn closed(stream: &mut tokio::net::TcpStream) -> bool {
        let mut rest = Vec::new();
        matches!(
            tokio::time::timeout(Duration::from_secs(1), stream.read_to_end(&mut rest)).await,
            Ok(Ok(0))
        )
    }

    #[tokio::test]
    async fn a_connection_retires_after_its_answers_or_its_age_with_an_answer_that_says_so() {
        let server = serve(&[
            ("HTTP_CONNECTION_MAX_REQUESTS", "3"),
            ("HTTP_CONNECTION_MAX_AGE_MS", "600"),
        ])
        .await;
        let api = server.api.trim_start_matches("http://").to_owned();

        // By count: the third answer closes the connection, the first two keep it.
        let mut stream = tokio::net::TcpStream::connect(&api).await.unwrap();
        for _ in 0..2 {
            assert!(!hello(&mut stream).await.contains("connection: close"));
        }
        assert!(hello(&mut stream).await.contains("connection: close"));
        assert!(closed(&mut stream).await);

        // By age: idle past the age, the connection stays open until its next answer, which
        // closes it (never closed under a request about to be sent).
        let mut stream = tokio::net::TcpStream::connect(&api).await.unwrap();
        assert!(!hello(&mut stream).await.contains("connection: close"));
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(hello(&mut stream).await.contains("connection: close"));
        assert!(closed(&mut stream).await);
        server.stop.cancel();
        server.served.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn the_operations_port_answers_unready_while_draining_and_closes_with_the_api() {
        let server = serve(&[("SHUTDOWN_DRAIN_DELAY_MS", "400")]).await;
        server.stop.cancel();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let readyz = reqwest::get(format!("{}/readyz", server.ops))
            .await
            .unwrap();
        assert_eq!(readyz.status(), 503);
        assert_eq!(readyz.headers()["connection"], "close");
        tokio::time::timeout(Duration::from_secs(5), server.served)
            .await
            .expect("the server stops after the drain delay")
            .unwrap()
            .unwrap();
        assert!(reqwest::get(format!("{}/livez", server.ops)).await.is_err());
        assert!(reqwest::get(format!("{}/livez", server.api)).await.is_err());
    }
}
