//! Prometheus metrics: one registry per service instance (tests run several in one process).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

pub struct Inner {
    pub registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub outbox_published: IntCounterVec,
    pub outbox_backlog: IntGauge,
    pub outbox_oldest_unsent_age: Gauge,
    pub events_consumed: IntCounterVec,
    pub event_processing: HistogramVec,
    pub consumer_batch_events: Histogram,
    pub outbox_pass_events: Histogram,
    pub event_lag: HistogramVec,
    pub events_dead_lettered: IntCounterVec,
    pub consumer_partitions: IntGauge,
    pub consumer_lag: IntGaugeVec,
    pub db_pool_connections: IntGaugeVec,
    pub db_pool_max_connections: IntGauge,
    pub retention_deleted: IntCounterVec,
    pub table_size: IntGaugeVec,
    pub http_connections_open: IntGauge,
    pub http_connections_refused: IntCounter,
}

impl std::ops::Deref for Metrics {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Metrics {
    pub fn new(service: &str) -> Self {
        let registry = Registry::new_custom(
            None,
            Some([("service".to_owned(), service.to_owned())].into()),
        )
        .expect("valid registry labels");
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests answered, by route and status",
            ),
            &["method", "route", "status"],
        )
        .unwrap();
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency, by route",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["method", "route"],
        )
        .unwrap();
        let outbox_published = IntCounterVec::new(
            Opts::new(
                "outbox_events_published_total",
                "Outbox events the relay published, by topic",
            ),
            &["topic"],
        )
        .unwrap();
        let outbox_backlog = IntGauge::new(
            "outbox_backlog",
            "Outbox events not yet published, as of the relay's last pass",
        )
        .unwrap();
        let events_consumed = IntCounterVec::new(
            Opts::new("events_consumed_total", "Events consumed, by topic and outcome (applied, duplicate, skipped, dead_lettered)"),
            &["topic", "outcome"],
        )
        .unwrap();
        let events_dead_lettered = IntCounterVec::new(
            Opts::new(
                "events_dead_lettered_total",
                "Events sent to a dead-letter topic, by source topic",
            ),
            &["topic"],
        )
        .unwrap();
        let consumer_partitions = IntGauge::new(
            "consumer_assigned_partitions",
            "Partitions this replica owns in its consumer group",
        )
        .unwrap();
        let outbox_oldest_unsent_age = Gauge::new(
            "outbox_oldest_unsent_age_seconds",
            "Age of the oldest event not yet published, as of the relay's last pass (0 when none)",
        )
        .unwrap();
        let event_processing = HistogramVec::new(
            HistogramOpts::new(
                "event_processing_duration_seconds",
                "Time to apply one consumed event (retries included), by topic",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
            ]),
            &["topic"],
        )
        .unwrap();
        let consumer_batch_events = Histogram::with_opts(
            HistogramOpts::new(
                "consumer_batch_events",
                "Events a consumer applied together in one transaction",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]),
        )
        .unwrap();
        let outbox_pass_events = Histogram::with_opts(
            HistogramOpts::new(
                "outbox_pass_events",
                "Events an outbox relay pass published, passes that found some",
            )
            .buckets(vec![
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0,
            ]),
        )
        .unwrap();
        let event_lag = HistogramVec::new(
            HistogramOpts::new(
                "event_lag_seconds",
                "Time from an event's creation (its CloudEvent time) to its effect here, by topic",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
            &["topic"],
        )
        .unwrap();
        let consumer_lag = IntGaugeVec::new(
            Opts::new(
                "consumer_lag",
                "Events on the broker this replica's partitions have not consumed yet, by topic",
            ),
            &["topic"],
        )
        .unwrap();
        let db_pool_connections = IntGaugeVec::new(
            Opts::new(
                "db_pool_connections",
                "Database connections held by the pool, by state (in_use, idle)",
            ),
            &["state"],
        )
        .unwrap();
        let db_pool_max_connections = IntGauge::new(
            "db_pool_max_connections",
            "The most connections the pool opens",
        )
        .unwrap();
        let retention_deleted = IntCounterVec::new(
            Opts::new(
                "retention_rows_deleted_total",
                "Rows retention deleted for being old enough, by table (outbox, inbox)",
            ),
            &["table"],
        )
        .unwrap();
        let table_size = IntGaugeVec::new(
            Opts::new(
                "table_size_bytes",
                "On-disk size of a kit table, indexes included, as of retention's last pass",
            ),
            &["table"],
        )
        .unwrap();
        let http_connections_open = IntGauge::new(
            "http_connections_open",
            "Client connections being served (at most HTTP_MAX_CONNECTIONS)",
        )
        .unwrap();
        let http_connections_refused = IntCounter::new(
            "http_connections_refused_total",
            "Client connections answered 503 and closed because HTTP_MAX_CONNECTIONS were open",
        )
        .unwrap();
        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_connections_open.clone()),
            Box::new(http_connections_refused.clone()),
            Box::new(http_duration.clone()),
            Box::new(outbox_published.clone()),
            Box::new(outbox_backlog.clone()),
            Box::new(events_consumed.clone()),
            Box::new(events_dead_lettered.clone()),
            Box::new(consumer_partitions.clone()),
            Box::new(outbox_oldest_unsent_age.clone()),
            Box::new(event_processing.clone()),
            Box::new(consumer_batch_events.clone()),
            Box::new(outbox_pass_events.clone()),
            Box::new(event_lag.clone()),
            Box::new(consumer_lag.clone()),
            Box::new(db_pool_connections.clone()),
            Box::new(db_pool_max_connections.clone()),
            Box::new(retention_deleted.clone()),
            Box::new(table_size.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process metrics register once per registry");
        Self(Arc::new(Inner {
            registry,
            http_requests,
            http_duration,
            outbox_published,
            outbox_backlog,
            outbox_oldest_unsent_age,
            events_consumed,
            event_processing,
            consumer_batch_events,
            outbox_pass_events,
            event_lag,
            events_dead_lettered,
            consumer_partitions,
            consumer_lag,
            db_pool_connections,
            db_pool_max_connections,
            retention_deleted,
            table_size,
            http_connections_open,
            http_connections_refused,
        }))
    }

    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

/// The `/metrics` answer: every series of `metrics` in Prometheus' text format.
pub fn serve_metrics(metrics: &Metrics) -> Response {
    (
        [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        metrics.render(),
    )
        .into_response()
}

/// The method as a label: the standard ones by name, any other (clients may send any token up to
/// the header limit) as `OTHER`, so what clients send cannot add series.
fn method_label(method: &axum::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    }
}

/// Counts and times every request by its route template (unmatched paths under one label), so
/// ids and made-up paths do not explode the label set.
pub async fn track_requests(
    State(metrics): State<Metrics>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics
        .http_duration
        .with_label_values(&[method, &route])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .http_requests
        .with_label_values(&[method, &route, response.status().as_str()])
        .inc();
    response
}
