//! `/users/me`: the caller's profile, for a token the service itself verifies; every forged,
//! stale or foreign token refused the same way.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fleet_auth::keys::RsaPrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Response;
use serde_json::{Value, json};

use crate::helpers::*;

/// A 401 problem with the RFC 6750 challenge.
async fn refused(response: Response, challenge: &str) -> Value {
    assert_eq!(response.headers()["www-authenticate"], challenge);
    assert_problem(response, 401).await
}

async fn invalid_token(app: &App, token: &str, what: &str) {
    let response = app.me(token).await;
    assert_eq!(response.status(), 401, "{what} was accepted");
    let problem = refused(response, r#"Bearer error="invalid_token""#).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("not valid"),
        "{what}: {problem}"
    );
}

fn b64(json: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(json).unwrap())
}

#[tokio::test]
async fn a_valid_token_reads_the_callers_profile() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let account = app.register_customer("Ursula", "ursula@example.org").await;
    let other = app.register_customer("Other", "other@example.org").await;
    let token = app.sign_in("ursula@example.org", PASSWORD).await;

    let response = app.me(&token).await;
    assert_eq!(response.status(), 200);
    let profile: Value = response.json().await.unwrap();
    assert_eq!(profile, account, "the profile is the caller's own account");

    // A customer reads their own account by id, and nobody else's.
    let own = app
        .client
        .get(app.url(&format!("/api/v1/users/{}", id_of(&account))))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    assert_eq!(own.json::<Value>().await.unwrap(), account);
    let someone_else = app
        .client
        .get(app.url(&format!("/api/v1/users/{}", id_of(&other))))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_problem(someone_else, 404).await;
}

#[tokio::test]
async fn a_request_without_a_token_is_challenged() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let bare = app
        .client
        .get(app.url("/api/v1/users/me"))
        .send()
        .await
        .unwrap();
    let problem = refused(bare, "Bearer").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("Sign in"),
        "{problem}"
    );

    let basic = app
        .client
        .get(app.url("/api/v1/users/me"))
        .basic_auth("ursula@example.org", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    refused(basic, "Bearer").await;

    let by_id = app
        .client
        .get(app.url(&format!("/api/v1/users/{}", uuid::Uuid::new_v4())))
        .send()
        .await
        .unwrap();
    refused(by_id, "Bearer").await;
}

#[tokio::test]
async fn forged_stale_and_foreign_tokens_are_refused() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let account = app.register_customer("Ursula", "ursula@example.org").await;
    let user_id = id_of(&account);
    let token = app.sign_in("ursula@example.org", PASSWORD).await;
    let jwks = app.jwks().await;
    let key = &jwks["keys"][0];
    let kid = key["kid"].as_str().unwrap();
    let valid = claims_for(user_id, "customer");
    assert_eq!(
        app.me(&sign(signing_pem(), kid, &valid)).await.status(),
        200,
        "the forgeries below differ from a good token in one way each"
    );

    let parts: Vec<&str> = token.split('.').collect();
    // The signature of another payload.
    let mut escalated = valid.clone();
    escalated["roles"] = json!(["manager"]);
    let tampered = format!("{}.{}.{}", parts[0], b64(&escalated), parts[2]);
    invalid_token(&app, &tampered, "a payload under another signature").await;
    // One signature byte changed.
    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    signature[10] ^= 0x01;
    let flipped = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        URL_SAFE_NO_PAD.encode(signature)
    );
    invalid_token(&app, &flipped, "a changed signature").await;

    // alg none, with and without a signature part.
    let none_header = b64(&json!({"alg": "none", "typ": "JWT", "kid": kid}));
    invalid_token(&app, &format!("{none_header}.{}.", b64(&valid)), "alg none").await;
    invalid_token(
        &app,
        &format!("{none_header}.{}", b64(&valid)),
        "alg none, two parts",
    )
    .await;

    // HS256 keyed with the public key, as a verifier confusing algorithms would check it.
    // The public key of the JWKS's modulus and exponent, as PEM.
    let signing = RsaPrivateKey::from_pem(signing_pem()).unwrap();
    assert_eq!(
        (key["n"].as_str(), key["e"].as_str()),
        (Some(&*signing.jwk().n), Some(&*signing.jwk().e))
    );
    let public_pem = signing.public_key_pem();
    let mut hs256 = Header::new(Algorithm::HS256);
    hs256.kid = Some(kid.to_owned());
    let confused = jsonwebtoken::encode(
        &hs256,
        &valid,
        &EncodingKey::from_secret(public_pem.as_bytes()),
    )
    .unwrap();
    invalid_token(&app, &confused, "HS256 keyed with the public key").await;

    let now = chrono::Utc::now().timestamp();
    let mut expired = valid.clone();
    expired["iat"] = json!(now - 7200);
    expired["exp"] = json!(now - 3600);
    invalid_token(
        &app,
        &sign(signing_pem(), kid, &expired),
        "an expired token",
    )
    .await;

    let mut audience = valid.clone();
    audience["aud"] = json!("another-api");
    invalid_token(
        &app,
        &sign(signing_pem(), kid, &audience),
        "a wrong audience",
    )
    .await;

    let mut issuer = valid.clone();
    issuer["iss"] = json!("someone-else");
    invalid_token(&app, &sign(signing_pem(), kid, &issuer), "a wrong issuer").await;

    let mut no_expiry = valid.clone();
    no_expiry.as_object_mut().unwrap().remove("exp");
    invalid_token(&app, &sign(signing_pem(), kid, &no_expiry), "no expiry").await;

    let mut stranger = valid.clone();
    stranger["sub"] = json!(uuid::Uuid::new_v4());
    invalid_token(
        &app,
        &sign(signing_pem(), kid, &stranger),
        "a subject without an account",
    )
    .await;

    // Another key claiming to be ours, and an unknown kid.
    let other_key = new_key_pem();
    invalid_token(
        &app,
        &sign(&other_key, kid, &valid),
        "another key under our kid",
    )
    .await;
    invalid_token(
        &app,
        &sign(&other_key, &kid_of(&other_key), &valid),
        "an unknown key",
    )
    .await;

    invalid_token(&app, "not-a-jwt", "garbage").await;
}
