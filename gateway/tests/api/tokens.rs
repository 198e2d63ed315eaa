use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fleet_testing::{TEST_AUDIENCE, TEST_ISSUER, eventually};
use reqwest::StatusCode;
use reqwest::header::WWW_AUTHENTICATE;
use serde_json::{Value, json};
use std::time::Duration;

use crate::helpers::{Fleet, refused};

fn claims(sub: &str, overrides: Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "sub": sub, "roles": ["customer"], "iss": TEST_ISSUER, "aud": TEST_AUDIENCE,
        "iat": now, "exp": now + 600,
    });
    for (k, v) in overrides.as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims
}

/// The token with its payload replaced and the signature kept.
fn tampered(token: &str, payload: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

#[tokio::test]
async fn every_token_the_user_service_did_not_issue_as_is_gets_401() {
    let fleet = Fleet::start().await;
    let customer = fleet.sign_up().await;
    let sub = customer.id.to_string();
    assert_eq!(
        fleet.get("/api/v1/books", &customer.token).await.status(),
        200
    );

    let kid = {
        let header = customer.token.split('.').next().unwrap();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        header["kid"].as_str().unwrap().to_owned()
    };
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims(&sub, json!({})).to_string())
    );
    let mut hs256 = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs256.kid = Some(kid);
    let signed_with_the_public_key = jsonwebtoken::encode(
        &hs256,
        &claims(&sub, json!({})),
        &jsonwebtoken::EncodingKey::from_secret(fleet.identity.public_key_pem().as_bytes()),
    )
    .unwrap();
    let an_hour_ago = chrono::Utc::now().timestamp() - 3600;
    let cases = [
        (
            "a tampered payload",
            tampered(
                &customer.token,
                &claims(&sub, json!({"roles": ["manager"]})),
            ),
        ),
        ("alg none", unsigned),
        (
            "HS256 signed with the public key",
            signed_with_the_public_key,
        ),
        (
            "expired",
            fleet.identity.sign(claims(
                &sub,
                json!({"iat": an_hour_ago - 600, "exp": an_hour_ago}),
            )),
        ),
        (
            "another audience",
            fleet
                .identity
                .sign(claims(&sub, json!({"aud": "another-api"}))),
        ),
        (
            "another issuer",
            fleet
                .identity
                .sign(claims(&sub, json!({"iss": "someone-else"}))),
        ),
        ("not a JWT", "abc.def".to_owned()),
    ];
    for (case, token) in cases {
        let response = fleet.get("/api/v1/books", &token).await;
        assert_eq!(response.status(), 401, "{case}");
        let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert_eq!(challenge, r#"Bearer error="invalid_token""#, "{case}");
        refused(response, 401).await;
    }

    let response = fleet
        .client
        .get(fleet.url("/api/v1/books"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer");
    refused(response, 401).await;
    // The gateway refused them all: book-management answered only the one valid request.
    let metrics = fleet
        .client
        .get(fleet.books.ops_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let answered = fleet_testing::sample(
        &metrics,
        r#"http_requests_total{method="GET",route="/api/v1/books",status="200",service="book-management"}"#,
    );
    assert_eq!(answered, 1.0, "{metrics}");
    assert!(
        !metrics.contains(r#"route="/api/v1/books",status="401""#),
        "{metrics}"
    );
}

#[tokio::test]
async fn valid_tokens_keep_working_while_the_user_service_is_stopped() {
    let mut fleet = Fleet::start().await;
    let manager = fleet.manager().await;
    let book = fleet.book(&manager, 300).await;
    let customer = fleet.sign_up().await;

    assert!(
        fleet.user.terminate().await,
        "the user service stops cleanly"
    );
    for _ in 0..3 {
        assert_eq!(
            fleet.get("/api/v1/books", &customer.token).await.status(),
            200
        );
    }
    let rental = fleet.rent(&customer, &book).await;
    assert_eq!(rental["status"], "RENTED");

    // A replica started meanwhile (a rollout, the HPA, a node lost) cannot fetch the keys: it
    // takes the ones kept in its schema, becomes ready and serves signed-in requests at once.
    fleet.rental.kill().await;
    fleet.rental.restart().await;
    let id = rental["id"].as_str().unwrap();
    let returned = fleet
        .post(
            &format!("/api/v1/rentals/{id}/return"),
            &customer.token,
            json!({}),
        )
        .await;
    assert_eq!(returned.status(), 200);
    // Paying takes rental's own token from the user service, which a replica started meanwhile
    // has never had: its rents are refused at once with a 503 to try again later, not lost.
    let unpaid = fleet
        .post("/api/v1/rentals", &customer.token, json!({"bookId": book}))
        .await;
    assert_eq!(unpaid.status(), 503);
    assert!(unpaid.headers().contains_key("retry-after"));

    // What only the user service can answer is a clear 502 meanwhile.
    let problem = refused(fleet.get("/api/v1/users/me", &customer.token).await, 502).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("user service"),
        "{problem}"
    );
    let sign_in = fleet
        .client
        .post(fleet.url("/api/v1/auth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "a@b.example"),
            ("password", "x"),
        ])
        .send()
        .await
        .unwrap();
    refused(sign_in, 502).await;

    // The user service back, rental has its token within a second or two and rents again.
    fleet.user.restart().await;
    eventually(
        "a rent once the user service is back",
        Duration::from_secs(15),
        || async {
            let response = fleet
                .post("/api/v1/rentals", &customer.token, json!({"bookId": book}))
                .await;
            (response.status() == StatusCode::CREATED).then_some(())
        },
    )
    .await;
}
