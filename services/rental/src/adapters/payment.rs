//! The payment service over HTTP. Paying goes through a bulkhead (a bounded number of calls in
//! flight, the rest refused at once), a circuit breaker and a timeout, in that order; the breaker
//! sees only real call outcomes. Its state, outcomes and latency are Prometheus metrics, and
//! every state change is logged. It calls payment's internal endpoints (`/internal/v1/payments`):
//! service to service, with rental's own token from the user service's client credentials grant
//! (a customer's token would not do, and no customer's request is needed for the reconciler's).
//!
//! `PAYMENT_URL` may list several replicas (comma-separated) where no load balancer stands in
//! front of them, as on one machine: calls go round-robin, and a refused connection moves on to
//! the next replica. That retry is safe twice over: the request never reached payment, and
//! payment keys every payment by rental id anyway. For that second reason a call whose pooled
//! connection broke before the answer (a replica stopping closed it as the call went out) is
//! sent again too, on another connection: paying, looking up and refunding are all idempotent.
//!
//! A payment call that passes its timeout is sent once more, on a fresh connection, before the
//! breaker counts it: in a rolling update a new replica's first answers, or a connection to one
//! being replaced, can stall while the next replica answers at once. A rent therefore waits two
//! timeouts at the most (the reconciler waits longer than that before it settles a rental).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fleet_auth::{ClientCredentials, ServiceToken};
use fleet_telemetry::trace::{call_span, propagate};
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};
use serde::Deserialize;
use tower::retry::Policy;
use tower::timeout::error::Elapsed;
use tower::util::BoxCloneSyncService;
use tower::{BoxError, ServiceBuilder, ServiceExt};
use tower_resilience::circuitbreaker::{
    CircuitBreakerError, CircuitBreakerLayer, CircuitState, SlidingWindowType,
};
use tracing::Instrument;
use uuid::Uuid;

use crate::application::{PaymentGateway, PaymentOutcome, PaymentRecord, PaymentUnavailable};
use crate::domain::Rental;

/// How the payment call is protected; all from configuration.
#[derive(Debug, Clone)]
pub struct PaymentSettings {
    /// Payment's addresses: one, or every replica's.
    pub base_urls: Vec<String>,
    pub timeout: Duration,
    pub max_concurrent_calls: usize,
    pub failure_rate: f64,
    /// The sliding window the failure rate is measured over.
    pub window: Duration,
    pub minimum_calls: usize,
    pub open_for: Duration,
    pub half_open_calls: usize,
    /// rental's client id and secret, exchanged for the token payment requires.
    pub credentials: ClientCredentials,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct PayRequest {
    rental_id: Uuid,
    user_id: Uuid,
    amount: u32,
}

#[derive(Debug, Deserialize)]
struct PaymentBody {
    id: Uuid,
    status: String,
}

#[derive(Debug, Deserialize)]
struct PaymentList {
    items: Vec<PaymentBody>,
}

#[derive(Debug, thiserror::Error)]
#[error("payment answered {0}")]
struct UnexpectedStatus(reqwest::StatusCode);

#[derive(Clone)]
struct PaymentMetrics {
    state: IntGauge,
    calls: IntCounterVec,
    resends: IntCounter,
    latency: HistogramVec,
}

impl PaymentMetrics {
    fn register(registry: &Registry) -> anyhow::Result<Self> {
        let state = IntGauge::new(
            "payment_circuit_state",
            "The payment circuit breaker: 0 closed, 1 open, 2 half-open",
        )?;
        let calls = IntCounterVec::new(
            Opts::new(
                "payment_calls_total",
                "Payment calls by outcome (approved, declined, circuit_open, overloaded, timeout, failed)",
            ),
            &["outcome"],
        )?;
        let resends = IntCounter::new(
            "payment_call_resends_total",
            "Payment calls sent once more after passing their timeout",
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "payment_call_duration_seconds",
                "Payment call latency by outcome",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
            ]),
            &["outcome"],
        )?;
        registry.register(Box::new(state.clone()))?;
        registry.register(Box::new(calls.clone()))?;
        registry.register(Box::new(resends.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        Ok(Self {
            state,
            calls,
            resends,
            latency,
        })
    }
}

/// Payment's replicas, taken in turn.
struct Replicas {
    base_urls: Vec<String>,
    next: AtomicUsize,
}

impl Replicas {
    fn new(base_urls: Vec<String>) -> Self {
        let base_urls = base_urls
            .into_iter()
            .map(|url| url.trim_end_matches('/').to_owned())
            .collect();
        Self {
            base_urls,
            next: AtomicUsize::new(0),
        }
    }

    /// Sends the request `build` makes for a replica's base URL to the next replica, with
    /// rental's token, moving on while a replica refuses the connection; the last error if every
    /// one does. A token payment refuses is dropped, so the next call fetches a new one.
    async fn send(
        &self,
        token: &ServiceToken,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, BoxError> {
        let bearer = token.get().await?;
        let response = self.send_with(&bearer, build).await?;
        if response.status() == reqwest::StatusCode::UNAUTHORIZED {
            token.forget(&bearer);
        }
        Ok(response)
    }

    async fn send_with(
        &self,
        bearer: &str,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> reqwest::Result<reqwest::Response> {
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        let count = self.base_urls.len();
        let (mut tried, mut replays) = (0, 0);
        loop {
            let base_url = &self.base_urls[(first + tried) % count];
            let call = call_span("payment");
            let request = call.in_scope(|| propagate(build(base_url).bearer_auth(bearer)));
            match request.send().instrument(call).await {
                Err(e) if e.is_connect() && tried + 1 < count => {
                    tracing::debug!(%base_url, error = %e, "payment replica refused; trying the next");
                    tried += 1;
                }
                Err(e) if !e.is_connect() && !e.is_timeout() && replays < REPLAYS => {
                    tracing::info!(%base_url, error = %e, "payment connection broke; calling again");
                    replays += 1;
                }
                outcome => return outcome,
            }
        }
    }
}

/// How many times a call is sent again after its connection broke: a replica that stops may
/// have closed several pooled connections at once.
const REPLAYS: usize = 2;

/// Sends a payment call that passed its timeout once more. The abandoned call's connection is
/// dropped with it, so the resend goes out on another one.
#[derive(Clone)]
struct ResendAfterTimeout {
    left: usize,
    resends: IntCounter,
}

impl Policy<PayRequest, PaymentOutcome, BoxError> for ResendAfterTimeout {
    type Future = std::future::Ready<()>;

    fn retry(
        &mut self,
        _: &mut PayRequest,
        result: &mut Result<PaymentOutcome, BoxError>,
    ) -> Option<Self::Future> {
        match result {
            Err(e) if self.left > 0 && e.is::<Elapsed>() => {
                self.left -= 1;
                self.resends.inc();
                tracing::info!("payment call timed out; sending it once more");
                Some(std::future::ready(()))
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, request: &PayRequest) -> Option<PayRequest> {
        Some(request.clone())
    }
}

#[derive(Clone)]
pub struct PaymentClient {
    http: reqwest::Client,
    token: ServiceToken,
    replicas: Arc<Replicas>,
    pay: BoxCloneSyncService<PayRequest, PaymentOutcome, BoxError>,
    metrics: PaymentMetrics,
}

impl PaymentClient {
    pub fn new(settings: PaymentSettings, registry: &Registry) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout.max(Duration::from_secs(5)))
            .pool_idle_timeout(fleet_http::server::CLIENT_POOL_IDLE_TIMEOUT)
            .build()?;
        let metrics = PaymentMetrics::register(registry)?;
        let replicas = Arc::new(Replicas::new(settings.base_urls));
        let token = ServiceToken::with_metrics(settings.credentials, registry)?;

        let client = http.clone();
        let to = replicas.clone();
        let as_rental = token.clone();
        let call = tower::service_fn(move |request: PayRequest| {
            let (client, to, as_rental) = (client.clone(), to.clone(), as_rental.clone());
            async move {
                let response = to
                    .send(&as_rental, |base_url| {
                        client
                            .post(format!("{base_url}/internal/v1/payments"))
                            .json(&request)
                    })
                    .await?;
                match response.status().as_u16() {
                    200 | 201 => {
                        let payment: PaymentBody = response.json().await?;
                        Ok(match payment.status.as_str() {
                            "DECLINED" => PaymentOutcome::Declined,
                            _ => PaymentOutcome::Approved {
                                payment_id: payment.id,
                            },
                        })
                    }
                    _ => Err(BoxError::from(UnexpectedStatus(response.status()))),
                }
            }
        });

        let state = metrics.state.clone();
        let breaker = CircuitBreakerLayer::builder()
            .name("payment")
            .failure_rate_threshold(settings.failure_rate)
            // A time window: the crate's count-based one only resets on a state change, so a long
            // healthy run would outweigh any later outage.
            .sliding_window_type(SlidingWindowType::TimeBased)
            .sliding_window_duration(settings.window)
            .minimum_number_of_calls(settings.minimum_calls)
            .wait_duration_in_open(settings.open_for)
            .permitted_calls_in_half_open(settings.half_open_calls)
            .on_state_transition(move |from, to| {
                tracing::warn!(from = ?from, to = ?to, "payment circuit breaker changed state");
                state.set(match to {
                    CircuitState::Closed => 0,
                    CircuitState::Open => 1,
                    CircuitState::HalfOpen => 2,
                });
            })
            .build()?;
        let pay = ServiceBuilder::new()
            .load_shed()
            .concurrency_limit(settings.max_concurrent_calls)
            .layer(breaker)
            .retry(ResendAfterTimeout {
                left: 1,
                resends: metrics.resends.clone(),
            })
            .timeout(settings.timeout)
            .service(call)
            .map_err(BoxError::from);
        Ok(Self {
            http,
            token,
            replicas,
            pay: BoxCloneSyncService::new(pay),
            metrics,
        })
    }
}

impl PaymentClient {
    /// Keeps rental's token for payment fresh until `stop` (a worker of the service).
    pub async fn keep_token_fresh(self, stop: tokio_util::sync::CancellationToken) {
        self.token.keep_fresh(stop).await
    }
}

fn classify(error: &BoxError) -> PaymentUnavailable {
    if error.is::<tower::load_shed::error::Overloaded>() {
        return PaymentUnavailable::Overloaded;
    }
    match error.downcast_ref::<CircuitBreakerError<BoxError>>() {
        Some(CircuitBreakerError::OpenCircuit) => PaymentUnavailable::CircuitOpen,
        Some(CircuitBreakerError::Inner(inner)) if inner.is::<Elapsed>() => {
            PaymentUnavailable::TimedOut
        }
        Some(CircuitBreakerError::Inner(inner)) => PaymentUnavailable::Failed(inner.to_string()),
        None => PaymentUnavailable::Failed(error.to_string()),
    }
}

impl PaymentGateway for PaymentClient {
    async fn pay(&self, rental: &Rental) -> Result<PaymentOutcome, PaymentUnavailable> {
        let request = PayRequest {
            rental_id: rental.id,
            user_id: rental.user_id,
            amount: rental.rental_fee,
        };
        let started = Instant::now();
        let outcome = self
            .pay
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| classify(&e));
        let label = match &outcome {
            Ok(PaymentOutcome::Approved { .. }) => "approved",
            Ok(PaymentOutcome::Declined) => "declined",
            Err(PaymentUnavailable::CircuitOpen) => "circuit_open",
            Err(PaymentUnavailable::Overloaded) => "overloaded",
            Err(PaymentUnavailable::TimedOut) => "timeout",
            Err(PaymentUnavailable::Failed(_)) => "failed",
        };
        self.metrics.calls.with_label_values(&[label]).inc();
        self.metrics
            .latency
            .with_label_values(&[label])
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = &outcome {
            tracing::warn!(rental_id = %rental.id, error = %e, "payment call failed");
        }
        outcome
    }

    async fn find(&self, rental_id: Uuid) -> anyhow::Result<Option<PaymentRecord>> {
        let response = self
            .replicas
            .send(&self.token, |base_url| {
                self.http
                    .get(format!("{base_url}/internal/v1/payments"))
                    .query(&[("rentalId", rental_id)])
            })
            .await
            .map_err(anyhow::Error::from_boxed)?
            .error_for_status()?;
        let list: PaymentList = response.json().await?;
        Ok(list.items.into_iter().next().map(|p| PaymentRecord {
            id: p.id,
            approved: p.status == "APPROVED",
        }))
    }

    async fn refund(&self, payment_id: Uuid) -> anyhow::Result<()> {
        self.replicas
            .send(&self.token, |base_url| {
                self.http.post(format!(
                    "{base_url}/internal/v1/payments/{payment_id}/refund"
                ))
            })
            .await
            .map_err(anyhow::Error::from_boxed)?
            .error_for_status()?;
        Ok(())
    }
}
