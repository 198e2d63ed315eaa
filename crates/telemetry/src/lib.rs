//! Structured logs: JSON lines by default (one object per event, with the span fields), or text
//! for a person at a terminal. The level comes from `RUST_LOG` (default `info`).
//!
//! Traces: with `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, the
//! spans of requests, calls, outbox batches, publishes and consumed events are also exported over
//! OTLP (HTTP, protobuf) to that collector, in batches from a thread of their own; the SDK's
//! other `OTEL_*` variables apply (`OTEL_TRACES_SAMPLER`, `OTEL_BSP_SCHEDULE_DELAY`, …). Unset,
//! no OpenTelemetry code runs at all.
//!
//! Metrics: one Prometheus registry per process with every series the fleet exports
//! ([`metrics`]); trace context across HTTP and Kafka ([`trace`]).

pub mod metrics;
pub mod trace;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use std::str::FromStr;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Json,
    Text,
}

impl FromStr for LogFormat {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(Self::Json),
            "text" => Ok(Self::Text),
            _ => Err("expected json or text"),
        }
    }
}

/// The variables that turn exporting on, as the OpenTelemetry specification names them.
pub const OTLP_ENDPOINTS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
];

/// Holds the exporter while the process runs; dropping it sends the spans still queued.
#[must_use = "dropping it at once stops exporting"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("the last spans were not exported: {e}");
        }
    }
}

/// Logs to stdout, and exports `service`'s spans when an OTLP endpoint is configured. Fails on
/// an exporter that cannot be built (a malformed endpoint, say).
pub fn init(service: &'static str, format: LogFormat) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer().boxed(),
    };
    let provider = if exporting_configured() {
        Some(provider(service)?)
    } else {
        None
    };
    let spans = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(service))
            .with_tracked_inactivity(false)
    });
    // A second init (several services in one test process) keeps the first subscriber.
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(spans)
        .try_init()
        .is_ok();
    if installed && provider.is_some() {
        crate::trace::start_exporting();
    }
    Ok(Telemetry { provider })
}

fn exporting_configured() -> bool {
    OTLP_ENDPOINTS
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
}

fn provider(service: &'static str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .context("cannot export traces to OTEL_EXPORTER_OTLP_ENDPOINT")?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build())
}
