//! Health, metrics, OpenAPI, configuration errors and the binary's life cycle.

use std::path::Path;

use fleet_testing::ServiceProcess;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn health_metrics_and_the_api_document_are_served() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    app.assert_operations_port("payment").await;
    app.pay_for(Uuid::new_v4(), Uuid::new_v4(), 1).await;
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"http_requests_total{method="POST",route="/internal/v1/payments",status="201",service="payment"} 1"#),
        "{metrics}"
    );

    let doc = app
        .api_document(&[
            "/api/v1/payments",
            "/api/v1/payments/{id}",
            "/internal/v1/payments",
            "/internal/v1/payments/{id}/refund",
        ])
        .await;
    for schema in ["PayForRental", "PaymentView", "PaymentList", "Problem"] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
    let paths = &doc["paths"];
    assert!(
        paths["/api/v1/payments"]["post"].is_null()
            && paths["/api/v1/payments/{id}/refund"].is_null(),
        "paying and refunding are internal only: {paths}"
    );
    for (path, method) in [
        ("/internal/v1/payments", "post"),
        ("/internal/v1/payments", "get"),
        ("/internal/v1/payments/{id}/refund", "post"),
    ] {
        assert_eq!(paths[path][method]["tags"], json!(["internal"]), "{path}");
    }
    for path in ["/api/v1/payments", "/api/v1/payments/{id}"] {
        assert_eq!(paths[path]["get"]["tags"], json!(["payments"]), "{path}");
        assert!(paths[path]["get"]["responses"]["401"].is_object(), "{path}");
    }
    let internal = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|tag| tag["name"] == "internal")
        .expect("an internal tag");
    assert!(
        internal["description"]
            .as_str()
            .unwrap()
            .contains("gateway never routes"),
        "{internal}"
    );
    app.stop().await;
}

#[tokio::test]
async fn invalid_configuration_is_reported_at_once() {
    fleet_testing::assert_refuses_to_start(
        std::path::Path::new(env!("CARGO_BIN_EXE_payment")),
        &[
            ("PAYMENT_LATENCY_MS", "620..400"),
            ("PAYMENT_DECLINE_AMOUNT_ABOVE", "abc"),
        ],
        &[
            "DATABASE_URL is required",
            "KAFKA_BROKERS is required",
            "JWKS_URL is required",
            "PAYMENT_LATENCY_MS=\"620..400\" is invalid",
            "PAYMENT_DECLINE_AMOUNT_ABOVE=\"abc\" is invalid",
        ],
    );
}

#[tokio::test]
async fn the_binary_pays_publishes_and_stops_cleanly_on_sigterm() {
    let world = World::new().await;
    let mut process = ServiceProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_payment")),
        &world.env_with(&[("PAYMENT_LATENCY_MS", "10..30")]),
    )
    .await;
    let rental = Uuid::new_v4();
    let response = as_rental()
        .post(format!("{}{INTERNAL_PAYMENTS}", process.base_url))
        .json(&json!({"rentalId": rental, "userId": Uuid::new_v4(), "amount": 300}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert!(
        process.terminate().await,
        "SIGTERM ends the service cleanly"
    );
    let messages = world.payment_events().await.expect(1, WAIT).await;
    assert_eq!(messages[0].key, rental.to_string());
}

/// The contract tests' provider-state hook is routed only in a build with the test-only feature
/// `provider-states`; a build without it (the images: `--package payment --bin payment`)
/// answers 404. Each build checks its own case.
#[tokio::test]
async fn the_provider_state_hook_exists_only_with_its_feature() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let response = app
        .client
        .post(app.url("/_test/provider-states"))
        .json(
            &json!({"state": "the rental has no payment", "params": {"rentalId": Uuid::new_v4()}}),
        )
        .send()
        .await
        .unwrap();
    if cfg!(feature = "provider-states") {
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
    } else {
        assert_eq!(
            response.status(),
            404,
            "a build without the feature routes the hook"
        );
    }
}
