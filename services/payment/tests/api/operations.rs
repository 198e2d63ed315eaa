//! Health, metrics, OpenAPI, configuration errors and the binary's life cycle.

use std::path::Path;

use serde_json::json;
use service_kit::testing::ServiceProcess;
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn health_metrics_and_the_api_document_are_served() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    app.assert_probes_answer().await;
    app.pay_for(Uuid::new_v4(), Uuid::new_v4(), 1).await;
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"http_requests_total{method="POST",route="/api/v1/payments",status="201",service="payment"} 1"#),
        "{metrics}"
    );

    let doc = app
        .api_document(&[
            "/api/v1/payments",
            "/api/v1/payments/{id}",
            "/api/v1/payments/{id}/refund",
        ])
        .await;
    for schema in ["PayForRental", "PaymentView", "PaymentList", "Problem"] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
    app.stop().await;
}

#[tokio::test]
async fn invalid_configuration_is_reported_at_once() {
    service_kit::testing::assert_refuses_to_start(
        std::path::Path::new(env!("CARGO_BIN_EXE_payment")),
        &[
            ("PAYMENT_LATENCY_MS", "620..400"),
            ("PAYMENT_DECLINE_AMOUNT_ABOVE", "abc"),
        ],
        &[
            "DATABASE_URL is required",
            "KAFKA_BROKERS is required",
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
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/payments", process.base_url))
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
