use fleet_testing::{ServiceProcess, TestKafka, WAIT, eventually, fleet_binary};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Fleet, refused};

#[tokio::test]
async fn a_customer_signs_up_and_rents_a_book_through_the_gateway_alone() {
    let fleet = Fleet::start().await;
    let manager = fleet.manager().await;
    let book = fleet.book(&manager, 300).await;

    let customer = fleet.sign_up().await;
    let me: Value = fleet
        .get("/api/v1/users/me", &customer.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], customer.id.to_string());

    let books = fleet.get("/api/v1/books", &customer.token).await;
    assert_eq!(books.status(), 200);
    let books: Value = books.json().await.unwrap();
    assert!(
        books["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["id"] == book.as_str()),
        "{books}"
    );

    let rental = fleet.rent(&customer, &book).await;
    assert_eq!(rental["status"], "RENTED");
    let id = rental["id"].as_str().unwrap();
    let payments: Value = fleet
        .get(&format!("/api/v1/payments?rentalId={id}"), &customer.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(payments["items"][0]["status"], "APPROVED");

    let cancelled = fleet
        .post(
            &format!("/api/v1/rentals/{id}/cancel"),
            &customer.token,
            json!({}),
        )
        .await;
    assert_eq!(cancelled.status(), 200);
    let cancelled: Value = cancelled.json().await.unwrap();
    assert_eq!(cancelled["status"], "CANCELLED");
    let payment_id = payments["items"][0]["id"].as_str().unwrap().to_owned();
    eventually("the payment refunded", WAIT, || async {
        let payment: Value = fleet
            .get(&format!("/api/v1/payments/{payment_id}"), &customer.token)
            .await
            .json()
            .await
            .ok()?;
        (payment["status"] == "REFUNDED").then_some(())
    })
    .await;
}

#[tokio::test]
async fn customers_reach_only_their_own_things_and_the_manager_reaches_all() {
    let fleet = Fleet::start().await;
    let manager = fleet.manager().await;
    let book = fleet.book(&manager, 300).await;
    let owner = fleet.sign_up().await;
    let other = fleet.sign_up().await;
    let rental = fleet.rent(&owner, &book).await;
    let id = rental["id"].as_str().unwrap();

    let register = json!({"title": "Emma", "author": "Jane Austen", "rentalFee": 100});
    refused(
        fleet
            .post("/api/v1/books", &other.token, register.clone())
            .await,
        403,
    )
    .await;
    assert_eq!(
        fleet
            .post("/api/v1/books", &manager, register)
            .await
            .status(),
        201
    );

    let path = format!("/api/v1/rentals/{id}");
    refused(fleet.get(&path, &other.token).await, 404).await;
    for action in ["cancel", "return"] {
        let response = fleet
            .post(&format!("{path}/{action}"), &other.token, json!({}))
            .await;
        refused(response, 404).await;
    }
    let payments: Value = fleet
        .get(&format!("/api/v1/payments?rentalId={id}"), &other.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(payments["items"], json!([]));

    let seen: Value = fleet.get(&path, &manager).await.json().await.unwrap();
    assert_eq!(seen["status"], "RENTED");
    let payments: Value = fleet
        .get(&format!("/api/v1/payments?rentalId={id}"), &manager)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(payments["items"].as_array().unwrap().len(), 1);

    // Renting is for customers; the rental is untouched by all of the above.
    refused(
        fleet
            .post("/api/v1/rentals", &manager, json!({"bookId": book}))
            .await,
        403,
    )
    .await;
    let still: Value = fleet.get(&path, &owner.token).await.json().await.unwrap();
    assert_eq!(still["status"], "RENTED");
}

#[tokio::test]
async fn internal_endpoints_are_not_reachable_through_the_gateway() {
    let fleet = Fleet::start().await;
    let manager = fleet.manager().await;
    let customer = fleet.sign_up().await;
    let book = fleet.book(&manager, 300).await;
    let rental = fleet.rent(&customer, &book).await;
    let payments: Value = fleet
        .get(
            &format!(
                "/api/v1/payments?rentalId={}",
                rental["id"].as_str().unwrap()
            ),
            &manager,
        )
        .await
        .json()
        .await
        .unwrap();
    let payment_id = payments["items"][0]["id"].as_str().unwrap().to_owned();
    let pay = json!({"rentalId": uuid::Uuid::new_v4(), "userId": customer.id, "amount": 1});

    for token in [&manager, &customer.token] {
        let response = fleet.post("/api/v1/payments", token, pay.clone()).await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        for path in [
            format!("/api/v1/payments/{payment_id}/refund"),
            "/internal/v1/payments".to_owned(),
            format!("/internal/v1/payments/{payment_id}/refund"),
        ] {
            refused(fleet.post(&path, token, pay.clone()).await, 404).await;
        }
    }
    assert_eq!(fleet.count("payment.payments").await, 1);
    let payment: Value = fleet
        .get(&format!("/api/v1/payments/{payment_id}"), &manager)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(payment["status"], "APPROVED");
}

/// The book's line on the book board, read through the gateway as `manager`.
async fn book_on_board(fleet: &Fleet, manager: &str, book: &str) -> Value {
    let books: Value = fleet
        .get("/api/v1/views/books", manager)
        .await
        .json()
        .await
        .unwrap();
    let line = books["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == book);
    line.cloned()
        .unwrap_or_else(|| panic!("book {book} is not on the board: {books}"))
}

/// The board's line for a rental once `check` holds for it, read through the gateway.
async fn board_line(fleet: &Fleet, token: &str, id: &str, check: impl Fn(&Value) -> bool) -> Value {
    eventually(&format!("rental {id} on the board"), WAIT, || async {
        let response = fleet
            .get(&format!("/api/v1/views/rentals/{id}"), token)
            .await;
        let line: Value = response.json().await.ok()?;
        check(&line).then_some(line)
    })
    .await
}

#[tokio::test]
async fn the_boards_follow_a_rental_from_renting_to_return_and_cancel() {
    let fleet = Fleet::start().await;
    let manager = fleet.manager().await;
    let book = fleet.book(&manager, 300).await;
    let customer = fleet.sign_up().await;

    let first = fleet.rent(&customer, &book).await;
    let id = first["id"].as_str().unwrap().to_owned();
    // The rental's and the payment's events travel on different topics: wait for both.
    let line = board_line(&fleet, &customer.token, &id, |l| {
        l["status"] == "RENTED" && l["paymentStatus"] == "APPROVED"
    })
    .await;
    assert_eq!(line["status"], "RENTED");
    assert_eq!(line["bookTitle"], "Dune");
    assert_eq!(line["customerName"], "Ada Reader");
    assert_eq!(line["overdue"], false);
    let on_board = book_on_board(&fleet, &manager, &book).await;
    assert_eq!(on_board["status"], "RENTED");
    assert_eq!(
        on_board["currentRenter"]["customerId"],
        customer.id.to_string()
    );

    let cancel = format!("/api/v1/rentals/{id}/cancel");
    assert_eq!(
        fleet
            .post(&cancel, &customer.token, json!({}))
            .await
            .status(),
        200
    );
    let line = board_line(&fleet, &customer.token, &id, |l| {
        l["status"] == "CANCELLED" && l["paymentStatus"] == "REFUNDED"
    })
    .await;
    assert_eq!(line["status"], "CANCELLED");
    assert!(line["cancelledAt"].is_string() && line["refundedAt"].is_string());

    let second = fleet.rent(&customer, &book).await;
    let id = second["id"].as_str().unwrap().to_owned();
    let give_back = format!("/api/v1/rentals/{id}/return");
    assert_eq!(
        fleet
            .post(&give_back, &customer.token, json!({}))
            .await
            .status(),
        200
    );
    let line = board_line(&fleet, &manager, &id, |l| l["status"] == "RETURNED").await;
    assert!(line["returnedAt"].is_string());
    let on_board = book_on_board(&fleet, &manager, &book).await;
    assert_eq!(on_board["status"], "AVAILABLE");
    assert_eq!(on_board["timesRented"], 2);

    // A customer sees their own board only; the book board is the managers'.
    let other = fleet.sign_up().await;
    refused(
        fleet
            .get(&format!("/api/v1/views/rentals/{id}"), &other.token)
            .await,
        404,
    )
    .await;
    refused(fleet.get("/api/v1/views/books", &customer.token).await, 403).await;
}

#[tokio::test]
async fn renting_goes_on_while_the_view_is_stopped_and_the_board_catches_up() {
    let mut fleet = Fleet::start().await;
    let manager = fleet.manager().await;
    let book = fleet.book(&manager, 300).await;
    let customer = fleet.sign_up().await;

    assert!(fleet.view.terminate().await, "view stops cleanly");
    let rental = fleet.rent(&customer, &book).await;
    let id = rental["id"].as_str().unwrap().to_owned();
    let give_back = format!("/api/v1/rentals/{id}/return");
    assert_eq!(
        fleet
            .post(&give_back, &customer.token, json!({}))
            .await
            .status(),
        200
    );
    refused(
        fleet
            .get(&format!("/api/v1/views/rentals/{id}"), &customer.token)
            .await,
        502,
    )
    .await;

    fleet.view.restart().await;
    let line = board_line(&fleet, &customer.token, &id, |l| {
        l["status"] == "RETURNED" && l["paymentStatus"] == "APPROVED"
    })
    .await;
    assert_eq!(line["paymentStatus"], "APPROVED");
    assert_eq!(line["bookTitle"], "Dune");
}

#[tokio::test]
async fn a_rental_past_its_due_date_expires_once_and_every_board_and_count_follows() {
    let short = [("RENTAL_PERIOD_SECS", "4"), ("EXPIRY_INTERVAL_MS", "100")];
    let fleet = Fleet::launch(TestKafka::start().await, &[], &short).await;
    // A second rental replica: both look for rentals to expire.
    let _second = ServiceProcess::spawn(&fleet_binary("rental"), &fleet.rental_env).await;
    let manager = fleet.manager().await;
    let book = fleet.book(&manager, 300).await;
    let customer = fleet.sign_up().await;

    let rental = fleet.rent(&customer, &book).await;
    let id = rental["id"].as_str().unwrap().to_owned();
    let active = || async {
        let me: Value = fleet
            .get("/api/v1/users/me", &customer.token)
            .await
            .json()
            .await
            .unwrap();
        me["activeRentals"].as_u64().unwrap()
    };
    eventually("one active rental", WAIT, || async {
        (active().await == 1).then_some(())
    })
    .await;

    let line = board_line(&fleet, &customer.token, &id, |l| l["status"] == "EXPIRED").await;
    assert_eq!(
        line["returnedAt"], rental["dueAt"],
        "it ended at its due date"
    );
    assert_eq!(line["overdue"], false);
    let on_board = book_on_board(&fleet, &manager, &book).await;
    assert_eq!(on_board["status"], "AVAILABLE");
    eventually("no active rental", WAIT, || async {
        (active().await == 0).then_some(())
    })
    .await;
    let in_catalogue: Value = fleet
        .get(&format!("/api/v1/books/{book}"), &customer.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(in_catalogue["status"], "AVAILABLE");

    let give_back = format!("/api/v1/rentals/{id}/return");
    refused(
        fleet.post(&give_back, &customer.token, json!({})).await,
        409,
    )
    .await;
    let ends: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rental.outbox WHERE payload::jsonb ->> 'type' = 'BookReturned' \
         AND payload::jsonb -> 'data' ->> 'rentalId' = $1",
    )
    .bind(&id)
    .fetch_one(&fleet.db.admin)
    .await
    .unwrap();
    assert_eq!(ends, 1, "expired once, by one of the two replicas");
    // The book is free for the next customer.
    fleet.rent(&fleet.sign_up().await, &book).await;
}
