//! Sending a request on to a service. A service may have several addresses (replicas, or a
//! Kubernetes Service per zone): requests go round-robin across them, and an address that
//! refuses connections is skipped for a while. A request that never reached a service is tried
//! on the next address. One whose connection broke before its answer (a pooled keep-alive
//! connection the service closed as the request went out, say) is sent again only when that is
//! safe: a read, or a rent carrying its `Idempotency-Key`, which rental answers with the rental
//! the first one made.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::uri::{Authority, PathAndQuery, Scheme};
use axum::http::{HeaderMap, Request, Response, StatusCode, Uri, header};
use fleet_http::Problem;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prometheus::IntCounterVec;

pub type HttpClient = Client<HttpConnector, Body>;

/// One pooled client for every upstream; connections are kept alive between requests.
pub fn client(connect_timeout: Duration) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(fleet_http::server::CLIENT_POOL_IDLE_TIMEOUT)
        .build(connector)
}

/// Where a service answers: `http://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address(Authority);

impl std::str::FromStr for Address {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let uri: Uri = s.trim().parse().map_err(|e| format!("{s:?}: {e}"))?;
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err(format!(
                "{s:?} must start with http:// (services are reached inside the cluster)"
            ));
        }
        if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
            return Err(format!("{s:?} must be only scheme, host and port"));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("{s:?} names no host"))?;
        Ok(Self(authority))
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}", self.0)
    }
}

/// A comma-separated list of addresses, as `UPSTREAM_*` variables give them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addresses(pub Vec<Address>);

impl std::str::FromStr for Addresses {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let addresses = s
            .split(',')
            .filter(|a| !a.trim().is_empty())
            .map(str::parse)
            .collect::<Result<Vec<Address>, _>>()?;
        if addresses.is_empty() {
            return Err("no address given".to_owned());
        }
        Ok(Self(addresses))
    }
}

/// What went wrong sending a request on; each is a problem for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No address accepted a connection: the request reached no service.
    Unreachable,
    /// The request was sent but no answer came in time.
    TimedOut,
    /// The connection broke after the request was sent.
    Broken,
}

impl Failure {
    pub fn into_problem(self, service: &str) -> Problem {
        match self {
            Failure::Unreachable => Problem::new(
                StatusCode::BAD_GATEWAY,
                format!("The {service} service is unreachable; try again in a moment."),
            ),
            Failure::TimedOut => Problem::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!("The {service} service did not answer in time."),
            ),
            Failure::Broken => Problem::new(
                StatusCode::BAD_GATEWAY,
                format!("The {service} service failed to answer."),
            ),
        }
    }
}

struct Member {
    address: Address,
    /// Skipped until then, after it refused a connection.
    skipped_until: Mutex<Option<Instant>>,
}

/// The addresses of one service and how to reach them.
pub struct Upstream {
    pub service: &'static str,
    members: Vec<Member>,
    next: AtomicUsize,
    client: HttpClient,
    timeout: Duration,
    skip_for: Duration,
    outcomes: IntCounterVec,
}

/// How upstreams are reached.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamSettings {
    /// How long to wait for an answer's head once the request is sent.
    pub timeout: Duration,
    /// How long an address that refused a connection is passed over.
    pub skip_for: Duration,
}

impl Upstream {
    pub fn new(
        service: &'static str,
        addresses: Addresses,
        client: HttpClient,
        settings: UpstreamSettings,
        outcomes: IntCounterVec,
    ) -> Self {
        Self {
            service,
            members: addresses
                .0
                .into_iter()
                .map(|address| Member {
                    address,
                    skipped_until: Mutex::new(None),
                })
                .collect(),
            next: AtomicUsize::new(0),
            client,
            timeout: settings.timeout,
            skip_for: settings.skip_for,
            outcomes,
        }
    }

    /// The order to try the addresses in: round-robin, those passed over last (still tried, as
    /// a skipped address may be back and a request should not fail while any could answer).
    fn candidates(&self) -> Vec<&Member> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let n = self.members.len();
        let mut order: Vec<&Member> = (0..n).map(|i| &self.members[(start + i) % n]).collect();
        order.sort_by_key(|m| {
            m.skipped_until
                .lock()
                .expect("not poisoned")
                .is_some_and(|until| until > now)
        });
        order
    }

    fn count(&self, member: &Member, outcome: &str) {
        self.outcomes
            .with_label_values(&[self.service, &member.address.to_string(), outcome])
            .inc();
    }

    /// Sends a request made of `parts` and `body` to the service, on the first address that
    /// takes it; a `replayable` one also again after its connection broke, up to
    /// [`REPLAYS`] times, each on another pooled or a new connection.
    pub async fn send(
        &self,
        method: &axum::http::Method,
        path: &PathAndQuery,
        headers: &HeaderMap,
        body: Bytes,
        replayable: bool,
    ) -> Result<Response<Body>, Failure> {
        let candidates = self.candidates();
        let (mut next, mut replays) = (0, 0);
        while let Some(&member) = candidates.get(next) {
            let uri = Uri::builder()
                .scheme(Scheme::HTTP)
                .authority(member.address.0.clone())
                .path_and_query(path.clone())
                .build()
                .expect("an authority and a path make a URI");
            let mut request = Request::builder()
                .method(method.clone())
                .uri(uri)
                .body(Body::from(body.clone()))
                .expect("a method, a URI and a body make a request");
            *request.headers_mut() = headers.clone();
            match tokio::time::timeout(self.timeout, self.client.request(request)).await {
                Err(_) => {
                    self.count(member, "timed_out");
                    return Err(Failure::TimedOut);
                }
                Ok(Ok(response)) => {
                    *member.skipped_until.lock().expect("not poisoned") = None;
                    self.count(member, "answered");
                    return Ok(response.map(Body::new));
                }
                Ok(Err(e)) if e.is_connect() => {
                    tracing::warn!(service = self.service, address = %member.address, error = %e, "upstream refused the connection; trying the next address");
                    *member.skipped_until.lock().expect("not poisoned") =
                        Some(Instant::now() + self.skip_for);
                    self.count(member, "unreachable");
                    next += 1;
                }
                Ok(Err(e)) if replayable && replays < REPLAYS => {
                    // The broken connection left the pool; the same address gets another (behind
                    // a Kubernetes Service, maybe to another replica).
                    replays += 1;
                    tracing::info!(service = self.service, address = %member.address, error = %e, "upstream connection broke; sending the request again");
                    self.count(member, "replayed");
                }
                Ok(Err(e)) => {
                    tracing::warn!(service = self.service, address = %member.address, error = %e, "upstream connection broke");
                    self.count(member, "broken");
                    return Err(Failure::Broken);
                }
            }
        }
        Err(Failure::Unreachable)
    }
}

/// How many times a replayable request is sent again after its connection broke: a replica
/// that stops may have closed several pooled connections at once.
pub const REPLAYS: usize = 2;

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1): never forwarded.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|name| name.trim().to_ascii_lowercase()))
        .collect();
    for name in named {
        headers.remove(name.as_str());
    }
    for name in [
        header::CONNECTION,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::HOST,
        header::CONTENT_LENGTH,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_plain_http_base_urls() {
        let parsed: Addresses = "http://rental:8080, http://10.0.0.7:8081/".parse().unwrap();
        assert_eq!(parsed.0.len(), 2);
        assert_eq!(parsed.0[1].to_string(), "http://10.0.0.7:8081");
        for bad in [
            "",
            "rental:8080",
            "https://rental",
            "http://rental/api",
            " , ",
        ] {
            assert!(bad.parse::<Addresses>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hop_by_hop_headers_are_not_forwarded() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, "keep-alive, x-secret".parse().unwrap());
        headers.insert("x-secret", "1".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert(header::AUTHORIZATION, "Bearer t".parse().unwrap());
        headers.insert(header::HOST, "gateway".parse().unwrap());
        strip_hop_by_hop(&mut headers);
        let left: Vec<_> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["authorization"]);
    }

    #[tokio::test]
    async fn an_address_that_refuses_is_passed_over() {
        let refusing: Address = "http://127.0.0.1:1".parse().unwrap();
        let other: Address = "http://127.0.0.1:2".parse().unwrap();
        let outcomes = IntCounterVec::new(
            prometheus::Opts::new("t", "t"),
            &["upstream", "address", "outcome"],
        )
        .unwrap();
        let upstream = Upstream::new(
            "test",
            Addresses(vec![refusing.clone(), other]),
            client(Duration::from_millis(200)),
            UpstreamSettings {
                timeout: Duration::from_secs(1),
                skip_for: Duration::from_secs(60),
            },
            outcomes,
        );
        *upstream.members[0].skipped_until.lock().unwrap() =
            Some(Instant::now() + Duration::from_secs(60));
        for _ in 0..4 {
            assert_eq!(upstream.candidates()[1].address, refusing);
        }
        let outcome = upstream
            .send(
                &axum::http::Method::GET,
                &PathAndQuery::from_static("/"),
                &HeaderMap::new(),
                Bytes::new(),
                true,
            )
            .await;
        assert_eq!(outcome.err(), Some(Failure::Unreachable));
    }
}
