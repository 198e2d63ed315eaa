//! Health, metrics, the API document, configuration and shutdown.

use std::path::Path;

use fleet_testing::ServiceProcess;

use crate::helpers::*;

fn view_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_view"))
}

#[tokio::test]
async fn health_metrics_and_the_api_document_are_served() {
    let world = World::new().await;
    let app = world.spawn().await;
    app.assert_operations_port("view").await;
    page(&app, "/api/v1/views/rentals", None).await;
    page(&app, "/api/v1/views/books", None).await;
    let metrics = app.metrics().await;
    for route in ["/api/v1/views/rentals", "/api/v1/views/books"] {
        let series = format!(
            r#"http_requests_total{{method="GET",route="{route}",status="200",service="view"}} 1"#
        );
        assert!(metrics.contains(&series), "{series} missing from {metrics}");
    }
    assert!(metrics.contains("process_resident_memory_bytes"));

    let doc = app
        .api_document(&[
            "/api/v1/views/rentals",
            "/api/v1/views/rentals/{id}",
            "/api/v1/views/books",
        ])
        .await;
    let responses = |path: &str| doc["paths"][path]["get"]["responses"].clone();
    for (path, statuses) in [
        ("/api/v1/views/rentals", &["200", "400", "401", "403"][..]),
        ("/api/v1/views/rentals/{id}", &["200", "400", "401", "404"]),
        ("/api/v1/views/books", &["200", "400", "401", "403"]),
    ] {
        let responses = responses(path);
        for status in statuses {
            assert!(
                responses[status].is_object(),
                "{path} {status}: {responses}"
            );
            if *status != "200" {
                assert!(
                    responses[status]["content"]["application/problem+json"].is_object(),
                    "{path} {status}: {responses}"
                );
            }
        }
    }
    let parameters = doc["paths"]["/api/v1/views/rentals"]["get"]["parameters"].to_string();
    for name in ["customerId", "bookId", "status", "after", "limit"] {
        assert!(
            parameters.contains(&format!("\"{name}\"")),
            "{name}: {parameters}"
        );
    }
    for schema in ["RentalBoardLine", "BookBoardLine", "Problem"] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
    app.stop().await;
}

#[tokio::test]
async fn missing_configuration_is_reported_clearly() {
    fleet_testing::assert_refuses_to_start(
        view_binary(),
        &[("HTTP_PORT", "x")],
        &[
            "DATABASE_URL is required",
            "KAFKA_BROKERS is required",
            "JWKS_URL is required",
            "HTTP_PORT=\"x\" is invalid",
        ],
    );
}

#[test]
fn the_rebuild_needs_the_database_and_the_broker() {
    let output = std::process::Command::new(view_binary())
        .arg("rebuild")
        .env_clear()
        .env("REBUILD_WAIT_MS", "soon")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "DATABASE_URL is required",
        "KAFKA_BROKERS is required",
        "REBUILD_WAIT_MS=\"soon\" is invalid",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected} missing from: {stderr}"
        );
    }
    assert!(!stderr.contains("JWKS_URL"), "{stderr}");

    let output = std::process::Command::new(view_binary())
        .arg("rebiuld")
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("usage: view"));
}

#[tokio::test]
async fn sigterm_stops_the_process_cleanly() {
    let world = World::new().await;
    let mut process = ServiceProcess::spawn(view_binary(), &world.env()).await;
    assert!(process.terminate().await);
}
