//! W3C Trace Context (`traceparent`): every request and every event carries one, so one user
//! action is one trace id in every process's logs. A process continues the caller's trace or
//! starts one, and holds it for the task that serves the request or applies the event, so that
//! what the task sends on (an HTTP call, an event through the outbox) continues it.

use std::fmt;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

pub const TRACEPARENT: &str = "traceparent";

tokio::task_local! {
    static CURRENT: TraceParent;
}

/// The trace of the request or event this task is serving, if any.
pub fn current() -> Option<TraceParent> {
    CURRENT.try_with(TraceParent::clone).ok()
}

/// The `traceparent` to send on to the next hop: the current trace, with a new parent span.
pub fn outgoing() -> Option<String> {
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
