//! The terms a rental keeps: a change of mind only within the window, an end at the due date
//! (exactly once, with two replicas), and a bound on what one customer holds.

use std::time::Duration;

use fleet_testing::eventually;
use rental::application::Clock;
use serde_json::Value;
use shared_events::Topic;
use uuid::Uuid;

use crate::helpers::*;

async fn book_is(books: &App, id: Uuid, status: &str) {
    eventually(&format!("book {id} {status}"), WAIT, || async {
        (book_status(books, id).await.0 == status).then_some(())
    })
    .await
}

#[tokio::test]
async fn a_change_of_mind_is_refunded_within_the_window_and_refused_after_it() {
    let fleet = Fleet::new().await;
    let payment = fleet.payment(None, &[]).await;
    let books = fleet.books().await;
    let window = [("CANCEL_WINDOW_MINUTES", "30")];
    let rental = fleet.rental(&payment.address, &window).await;
    // A replica whose clock reads 31 minutes on: to it, every rental just made is past the
    // window.
    let later = fleet
        .rental_with_clock(
            &payment.address,
            &window,
            Clock::skewed(chrono::Duration::minutes(31)),
        )
        .await;
    let (first, second) = (fleet.book(&books, 400).await, fleet.book(&books, 500).await);
    let ada = fleet.customer();

    let soon = ada.rents(&rental, first).await;
    assert_eq!(ada.act(&rental, id_of(&soon), "cancel").await.status(), 200);
    eventually("the refund", WAIT, || async {
        let (_, status) = payment_of(&fleet, id_of(&soon)).await?;
        (status == "REFUNDED").then_some(())
    })
    .await;

    let kept = ada.rents(&rental, second).await;
    let outbox = fleet.count("rental.outbox").await;
    let problem = assert_problem(ada.act(&later, id_of(&kept), "cancel").await, 409).await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("window") && detail.contains("30 minutes") && detail.contains("return"),
        "{problem}"
    );
    assert_eq!(fleet.count("rental.outbox").await, outbox, "no event");
    assert_eq!(
        fleet.rental_status(id_of(&kept).parse().unwrap()).await,
        "RENTED"
    );
    // Nothing is refunded: the payment stays approved once every event has been consumed.
    assert_eq!(ada.act(&later, id_of(&kept), "return").await.status(), 200);
    book_is(&books, second, "AVAILABLE").await;
    fleet.agree().await;
    assert_eq!(
        payment_of(&fleet, id_of(&kept)).await.unwrap().1,
        "APPROVED",
        "a return refunds nothing"
    );
}

#[tokio::test]
async fn a_rental_expires_once_at_its_due_date_with_two_replicas_running() {
    let fleet = Fleet::new().await;
    let payment = fleet.payment(None, &[]).await;
    let books = fleet.books().await;
    let short = [("RENTAL_PERIOD_SECS", "4"), ("EXPIRY_INTERVAL_MS", "100")];
    let one = fleet.rental(&payment.address, &short).await;
    let two = fleet.rental(&payment.address, &short).await;
    let (lapsing, early) = (fleet.book(&books, 300).await, fleet.book(&books, 300).await);
    let ada = fleet.customer();

    let lapsed = ada.rents(&one, lapsing).await;
    let returned = ada.rents(&two, early).await;
    assert_eq!(
        ada.act(&one, id_of(&returned), "return").await.status(),
        200,
        "early return"
    );

    let lapsed_id: Uuid = id_of(&lapsed).parse().unwrap();
    eventually("the rental expired", Duration::from_secs(15), || async {
        (fleet.rental_status(lapsed_id).await == "EXPIRED").then_some(())
    })
    .await;
    book_is(&books, lapsing, "AVAILABLE").await;
    let ended = ada
        .get(&one, id_of(&lapsed))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(ended["status"], "EXPIRED");
    assert_eq!(
        ended["returnedAt"], lapsed["dueAt"],
        "it ended at its due date"
    );

    let problem = assert_problem(ada.act(&two, id_of(&lapsed), "return").await, 409).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("EXPIRED"),
        "{problem}"
    );
    assert_problem(ada.act(&one, id_of(&lapsed), "cancel").await, 409).await;

    // Both replicas kept looking for a while: still one BookReturned for the lapsed rental.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let events = fleet
        .kafka
        .reader(&fleet.topic(Topic::Rental))
        .await
        .expect(4, WAIT)
        .await;
    let ends: Vec<Value> = events
        .iter()
        .map(|m| m.event())
        .filter(|e| e.event_type == "BookReturned")
        .map(|e| e.data)
        .collect();
    let lapsed_ends: Vec<&Value> = ends
        .iter()
        .filter(|d| d["rentalId"] == lapsed["id"])
        .collect();
    assert_eq!(lapsed_ends.len(), 1, "{ends:?}");
    assert_eq!(lapsed_ends[0]["reason"], "EXPIRED");
    let early_end = ends
        .iter()
        .find(|d| d["rentalId"] == returned["id"])
        .unwrap();
    assert_eq!(early_end["reason"], "RETURNED");
    assert_eq!(fleet.count("rental.outbox").await, 4, "two rents, two ends");
    let expired_by = |metrics: String| sample(&metrics, "rentals_expired_total");
    assert_eq!(
        expired_by(one.metrics().await) + expired_by(two.metrics().await),
        1.0,
        "one replica expired it"
    );
    fleet.agree().await;
}

#[tokio::test]
async fn one_customer_renting_twenty_books_at_once_gets_only_the_limit() {
    let fleet = Fleet::new().await;
    let payment = fleet.payment(None, &[("PAYMENT_LATENCY_MS", "50")]).await;
    let books = fleet.books().await;
    let rental = fleet
        .rental(
            &payment.address,
            &[("MAX_ACTIVE_RENTALS_PER_CUSTOMER", "5")],
        )
        .await;
    let mut titles = Vec::new();
    for _ in 0..20 {
        titles.push(fleet.book(&books, 300).await);
    }
    let ada = fleet.customer();

    let answers =
        futures::future::join_all(titles.iter().map(|book| ada.rent(&rental, *book))).await;
    let mut held = Vec::new();
    let mut free = Vec::new();
    for (answer, book) in answers.into_iter().zip(&titles) {
        match answer.status().as_u16() {
            201 => held.push(answer.json::<Value>().await.unwrap()),
            409 => {
                let problem = assert_problem(answer, 409).await;
                assert!(
                    problem["detail"]
                        .as_str()
                        .unwrap()
                        .contains("5 active rentals"),
                    "{problem}"
                );
                free.push(*book);
            }
            other => panic!("unexpected {other}: {:?}", answer.text().await),
        }
    }
    assert_eq!(held.len(), 5);
    assert_eq!(
        fleet.count("payment.payments").await,
        5,
        "no charge for a refused rent"
    );
    assert_eq!(
        fleet.count("rental.rentals").await,
        5,
        "a refused rent stores nothing"
    );

    // The limit is Ada's alone, and she rents again once she has returned one.
    fleet.customer().rents(&rental, free[0]).await;
    assert_problem(ada.rent(&rental, free[1]).await, 409).await;
    assert_eq!(
        ada.act(&rental, id_of(&held[0]), "return").await.status(),
        200
    );
    ada.rents(&rental, free[1]).await;
    fleet.agree().await;
}
