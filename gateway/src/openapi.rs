//! The fleet's one OpenAPI document: each service's own document, fetched from it and kept for a
//! while, cut down to the routes the gateway serves, with the gateway's own answers (401, 403,
//! 413, 429, 502, 504) and the bearer scheme added.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderMap, Method};
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use crate::routes::{Access, ROUTES, Service};
use crate::upstream::Upstream;

/// A service's document is fetched again after this long.
const FRESH_FOR: Duration = Duration::from_secs(30);

pub struct ApiDocs {
    upstreams: Arc<HashMap<Service, Upstream>>,
    fetched: Mutex<HashMap<Service, (Instant, Value)>>,
}

impl ApiDocs {
    pub fn new(upstreams: Arc<HashMap<Service, Upstream>>) -> Self {
        Self {
            upstreams,
            fetched: Mutex::default(),
        }
    }

    /// The merged document; a service that cannot be reached contributes its last document, or
    /// is named as missing.
    pub async fn document(&self) -> Value {
        let mut fetched = self.fetched.lock().await;
        let mut missing = Vec::new();
        for (service, upstream) in self.upstreams.iter() {
            let fresh = fetched
                .get(service)
                .is_some_and(|(at, _)| at.elapsed() < FRESH_FOR);
            if fresh {
                continue;
            }
            match fetch(upstream).await {
                Some(doc) => {
                    fetched.insert(*service, (Instant::now(), doc));
                }
                None if fetched.contains_key(service) => {}
                None => missing.push(service.name()),
            }
        }
        let docs: HashMap<Service, &Value> = fetched.iter().map(|(s, (_, d))| (*s, d)).collect();
        merge(&docs, &missing)
    }
}

async fn fetch(upstream: &Upstream) -> Option<Value> {
    let path = PathAndQuery::from_static("/openapi.json");
    let response = upstream
        .send(&Method::GET, &path, &HeaderMap::new(), Bytes::new(), true)
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body = axum::body::to_bytes(response.into_body(), 4 << 20)
        .await
        .ok()?;
    serde_json::from_slice(&body).ok()
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

/// A keyed route's `Idempotency-Key`: the request header (optional) and, in every answer, the
/// key the gateway chose when the request had none.
fn describe_idempotency_key(operation: &mut Value) {
    let parameters = operation
        .as_object_mut()
        .expect("an OpenAPI operation is an object")
        .entry("parameters")
        .or_insert_with(|| json!([]));
    if let Some(parameters) = parameters.as_array_mut()
        && !parameters.iter().any(|p| {
            p["in"] == "header"
                && p["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case("idempotency-key"))
        })
    {
        parameters.push(json!({
            "name": "Idempotency-Key",
            "in": "header",
            "required": false,
            "description": "Your name for this request (1 to 255 visible ASCII characters, a UUID say): sent again with the same key, it is answered as the first time and takes effect once. Without one, the gateway chooses a key and returns it in the answer's Idempotency-Key header.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        }));
    }
    let header = json!({
        "description": "The key the gateway chose for a request sent without one: send the request again with it (after a time-out, say) and it takes effect once.",
        "schema": {"type": "string"},
    });
    for response in operation["responses"]
        .as_object_mut()
        .expect("an OpenAPI operation has responses")
        .values_mut()
    {
        // A reference takes no headers beside it.
        if let Some(response) = response.as_object_mut().filter(|r| !r.contains_key("$ref")) {
            let headers = response.entry("headers").or_insert_with(|| json!({}));
            if let Some(headers) = headers.as_object_mut() {
                headers
                    .entry("Idempotency-Key")
                    .or_insert_with(|| header.clone());
            }
        }
    }
}

/// The routed operations of `docs`, each with what the gateway adds to it.
pub fn merge(docs: &HashMap<Service, &Value>, missing: &[&str]) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let mut tags: Vec<Value> = Vec::new();
    for doc in docs.values() {
        if let Some(found) = doc
            .pointer("/components/schemas")
            .and_then(Value::as_object)
        {
            for (name, schema) in found {
                if let Some(existing) = schemas.get(name)
                    && existing != schema
                {
                    tracing::warn!(schema = %name, "two services define this schema differently; the first is kept");
                    continue;
                }
                schemas.insert(name.clone(), schema.clone());
            }
        }
        for tag in doc["tags"].as_array().into_iter().flatten() {
            if !tags.iter().any(|t| t["name"] == tag["name"]) {
                tags.push(tag.clone());
            }
        }
    }
    for route in &ROUTES {
        let method = route.method.as_str().to_ascii_lowercase();
        let Some(operation) = docs
            .get(&route.service)
            .and_then(|doc| doc["paths"][route.path].get(&method))
        else {
            continue;
        };
        let mut operation = operation.clone();
        let takes_body = operation.get("requestBody").is_some();
        if route.access != Access::Anyone {
            operation["security"] = json!([{"bearer": []}]);
        }
        let responses = operation["responses"]
            .as_object_mut()
            .expect("an OpenAPI operation has responses");
        let mut add = |status: &str, description: &str| {
            responses
                .entry(status)
                .or_insert_with(|| problem(description));
        };
        if route.access != Access::Anyone {
            add("401", "No access token, or one that is not valid");
        }
        if let Some(role) = route.access.role() {
            add("403", &format!("Only a {role} may do this"));
        }
        if takes_body {
            add("413", "The body is larger than the gateway accepts");
        }
        add(
            "429",
            "Too many requests from this client; wait Retry-After seconds",
        );
        add("502", "The service is unreachable");
        add("504", "The service did not answer in time");
        if route.keyed {
            describe_idempotency_key(&mut operation);
        }
        let item = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        item[method] = operation;
        // Path parameters are declared on each operation by the services; keep them together.
        if let Some(params) = docs[&route.service]["paths"][route.path].get("parameters") {
            item["parameters"] = params.clone();
        }
    }
    let mut description = "The book rental fleet's public API, through its gateway. Sign in at \
        POST /api/v1/auth/token and send the access token as `Authorization: Bearer <token>`."
        .to_owned();
    if !missing.is_empty() {
        description.push_str(&format!(
            "\n\nNot reachable just now, so not described: {}.",
            missing.join(", ")
        ));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Book rental fleet",
            "version": env!("CARGO_PKG_VERSION"),
            "description": description,
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            }
        },
        "tags": tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_routed_operations_are_described_with_the_gateways_answers() {
        let payment = json!({
            "paths": {
                "/api/v1/payments/{id}": {"get": {"responses": {"200": {"description": "ok"}}}},
                "/internal/v1/payments": {"post": {"responses": {"201": {"description": "paid"}}}},
            },
            "components": {"schemas": {"Problem": {"type": "object"}}}
        });
        let user = json!({
            "paths": {"/api/v1/users": {"post": {
                "requestBody": {"content": {"application/json": {}}},
                "responses": {"201": {"description": "ok"}}
            }}},
            "components": {"schemas": {"Problem": {"type": "object"}}}
        });
        let docs = HashMap::from([(Service::Payment, &payment), (Service::User, &user)]);
        let merged = merge(&docs, &["rental"]);
        let paths = merged["paths"].as_object().unwrap();
        assert_eq!(
            paths.keys().collect::<Vec<_>>(),
            ["/api/v1/payments/{id}", "/api/v1/users"]
        );
        let read = &merged["paths"]["/api/v1/payments/{id}"]["get"];
        assert_eq!(read["security"], json!([{"bearer": []}]));
        assert!(read["responses"]["401"].is_object());
        assert!(read["responses"]["429"].is_object());
        let register = &merged["paths"]["/api/v1/users"]["post"];
        assert!(register.get("security").is_none());
        assert!(register["responses"].get("401").is_none());
        assert!(register["responses"]["413"].is_object());
        assert!(read["responses"].get("413").is_none());
        assert!(
            merged["info"]["description"]
                .as_str()
                .unwrap()
                .contains("rental")
        );
        assert_eq!(merged["components"]["schemas"]["Problem"]["type"], "object");
    }

    #[test]
    fn a_keyed_route_describes_the_key_it_takes_and_the_one_it_returns() {
        let rental = json!({
            "paths": {"/api/v1/rentals": {"post": {
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": false}],
                "requestBody": {"content": {"application/json": {}}},
                "responses": {"201": {"description": "rented"}}
            }}},
        });
        let docs = HashMap::from([(Service::Rental, &rental)]);
        let merged = merge(&docs, &[]);
        let rent = &merged["paths"]["/api/v1/rentals"]["post"];
        // The service's own parameter, not a second one.
        assert_eq!(rent["parameters"].as_array().unwrap().len(), 1);
        for status in ["201", "401", "403", "504"] {
            assert!(
                rent["responses"][status]["headers"]["Idempotency-Key"].is_object(),
                "{status}: {rent}"
            );
        }
    }
}
