use std::time::Duration;

use fleet_testing::{WAIT, eventually};
use reqwest::header::{ACCESS_CONTROL_ALLOW_ORIGIN, ORIGIN, RETRY_AFTER};
use serde_json::json;

use crate::helpers::{Fleet, refused};

#[tokio::test]
async fn past_its_budget_a_client_gets_429_with_retry_after_and_then_recovers() {
    let fleet = Fleet::start().await;
    let customer = fleet.sign_up().await;
    let gateway = fleet
        .another_gateway(&[("RATE_LIMIT_PER_SECOND", "1"), ("RATE_LIMIT_BURST", "3")])
        .await;
    let get = || fleet.get_at(&gateway.base_url, "/api/v1/books", &customer.token);
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..6 {
        let response = get().await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 && limited.is_none() {
            limited = Some(response);
        }
    }
    assert_eq!(&statuses[..3], [200, 200, 200], "{statuses:?}");
    let limited = limited.unwrap_or_else(|| panic!("no 429 in {statuses:?}"));
    let retry_after: u64 = limited.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After: {retry_after}");
    refused(limited, 429).await;

    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(get().await.status(), 200);
    // Health checks are never limited: probes must not fail because a client is busy.
    for _ in 0..5 {
        let ready = fleet
            .client
            .get(format!("{}/readyz", gateway.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 200);
    }
}

#[tokio::test]
async fn an_oversized_body_is_refused_at_the_gateway() {
    let fleet = Fleet::start().await;
    let manager = fleet.manager().await;
    let gateway = fleet.another_gateway(&[("BODY_LIMIT_BYTES", "1024")]).await;
    let title = "x".repeat(2000);
    let response = fleet
        .client
        .post(format!("{}/api/v1/books", gateway.base_url))
        .bearer_auth(&manager)
        .json(&json!({"title": title, "author": "A", "rentalFee": 1}))
        .send()
        .await
        .unwrap();
    refused(response, 413).await;
    assert_eq!(fleet.count("book.books").await, 0);
}

#[tokio::test]
async fn browsers_may_call_from_the_configured_origins_only() {
    let fleet = Fleet::start().await;
    let gateway = fleet
        .another_gateway(&[("CORS_ALLOWED_ORIGINS", "https://books.example")])
        .await;
    let preflight = |origin: &'static str| {
        fleet
            .client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/api/v1/rentals", gateway.base_url),
            )
            .header(ORIGIN, origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let allowed = preflight("https://books.example").await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(
        allowed.headers()[ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://books.example"
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}

#[tokio::test]
async fn the_request_id_and_trace_context_reach_the_service() {
    let fleet = Fleet::start().await;
    let customer = fleet.sign_up().await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = fleet
        .client
        .get(fleet.url("/api/v1/books"))
        .bearer_auth(&customer.token)
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .header("x-request-id", "journey-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "journey-42");
    eventually(
        "the trace id in the gateway's and book-management's logs",
        WAIT,
        || async {
            let in_books = fleet
                .books
                .logs()
                .lines()
                .any(|line| line.contains(trace_id) && line.contains("journey-42"));
            (in_books && fleet.gateway.logs().contains(trace_id)).then_some(())
        },
    )
    .await;

    // Without one, the gateway starts a trace and the service continues it.
    let response = fleet
        .client
        .get(fleet.url("/api/v1/books"))
        .bearer_auth(&customer.token)
        .send()
        .await
        .unwrap();
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    eventually(
        "a generated request id in book-management's logs",
        WAIT,
        || async { fleet.books.logs().contains(&request_id).then_some(()) },
    )
    .await;
}
