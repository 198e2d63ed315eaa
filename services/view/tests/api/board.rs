//! The boards follow a rental through each of its states, each within a bounded time.

use serde_json::Value;
use uuid::Uuid;

use crate::helpers::*;

/// Waits until the rental's line satisfies `check`, and returns it.
async fn rental_becomes(app: &App, id: Uuid, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let path = format!("/api/v1/views/rentals/{id}");
    eventually(&format!("rental {id}: {what}"), WAIT, || async {
        let response = get(app, &path, None).await;
        if response.status() != 200 {
            return None;
        }
        let rental: Value = response.json().await.unwrap();
        check(&rental).then_some(rental)
    })
    .await
}

/// Waits until the book's line has this status, renter and count, and returns it.
async fn book_becomes(
    app: &App,
    id: Uuid,
    status: &str,
    renter: Option<Uuid>,
    times_rented: u64,
) -> Value {
    let what = format!("book {id} {status} by {renter:?}, rented {times_rented} times");
    eventually(&what, WAIT, || async {
        let books = page(app, "/api/v1/views/books", None).await;
        let book = books["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["id"] == id.to_string())?
            .clone();
        let renter_now = book["currentRenter"]["customerId"]
            .as_str()
            .map(String::from);
        (book["status"] == status
            && renter_now == renter.map(|r| r.to_string())
            && book["timesRented"] == times_rented)
            .then_some(book)
    })
    .await
}

#[tokio::test]
async fn the_boards_show_each_state_of_a_rental() {
    let world = World::new().await;
    let app = world.spawn().await;
    let (ursula, kindred) = (Uuid::now_v7(), Uuid::now_v7());

    world.send(&book_registered(kindred, "Kindred", 300)).await;
    let book = book_becomes(&app, kindred, "AVAILABLE", None, 0).await;
    assert_eq!(book["title"], "Kindred");
    assert_eq!(book["author"], "Ursula K. Le Guin");
    assert_eq!(book["rentalFee"], 300);
    world.send(&user_registered(ursula, "Ursula")).await;

    // Rented and paid.
    let first = Rental::new(kindred, ursula, 0);
    world.send(&first.rented()).await;
    world.send(&first.approved()).await;
    let rental = rental_becomes(&app, first.id, "rented and paid", |r| {
        r["status"] == "RENTED" && r["paymentStatus"] == "APPROVED"
    })
    .await;
    assert_eq!(rental["customerId"], ursula.to_string());
    assert_eq!(rental["customerName"], "Ursula");
    assert_eq!(rental["bookId"], kindred.to_string());
    assert_eq!(rental["bookTitle"], "Kindred");
    assert_eq!(rental["rentalFee"], 450);
    assert_eq!(rental["paymentId"], first.payment.to_string());
    assert_eq!(rental["overdue"], false);
    for time in ["rentedAt", "dueAt"] {
        assert!(rental[time].is_string(), "{time}: {rental}");
    }
    for time in ["returnedAt", "cancelledAt", "refundedAt"] {
        assert!(rental[time].is_null(), "{time}: {rental}");
    }
    let book = book_becomes(&app, kindred, "RENTED", Some(ursula), 1).await;
    assert_eq!(book["currentRenter"]["customerName"], "Ursula");
    assert_eq!(book["currentRenter"]["rentalId"], first.id.to_string());

    // Cancelled and refunded.
    world.send(&first.cancelled()).await;
    world.send(&first.refunded()).await;
    let rental = rental_becomes(&app, first.id, "cancelled and refunded", |r| {
        r["status"] == "CANCELLED" && r["paymentStatus"] == "REFUNDED"
    })
    .await;
    assert!(rental["cancelledAt"].is_string() && rental["refundedAt"].is_string());
    let book = book_becomes(&app, kindred, "AVAILABLE", None, 1).await;
    assert!(book["currentRenter"].is_null());

    // Rented again, then returned.
    let second = Rental::new(kindred, ursula, 0);
    world.send(&second.rented()).await;
    world.send(&second.approved()).await;
    rental_becomes(&app, second.id, "rented and paid", |r| {
        r["status"] == "RENTED" && r["paymentStatus"] == "APPROVED"
    })
    .await;
    book_becomes(&app, kindred, "RENTED", Some(ursula), 2).await;
    world.send(&second.returned()).await;
    let rental = rental_becomes(&app, second.id, "returned", |r| r["status"] == "RETURNED").await;
    assert_eq!(
        rental["paymentStatus"], "APPROVED",
        "a return refunds nothing"
    );
    assert!(rental["returnedAt"].is_string());
    book_becomes(&app, kindred, "AVAILABLE", None, 2).await;

    // Retired.
    world.send(&book_retired(kindred)).await;
    book_becomes(&app, kindred, "RETIRED", None, 2).await;
    app.stop().await;
}

#[tokio::test]
async fn names_and_titles_that_arrive_late_appear() {
    let world = World::new().await;
    let app = world.spawn().await;
    let (octavia, kindred) = (Uuid::now_v7(), Uuid::now_v7());
    let rental = Rental::new(kindred, octavia, 0);

    // The rental first: customer and book are not known yet.
    world.feed_in_order(&[rental.rented()]).await;
    let line = page(&app, &format!("/api/v1/views/rentals/{}", rental.id), None).await;
    assert_eq!(line["status"], "RENTED");
    assert!(
        line["customerName"].is_null() && line["bookTitle"].is_null(),
        "{line}"
    );
    let books = page(&app, "/api/v1/views/books", None).await;
    let book = find(books["items"].as_array().unwrap(), kindred);
    assert_eq!(
        book["status"], "RENTED",
        "a book named by a rental is listed at once"
    );
    assert!(book["title"].is_null(), "{book}");

    world
        .feed_in_order(&[
            user_registered(octavia, "Octavia"),
            book_registered(kindred, "Kindred", 300),
        ])
        .await;
    let line = page(&app, &format!("/api/v1/views/rentals/{}", rental.id), None).await;
    assert_eq!(line["customerName"], "Octavia");
    assert_eq!(line["bookTitle"], "Kindred");
    assert_eq!(line["status"], "RENTED");
    let books = page(&app, "/api/v1/views/books", None).await;
    let book = find(books["items"].as_array().unwrap(), kindred);
    assert_eq!(book["title"], "Kindred");
    assert_eq!(book["currentRenter"]["customerName"], "Octavia");
    app.stop().await;
}
