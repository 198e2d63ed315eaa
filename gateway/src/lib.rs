//! gateway: the fleet's single entry point. It routes docs/design.md §5's `/api/v1` paths to the
//! services, checks every access token against the user service's published keys and the role a
//! route needs, limits each client's request rate, and serves the fleet's merged OpenAPI
//! document with Swagger UI. It keeps no state of its own: any number of replicas can run.

pub mod openapi;
pub mod routes;
pub mod upstream;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, get};
use fleet_auth::{AuthConfig, RemoteKeys};
use fleet_config::{ConfigError, Env};
use fleet_http::client_address;
use fleet_http::server::HttpServer;
use fleet_http::{HttpConfig, Problem};
use fleet_telemetry::trace::{TRACEPARENT, call_span, outgoing};
use tokio_util::sync::CancellationToken;
use tower_governor::GovernorError;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::{KeyExtractor, PeerIpKeyExtractor};
use tracing::Instrument;

use routes::{Access, ROUTES, Route, Service};
use upstream::{Addresses, Upstream, UpstreamSettings, strip_hop_by_hop};

pub const NAME: &str = "gateway";
pub const OPENAPI: &str = "/api/v1/openapi.json";
pub const DOCS: &str = "/api/v1/docs";

/// Each client's budget: `per_second` requests on average, `burst` at once; on the token
/// endpoint also `sign_ins_per_minute`, `sign_in_burst` at once; on registration also
/// `registrations_per_minute`, `registration_burst` at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
    pub sign_ins_per_minute: u32,
    pub sign_in_burst: u32,
    pub registrations_per_minute: u32,
    pub registration_burst: u32,
    /// The proxies in front of the gateway. A request from one of them is the client's named
    /// in `X-Forwarded-For`: the right-most address there that is not a trusted proxy (the
    /// ones left of it may be made up by the client), or the left-most when all are
    /// ([`fleet_http::client_address`]). An IPv6 client's budget is its /64's.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

pub struct Config {
    pub http: HttpConfig,
    pub auth: AuthConfig,
    pub upstreams: BTreeMap<Service, Addresses>,
    pub upstream: UpstreamSettings,
    pub connect_timeout: Duration,
    pub rate_limit: RateLimit,
    pub cors_origins: Vec<HeaderValue>,
}

impl Config {
    /// The kit's HTTP settings, the token checks' and the gateway's own (upstreams, rate limits,
    /// CORS): the README's "Service configuration" lists each variable with its default and
    /// meaning, and `gateway/tests/deployment.rs` holds it to what this reads.
    pub fn from_env(mut env: Env) -> Result<Self, ConfigError> {
        let http = HttpConfig::read_edge(&mut env, 8080);
        let auth = AuthConfig::read(&mut env);
        let mut upstreams = BTreeMap::new();
        for service in Service::ALL {
            let variable = service.upstream_variable();
            let addresses = if service.required() {
                Some(env.required::<Addresses>(variable))
            } else {
                env.optional(variable)
            };
            if let Some(addresses) = addresses.filter(|a| !a.0.is_empty()) {
                upstreams.insert(service, addresses);
            }
        }
        let upstream = UpstreamSettings {
            timeout: env.millis("UPSTREAM_TIMEOUT_MS", 5_000),
            skip_for: env.millis("UPSTREAM_SKIP_MS", 5_000),
        };
        let connect_timeout = env.millis("UPSTREAM_CONNECT_TIMEOUT_MS", 500);
        let trusted_proxies =
            fleet_http::client_address::trusted_proxies(&mut env, "RATE_LIMIT_TRUSTED_PROXIES");
        let rate_limit = RateLimit {
            per_second: env.or("RATE_LIMIT_PER_SECOND", 100),
            burst: env.or("RATE_LIMIT_BURST", 200),
            sign_ins_per_minute: env.or("SIGN_IN_RATE_LIMIT_PER_MINUTE", 20),
            sign_in_burst: env.or("SIGN_IN_RATE_LIMIT_BURST", 5),
            registrations_per_minute: env.or("REGISTRATION_RATE_LIMIT_PER_MINUTE", 10),
            registration_burst: env.or("REGISTRATION_RATE_LIMIT_BURST", 3),
            trusted_proxies,
        };
        let origins: String = env.or("CORS_ALLOWED_ORIGINS", String::new());
        let mut cors_origins = Vec::new();
        for origin in origins.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            match HeaderValue::from_str(origin) {
                Ok(value) if origin.starts_with("http://") || origin.starts_with("https://") => {
                    cors_origins.push(value);
                }
                _ => env.invalid(format!(
                    "CORS_ALLOWED_ORIGINS: {origin:?} is not an origin such as https://books.example"
                )),
            }
        }
        if upstream.timeout.is_zero() || upstream.timeout >= http.request_timeout {
            env.invalid(format!(
                "UPSTREAM_TIMEOUT_MS ({} ms) must be at least 1 and below REQUEST_TIMEOUT_MS ({} ms)",
                upstream.timeout.as_millis(),
                http.request_timeout.as_millis()
            ));
        }
        if connect_timeout.is_zero() {
            env.invalid("UPSTREAM_CONNECT_TIMEOUT_MS must be at least 1");
        }
        if rate_limit.per_second == 0 || rate_limit.burst == 0 {
            env.invalid("RATE_LIMIT_PER_SECOND and RATE_LIMIT_BURST must be at least 1");
        }
        if rate_limit.sign_ins_per_minute == 0 || rate_limit.sign_in_burst == 0 {
            env.invalid(
                "SIGN_IN_RATE_LIMIT_PER_MINUTE and SIGN_IN_RATE_LIMIT_BURST must be at least 1",
            );
        }
        if rate_limit.registrations_per_minute == 0 || rate_limit.registration_burst == 0 {
            env.invalid(
                "REGISTRATION_RATE_LIMIT_PER_MINUTE and REGISTRATION_RATE_LIMIT_BURST must be at least 1",
            );
        }
        env.finish()?;
        Ok(Self {
            http,
            auth,
            upstreams,
            upstream,
            connect_timeout,
            rate_limit,
            cors_origins,
        })
    }
}

/// What makes a rent safe to send again (rental honours it; IETF httpapi's draft of that name).
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The OAuth2 token endpoint: sign-ins, each a password check.
const TOKEN_PATH: &str = "/api/v1/auth/token";

/// Registration: each new account a password hash.
const REGISTRATION_PATH: &str = "/api/v1/users";

/// What every forwarded request needs.
struct Forwarding {
    keys: RemoteKeys,
    upstreams: Arc<HashMap<Service, Upstream>>,
    body_limit: usize,
}

pub struct Gateway {
    server: HttpServer,
    routes: Router,
    stop: CancellationToken,
}

impl Gateway {
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// The operations port as bound: `/livez`, `/readyz` and `/metrics`.
    pub fn ops_port(&self) -> u16 {
        self.server.ops_port()
    }

    /// Cancelling it shuts the gateway down as SIGTERM does.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    pub async fn run(self) -> anyhow::Result<()> {
        self.server.serve(self.routes, None, self.stop).await?;
        tracing::info!(service = NAME, "stopped");
        Ok(())
    }
}

pub async fn build(config: Config) -> anyhow::Result<Gateway> {
    let server = HttpServer::bind(NAME, config.http.clone())
        .await?
        .allow_origins(&config.cors_origins);
    let outcomes = prometheus::IntCounterVec::new(
        prometheus::Opts::new(
            "upstream_requests_total",
            "Requests sent on to a service, by address and outcome (answered, unreachable, timed_out, broken, replayed)",
        ),
        &["upstream", "address", "outcome"],
    )?;
    server
        .metrics()
        .registry
        .register(Box::new(outcomes.clone()))?;
    let client = upstream::client(config.connect_timeout);
    let upstreams: HashMap<Service, Upstream> = config
        .upstreams
        .into_iter()
        .map(|(service, addresses)| {
            let upstream = Upstream::new(
                service.name(),
                addresses,
                client.clone(),
                config.upstream,
                outcomes.clone(),
            );
            (service, upstream)
        })
        .collect();
    let upstreams = Arc::new(upstreams);
    let keys = RemoteKeys::new(config.auth)?;
    let stop = CancellationToken::new();
    // Not ready until tokens can be checked.
    let readiness = server.readiness();
    readiness.await_keys();
    tokio::spawn(keys.clone().run(readiness, stop.clone()));
    let forwarding = Arc::new(Forwarding {
        keys,
        upstreams: upstreams.clone(),
        body_limit: config.http.body_limit_bytes,
    });

    let mut by_path: BTreeMap<&str, MethodRouter<Arc<Forwarding>>> = BTreeMap::new();
    for route in ROUTES.iter().filter(|r| upstreams.contains_key(&r.service)) {
        let filter = MethodFilter::try_from(route.method.clone())?;
        let handler =
            move |State(forwarding): State<Arc<Forwarding>>,
                  ConnectInfo(peer): ConnectInfo<SocketAddr>,
                  request: Request| { forward(forwarding, route, peer, request) };
        let methods = by_path.remove(route.path).unwrap_or_default();
        by_path.insert(route.path, methods.on(filter, handler));
    }
    let clients = ClientAddress {
        trusted_proxies: Arc::new(config.rate_limit.trusted_proxies.clone()),
    };
    let limit = &config.rate_limit;
    let mut api = Router::new();
    for (path, methods) in by_path {
        // Every sign-in costs a password check, every registration a hash: each has a budget
        // of its own per client, so a storm of one spends neither the other nor anyone else's.
        let budget = match path {
            TOKEN_PATH => Some((limit.sign_ins_per_minute, limit.sign_in_burst)),
            REGISTRATION_PATH => Some((limit.registrations_per_minute, limit.registration_burst)),
            _ => None,
        };
        api = match budget {
            Some((per_minute, burst)) => {
                let period = Duration::from_secs(60) / per_minute;
                let route = Router::new().route(path, methods);
                api.merge(rate_limited(route, period, burst, &clients)?)
            }
            None => api.route(path, methods),
        };
    }
    let docs = Arc::new(openapi::ApiDocs::new(upstreams));
    let api = api
        .with_state(forwarding)
        .route(
            OPENAPI,
            get(move || {
                let docs = docs.clone();
                async move { axum::Json(docs.document().await) }
            }),
        )
        .merge(Router::from(
            utoipa_swagger_ui::SwaggerUi::new(DOCS)
                .config(utoipa_swagger_ui::Config::from(OPENAPI)),
        ));
    let period = Duration::from_secs(1) / limit.per_second;
    let api = rate_limited(api, period, limit.burst, &clients)?;
    Ok(Gateway {
        server,
        routes: api,
        stop,
    })
}

/// Checks the caller may use `route`, then sends the request on to its service.
async fn forward(
    forwarding: Arc<Forwarding>,
    route: &'static Route,
    peer: SocketAddr,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    if route.access != Access::Anyone {
        let caller = match forwarding.keys.authenticate(&parts.headers).await {
            Ok(caller) => caller,
            Err(refused) => return refused.into_response(),
        };
        if let Some(role) = route.access.role()
            && !caller.has_role(role)
        {
            return Problem::new(StatusCode::FORBIDDEN, format!("Only a {role} may do this."))
                .into_response();
        }
    }
    let body = match read_body(&parts.headers, body, forwarding.body_limit).await {
        Ok(body) => body,
        Err(problem) => return problem.into_response(),
    };
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(earlier) => format!("{earlier}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        headers.insert("x-forwarded-for", value);
    }
    // The key the gateway chose goes back in the answer, whatever it is: a client whose
    // connection broke, or whose request timed out, sends it again with that key.
    let chosen = (route.keyed && !headers.contains_key(IDEMPOTENCY_KEY)).then(|| {
        HeaderValue::try_from(uuid::Uuid::new_v4().to_string()).expect("a UUID is a value")
    });
    if let Some(key) = &chosen {
        headers.insert(IDEMPOTENCY_KEY, key.clone());
    }
    let upstream = &forwarding.upstreams[&route.service];
    // The kit serves every request within its trace; the next hop's parent is this one (the
    // call's span, when spans are exported).
    let call = call_span(upstream.service);
    if let Some(value) = call
        .in_scope(outgoing)
        .and_then(|t| HeaderValue::from_str(&t).ok())
    {
        headers.insert(TRACEPARENT, value);
    }
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| axum::http::uri::PathAndQuery::from_static("/"));
    let mut response = match upstream
        .send(&parts.method, &path, &headers, body, route.replayable())
        .instrument(call)
        .await
    {
        Ok(mut response) => {
            let length = response.headers().get(header::CONTENT_LENGTH).cloned();
            strip_hop_by_hop(response.headers_mut());
            if let Some(length) = length {
                response
                    .headers_mut()
                    .insert(header::CONTENT_LENGTH, length);
            }
            response
        }
        Err(failure) => failure.into_problem(upstream.service).into_response(),
    };
    if let Some(key) = chosen {
        response.headers_mut().insert(IDEMPOTENCY_KEY, key);
    }
    response
}

/// The whole body, so that a request can be tried on a second address; bodies are small JSON.
async fn read_body(
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
    limit: usize,
) -> Result<axum::body::Bytes, Problem> {
    let too_large = || {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The body is too large: at most {limit} bytes."),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let over_limit = e
            .into_inner()
            .downcast_ref::<http_body_util::LengthLimitError>()
            .is_some();
        if over_limit {
            too_large()
        } else {
            Problem::bad_request("The body could not be read.")
        }
    })
}

/// Who a client is, for its rate budget: [`fleet_http::client_address`]'s client, an IPv6
/// client by its /64.
#[derive(Debug, Clone)]
struct ClientAddress {
    trusted_proxies: Arc<Vec<ipnet::IpNet>>,
}

impl KeyExtractor for ClientAddress {
    type Key = IpAddr;

    fn extract<T>(&self, request: &axum::http::Request<T>) -> Result<IpAddr, GovernorError> {
        let peer = PeerIpKeyExtractor.extract(request)?;
        let forwarded_for = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok());
        Ok(client_address::bucket(client_address::client(
            peer,
            forwarded_for,
            &self.trusted_proxies,
        )))
    }
}

/// `api` with a budget of `burst` requests at once, one more every `period`, per client; past
/// it, 429 with `Retry-After`.
fn rate_limited<S: Clone + Send + Sync + 'static>(
    api: Router<S>,
    period: Duration,
    burst: u32,
    clients: &ClientAddress,
) -> anyhow::Result<Router<S>> {
    let config = GovernorConfigBuilder::default()
        .period(period)
        .burst_size(burst)
        .key_extractor(clients.clone())
        .finish()
        .ok_or_else(|| anyhow::anyhow!("invalid rate limit: {period:?}, burst {burst}"))?;
    // Forget clients that have been quiet, or the table grows with every address ever seen.
    let limiter = config.limiter().clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            limiter.retain_recent();
        }
    });
    let layer = tower_governor::GovernorLayer::new(config).error_handler(|error| match error {
        GovernorError::TooManyRequests { wait_time, .. } => {
            let mut response = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests from this client; slow down and try again after Retry-After seconds.",
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait_time.max(1)));
            response
        }
        other => Problem::internal(other).into_response(),
    });
    Ok(api.layer(layer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(extra: &[(&str, &str)]) -> Env {
        let mut vars = vec![
            ("JWKS_URL", "http://user:8080/.well-known/jwks.json"),
            ("UPSTREAM_USER", "http://user:8080"),
            ("UPSTREAM_BOOK_MANAGEMENT", "http://book-management:8080"),
            (
                "UPSTREAM_RENTAL",
                "http://rental-a:8080,http://rental-b:8080",
            ),
            ("UPSTREAM_PAYMENT", "http://payment:8080"),
        ];
        vars.extend_from_slice(extra);
        Env::from_pairs(vars)
    }

    #[test]
    fn defaults_fill_in_what_is_not_set() {
        let config = Config::from_env(env(&[])).unwrap();
        assert_eq!(config.upstreams[&Service::Rental].0.len(), 2);
        assert!(!config.upstreams.contains_key(&Service::View));
        assert!(!config.upstreams.contains_key(&Service::Points));
        assert_eq!(config.rate_limit.per_second, 100);
        assert!(config.cors_origins.is_empty());
        assert_eq!(config.upstream.timeout, Duration::from_secs(5));
    }

    #[test]
    fn points_is_reached_once_its_addresses_are_set() {
        let config = Config::from_env(env(&[(
            "UPSTREAM_POINTS",
            "http://points-a:8080,http://points-b:8080",
        )]))
        .unwrap();
        assert_eq!(config.upstreams[&Service::Points].0.len(), 2);
        assert!(!config.upstreams.contains_key(&Service::View));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = Config::from_env(Env::from_pairs([
            ("UPSTREAM_RENTAL", "rental:8080"),
            ("RATE_LIMIT_PER_SECOND", "0"),
            ("CORS_ALLOWED_ORIGINS", "books.example"),
            ("UPSTREAM_TIMEOUT_MS", "20000"),
        ]))
        .err()
        .unwrap()
        .to_string();
        for expected in [
            "JWKS_URL is required",
            "UPSTREAM_USER is required",
            "UPSTREAM_RENTAL=\"rental:8080\" is invalid",
            "RATE_LIMIT_PER_SECOND and RATE_LIMIT_BURST must be at least 1",
            "CORS_ALLOWED_ORIGINS: \"books.example\"",
            "UPSTREAM_TIMEOUT_MS (20000 ms) must be at least 1 and below REQUEST_TIMEOUT_MS",
        ] {
            assert!(err.contains(expected), "{expected} missing from: {err}");
        }
    }

    #[test]
    fn trusted_proxies_and_the_sign_in_budget_are_read_and_checked() {
        let config = Config::from_env(env(&[(
            "RATE_LIMIT_TRUSTED_PROXIES",
            "10.0.0.0/8, 192.0.2.7",
        )]))
        .unwrap();
        assert_eq!(config.rate_limit.trusted_proxies.len(), 2);
        assert_eq!(config.rate_limit.sign_ins_per_minute, 20);
        assert_eq!(config.rate_limit.registrations_per_minute, 10);
        assert_eq!(config.rate_limit.registration_burst, 3);
        let refused = Config::from_env(env(&[
            ("RATE_LIMIT_TRUSTED_PROXIES", "10.0.0.0/33"),
            ("SIGN_IN_RATE_LIMIT_PER_MINUTE", "0"),
            ("REGISTRATION_RATE_LIMIT_BURST", "0"),
        ]))
        .err()
        .unwrap()
        .to_string();
        assert!(refused.contains("RATE_LIMIT_TRUSTED_PROXIES"), "{refused}");
        assert!(
            refused.contains("SIGN_IN_RATE_LIMIT_PER_MINUTE"),
            "{refused}"
        );
        assert!(
            refused.contains("REGISTRATION_RATE_LIMIT_BURST"),
            "{refused}"
        );
    }
}
