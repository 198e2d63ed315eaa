//! W3C Trace Context (`traceparent`): every request and every event carries one, so one user
//! action is one trace id in every process's logs. A process continues the caller's trace or
//! starts one, and holds it for the task that serves the request or applies the event, so that
//! what the task sends on (an HTTP call, an event through the outbox) continues it.
//!
//! With `OTEL_EXPORTER_OTLP_ENDPOINT` set ([`crate::init`]), the spans themselves are
//! exported: a request's, an event's, an outgoing call's, an outbox batch's and each publish's.
//! Then the context sent on is the current span's, so that every hop's span is the parent of the
//! next. Without it, nothing of OpenTelemetry runs: the trace id is passed on with a new random
//! parent id, for the logs alone.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub const TRACEPARENT: &str = "traceparent";

tokio::task_local! {
    static CURRENT: TraceParent;
}

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported (set once, by [`crate::init`]).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

pub(crate) fn start_exporting() {
    EXPORTING.store(true, Ordering::Relaxed);
}

/// The trace of the request or event this task is serving, if any.
pub fn current() -> Option<TraceParent> {
    if exporting() {
        return TraceParent::of_span(&tracing::Span::current());
    }
    CURRENT.try_with(TraceParent::clone).ok()
}

/// The `traceparent` to send on to the next hop: the current span when spans are exported,
/// else the current trace with a new parent id.
pub fn outgoing() -> Option<String> {
    if exporting() {
        return current().map(|trace| trace.to_string());
    }
    current().map(|trace| trace.child().to_string())
}

/// An outgoing HTTP request that continues the current trace.
pub fn propagate(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match outgoing() {
        Some(traceparent) => request.header(TRACEPARENT, traceparent),
        None => request,
    }
}

/// Runs `work` as part of `trace`.
pub async fn within<F: Future>(trace: TraceParent, work: F) -> F::Output {
    CURRENT.scope(trace, work).await
}

/// Makes `span` (a request's, an event's, a publish's) continue `remote`, the context that came
/// with it, and returns the trace it is in. When spans are exported, `span` becomes the child of
/// `remote`, or the root of a new trace without one; `kind` and `name` are what a trace viewer
/// shows. Otherwise this is `remote`, untouched.
pub fn adopt(
    span: &tracing::Span,
    kind: &'static str,
    name: impl FnOnce() -> String,
    remote: Option<TraceParent>,
) -> Option<TraceParent> {
    if !exporting() {
        return remote;
    }
    span.record("otel.kind", kind);
    span.record("otel.name", name());
    if let Some(remote) = &remote {
        let _ = span.set_parent(remote.as_remote_parent());
    }
    TraceParent::of_span(span).or(remote)
}

/// A span for publishing an event to `topic`, continuing `stored`, the context the event was
/// written with; and the `traceparent` its record carries. Without exported spans, no span and
/// `stored` as it is.
pub fn publish_span(topic: &str, stored: Option<&str>) -> (tracing::Span, Option<String>) {
    if !exporting() {
        return (tracing::Span::none(), stored.map(str::to_owned));
    }
    let span = tracing::info_span!(
        "publish",
        otel.name = tracing::field::Empty,
        otel.kind = tracing::field::Empty,
        messaging.destination.name = topic,
    );
    let remote = stored.and_then(TraceParent::parse);
    let context = adopt(&span, "producer", || format!("publish {topic}"), remote);
    (span, context.map(|trace| trace.to_string()))
}

/// A span for one pass of the outbox relay over `events` events, linked to each event's
/// publish span (they belong to the traces of the requests that wrote them); nothing without
/// exported spans.
pub fn relay_span<'a>(
    events: usize,
    publishes: impl Iterator<Item = &'a tracing::Span>,
) -> tracing::Span {
    if !exporting() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!("outbox relay", events);
    for publish in publishes {
        span.add_link(publish.context().span().span_context().clone());
    }
    span
}

/// A span for a call to another service (`peer`), when spans are exported; nothing otherwise.
/// The request's `traceparent` must be made within it ([`tracing::Span::in_scope`]).
pub fn call_span(peer: &'static str) -> tracing::Span {
    if !exporting() {
        return tracing::Span::none();
    }
    tracing::info_span!(
        "call",
        otel.name = format!("call {peer}"),
        otel.kind = "client",
        peer.service = peer,
    )
}

/// `00-<trace id>-<parent id>-<flags>`, lower-case hex, as the W3C recommendation writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    trace_id: String,
    parent_id: String,
    flags: String,
}

impl TraceParent {
    /// A new trace, sampled.
    pub fn start() -> Self {
        Self {
            trace_id: uuid::Uuid::new_v4().simple().to_string(),
            parent_id: span_id(),
            flags: "01".to_owned(),
        }
    }

    /// The same trace, with a new span of ours as the parent of the next hop.
    pub fn child(&self) -> Self {
        Self {
            parent_id: span_id(),
            ..self.clone()
        }
    }

    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// A valid version-00 header; anything else is ignored (a new trace is started), as the
    /// recommendation asks.
    pub fn parse(header: &str) -> Option<Self> {
        let hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let mut parts = header.trim().split('-');
        let (version, trace_id, parent_id, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let valid = version == "00"
            && parts.next().is_none()
            && hex(trace_id, 32)
            && trace_id.bytes().any(|b| b != b'0')
            && hex(parent_id, 16)
            && parent_id.bytes().any(|b| b != b'0')
            && hex(flags, 2);
        valid.then(|| Self {
            trace_id: trace_id.to_owned(),
            parent_id: parent_id.to_owned(),
            flags: flags.to_owned(),
        })
    }

    /// The request's trace context, if it carries a valid one.
    pub fn of(request: &Request) -> Option<Self> {
        request
            .headers()
            .get(TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(Self::parse)
    }

    /// The context of `span`'s exported span, if it has one.
    pub fn of_span(span: &tracing::Span) -> Option<Self> {
        let context = span.context();
        let span = context.span();
        let span = span.span_context();
        span.is_valid().then(|| Self {
            trace_id: span.trace_id().to_string(),
            parent_id: span.span_id().to_string(),
            flags: format!("{:02x}", span.trace_flags().to_u8()),
        })
    }

    /// This context, as the parent a span of ours continues.
    fn as_remote_parent(&self) -> opentelemetry::Context {
        let parsed = (
            TraceId::from_hex(&self.trace_id),
            SpanId::from_hex(&self.parent_id),
            u8::from_str_radix(&self.flags, 16),
        );
        match parsed {
            (Ok(trace_id), Ok(span_id), Ok(flags)) => opentelemetry::Context::new()
                .with_remote_span_context(SpanContext::new(
                    trace_id,
                    span_id,
                    TraceFlags::new(flags),
                    true,
                    TraceState::default(),
                )),
            // Unreachable for a parsed header: hex of the right lengths.
            _ => opentelemetry::Context::new(),
        }
    }

    pub fn header_value(&self) -> HeaderValue {
        HeaderValue::from_str(&self.to_string()).expect("hex and dashes are a valid header")
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{}-{}-{}", self.trace_id, self.parent_id, self.flags)
    }
}

fn span_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_owned()
}

/// Gives a request without a valid `traceparent` a new trace, before anything logs it, and
/// serves the request within its trace.
pub async fn ensure_trace_context(mut request: Request, next: Next) -> Response {
    // Exported spans carry the context themselves: the request's span starts a trace if need be.
    if exporting() {
        return next.run(request).await;
    }
    let trace = match TraceParent::of(&request) {
        Some(trace) => trace,
        None => {
            let trace = TraceParent::start();
            request
                .headers_mut()
                .insert(TRACEPARENT, trace.header_value());
            trace
        }
    };
    within(trace, next.run(request)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_header_is_continued_with_a_new_parent() {
        let parent = TraceParent::parse(EXAMPLE).unwrap();
        assert_eq!(parent.to_string(), EXAMPLE);
        let child = parent.child();
        assert_eq!(child.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(child.to_string(), EXAMPLE);
        assert!(TraceParent::parse(&child.to_string()).is_some());
        assert!(TraceParent::parse(&TraceParent::start().to_string()).is_some());
    }

    #[test]
    fn invalid_headers_are_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }
}
