//! Renting end to end: pay, cancel and refund, return; double booking; illegal transitions.

use serde_json::Value;
use shared_events::Topic;

use crate::helpers::*;

async fn book_becomes(books: &App, id: uuid::Uuid, status: &str, times: u64) {
    fleet_testing::eventually(&format!("book {status} x{times}"), WAIT, || async {
        (book_status(books, id).await == (status.to_owned(), times)).then_some(())
    })
    .await
}

#[tokio::test]
async fn rent_cancel_refund_and_return_end_to_end() {
    let fleet = Fleet::new().await;
    let payment = fleet.payment(None, &[]).await;
    let books = fleet.books().await;
    let rental = fleet.rental(&payment.address, &[]).await;
    rental.assert_operations_port("rental").await;
    let book = fleet.book(&books, 450).await;
    let ada = fleet.customer();

    let rented = ada.rents(&rental, book).await;
    assert_eq!(rented["status"], "RENTED");
    assert_eq!(rented["rentalFee"], 450);
    let rental_id = id_of(&rented).to_owned();
    let (payment_id, status) = payment_of(&fleet, &rental_id).await.expect("a payment");
    assert_eq!(status, "APPROVED");
    assert_eq!(rented["paymentId"], payment_id.to_string());
    book_becomes(&books, book, "RENTED", 1).await;

    let cancelled = ada.act(&rental, &rental_id, "cancel").await;
    assert_eq!(cancelled.status(), 200);
    assert_eq!(
        cancelled.json::<Value>().await.unwrap()["status"],
        "CANCELLED"
    );
    book_becomes(&books, book, "AVAILABLE", 1).await;
    fleet.agree().await; // the refund happened

    let again = ada.rents(&rental, book).await;
    let returned = ada.act(&rental, id_of(&again), "return").await;
    assert_eq!(returned.status(), 200);
    book_becomes(&books, book, "AVAILABLE", 2).await;

    let rental_events = fleet
        .kafka
        .reader(&fleet.topic(Topic::Rental))
        .await
        .expect(4, WAIT)
        .await;
    let types: Vec<String> = rental_events.iter().map(|m| m.event().event_type).collect();
    assert_eq!(
        types,
        [
            "BookRented",
            "RentalCancelled",
            "BookRented",
            "BookReturned"
        ]
    );
    assert!(
        rental_events.iter().all(|m| m.key == book.to_string()),
        "keyed by book"
    );
    let payment_events = fleet
        .kafka
        .reader(&fleet.topic(Topic::Payment))
        .await
        .expect(3, WAIT)
        .await;
    let mut types: Vec<String> = payment_events
        .iter()
        .map(|m| m.event().event_type)
        .collect();
    types.sort();
    assert_eq!(
        types,
        ["PaymentApproved", "PaymentApproved", "PaymentRefunded"],
        "exactly one refund"
    );
    let metrics = rental.metrics().await;
    assert_eq!(
        sample(&metrics, "payment_calls_total{outcome=\"approved\""),
        2.0
    );
    assert_eq!(
        sample(
            &metrics,
            "payment_call_duration_seconds_count{outcome=\"approved\""
        ),
        2.0
    );
    assert_eq!(sample(&metrics, "payment_circuit_state"), 0.0);
    fleet.agree().await;
}

#[tokio::test]
async fn twenty_concurrent_rents_of_one_book_make_one_rental_and_one_payment() {
    let fleet = Fleet::new().await;
    let payment = fleet.payment(None, &[("PAYMENT_LATENCY_MS", "50")]).await;
    let books = fleet.books().await;
    let rental = fleet.rental(&payment.address, &[]).await;
    let book = fleet.book(&books, 300).await;

    let customers: Vec<Customer> = (0..20).map(|_| fleet.customer()).collect();
    let answers = futures::future::join_all(customers.iter().map(|c| c.rent(&rental, book))).await;
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        19,
        "{statuses:?}"
    );
    assert_eq!(fleet.count("payment.payments").await, 1, "no stray payment");
    assert_eq!(fleet.count("rental.rentals").await, 1);
    fleet.agree().await;
}

#[tokio::test]
async fn cancel_and_return_are_only_legal_from_rented() {
    let fleet = Fleet::new().await;
    let payment = fleet.payment(None, &[]).await;
    let books = fleet.books().await;
    let rental = fleet.rental(&payment.address, &[]).await;
    let book = fleet.book(&books, 300).await;
    let ada = fleet.customer();

    let first = ada.rents(&rental, book).await;
    let first = id_of(&first);
    assert_eq!(ada.act(&rental, first, "cancel").await.status(), 200);
    let outbox = fleet.count("rental.outbox").await;
    for action in ["cancel", "return"] {
        let problem = assert_problem(ada.act(&rental, first, action).await, 409).await;
        assert!(
            problem["detail"].as_str().unwrap().contains("CANCELLED"),
            "{problem}"
        );
    }
    let second = ada.rents(&rental, book).await;
    let second = id_of(&second);
    assert_eq!(ada.act(&rental, second, "return").await.status(), 200);
    assert_problem(ada.act(&rental, second, "cancel").await, 409).await;
    assert_problem(ada.act(&rental, second, "return").await, 409).await;
    assert_eq!(
        fleet.count("rental.outbox").await,
        outbox + 2,
        "only the second rent and its return wrote events"
    );
    assert_eq!(
        fleet.rental_status(first.parse().unwrap()).await,
        "CANCELLED"
    );
    fleet.agree().await;
}

#[tokio::test]
async fn a_customer_sees_and_changes_only_their_own_rentals() {
    let fleet = Fleet::new().await;
    let payment = fleet.payment(None, &[]).await;
    let books = fleet.books().await;
    let rental = fleet.rental(&payment.address, &[]).await;
    let book = fleet.book(&books, 300).await;
    let (ada, bob) = (fleet.customer(), fleet.customer());
    let rented = ada.rents(&rental, book).await;
    let id = id_of(&rented);

    assert_eq!(ada.get(&rental, id).await.status(), 200);
    assert_problem(bob.get(&rental, id).await, 404).await;
    assert_problem(bob.act(&rental, id, "cancel").await, 404).await;
    assert_problem(bob.act(&rental, id, "return").await, 404).await;
    let read_with = |authorization: Option<String>| {
        let mut request = rental
            .client
            .get(rental.url(&format!("/api/v1/rentals/{id}")));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request.send()
    };
    let manager = fleet.identity.token(uuid::Uuid::new_v4(), &["manager"]);
    assert_eq!(
        read_with(Some(format!("Bearer {manager}")))
            .await
            .unwrap()
            .status(),
        200
    );

    // The service checks the token itself.
    let anonymous = read_with(None).await.unwrap();
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    assert_problem(anonymous, 401).await;
    let now = chrono::Utc::now().timestamp();
    let claims = |aud: &str, exp: i64| serde_json::json!({"sub": ada.id.to_string(), "roles": ["customer"], "iss": "book-rental-fleet", "aud": aud, "iat": now, "exp": exp});
    for forged in [
        fleet.identity.sign(claims("book-rental-api", now - 3600)),
        fleet.identity.sign(claims("another-api", now + 600)),
        format!("{}x", ada.token),
    ] {
        let refused = read_with(Some(format!("Bearer {forged}"))).await.unwrap();
        assert_eq!(
            refused.headers()["www-authenticate"],
            r#"Bearer error="invalid_token""#
        );
        assert_problem(refused, 401).await;
    }
    assert_eq!(fleet.rental_status(id.parse().unwrap()).await, "RENTED");
}

#[tokio::test]
async fn unknown_retired_and_declined_books_are_refused_without_a_charge() {
    let fleet = Fleet::new().await;
    let payment = fleet
        .payment(None, &[("PAYMENT_DECLINE_AMOUNT_ABOVE", "1000")])
        .await;
    let books = fleet.books().await;
    let rental = fleet.rental(&payment.address, &[]).await;
    let ada = fleet.customer();

    assert_problem(ada.rent(&rental, uuid::Uuid::new_v4()).await, 404).await;

    let pricey = fleet.book(&books, 5000).await;
    let declined = assert_problem(ada.rent(&rental, pricey).await, 402).await;
    assert!(declined["detail"].as_str().unwrap().contains("declined"));
    assert_problem(ada.rent(&rental, pricey).await, 402).await; // not 409: a declined rent holds nothing

    let retired = fleet.book(&books, 300).await;
    assert_eq!(
        books
            .client
            .delete(books.url(&format!("/api/v1/books/{retired}")))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    fleet.in_catalogue(retired, true).await;
    let problem = assert_problem(ada.rent(&rental, retired).await, 409).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("retired"),
        "{problem}"
    );

    let bad = rental
        .client
        .post(rental.url("/api/v1/rentals"))
        .header("authorization", ada.bearer())
        .header("content-type", "application/json")
        .body(r#"{"bookId":"not-a-uuid"}"#)
        .send()
        .await
        .unwrap();
    let problem = assert_problem(bad, 422).await;
    assert_eq!(problem["errors"][0]["pointer"], "#/bookId");

    assert_eq!(fleet.count("rental.outbox").await, 0, "no rental event");
    let approved: i64 =
        sqlx::query_scalar("SELECT count(*) FROM payment.payments WHERE status = 'APPROVED'")
            .fetch_one(&fleet.db.admin)
            .await
            .unwrap();
    assert_eq!(approved, 0, "nothing charged");
    fleet.agree().await;
}

#[tokio::test]
async fn a_rent_sent_again_with_its_idempotency_key_gets_the_same_rental_and_one_payment() {
    let fleet = Fleet::new().await;
    let payment = fleet
        .payment(None, &[("PAYMENT_DECLINE_AMOUNT_ABOVE", "1000")])
        .await;
    let books = fleet.books().await;
    let rental = fleet.rental(&payment.address, &[]).await;
    let ada = fleet.customer();
    let (book, other_book, pricey) = (
        fleet.book(&books, 300).await,
        fleet.book(&books, 300).await,
        fleet.book(&books, 5000).await,
    );
    let key = uuid::Uuid::new_v4().to_string();

    let first = ada.rent_with_key(&rental, book, &key).await;
    assert_eq!(first.status(), 201);
    let location = first.headers()["location"].clone();
    let first: Value = first.json().await.unwrap();

    // Sent again, at once and concurrently (the book is now taken, by this very rent): the same
    // rental each time, and nothing new charged or stored.
    let again =
        futures::future::join_all((0..5).map(|_| ada.rent_with_key(&rental, book, &key))).await;
    for answer in again {
        assert_eq!(answer.status(), 201);
        assert_eq!(answer.headers()["location"], location);
        let answer: Value = answer.json().await.unwrap();
        assert_eq!(answer["id"], first["id"], "{answer}");
        assert_eq!(answer["status"], "RENTED");
    }
    assert_eq!(fleet.count("rental.rentals").await, 1);
    assert_eq!(fleet.count("payment.payments").await, 1);

    // The same key for another book is a client's mistake, not a second rent.
    let reused = assert_problem(ada.rent_with_key(&rental, other_book, &key).await, 422).await;
    assert!(
        reused["detail"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key"),
        "{reused}"
    );
    // Keys are per customer: another customer's same key is a rent of their own.
    let bob = fleet.customer();
    assert_eq!(
        bob.rent_with_key(&rental, other_book, &key).await.status(),
        201
    );

    // A rent that failed frees its key: sending it again tries again.
    let declined_key = uuid::Uuid::new_v4().to_string();
    assert_problem(ada.rent_with_key(&rental, pricey, &declined_key).await, 402).await;
    assert_problem(ada.rent_with_key(&rental, pricey, &declined_key).await, 402).await;

    // A key that is not one: 400, and nothing stored.
    let before = fleet.count("rental.rentals").await;
    for bad in ["", "has space", &"k".repeat(256)] {
        let problem = assert_problem(ada.rent_with_key(&rental, book, bad).await, 400).await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("Idempotency-Key"),
            "{problem}"
        );
    }
    assert_eq!(fleet.count("rental.rentals").await, before);
}
