//! Guessing passwords: a client that guesses is stopped, the owner on another client is not, and
//! every spelling of an address counts as one.

use std::time::Duration;

use fleet_testing::{TestDatabase, TestKafka, TestWorld};
use reqwest::Response;

use crate::helpers::*;

/// The gateway's address: its `X-Forwarded-For` names the client.
const GATEWAY: (&str, &str) = ("TRUSTED_PROXIES", "127.0.0.1");

/// A sign-in for `email` with `password`, as the gateway forwards it from `client`.
async fn sign_in_from(app: &App, client: &str, email: &str, password: &str) -> Response {
    app.client
        .post(app.url("/api/v1/auth/token"))
        .header("x-forwarded-for", client)
        .form(&[
            ("grant_type", "password"),
            ("username", email),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
}

/// The statuses of `count` sign-ins one after another; every refusal says when to come back.
async fn statuses(app: &App, client: &str, email: &str, password: &str, count: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..count {
        let response = sign_in_from(app, client, email, password).await;
        if response.status() == 429 {
            let wait: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=300).contains(&wait), "Retry-After: {wait}");
            assert_eq!(response.headers()["cache-control"], "no-store");
        }
        statuses.push(response.status().as_u16());
    }
    statuses
}

#[tokio::test]
async fn a_strangers_guesses_stop_the_stranger_and_never_the_owner() {
    let world = World::new().await;
    let app = world.spawn(&[GATEWAY]).await;
    app.register_customer("Ada", "ada@example.org").await;

    // Eight wrong passwords from one client: five are checked, then that client is refused,
    // the right password too; an address without an account behaves the same.
    let mut expected = vec![400; 5];
    expected.extend([429; 3]);
    let stranger = "198.51.100.66";
    assert_eq!(
        statuses(&app, stranger, "ada@example.org", "not her password", 8).await,
        expected
    );
    assert_eq!(
        statuses(&app, stranger, "nobody@example.org", "not her password", 8).await,
        expected
    );
    assert_eq!(
        statuses(&app, stranger, "ADA@example.org", PASSWORD, 1).await,
        [429]
    );
    // The owner, from a client of her own, signs in at once.
    let owner = sign_in_from(&app, "203.0.113.5", "ada@example.org", PASSWORD).await;
    assert_eq!(owner.status(), 200, "{:?}", owner.text().await);
    // Her own typos are forgiven by her success: four more and she is still let in.
    assert_eq!(
        statuses(&app, "203.0.113.5", "ada@example.org", "typo", 4).await,
        [400; 4]
    );
    assert_eq!(
        sign_in_from(&app, "203.0.113.5", "ada@example.org", PASSWORD)
            .await
            .status(),
        200
    );
    // The stranger is still refused; a client that lies about its address from outside the
    // trusted proxies is counted for the connection it came on.
    assert_eq!(
        statuses(&app, stranger, "ada@example.org", PASSWORD, 1).await,
        [429]
    );
}

#[tokio::test]
async fn concurrent_guesses_check_no_more_passwords_than_the_limit_allows() {
    let world = World::new().await;
    // A queue long enough to take all 60 at once, so that only the counting holds them back.
    let app = world
        .spawn(&[GATEWAY, ("PASSWORD_CHECK_QUEUE", "64")])
        .await;
    app.register_customer("Ada", "ada@example.org").await;

    let guesses = (0..60).map(|i| {
        let client = format!("198.51.100.{}", i % 6);
        let app = &app;
        async move {
            sign_in_from(app, &client, "ada@example.org", "a guess")
                .await
                .status()
                .as_u16()
        }
    });
    let answers = futures::future::join_all(guesses).await;
    let checked = answers.iter().filter(|s| **s == 400).count();
    let refused = answers.iter().filter(|s| **s == 429).count();
    // Six clients, five checks each: 30, however the 60 interleave.
    assert_eq!(
        (checked, refused),
        (30, 30),
        "60 concurrent guesses from 6 clients: {answers:?}"
    );
    // The owner is not one of them.
    assert_eq!(
        sign_in_from(&app, "203.0.113.5", "ada@example.org", PASSWORD)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_guessed_address_slows_every_attempt_down_but_lets_the_owner_in() {
    let world = World::new().await;
    let app = world
        .spawn(&[
            GATEWAY,
            ("SIGN_IN_SLOW_AFTER", "4"),
            ("SIGN_IN_MAX_DELAY_MS", "800"),
        ])
        .await;
    app.register_customer("Ada", "ada@example.org").await;
    // Four clients, two guesses each: eight failures against the address, no client stopped.
    for client in 0..4 {
        let statuses = statuses(
            &app,
            &format!("198.51.100.{client}"),
            "ada@example.org",
            "a guess",
            2,
        )
        .await;
        assert_eq!(statuses, [400, 400]);
    }
    // The owner waits (100 ms doubled four times, capped at 800 ms), and is let in.
    let started = std::time::Instant::now();
    let owner = sign_in_from(&app, "203.0.113.5", "ada@example.org", PASSWORD).await;
    assert_eq!(owner.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "no delay: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn every_spelling_of_an_address_is_one_account_and_one_count_on_a_utf8_database() {
    let kafka = TestKafka::start().await;
    let world = World::on(
        TestWorld::on(
            "user_svc",
            "users",
            TestDatabase::create_utf8().await,
            kafka,
        )
        .await,
    );
    let encoding: String = sqlx::query_scalar(
        "SELECT pg_encoding_to_char(encoding) || ' ' || datctype FROM pg_database \
         WHERE datname = current_database()",
    )
    .fetch_one(&world.db.admin)
    .await
    .unwrap();
    assert_eq!(encoding, "UTF8 C.utf8");
    let app = world.spawn(&[GATEWAY]).await;
    app.register_customer("Iris", "iris@example.org").await;

    // The dotted capital is the same address: no second account...
    let again = app
        .register(serde_json::json!({
            "name": "Impostor",
            "email": "\u{130}RIS@example.org",
            "password": PASSWORD,
        }))
        .await;
    assert_eq!(again.status(), 409);
    // ...it signs in to Iris's...
    assert_eq!(
        sign_in_from(&app, "203.0.113.5", "\u{130}ris@example.org", PASSWORD)
            .await
            .status(),
        200
    );
    // ...and its failures are counted with the plain spelling's, not afresh.
    let stranger = "198.51.100.66";
    let mut answers = statuses(&app, stranger, "\u{130}ris@example.org", "guess", 3).await;
    answers.extend(statuses(&app, stranger, "IRIS@example.org", "guess", 2).await);
    answers.extend(statuses(&app, stranger, "i\u{307}ris@EXAMPLE.org", "guess", 1).await);
    answers.extend(statuses(&app, stranger, "\u{ff49}ris@example.org", "guess", 1).await);
    assert_eq!(answers, [400, 400, 400, 400, 400, 429, 429]);
    let stored: String = sqlx::query_scalar("SELECT email_key FROM users.accounts")
        .fetch_one(&world.db.admin)
        .await
        .unwrap();
    assert_eq!(stored, "iris@example.org");
}
