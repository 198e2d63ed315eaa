//! HTTP plumbing shared by every service: extractors that answer with problems, the fallbacks,
//! and the middleware stack.

use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Router, middleware};
use serde::de::DeserializeOwned;

use crate::problem::{InvalidParam, Problem};
use fleet_telemetry::metrics::Metrics;

/// `axum::Json`, with every rejection answered as a problem: 400 malformed JSON, 415 wrong
/// content type, 413 too large, 422 wrong shape (unknown or missing fields, wrong types).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

fn json_problem(rejection: JsonRejection) -> Problem {
    if let JsonRejection::JsonDataError(e) = &rejection {
        // Point at the member that does not fit, as validation errors do.
        let mut source = std::error::Error::source(e);
        let mut found = None;
        while let Some(error) = source {
            found = error.downcast_ref::<serde_path_to_error::Error<serde_json::Error>>();
            if found.is_some() {
                break;
            }
            source = error.source();
        }
        if let Some(error) = found {
            let path = error.path().to_string();
            let pointer = if path == "." {
                "#".to_owned()
            } else {
                format!("#/{}", path.replace('.', "/"))
            };
            let mut problem = Problem::invalid(vec![InvalidParam {
                pointer,
                detail: error.inner().to_string(),
            }]);
            problem.detail = Some("The body does not have the expected shape.".to_owned());
            return problem;
        }
    }
    let detail = match &rejection {
        JsonRejection::JsonDataError(e) => format!(
            "The body does not have the expected shape: {}",
            source_text(e)
        ),
        JsonRejection::JsonSyntaxError(e) => {
            format!("The body is not valid JSON: {}", source_text(e))
        }
        JsonRejection::MissingJsonContentType(_) => "Send the body as application/json.".to_owned(),
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            "The body is too large.".to_owned()
        }
        _ => rejection.body_text(),
    };
    Problem::new(rejection.status(), detail)
}

// serde's message without axum's generic preamble, e.g. "title: unknown field `x`".
fn source_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text = inner.to_string();
        source = inner.source();
    }
    text
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Collects every invalid field of a request while parsing it into domain values, so that one
/// 422 lists them all.
#[derive(Debug, Default)]
pub struct InvalidFields(Vec<InvalidParam>);

impl InvalidFields {
    /// The parsed value, or `None` with the error recorded under `#/<field>`.
    pub fn check<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        parsed: Result<T, E>,
    ) -> Option<T> {
        parsed
            .map_err(|e| {
                self.0.push(InvalidParam {
                    pointer: format!("#/{field}"),
                    detail: e.to_string(),
                })
            })
            .ok()
    }

    /// Records a rule about the request as a whole (pointer `#`).
    pub fn reject(&mut self, detail: impl Into<String>) {
        self.0.push(InvalidParam {
            pointer: "#".to_owned(),
            detail: detail.into(),
        });
    }

    /// The 422 problem listing every invalid field.
    pub fn into_problem(self) -> Problem {
        Problem::invalid(self.0)
    }

    /// `Err` with a 422 problem when any field was invalid.
    pub fn finish(self) -> Result<(), Problem> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Problem::invalid(self.0))
        }
    }
}

/// `axum::extract::Path`, answering 400 with a problem when a segment does not parse (an id
/// that is not a UUID, say).
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection @ PathRejection::FailedToDeserializePathParams(_)) => Err(
                Problem::bad_request(format!("Invalid path: {}", source_text(&rejection))),
            ),
            Err(rejection) => Err(Problem::new(rejection.status(), rejection.body_text())),
        }
    }
}

/// `axum::extract::Query`, answering 400 with a problem.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|rejection: QueryRejection| {
                Problem::bad_request(format!("Invalid query: {}", source_text(&rejection)))
            })
    }
}

async fn no_route() -> Problem {
    Problem::not_found("No resource at this path.")
}

async fn wrong_method() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "This resource does not accept that method.",
    )
}

/// Error responses made by layers (timeouts, panics) carry no body; give them a problem one.
async fn problem_bodies(request: Request, next: middleware::Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if (status.is_client_error() || status.is_server_error())
        && !response.headers().contains_key(header::CONTENT_TYPE)
    {
        let detail = match status {
            StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE => {
                "The request took too long; try again in a moment."
            }
            StatusCode::INTERNAL_SERVER_ERROR => "The request failed on our side.",
            _ => "The request was refused.",
        };
        let mut problem = Problem::new(status, detail).into_response();
        problem.headers_mut().extend(
            response
                .headers()
                .iter()
                .filter(|(name, _)| *name != header::CONTENT_LENGTH)
                .map(|(n, v)| (n.clone(), v.clone())),
        );
        return problem;
    }
    response
}

/// Wraps a service's routes with what every service answers the same way: problem fallbacks,
/// a body limit, a request timeout, panics as 500s, request ids, trace context, logs and metrics.
pub fn finish_router(
    routes: Router,
    metrics: Metrics,
    request_timeout: Duration,
    body_limit: usize,
) -> Router {
    use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
    use tower_http::trace::{OnResponse, TraceLayer};

    let x_request_id = header::HeaderName::from_static("x-request-id");
    routes
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            request_timeout,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(middleware::from_fn(problem_bodies))
        .layer(middleware::from_fn_with_state(
            metrics,
            fleet_telemetry::metrics::track_requests,
        ))
        .layer(
            TraceLayer::new_for_http()
                // A 5xx is already logged where it is made; this is the request's context.
                .on_failure(tower_http::trace::DefaultOnFailure::new().level(tracing::Level::WARN))
                // One line per request, carrying its request and trace ids, and its latency in
                // microseconds (whole milliseconds hide a fast service's percentiles).
                .on_request(())
                .on_response(
                    |response: &Response, latency: Duration, span: &tracing::Span| {
                        span.record("http.response.status_code", response.status().as_u16());
                        if response.status().is_server_error() {
                            span.record("otel.status_code", "ERROR");
                        }
                        tower_http::trace::DefaultOnResponse::new()
                            .level(tracing::Level::INFO)
                            .latency_unit(tower_http::LatencyUnit::Micros)
                            .on_response(response, latency, span);
                    },
                )
                .make_span_with(|request: &Request| {
                    let request_id = request
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    let span = tracing::info_span!(
                        "request",
                        method = %request.method(),
                        uri = %request.uri(),
                        request_id,
                        trace_id = tracing::field::Empty,
                        otel.name = tracing::field::Empty,
                        otel.kind = tracing::field::Empty,
                        otel.status_code = tracing::field::Empty,
                        http.response.status_code = tracing::field::Empty,
                    );
                    // The route, not the path: one name for every rental's page.
                    let route = request
                        .extensions()
                        .get::<axum::extract::MatchedPath>()
                        .map_or("unmatched", |path| path.as_str());
                    let name = || format!("{} {route}", request.method());
                    let remote = fleet_telemetry::trace::TraceParent::of(request);
                    if let Some(trace) =
                        fleet_telemetry::trace::adopt(&span, "server", name, remote)
                    {
                        span.record("trace_id", trace.trace_id());
                    }
                    span
                }),
        )
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
        .layer(middleware::from_fn(
            fleet_telemetry::trace::ensure_trace_context,
        ))
}

/// `doc` with the answers this module's extractors give that handlers do not document one by
/// one: 400 for a path or query parameter that does not parse ([`Path`], [`Query`]), and 400 for
/// a body that is not JSON and 415 for one not sent as JSON ([`Json`]). An answer an operation
/// already documents is kept.
pub fn document_rejections(mut doc: serde_json::Value) -> serde_json::Value {
    use serde_json::{Value, json};

    let problem = |description: &str| {
        json!({
            "description": description,
            "content": {
                crate::problem::CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
            }
        })
    };
    let mut used = false;
    for item in doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
    {
        let shared_params = item.get("parameters").cloned().unwrap_or(Value::Null);
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            if !matches!(
                method.as_str(),
                "get" | "put" | "post" | "delete" | "options" | "head" | "patch" | "trace"
            ) {
                continue;
            }
            let parsed_params = [&operation["parameters"], &shared_params]
                .into_iter()
                .filter_map(Value::as_array)
                .flatten()
                .any(|p| matches!(p["in"].as_str(), Some("path" | "query")));
            let json_body = operation
                .pointer("/requestBody/content")
                .and_then(Value::as_object)
                .is_some_and(|content| content.contains_key("application/json"));
            let Some(responses) = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            let mut add = |status: &str, description: &str| {
                if !responses.contains_key(status) {
                    responses.insert(status.to_owned(), problem(description));
                    used = true;
                }
            };
            match (parsed_params, json_body) {
                (true, true) => add("400", "A parameter does not parse, or the body is not JSON"),
                (true, false) => add("400", "A parameter does not parse"),
                (false, true) => add("400", "The body is not JSON"),
                (false, false) => {}
            }
            if json_body {
                add("415", "The body is not sent as application/json");
            }
        }
    }
    if used && doc.pointer("/components/schemas/Problem").is_none() {
        let schemas = &mut doc["components"]["schemas"];
        for (name, schema) in [
            ("Problem", <Problem as utoipa::PartialSchema>::schema()),
            (
                "InvalidParam",
                <InvalidParam as utoipa::PartialSchema>::schema(),
            ),
        ] {
            schemas[name] = serde_json::to_value(schema).expect("a schema serializes");
        }
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct RentBook {
        book_id: uuid::Uuid,
        copies: Option<u8>,
    }

    fn problem_for(body: &str) -> Problem {
        json_problem(axum::Json::<RentBook>::from_bytes(body.as_bytes()).unwrap_err())
    }

    #[test]
    fn shape_errors_point_at_the_member() {
        let problem = problem_for(r#"{"bookId":"not-a-uuid"}"#);
        assert_eq!(problem.status, 422);
        assert_eq!(problem.errors[0].pointer, "#/bookId", "{problem:?}");
        let problem =
            problem_for(r#"{"bookId":"6f1d7c2e-8b9a-4c3d-9e2f-0a1b2c3d4e5f","copies":300}"#);
        assert_eq!(problem.errors[0].pointer, "#/copies", "{problem:?}");
        let problem =
            problem_for(r#"{"bookId":"6f1d7c2e-8b9a-4c3d-9e2f-0a1b2c3d4e5f","isbn":"1"}"#);
        assert!(
            problem.errors[0].detail.contains("unknown field `isbn`"),
            "{problem:?}"
        );
        assert_eq!(problem_for(r#"{}"#).errors[0].pointer, "#");
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        assert_eq!(problem_for(r#"{"bookId":"#).status, 400);
    }

    #[test]
    fn the_extractors_answers_are_documented_where_an_operation_leaves_them_out() {
        let doc = serde_json::json!({
            "paths": {
                "/things/{id}": {
                    "get": {
                        "parameters": [{"name": "id", "in": "path"}],
                        "responses": {"200": {"description": "ok"}}
                    },
                    "patch": {
                        "parameters": [{"name": "id", "in": "path"}],
                        "requestBody": {"content": {"application/json": {}}},
                        "responses": {"400": {"description": "its own"}}
                    }
                },
                "/token": {
                    "post": {
                        "requestBody": {"content": {"application/x-www-form-urlencoded": {}}},
                        "responses": {"200": {"description": "ok"}}
                    }
                }
            }
        });
        let doc = document_rejections(doc);
        let read = &doc["paths"]["/things/{id}"]["get"]["responses"];
        assert_eq!(
            read["400"]["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem"
        );
        assert!(read.get("415").is_none());
        let change = &doc["paths"]["/things/{id}"]["patch"]["responses"];
        assert_eq!(change["400"]["description"], "its own");
        assert!(change["415"].is_object());
        let token = doc["paths"]["/token"]["post"]["responses"]
            .as_object()
            .unwrap();
        assert_eq!(token.keys().collect::<Vec<_>>(), ["200"]);
        assert!(doc["components"]["schemas"]["Problem"].is_object());
        assert!(doc["components"]["schemas"]["InvalidParam"].is_object());
    }
}
