//! Payment down or slow: fast 503s behind the circuit breaker and recovery; a crash between
//! payment and marking the rental: the reconciler refunds. After each, rental and payment agree.

use std::path::Path;
use std::time::{Duration, Instant};

use fleet_testing::{ServiceProcess, eventually};
use serde_json::Value;

use crate::helpers::*;

fn metric(metrics: &str, series: &str) -> f64 {
    sample(metrics, series)
}

/// Rents until the breaker is open, checking every answer is a 503 with Retry-After; returns how
/// many rents that took.
async fn rent_until_open(rental: &App, customer: &Customer, book: uuid::Uuid) -> usize {
    let mut attempts = 0;
    eventually("the payment circuit to open", WAIT, || {
        attempts += 1;
        async {
            let response = customer.rent(rental, book).await;
            assert_eq!(response.headers()["retry-after"], "1");
            let problem = assert_problem(response, 503).await;
            assert!(
                problem["detail"]
                    .as_str()
                    .unwrap()
                    .contains("pay again in a moment"),
                "{problem}"
            );
            (metric(&rental.metrics().await, "payment_circuit_state") == 1.0).then_some(())
        }
    })
    .await;
    attempts
}

/// With the circuit open, a rent is answered without calling payment, well within its timeout.
async fn fails_fast(rental: &App, customer: &Customer, book: uuid::Uuid, timeout: Duration) {
    let rejected_before = metric(
        &rental.metrics().await,
        "payment_calls_total{outcome=\"circuit_open\"",
    );
    let started = Instant::now();
    let response = customer.rent(rental, book).await;
    let took = started.elapsed();
    assert_problem(response, 503).await;
    assert!(
        took < timeout / 3,
        "an open circuit answers at once, not after the {timeout:?} call timeout: {took:?}"
    );
    let rejected_after = metric(
        &rental.metrics().await,
        "payment_calls_total{outcome=\"circuit_open\"",
    );
    assert_eq!(
        rejected_after,
        rejected_before + 1.0,
        "payment was not called"
    );
}

/// Once payment answers again, the breaker lets a trial through and closes.
async fn recovers(rental: &App, customer: &Customer, book: uuid::Uuid) {
    let rented: Value = eventually("renting to work again", WAIT, || async {
        let response = customer.rent(rental, book).await;
        (response.status() == 201).then_some(response)
    })
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(rented["status"], "RENTED");
    assert_eq!(
        metric(&rental.metrics().await, "payment_circuit_state"),
        0.0,
        "closed again"
    );
}

#[tokio::test]
async fn with_payment_stopped_rents_fail_fast_and_recover_when_it_returns() {
    let fleet = Fleet::new().await;
    let port = free_port();
    let payment = fleet.payment(Some(port.port()), &[]).await;
    let address = payment.address.clone();
    let books = fleet.books().await;
    let timeout = Duration::from_millis(3000);
    let rental = fleet
        .rental(
            &address,
            &[
                ("PAYMENT_TIMEOUT_MS", "3000"),
                ("RECONCILE_AFTER_MS", "6500"),
            ],
        )
        .await;
    let book = fleet.book(&books, 300).await;
    let ada = fleet.customer();
    payment.stop().await;

    rent_until_open(&rental, &ada, book).await;
    fails_fast(&rental, &ada, book, timeout).await;
    assert_eq!(
        fleet.count("rental.outbox").await,
        0,
        "no BookRented while payment is down"
    );

    let _payment = fleet.payment(Some(port.port()), &[]).await;
    recovers(&rental, &ada, book).await;
    fleet.agree().await;
}

#[tokio::test]
async fn a_long_healthy_run_does_not_keep_the_circuit_closed_when_payment_stops() {
    let fleet = Fleet::new().await;
    let port = free_port();
    let payment = fleet.payment(Some(port.port()), &[]).await;
    let books = fleet.books().await;
    let rental = fleet
        .rental(
            &payment.address,
            &[
                ("PAYMENT_TIMEOUT_MS", "3000"),
                ("RECONCILE_AFTER_MS", "6500"),
            ],
        )
        .await;
    let book = fleet.book(&books, 300).await;
    let ada = fleet.customer();
    for _ in 0..40 {
        let rented = ada.rents(&rental, book).await;
        assert_eq!(
            ada.act(&rental, id_of(&rented), "return").await.status(),
            200
        );
    }
    // Failures are weighed against the calls of the last window only, not against every
    // success so far: once the healthy run is out of the window, a few failures open it.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    payment.stop().await;
    let attempts = rent_until_open(&rental, &ada, book).await;
    assert!(
        attempts <= 4,
        "took {attempts} failed rents after 40 good ones (BREAKER_MIN_CALLS is 3)"
    );
    fleet.agree().await;
}

#[tokio::test]
async fn with_payment_slower_than_the_timeout_rents_fail_fast_and_recover() {
    let fleet = Fleet::new().await;
    let port = free_port();
    let slow = fleet
        .payment(Some(port.port()), &[("PAYMENT_LATENCY_MS", "1500")])
        .await;
    let books = fleet.books().await;
    let timeout = Duration::from_millis(300);
    let rental = fleet
        .rental(
            &slow.address,
            &[
                ("PAYMENT_TIMEOUT_MS", "300"),
                ("RECONCILE_AFTER_MS", "2500"),
                // A failed rent waits two timeouts (the resend): room for BREAKER_MIN_CALLS.
                ("BREAKER_WINDOW_MS", "2500"),
            ],
        )
        .await;
    let book = fleet.book(&books, 300).await;
    let ada = fleet.customer();

    rent_until_open(&rental, &ada, book).await;
    assert!(
        metric(
            &rental.metrics().await,
            "payment_calls_total{outcome=\"timeout\""
        ) >= 1.0
    );
    fails_fast(&rental, &ada, book, timeout * 3).await;

    // Payment may have taken money for the rents that timed out: the reconciler refunds it.
    slow.stop().await;
    let _healthy = fleet.payment(Some(port.port()), &[]).await;
    recovers(&rental, &ada, book).await;
    fleet.agree().await;
}

#[tokio::test]
async fn a_replica_whose_clock_runs_a_minute_behind_does_not_fail_a_rent_still_paying() {
    let fleet = Fleet::new().await;
    // Payment takes most of the time a rent may; the reconciler looks often and takes rentals
    // left unsettled for 2.1 s (by the database's clock).
    let payment = fleet.payment(None, &[("PAYMENT_LATENCY_MS", "700")]).await;
    let books = fleet.books().await;
    let behind = rental::application::Clock::skewed(chrono::Duration::seconds(-60));
    let rental = fleet
        .rental_with_clock(&payment.address, &[("RECONCILE_INTERVAL_MS", "50")], behind)
        .await;
    let ada = fleet.customer();
    for _ in 0..3 {
        let book = fleet.book(&books, 300).await;
        let rented = ada.rents(&rental, book).await;
        assert_eq!(rented["status"], "RENTED");
    }
    assert_eq!(
        fleet
            .count("rental.rentals WHERE status = 'PAYMENT_FAILED'")
            .await,
        0
    );
    fleet.agree().await;
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection, as scripts/test.sh runs it"
)]
#[tokio::test]
async fn a_crash_right_after_payment_is_refunded_by_the_reconciler() {
    let fleet = Fleet::new().await;
    let payment = fleet.payment(None, &[]).await;
    let books = fleet.books().await;
    let binary = Path::new(env!("CARGO_BIN_EXE_rental"));
    let ada = fleet.customer();

    let crashing = ServiceProcess::spawn(
        binary,
        &fleet.rental_env(&payment.address, &[("RENTAL_FAULT", "crash-after-payment")]),
    )
    .await;
    let book = fleet.book(&books, 300).await;
    let answer = reqwest::Client::new()
        .post(format!("{}/api/v1/rentals", crashing.base_url))
        .header("authorization", ada.bearer())
        .json(&serde_json::json!({"bookId": book}))
        .send()
        .await;
    assert!(answer.is_err(), "the process died mid-request: {answer:?}");
    let (rental_id,): (uuid::Uuid,) =
        sqlx::query_as("SELECT id FROM rental.rentals WHERE book_id = $1")
            .bind(book)
            .fetch_one(&fleet.db.admin)
            .await
            .unwrap();
    assert_eq!(fleet.rental_status(rental_id).await, "PAYMENT_PENDING");
    let (_, status) = payment_of(&fleet, &rental_id.to_string())
        .await
        .expect("payment approved before the crash");
    assert_eq!(status, "APPROVED");
    drop(crashing);

    // Two replicas come back, both reconciling: the payment is still refunded once.
    let restarted = ServiceProcess::spawn(binary, &fleet.rental_env(&payment.address, &[])).await;
    let _second = ServiceProcess::spawn(binary, &fleet.rental_env(&payment.address, &[])).await;
    eventually("the reconciler to settle the rental", WAIT, || async {
        let refunded = payment_of(&fleet, &rental_id.to_string())
            .await
            .map(|(_, s)| s);
        (fleet.rental_status(rental_id).await == "PAYMENT_FAILED"
            && refunded.as_deref() == Some("REFUNDED"))
        .then_some(())
    })
    .await;
    fleet.agree().await;
    let payment_events = fleet
        .kafka
        .reader(&fleet.topic(shared_events::Topic::Payment))
        .await
        .expect(2, WAIT)
        .await;
    let types: Vec<String> = payment_events
        .iter()
        .map(|m| m.event().event_type)
        .collect();
    assert_eq!(
        types,
        ["PaymentApproved", "PaymentRefunded"],
        "refunded exactly once"
    );

    let again = reqwest::Client::new()
        .post(format!("{}/api/v1/rentals", restarted.base_url))
        .header("authorization", ada.bearer())
        .json(&serde_json::json!({"bookId": book}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 201, "the book is free again");
    fleet.agree().await;
}

#[tokio::test]
async fn with_two_payment_replicas_renting_goes_on_while_one_is_stopped() {
    let fleet = Fleet::new().await;
    let first = fleet.payment(None, &[]).await;
    let second = fleet.payment(None, &[]).await;
    let books = fleet.books().await;
    let addresses = format!("{},{}", first.address, second.address);
    let rental = fleet.rental(&addresses, &[]).await;
    let ada = fleet.customer();
    let mut shelf = Vec::new();
    for _ in 0..8 {
        shelf.push(fleet.book(&books, 300).await);
    }

    for book in &shelf[..4] {
        ada.rents(&rental, *book).await;
    }
    first.stop().await;
    // Every other call goes to the stopped replica first, finds it refusing and moves on.
    let bob = fleet.customer();
    for book in &shelf[4..] {
        bob.rents(&rental, *book).await;
    }
    let metrics = rental.metrics().await;
    assert_eq!(
        metric(&metrics, "payment_calls_total{outcome=\"approved\""),
        8.0
    );
    assert_eq!(
        metric(&metrics, "payment_calls_total{outcome=\"failed\""),
        0.0
    );
    fleet.agree().await;
}

#[tokio::test]
async fn rental_is_not_ready_until_it_holds_the_signing_keys() {
    let fleet = Fleet::new().await;
    let payment = fleet.payment(None, &[]).await;
    let books = fleet.books().await;
    // Where the keys will be published: nothing answers there yet, and the schema keeps none.
    let nobody = free_port();
    let jwks_url = format!("http://127.0.0.1:{}/.well-known/jwks.json", nobody.port());
    let mut env = fleet.rental_env(&payment.address, &[]);
    env.retain(|(name, _)| name != "JWKS_URL");
    env.push(("JWKS_URL".into(), jwks_url));
    let config = rental::Config::from_env(fleet_testing::env_of(&env)).unwrap();
    let rental = App::start(rental::build(config).await.unwrap());

    let client = reqwest::Client::new();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let Ok(response) = client.get(rental.url("/readyz")).send().await else {
            continue;
        };
        let problem = assert_problem(response, 503).await;
        assert!(
            problem["detail"].as_str().unwrap().contains("signing keys"),
            "{problem}"
        );
    }
    // Unready, it still migrates and consumes: its catalogue fills.
    let book = fleet.book(&books, 300).await;

    // The keys are published: rental turns ready and checks a customer's token at once.
    let keys: Value = reqwest::get(&fleet.identity.jwks_url)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", nobody.port()))
        .await
        .unwrap();
    let jwks = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || async move { axum::Json(keys) }),
    );
    tokio::spawn(async move { axum::serve(listener, jwks).await });
    fleet_testing::wait_ready(&rental.address, WAIT).await;
    let rented = fleet.customer().rents(&rental, book).await;
    assert_eq!(rented["status"], "RENTED");
}

#[tokio::test]
async fn a_payment_call_that_times_out_is_sent_once_more_and_the_rent_goes_through() {
    // A stalled replica and a healthy one, taken in turn: each rent's first call stalls, as a
    // call to a replica being replaced can, and its resend goes to the healthy one.
    let fleet = Fleet::new().await;
    let stalled = fleet.payment(None, &[("PAYMENT_LATENCY_MS", "1500")]).await;
    let healthy = fleet.payment(None, &[]).await;
    let books = fleet.books().await;
    let rental = fleet
        .rental(
            &format!("{},{}", stalled.address, healthy.address),
            &[
                ("PAYMENT_TIMEOUT_MS", "300"),
                ("RECONCILE_AFTER_MS", "2500"),
            ],
        )
        .await;
    let book = fleet.book(&books, 300).await;
    let ada = fleet.customer();
    for _ in 0..4 {
        let rented = ada.rents(&rental, book).await;
        assert_eq!(
            ada.act(&rental, id_of(&rented), "return").await.status(),
            200
        );
    }
    let metrics = rental.metrics().await;
    assert_eq!(metric(&metrics, "payment_call_resends_total"), 4.0);
    assert_eq!(
        metric(&metrics, "payment_calls_total{outcome=\"approved\""),
        4.0
    );
    assert_eq!(metric(&metrics, "payment_circuit_state"), 0.0);
    fleet.agree().await;
}
