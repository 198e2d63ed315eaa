//! Health, metrics, the API document, configuration and the binary's life cycle.

use std::path::Path;

use fleet_testing::ServiceProcess;

use crate::helpers::*;

fn points_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_points"))
}

#[tokio::test]
async fn health_metrics_and_the_api_document_are_served() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    app.assert_operations_port("points").await;
    let manager = world.manager_token();
    statement(&app, MY_POINTS, &manager).await;
    statement(
        &app,
        &format!("/api/v1/points/{}", uuid::Uuid::now_v7()),
        &manager,
    )
    .await;
    let metrics = app.metrics().await;
    for route in [MY_POINTS, "/api/v1/points/{userId}"] {
        let series = format!(
            r#"http_requests_total{{method="GET",route="{route}",status="200",service="points"}} 1"#
        );
        assert!(metrics.contains(&series), "{series} missing from {metrics}");
    }

    let doc = app
        .api_document(&[MY_POINTS, "/api/v1/points/{userId}"])
        .await;
    for (path, operation, statuses) in [
        (MY_POINTS, "get_my_points", &["200", "400", "401"][..]),
        (
            "/api/v1/points/{userId}",
            "get_customer_points",
            &["200", "400", "401", "403"],
        ),
    ] {
        let get = &doc["paths"][path]["get"];
        assert_eq!(get["operationId"], operation, "{path}");
        for status in statuses {
            let response = &get["responses"][status];
            assert!(response.is_object(), "{path} {status}: {get}");
            if *status != "200" {
                assert!(
                    response["content"]["application/problem+json"].is_object(),
                    "{path} {status}: {response}"
                );
            }
        }
        let parameters = get["parameters"].to_string();
        for name in ["limit", "offset"] {
            assert!(
                parameters.contains(&format!("\"{name}\"")),
                "{path}: {parameters}"
            );
        }
    }
    let parameters = doc["paths"]["/api/v1/points/{userId}"]["get"]["parameters"].to_string();
    assert!(parameters.contains("\"userId\""), "{parameters}");
    for schema in ["PointsStatement", "PointsEarning", "Problem"] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
    let statement = &doc["components"]["schemas"]["PointsStatement"]["properties"];
    for field in ["userId", "balance", "history", "limit", "offset"] {
        assert!(statement[field].is_object(), "{field}: {statement}");
    }
    app.stop().await;
}

#[tokio::test]
async fn invalid_configuration_is_reported_at_once() {
    fleet_testing::assert_refuses_to_start(
        points_binary(),
        &[("POINTS_PERCENT", "101"), ("HTTP_PORT", "x")],
        &[
            "DATABASE_URL is required",
            "KAFKA_BROKERS is required",
            "JWKS_URL is required",
            "POINTS_PERCENT must be a whole percent from 0 to 100, not 101",
            "HTTP_PORT=\"x\" is invalid",
        ],
    );
}

#[test]
fn the_binary_names_the_variables_it_reads() {
    let output = std::process::Command::new(points_binary())
        .arg("--print-env")
        .env_clear()
        .output()
        .unwrap();
    assert!(output.status.success());
    let listing = String::from_utf8_lossy(&output.stdout);
    for line in [
        "DATABASE_URL required",
        "JWKS_URL required",
        "POINTS_PERCENT",
    ] {
        assert!(
            listing.lines().any(|l| l == line),
            "{line} missing from:\n{listing}"
        );
    }
}

#[tokio::test]
async fn sigterm_stops_the_process_cleanly() {
    let world = World::new().await;
    let mut process = ServiceProcess::spawn(points_binary(), &world.env()).await;
    assert!(process.terminate().await);
}
