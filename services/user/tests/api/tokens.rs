//! The OAuth2 token endpoint (RFC 6749 §4.3, §5) and the JWKS it is checked with (RFC 7517).

use reqwest::Response;
use serde_json::{Value, json};

use crate::helpers::*;

fn assert_no_store(response: &Response) {
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
}

/// Checks an RFC 6749 §5.2 error and returns its body.
async fn oauth_error(response: Response, error: &str) -> Value {
    assert_eq!(response.status(), 400);
    assert_no_store(&response);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "not a problem document: the RFC fixes the format"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    body
}

#[tokio::test]
async fn a_token_is_issued_and_verifies_against_the_published_keys() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let account = app.register_customer("Ursula", "ursula@example.org").await;

    // The username in another case, and an ignored scope.
    let response = app
        .token_request(&[
            ("grant_type", "password"),
            ("username", "URSULA@example.org"),
            ("password", PASSWORD),
            ("scope", "rentals"),
        ])
        .await;
    assert_eq!(response.status(), 200);
    assert_no_store(&response);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");

    let jwks_response = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        jwks_response.headers()["cache-control"],
        "public, max-age=300"
    );
    let jwks: Value = jwks_response.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], "RS256");
    let (n, e) = (key["n"].as_str().unwrap(), key["e"].as_str().unwrap());
    assert_eq!(e, "AQAB");
    assert!(
        !n.contains('=') && !n.contains('+') && !n.contains('/'),
        "base64url, no padding"
    );
    assert_eq!(
        key["kid"],
        thumbprint(n, e),
        "the kid is the RFC 7638 thumbprint"
    );
    assert!(
        key.get("d").is_none(),
        "nothing private is published: {key}"
    );

    let (header, claims) = decode_with_jwks(body["access_token"].as_str().unwrap(), &jwks);
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(header.kid.as_deref(), key["kid"].as_str());
    assert_eq!(claims["sub"], id_of(&account));
    assert_eq!(claims["roles"], json!(["customer"]));
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], AUDIENCE);
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 900);
    assert!((iat - chrono::Utc::now().timestamp()).abs() < 60);
}

#[tokio::test]
async fn issuer_audience_and_lifetime_come_from_the_configuration() {
    let world = World::new().await;
    let app = world
        .spawn(&[
            ("JWT_ISSUER", "https://id.example.org"),
            ("JWT_AUDIENCE", "fleet-test"),
            ("TOKEN_TTL_SECS", "60"),
        ])
        .await;
    app.register_customer("Ursula", "ursula@example.org").await;
    let response = app
        .token_request(&[
            ("grant_type", "password"),
            ("username", "ursula@example.org"),
            ("password", PASSWORD),
        ])
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["expires_in"], 60);
    let claims: Value =
        jsonwebtoken::dangerous::insecure_decode(body["access_token"].as_str().unwrap())
            .unwrap()
            .claims;
    assert_eq!(claims["iss"], "https://id.example.org");
    assert_eq!(claims["aud"], "fleet-test");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(
        app.me(token).await.status(),
        200,
        "it checks its own settings"
    );
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_invalid_grant() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    app.register_customer("Ursula", "ursula@example.org").await;

    let wrong_password = oauth_error(
        app.token_request(&[
            ("grant_type", "password"),
            ("username", "ursula@example.org"),
            ("password", "not the password at all"),
        ])
        .await,
        "invalid_grant",
    )
    .await;
    let unknown_user = oauth_error(
        app.token_request(&[
            ("grant_type", "password"),
            ("username", "nobody@example.org"),
            ("password", PASSWORD),
        ])
        .await,
        "invalid_grant",
    )
    .await;
    let not_an_address = oauth_error(
        app.token_request(&[
            ("grant_type", "password"),
            ("username", "nobody"),
            ("password", PASSWORD),
        ])
        .await,
        "invalid_grant",
    )
    .await;
    assert_eq!(wrong_password, unknown_user, "nothing tells which it was");
    assert_eq!(unknown_user, not_an_address);
}

#[tokio::test]
async fn another_grant_type_is_unsupported() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    for grant in ["authorization_code", "refresh_token", "implicit"] {
        oauth_error(
            app.token_request(&[
                ("grant_type", grant),
                ("client_id", "x"),
                ("client_secret", "y"),
            ])
            .await,
            "unsupported_grant_type",
        )
        .await;
    }
}

#[tokio::test]
async fn malformed_token_requests_are_invalid_requests() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    app.register_customer("Ursula", "ursula@example.org").await;

    let json_body = app
        .client
        .post(app.url("/api/v1/auth/token"))
        .json(&json!({"grant_type": "password", "username": "ursula@example.org", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let body = oauth_error(json_body, "invalid_request").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("application/x-www-form-urlencoded"),
        "{body}"
    );

    let no_username = app
        .token_request(&[("grant_type", "password"), ("password", PASSWORD)])
        .await;
    let body = oauth_error(no_username, "invalid_request").await;
    assert_eq!(body["error_description"], "username is missing.");

    let no_grant_type = app
        .token_request(&[("username", "ursula@example.org"), ("password", PASSWORD)])
        .await;
    oauth_error(no_grant_type, "invalid_request").await;

    let repeated = app
        .token_request(&[
            ("grant_type", "password"),
            ("username", "ursula@example.org"),
            ("password", "wrong guess number one"),
            ("password", PASSWORD),
        ])
        .await;
    let body = oauth_error(repeated, "invalid_request").await;
    assert_eq!(
        body["error_description"],
        "password is given more than once."
    );

    let empty = app
        .client
        .post(app.url("/api/v1/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    oauth_error(empty, "invalid_request").await;
}
