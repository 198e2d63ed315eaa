use serde_json::Value;

use crate::helpers::Fleet;

#[tokio::test]
async fn the_merged_document_describes_every_routed_operation_and_nothing_internal() {
    let fleet = Fleet::start().await;
    let doc: Value = fleet
        .client
        .get(fleet.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for route in &gateway::routes::ROUTES {
        let method = route.method.as_str().to_ascii_lowercase();
        let operation = &paths
            .get(route.path)
            .unwrap_or_else(|| panic!("{} is not described", route.path))[&method];
        assert!(
            operation.is_object(),
            "{method} {} is not described",
            route.path
        );
        let secured = operation.get("security").is_some();
        assert_eq!(
            secured,
            route.access != gateway::routes::Access::Anyone,
            "{method} {}",
            route.path
        );
    }
    assert!(
        paths.keys().all(|p| p.starts_with("/api/v1/")),
        "{:?}",
        paths.keys()
    );
    assert!(paths["/api/v1/payments"].get("post").is_none());
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(doc["components"]["schemas"]["RentalView"].is_object());
    assert!(doc["components"]["schemas"]["RentalBoardLine"].is_object());
    assert!(doc["components"]["schemas"]["PointsStatement"].is_object());
    // The merged document has one set of schema names: a name two services give different shapes
    // would describe one service's answers with the other's schema.
    for (name, process) in &fleet.processes()[1..] {
        let own: Value = fleet
            .client
            .get(format!("{}/openapi.json", process.base_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for (schema, shape) in own["components"]["schemas"].as_object().unwrap() {
            assert_eq!(
                &doc["components"]["schemas"][schema], shape,
                "{name}'s schema {schema} is another service's in the merged document: rename it"
            );
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    // Code generators name a method after each operationId: every operation has one, and no two
    // services' operations share one.
    let mut ids = std::collections::BTreeMap::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            if let Some(other) = ids.insert(id.to_owned(), format!("{method} {path}")) {
                panic!("operationId {id} names both {other} and {method} {path}");
            }
        }
    }

    // A validator nobody here wrote accepts the merged document as OpenAPI.
    let validator = crate::fuzz::schemathesis().with_file_name("openapi-spec-validator");
    let file = std::env::temp_dir().join(format!("fleet-openapi-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, doc.to_string()).unwrap();
    let checked = std::process::Command::new(&validator)
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", validator.display()));
    std::fs::remove_file(&file).ok();
    assert!(
        checked.status.success(),
        "openapi-spec-validator rejects the merged document:\n{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}

#[tokio::test]
async fn swagger_ui_is_served_from_vendored_assets() {
    let fleet = Fleet::start().await;
    let page = fleet
        .client
        .get(fleet.url("/api/v1/docs/"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("swagger-ui"));
    let config = fleet
        .client
        .get(fleet.url("/api/v1/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(config.status(), 200);
    assert!(
        config
            .text()
            .await
            .unwrap()
            .contains("/api/v1/openapi.json")
    );
    let bundle = fleet
        .client
        .get(fleet.url("/api/v1/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(bundle.status(), 200);
}
