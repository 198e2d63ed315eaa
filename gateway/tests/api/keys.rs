//! The fleet's access tokens when the user service is away or new: rental's own token for payment
//! while the user service hangs, and the signing keys after a restart with a new key.

use std::time::Duration;

use fleet_auth::keys::RsaPrivateKey;
use fleet_testing::{eventually, sample};
use serde_json::{Value, json};

use crate::helpers::Fleet;

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test]
async fn rents_go_on_with_the_token_held_while_the_user_service_hangs() {
    const TTL: f64 = 40.0;
    let fleet = Fleet::start_with_user(&[("TOKEN_TTL_SECS", "40")]).await;
    let manager = fleet.manager().await;
    let mut books = Vec::new();
    for _ in 0..4 {
        books.push(fleet.book(&manager, 300).await);
    }

    // A rent without a key: the answer names the key the gateway chose, and the rent sent again
    // with it is the same rental, not a second one.
    let first = fleet.sign_up().await;
    let response = fleet
        .post("/api/v1/rentals", &first.token, json!({"bookId": books[0]}))
        .await;
    assert_eq!(response.status(), 201);
    let key = response
        .headers()
        .get("idempotency-key")
        .expect("the key the gateway chose")
        .to_str()
        .unwrap()
        .to_owned();
    let rental: Value = response.json().await.unwrap();
    let again = fleet
        .client
        .post(fleet.url("/api/v1/rentals"))
        .bearer_auth(&first.token)
        .header("idempotency-key", &key)
        .json(&json!({"bookId": books[0]}))
        .send()
        .await
        .unwrap();
    assert!(again.status().is_success(), "{}", again.status());
    assert!(again.headers().get("idempotency-key").is_none());
    let same: Value = again.json().await.unwrap();
    assert_eq!(same["id"], rental["id"]);

    // The user service hangs: it accepts connections and answers nothing.
    let customer = fleet.sign_up().await;
    fleet.user.pause();
    let expiry = sample(
        &fleet.rental.metrics().await,
        "service_token_expiry_timestamp_seconds{",
    );
    let issued = expiry - TTL;
    assert!(
        expiry > unix_now() + TTL / 2.0 - 5.0,
        "rental's token (expiring at {expiry}) is too old for the test: the fleet took too long"
    );
    // Past half its life, when rental renews it (and the renewal hangs).
    let past_half = issued + TTL / 2.0 + 1.0 - unix_now();
    if past_half > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(past_half)).await;
    }
    for book in &books[1..3] {
        assert_eq!(fleet.rent(&customer, book).await["status"], "RENTED");
    }
    // The renewal was tried and failed, and rents still go through.
    eventually(
        "a failed renewal of rental's token",
        Duration::from_secs(15),
        || async {
            let failures = sample(
                &fleet.rental.metrics().await,
                "service_token_fetch_failures_total{",
            );
            (failures >= 1.0).then_some(())
        },
    )
    .await;
    assert_eq!(fleet.rent(&customer, &books[3]).await["status"], "RENTED");
    assert!(
        unix_now() < expiry,
        "the rents were to be made while the token held was valid"
    );
    fleet.user.resume();
}

#[tokio::test]
async fn a_fleet_restarted_with_a_new_signing_key_takes_the_first_signed_in_write() {
    let mut fleet = Fleet::start().await;
    // Every service fetched the keys and kept them in its schema.
    let manager = fleet.manager().await;
    fleet.book(&manager, 300).await;

    for round in 0..3 {
        for (name, process) in [
            ("gateway", &mut fleet.gateway),
            ("user", &mut fleet.user),
            ("book-management", &mut fleet.books),
            ("payment", &mut fleet.payment),
            ("rental", &mut fleet.rental),
            ("view", &mut fleet.view),
            ("points", &mut fleet.points),
        ] {
            assert!(process.terminate().await, "{name} stops cleanly");
        }
        // The services first, while nothing listens at the user service's address: each is
        // ready on the keys kept from the last run.
        for process in [
            &mut fleet.books,
            &mut fleet.payment,
            &mut fleet.rental,
            &mut fleet.view,
            &mut fleet.points,
        ] {
            process.start_changed(&[]).await;
            process.wait_ready().await;
        }
        fleet.gateway.start_changed(&[]).await;
        // Then the user service, with a new key.
        let key = RsaPrivateKey::generate().unwrap().to_pkcs8_pem();
        fleet.user.start_changed(&[("JWT_SIGNING_KEY", &key)]).await;
        fleet.user.wait_ready().await;
        fleet.gateway.wait_ready().await;

        // Every /readyz answers 200: the first signed-in write goes through, as do a rent
        // (rental's new token, checked by payment) and its reads.
        let manager = fleet.manager().await;
        let response = fleet
            .post(
                "/api/v1/books",
                &manager,
                json!({"title": "Dune", "author": "Frank Herbert", "rentalFee": 300}),
            )
            .await;
        let status = response.status();
        assert_eq!(
            status,
            201,
            "round {round}: {}",
            response.text().await.unwrap()
        );
        let book = fleet.book(&manager, 300).await;
        let customer = fleet.sign_up().await;
        assert_eq!(fleet.rent(&customer, &book).await["status"], "RENTED");
    }
}
