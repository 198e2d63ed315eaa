//! Health, metrics, OpenAPI, the signing key's configuration, and the binary's life cycle.

use std::path::Path;

use fleet_testing::ServiceProcess;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn health_metrics_and_the_api_document_are_served() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    app.assert_operations_port("user").await;
    app.register_customer("Ursula", "ursula@example.org").await;
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"http_requests_total{method="POST",route="/api/v1/users",status="201",service="user"} 1"#),
        "{metrics}"
    );

    let doc = app
        .api_document(&[
            "/api/v1/users",
            "/api/v1/users/me",
            "/api/v1/users/{id}",
            "/api/v1/auth/token",
            "/.well-known/jwks.json",
        ])
        .await;
    let token = &doc["paths"]["/api/v1/auth/token"]["post"];
    assert!(
        token["requestBody"]["content"]["application/x-www-form-urlencoded"].is_object(),
        "the token request is documented as a form: {token}"
    );
    assert_eq!(
        token["responses"]["400"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/OAuthError"
    );
    for schema in [
        "RegisterUser",
        "UserView",
        "TokenRequest",
        "TokenResponse",
        "OAuthError",
        "OAuthErrorCode",
        "JwkSet",
        "Problem",
    ] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
    assert_eq!(
        doc["components"]["schemas"]["OAuthErrorCode"]["enum"],
        json!([
            "invalid_request",
            "invalid_grant",
            "unsupported_grant_type",
            "invalid_client"
        ])
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    app.stop().await;
}

#[tokio::test]
async fn without_a_signing_key_the_binary_refuses_to_start() {
    fleet_testing::assert_refuses_to_start(
        std::path::Path::new(env!("CARGO_BIN_EXE_user")),
        &[("MANAGER_EMAIL", "boss@example.org")],
        &[
            "DATABASE_URL is required",
            "KAFKA_BROKERS is required",
            "JWT_SIGNING_KEY is required",
            "set both MANAGER_EMAIL and MANAGER_PASSWORD",
        ],
    );
}

#[tokio::test]
async fn the_configured_key_signs_the_tokens_and_is_published() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let jwks = app.jwks().await;
    assert_eq!(jwks["keys"][0]["kid"], kid_of(signing_pem()));
    app.register_customer("Ursula", "ursula@example.org").await;
    let token = app.sign_in("ursula@example.org", PASSWORD).await;
    let (header, _) = decode_with_jwks(&token, &jwks);
    assert_eq!(header.kid.unwrap(), kid_of(signing_pem()));
    app.stop().await;

    // The same key from a file, as a mounted Secret: a token from before still works.
    let file = std::env::temp_dir().join(format!("user-test-key-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&file, signing_pem()).unwrap();
    let from_file = world
        .spawn(&[
            ("JWT_SIGNING_KEY", ""),
            ("JWT_SIGNING_KEY_FILE", file.to_str().unwrap()),
        ])
        .await;
    std::fs::remove_file(&file).unwrap();
    assert_eq!(from_file.jwks().await, jwks);
    assert_eq!(from_file.me(&token).await.status(), 200);
}

#[tokio::test]
async fn the_binary_with_an_ephemeral_key_serves_tokens_and_stops_cleanly_on_sigterm() {
    let world = World::new().await;
    let mut env = world.env();
    env.push(("JWT_EPHEMERAL_KEY".into(), "true".into()));
    let mut process = ServiceProcess::spawn(Path::new(env!("CARGO_BIN_EXE_user")), &env).await;
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/api/v1/users", process.base_url))
        .json(&json!({"name": "Ursula", "email": "ursula@example.org", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let account: Value = response.json().await.unwrap();
    let token: Value = client
        .post(format!("{}/api/v1/auth/token", process.base_url))
        .form(&[
            ("grant_type", "password"),
            ("username", "ursula@example.org"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwks: Value = client
        .get(format!("{}/.well-known/jwks.json", process.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(
        jwks["keys"][0]["kid"],
        kid_of(signing_pem()),
        "a key of its own"
    );
    let (_, claims) = decode_with_jwks(token["access_token"].as_str().unwrap(), &jwks);
    assert_eq!(claims["sub"], id_of(&account));

    assert!(
        process.terminate().await,
        "SIGTERM ends the service cleanly"
    );
    let messages = world.user_events().await.expect(1, WAIT).await;
    assert_eq!(messages[0].key, id_of(&account));
}
