//! The manager account from configuration: created once, whatever the restarts; never taking
//! over a customer's account.

use serde_json::{Value, json};

use crate::helpers::*;

const MANAGER_EMAIL: &str = "boss@example.org";
const MANAGER_PASSWORD: &str = "a long managerial secret";

/// Waits until the bootstrap has run with `outcome`.
async fn bootstrapped(app: &App, outcome: &str) {
    let series = format!("manager_bootstraps_total{{outcome=\"{outcome}\"");
    eventually(
        &format!("the bootstrap to find {outcome}"),
        WAIT,
        || async { (sample(&app.metrics().await, &series) == 1.0).then_some(()) },
    )
    .await
}

#[tokio::test]
async fn the_manager_is_bootstrapped_once_and_reads_any_account() {
    let world = World::new().await;
    let settings = [
        ("MANAGER_EMAIL", MANAGER_EMAIL),
        ("MANAGER_PASSWORD", MANAGER_PASSWORD),
        ("MANAGER_NAME", "Mona Manager"),
    ];
    let app = world.spawn(&settings).await;
    bootstrapped(&app, "created").await;
    let token = app.sign_in(MANAGER_EMAIL, MANAGER_PASSWORD).await;
    let (_, claims) = decode_with_jwks(&token, &app.jwks().await);
    assert_eq!(claims["roles"], json!(["manager"]));

    let profile: Value = app.me(&token).await.json().await.unwrap();
    assert_eq!(profile["role"], "MANAGER");
    assert_eq!(profile["name"], "Mona Manager");
    assert_eq!(profile["email"], MANAGER_EMAIL);

    let customer = app.register_customer("Ursula", "ursula@example.org").await;
    let read = app
        .client
        .get(app.url(&format!("/api/v1/users/{}", id_of(&customer))))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200, "a manager reads any account");
    assert_eq!(read.json::<Value>().await.unwrap(), customer);
    app.stop().await;

    // Started again, with another password configured: nothing is duplicated or overwritten.
    let again = world
        .spawn(&[
            ("MANAGER_EMAIL", "BOSS@example.org"),
            ("MANAGER_PASSWORD", "another managerial secret"),
        ])
        .await;
    bootstrapped(&again, "existing").await;
    let token = again.sign_in(MANAGER_EMAIL, MANAGER_PASSWORD).await;
    assert_eq!(
        again.me(&token).await.json::<Value>().await.unwrap(),
        profile
    );
    let managers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM users.accounts WHERE role = 'MANAGER'")
            .fetch_one(world.pool())
            .await
            .unwrap();
    assert_eq!(managers, 1);
    assert_eq!(world.count("accounts").await, 2);
    // Only the customer is announced: UserRegistered is about customers.
    let messages = world.user_events().await.expect(1, WAIT).await;
    assert_eq!(messages[0].key, id_of(&customer));
}

#[tokio::test]
async fn the_bootstrap_never_takes_over_a_customers_account() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let customer = app.register_customer("Early Bird", MANAGER_EMAIL).await;
    app.stop().await;

    let app = world
        .spawn(&[
            ("MANAGER_EMAIL", MANAGER_EMAIL),
            ("MANAGER_PASSWORD", MANAGER_PASSWORD),
        ])
        .await;
    bootstrapped(&app, "not_a_manager").await;
    // The customer's own password still works and still makes a customer's token.
    let token = app.sign_in(MANAGER_EMAIL, PASSWORD).await;
    let (_, claims) = decode_with_jwks(&token, &app.jwks().await);
    assert_eq!(claims["roles"], json!(["customer"]));
    assert_eq!(
        app.me(&token).await.json::<Value>().await.unwrap(),
        customer
    );
    let refused = app
        .token_request(&[
            ("grant_type", "password"),
            ("username", MANAGER_EMAIL),
            ("password", MANAGER_PASSWORD),
        ])
        .await;
    assert_eq!(refused.status(), 400);
    assert_eq!(world.count("accounts").await, 1);
}
