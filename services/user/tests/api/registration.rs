//! Registering a customer: one account per email whatever its case or concurrency, announced
//! once; every bad input refused with nothing stored.

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn a_customer_registers_and_is_announced_once() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;

    let response = app
        .register(json!({"name": " Ursula Le Guin ", "email": " Ursula@Example.org ", "password": PASSWORD}))
        .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    let id = id_of(&created).to_owned();
    assert_eq!(location, format!("/api/v1/users/{id}"));
    assert_eq!(
        created,
        json!({"id": id, "name": "Ursula Le Guin", "email": "Ursula@Example.org", "role": "CUSTOMER", "activeRentals": 0}),
        "exactly the documented fields, no password or hash"
    );

    let stored: String = sqlx::query_scalar("SELECT password_hash FROM users.accounts")
        .fetch_one(world.pool())
        .await
        .unwrap();
    assert!(
        stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{stored}"
    );
    assert!(!stored.contains(PASSWORD));

    let messages = world.user_events().await.expect(1, WAIT).await;
    let message = &messages[0];
    assert_eq!(message.key, id, "user events are keyed by user id");
    let event = message.event();
    assert_eq!(event.event_type, "UserRegistered");
    assert_eq!(event.source, "user");
    assert_eq!(event.subject, id);
    assert_eq!(
        event.data,
        json!({"userId": id, "name": "Ursula Le Guin", "email": "Ursula@Example.org"})
    );
    let payload = String::from_utf8_lossy(&message.payload).to_lowercase();
    assert!(
        !payload.contains("password") && !payload.contains("argon2") && !payload.contains("horse"),
        "{payload}"
    );
}

#[tokio::test]
async fn a_duplicate_email_in_another_case_is_a_conflict_and_stores_nothing() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    app.register_customer("Ursula", "ursula@example.org").await;

    let problem = assert_problem(
        app.register(json!({"name": "Other", "email": "URSULA@Example.ORG", "password": "another fine passphrase"}))
            .await,
        409,
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("already exists"),
        "{problem}"
    );
    assert_eq!(world.count("accounts").await, 1);
    assert_eq!(world.count("outbox").await, 1);
    world.user_events().await.expect(1, WAIT).await;
}

#[tokio::test]
async fn concurrent_registrations_of_one_email_make_one_account() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let attempts = (0..6).map(|i| {
        let email = if i % 2 == 0 {
            "racer@example.org"
        } else {
            "RACER@example.org"
        };
        app.register(json!({"name": format!("Racer {i}"), "email": email, "password": PASSWORD}))
    });
    let mut statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    statuses.sort();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409]);
    assert_eq!(world.count("accounts").await, 1);
    assert_eq!(world.count("outbox").await, 1);
    world.user_events().await.expect(1, WAIT).await;
}

#[tokio::test]
async fn weak_passwords_are_refused_with_a_reason_and_nothing_stored() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    for (password, reason) in [
        ("short1!", "at least 10 characters"),
        ("", "at least 10 characters"),
        ("zzzzzzzzzzzz", "one character repeated"),
        ("Weak.Owner@example.org", "not be the email"),
        ("weak.owner", "not be the email or its name part"),
        ("Password123", "most common passwords"),
    ] {
        let problem = assert_problem(
            app.register(
                json!({"name": "Weak", "email": "weak.owner@example.org", "password": password}),
            )
            .await,
            422,
        )
        .await;
        assert_eq!(problem["errors"][0]["pointer"], "#/password", "{problem}");
        let detail = problem["errors"][0]["detail"].as_str().unwrap();
        assert!(detail.contains(reason), "{password:?}: {detail}");
        assert_eq!(problem["errors"].as_array().unwrap().len(), 1, "{problem}");
    }
    assert_eq!(world.count("accounts").await, 0);
    assert_eq!(world.count("outbox").await, 0);
}

#[tokio::test]
async fn every_invalid_value_is_pointed_at_in_one_answer() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let problem = assert_problem(
        app.register(json!({"name": "  ", "email": "not-an-address", "password": "short"}))
            .await,
        422,
    )
    .await;
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["#/name", "#/email", "#/password"], "{problem}");
    assert_eq!(world.count("accounts").await, 0);
}

#[tokio::test]
async fn missing_unknown_and_malformed_bodies_are_refused_with_nothing_stored() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;

    let missing = assert_problem(
        app.register(json!({"name": "Ursula", "email": "u@example.org"}))
            .await,
        422,
    )
    .await;
    assert!(
        missing["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("missing field `password`"),
        "{missing}"
    );

    let unknown = assert_problem(
        app.register(json!({"name": "Ursula", "email": "u@example.org", "password": PASSWORD, "role": "MANAGER"}))
            .await,
        422,
    )
    .await;
    assert!(
        unknown["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("unknown field `role`"),
        "a customer cannot make themselves a manager: {unknown}"
    );

    let malformed = app
        .client
        .post(app.url("/api/v1/users"))
        .header("content-type", "application/json")
        .body(r#"{"name": "Ursula", "email": "#)
        .send()
        .await
        .unwrap();
    assert_problem(malformed, 400).await;

    let not_json = app
        .client
        .post(app.url("/api/v1/users"))
        .form(&[
            ("name", "Ursula"),
            ("email", "u@example.org"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_problem(not_json, 415).await;

    assert_eq!(world.count("accounts").await, 0);
    assert_eq!(world.count("outbox").await, 0);
}
