//! Services of the fleet as OAuth2 clients: rental gets a token for payment with the client
//! credentials grant; nothing else does. And the secrets once committed to the project open
//! nothing: the service refuses them, and a deployment made as the kind overlay's set-up makes
//! it refuses tokens signed with the published key.

use std::path::Path;

use fleet_testing::{PUBLISHED_DEV_KEY, sign_with_published_key};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::Response;
use serde_json::{Value, json};

use crate::helpers::*;

const SECRET: &str = "0123456789abcdef0123456789abcdef-rental";

async fn client_credentials(app: &App, id: &str, secret: &str) -> Response {
    app.client
        .post(app.url("/api/v1/auth/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
}

/// Verifies `token` with the published keys, as payment checks rental's: audience `payment`.
fn verify_for_payment(token: &str, jwks: &Value) -> Value {
    let key = &jwks["keys"][0];
    let decoding =
        DecodingKey::from_rsa_components(key["n"].as_str().unwrap(), key["e"].as_str().unwrap())
            .unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&["payment"]);
    jsonwebtoken::decode::<Value>(token, &decoding, &validation)
        .expect("a token for payment, signed with the published key")
        .claims
}

#[tokio::test]
async fn rental_gets_a_token_for_payment_and_nothing_more() {
    let world = World::new().await;
    let app = world.spawn(&[("RENTAL_CLIENT_SECRET", SECRET)]).await;

    let response = client_credentials(&app, "rental", SECRET).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "payments");
    let token = body["access_token"].as_str().unwrap();
    let claims = verify_for_payment(token, &app.jwks().await);
    assert_eq!(claims["sub"], "rental");
    assert_eq!(claims["scope"], "payments");
    assert!(claims.get("roles").is_none(), "no person's roles: {claims}");

    // It names no person: the fleet's public API refuses it.
    assert_problem(app.me(token).await, 401).await;
}

#[tokio::test]
async fn wrong_client_credentials_get_invalid_client_and_no_token() {
    let world = World::new().await;
    let app = world.spawn(&[("RENTAL_CLIENT_SECRET", SECRET)]).await;
    let wrong = [
        ("rental", "0123456789abcdef0123456789abcdef-guess"),
        ("rental", ""),
        ("payment", SECRET),
        ("points", SECRET),
    ];
    let mut answers = Vec::new();
    for (id, secret) in wrong {
        answers.push(client_credentials(&app, id, secret).await);
    }
    // No client authentication at all, or a bearer token instead of it.
    let grant = [("grant_type", "client_credentials")];
    answers.push(app.token_request(&grant).await);
    answers.push(
        app.client
            .post(app.url("/api/v1/auth/token"))
            .bearer_auth("a.b.c")
            .form(&grant)
            .send()
            .await
            .unwrap(),
    );
    for response in answers {
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Basic realm="token""#
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client", "{body}");
        assert!(body.get("access_token").is_none());
    }

    // A service without RENTAL_CLIENT_SECRET gives no client a token.
    let without = world.spawn(&[]).await;
    assert_eq!(
        client_credentials(&without, "rental", SECRET)
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn the_published_key_and_password_and_a_short_client_secret_are_refused_at_start() {
    fleet_testing::assert_refuses_to_start(
        Path::new(env!("CARGO_BIN_EXE_user")),
        &[
            ("JWT_SIGNING_KEY", PUBLISHED_DEV_KEY),
            ("MANAGER_EMAIL", "manager@fleet.example"),
            ("MANAGER_PASSWORD", "manage the fleet locally"),
            ("RENTAL_CLIENT_SECRET", "too-short"),
        ],
        &[
            "JWT_SIGNING_KEY is a key published with the project",
            "MANAGER_PASSWORD is a password published with the project",
            "RENTAL_CLIENT_SECRET is shorter than 32 characters",
        ],
    );
}

/// What `scripts/make-secrets.sh DIR` made, as NAME → value.
fn made(dir: &Path, file: &str) -> Vec<(String, String)> {
    std::fs::read_to_string(dir.join(file))
        .unwrap()
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[tokio::test]
async fn set_up_as_the_kind_overlay_the_published_key_signs_nothing_that_is_accepted() {
    // The kind overlay's set-up: scripts/make-secrets.sh kubernetes/components/dev-cluster/secrets.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-secrets.sh");
    let dirs =
        [0, 1].map(|_| std::env::temp_dir().join(format!("secrets-{}", uuid::Uuid::new_v4())));
    for dir in &dirs {
        let made = std::process::Command::new("bash")
            .arg(&script)
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
    }
    let key = |dir: &Path| std::fs::read_to_string(dir.join("jwt-signing-key.pem")).unwrap();
    assert_ne!(
        key(&dirs[0]),
        key(&dirs[1]),
        "each set-up makes its own key"
    );
    assert_ne!(made(&dirs[0], "manager.env"), made(&dirs[1], "manager.env"));

    let world = World::new().await;
    let key_file = dirs[0].join("jwt-signing-key.pem");
    let mut settings = vec![
        ("JWT_SIGNING_KEY".to_owned(), String::new()),
        (
            "JWT_SIGNING_KEY_FILE".to_owned(),
            key_file.display().to_string(),
        ),
    ];
    settings.extend(made(&dirs[0], "manager.env"));
    settings.extend(made(&dirs[0], "rental-client.env"));
    let settings: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let app = world.spawn(&settings).await;
    let password = made(&dirs[0], "manager.env")
        .into_iter()
        .find(|(k, _)| k == "MANAGER_PASSWORD")
        .unwrap()
        .1;
    eventually("the manager, bootstrapped", WAIT, || async {
        let response = app
            .token_request(&[
                ("grant_type", "password"),
                ("username", "manager@fleet.example"),
                ("password", &password),
            ])
            .await;
        (response.status() == 200).then_some(())
    })
    .await;
    let rental_secret = &made(&dirs[0], "rental-client.env")[0].1;
    assert_eq!(
        client_credentials(&app, "rental", rental_secret)
            .await
            .status(),
        200
    );

    // A manager's token signed with the published key, as anyone holding the project can make.
    let me: Value = app.jwks().await;
    let forged = sign_with_published_key(json!({
        "sub": uuid::Uuid::new_v4().to_string(), "roles": ["manager"], "iss": ISSUER,
        "aud": AUDIENCE, "iat": chrono::Utc::now().timestamp(),
        "exp": chrono::Utc::now().timestamp() + 600,
    }));
    assert_ne!(
        jsonwebtoken::decode_header(&forged).unwrap().kid.unwrap(),
        me["keys"][0]["kid"]
    );
    assert_problem(app.me(&forged).await, 401).await;
    for dir in dirs {
        std::fs::remove_dir_all(dir).unwrap();
    }
}
