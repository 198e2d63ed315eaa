//! The message contracts on the fleet's topics (V4 asynchronous message pacts).
//!
//! Consumers: each states the CloudEvents it reads from a topic, and is fed the pact's example
//! messages through its real decoding (`RawEvent::from_slice`, the topic's `decode`) and, where
//! the handler needs no other service's data, its real event handler on a database of its own.
//! The pact must equal the committed file (`UPDATE_PACTS=1` rewrites it).
//!
//! Producers: each verifies every committed pact on its topic, building each message with its
//! own domain code wrapped as its outbox wraps it (`CloudEvent::new(SERVICE, event)`).

use std::str::FromStr;

use chrono::{Duration, SubsecRound, Utc};
use contract_tests::events::{Expected, example, expect, message_pact, messages};
use contract_tests::{pacts, verify};
use fleet_messaging::inbox::EventHandler;
use fleet_testing::TestDatabase;
use pact_consumer::prelude::PactBuilder;
use shared_events::{
    BookEvent, CloudEvent, DomainEvent, PaymentEvent, RawEvent, RentalEvent, TopicEvents, UserEvent,
};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Consumers

/// The consumer's pact with `provider`, each message decoded as topic `T`'s event of its type.
fn consumer_pact<T: TopicEvents>(
    consumer: &str,
    provider: &str,
    expected: Vec<Expected>,
) -> PactBuilder {
    pacts::assert_no_tracking();
    let builder = message_pact(consumer, provider, expected);
    for (description, payload) in messages(&builder) {
        let event = RawEvent::from_slice(&payload)
            .unwrap_or_else(|e| panic!("{consumer} cannot read {description}: {e}"));
        assert!(
            description.starts_with(&event.event_type),
            "{description} carries a {}",
            event.event_type
        );
        let decoded = event
            .decode::<T>()
            .unwrap_or_else(|e| panic!("{consumer} cannot decode {description}: {e}"));
        assert!(decoded.is_some(), "{consumer} does not know {description}");
    }
    builder
}

/// A database holding the service's schema, migrated, and a pool confined to that schema as
/// the service's own is.
async fn service_db(
    role: &str,
    schema: &str,
    migrations: &sqlx::migrate::Migrator,
) -> (TestDatabase, PgPool) {
    let db = TestDatabase::create().await;
    let url = db.add_service(role, schema).await;
    let options = PgConnectOptions::from_str(&url)
        .unwrap()
        .options([("search_path", schema)]);
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap();
    fleet_database::migrator(migrations)
        .await
        .unwrap()
        .run(&pool)
        .await
        .expect("migrations run");
    (db, pool)
}

/// Applies every message of the pact, in order, with the consumer's real handler.
async fn handle_all(builder: &PactBuilder, pool: &PgPool, handler: &impl EventHandler) {
    let mut conn = pool.acquire().await.unwrap();
    for (description, payload) in messages(builder) {
        let event = RawEvent::from_slice(&payload).unwrap();
        handler
            .handle(&mut conn, &event)
            .await
            .unwrap_or_else(|e| panic!("the handler rejects {description}: {e}"));
    }
}

fn id(raw: &str) -> Uuid {
    raw.parse().unwrap()
}

#[tokio::test]
async fn book_management_reads_rental_events() {
    let builder = consumer_pact::<RentalEvent>(
        "book-management",
        "rental",
        vec![
            expect::book_rented(),
            expect::rental_cancelled(),
            expect::book_returned(),
            expect::book_expired(),
        ],
    );
    pacts::check_committed(&*builder.build());
}

#[tokio::test]
async fn payment_reads_rental_cancellations_and_refunds() {
    let builder =
        consumer_pact::<RentalEvent>("payment", "rental", vec![expect::rental_cancelled()]);
    let (db, pool) = service_db("payment_svc", "payment", &payment::MIGRATIONS).await;
    // The rental was paid for, so its cancel has something to refund.
    let payments = payment::application::Payments::new(
        payment::adapters::postgres::PgPaymentStore::new(pool.clone()),
        payment::application::Settings::default(),
    );
    let amount = payment::domain::Amount::parse(example::FEE.into()).unwrap();
    payments
        .settle(id(example::RENTAL), id(example::CUSTOMER), amount)
        .await
        .unwrap();
    handle_all(
        &builder,
        &pool,
        &payment::adapters::consumer::RentalCancellations,
    )
    .await;
    let status: String =
        sqlx::query_scalar("SELECT status FROM payment.payments WHERE rental_id = $1")
            .bind(id(example::RENTAL))
            .fetch_one(&db.admin)
            .await
            .unwrap();
    assert_eq!(status, "REFUNDED");
    pacts::check_committed(&*builder.build());
}

#[tokio::test]
async fn user_reads_rental_events() {
    let builder = consumer_pact::<RentalEvent>(
        "user",
        "rental",
        vec![
            expect::book_rented(),
            expect::rental_cancelled(),
            expect::book_returned(),
            expect::book_expired(),
        ],
    );
    pacts::check_committed(&*builder.build());
}

#[tokio::test]
async fn points_reads_rental_events_into_its_ledger() {
    let builder = consumer_pact::<RentalEvent>(
        "points",
        "rental",
        vec![
            expect::book_rented(),
            expect::rental_cancelled(),
            expect::book_returned(),
            expect::book_expired(),
        ],
    );
    let (db, pool) = service_db("points_svc", "points", &points::MIGRATIONS).await;
    let earning = points::application::Earning::new(points::domain::EarningRate::DEFAULT);
    handle_all(
        &builder,
        &pool,
        &points::adapters::consumer::Earnings(earning),
    )
    .await;
    // The fee comes from BookRented; the rental was cancelled first, so its ends earn nothing.
    let (fee, state): (i64, String) =
        sqlx::query_as("SELECT rental_fee, state FROM points.rentals WHERE rental_id = $1")
            .bind(id(example::RENTAL))
            .fetch_one(&db.admin)
            .await
            .unwrap();
    assert_eq!(
        (fee, state.as_str()),
        (i64::from(example::FEE), "CANCELLED")
    );
    let credited: i64 = sqlx::query_scalar("SELECT count(*) FROM points.ledger")
        .fetch_one(&db.admin)
        .await
        .unwrap();
    assert_eq!(credited, 0);
    pacts::check_committed(&*builder.build());
}

#[tokio::test]
async fn view_reads_rental_events_into_the_rental_board() {
    let builder = consumer_pact::<RentalEvent>(
        "view",
        "rental",
        vec![
            expect::book_rented(),
            expect::rental_cancelled(),
            expect::book_returned(),
            expect::book_expired(),
        ],
    );
    let (db, pool) = service_db("view_svc", "view", &view::MIGRATIONS).await;
    handle_all(&builder, &pool, &view::adapters::consumer::Projection).await;
    let customer: Uuid = sqlx::query_scalar("SELECT customer_id FROM view.rentals WHERE id = $1")
        .bind(id(example::RENTAL))
        .fetch_one(&db.admin)
        .await
        .unwrap();
    assert_eq!(customer, id(example::CUSTOMER));
    pacts::check_committed(&*builder.build());
}

#[tokio::test]
async fn rental_reads_book_events_into_its_catalogue() {
    let builder = consumer_pact::<BookEvent>(
        "rental",
        "book-management",
        vec![
            expect::book_registered(),
            expect::book_updated(),
            expect::book_retired(),
        ],
    );
    let (db, pool) = service_db("rental_svc", "rental", &rental::MIGRATIONS).await;
    handle_all(
        &builder,
        &pool,
        &rental::adapters::consumer::CatalogueReplica,
    )
    .await;
    let retired: bool =
        sqlx::query_scalar("SELECT retired FROM rental.catalogue WHERE book_id = $1")
            .bind(id(example::BOOK))
            .fetch_one(&db.admin)
            .await
            .unwrap();
    assert!(retired);
    pacts::check_committed(&*builder.build());
}

#[tokio::test]
async fn view_reads_book_events_into_the_book_board() {
    let builder = consumer_pact::<BookEvent>(
        "view",
        "book-management",
        vec![
            expect::book_registered(),
            expect::book_updated(),
            expect::book_retired(),
        ],
    );
    let (db, pool) = service_db("view_svc", "view", &view::MIGRATIONS).await;
    handle_all(&builder, &pool, &view::adapters::consumer::Projection).await;
    let books: i64 = sqlx::query_scalar("SELECT count(*) FROM view.books WHERE id = $1")
        .bind(id(example::BOOK))
        .fetch_one(&db.admin)
        .await
        .unwrap();
    assert_eq!(books, 1);
    pacts::check_committed(&*builder.build());
}

#[tokio::test]
async fn view_reads_payment_events_into_the_rental_board() {
    let builder = consumer_pact::<PaymentEvent>(
        "view",
        "payment",
        vec![expect::payment_approved(), expect::payment_refunded()],
    );
    let (db, pool) = service_db("view_svc", "view", &view::MIGRATIONS).await;
    handle_all(&builder, &pool, &view::adapters::consumer::Projection).await;
    let rentals: i64 = sqlx::query_scalar("SELECT count(*) FROM view.rentals WHERE id = $1")
        .bind(id(example::RENTAL))
        .fetch_one(&db.admin)
        .await
        .unwrap();
    assert_eq!(rentals, 1);
    pacts::check_committed(&*builder.build());
}

#[tokio::test]
async fn view_reads_user_events_into_its_customers() {
    let builder = consumer_pact::<UserEvent>("view", "user", vec![expect::user_registered()]);
    let (db, pool) = service_db("view_svc", "view", &view::MIGRATIONS).await;
    handle_all(&builder, &pool, &view::adapters::consumer::Projection).await;
    let name: String = sqlx::query_scalar("SELECT name FROM view.customers WHERE id = $1")
        .bind(id(example::CUSTOMER))
        .fetch_one(&db.admin)
        .await
        .unwrap();
    assert_eq!(name, "Ursula");
    pacts::check_committed(&*builder.build());
}

// ---------------------------------------------------------------------------------------------
// Producers

/// The message as the producer's outbox writes it.
fn published<E: DomainEvent>(source: &str, event: E) -> serde_json::Value {
    serde_json::to_value(CloudEvent::new(source, event)).unwrap()
}

/// Verifies every committed pact whose provider is `provider`.
async fn verify_producer<F>(provider: &str, consumers: &[&str], produce: F)
where
    F: Fn(&str) -> Option<serde_json::Value> + Clone + Send + Sync + 'static,
{
    for consumer in consumers {
        verify::message_provider(&pacts::file(consumer, provider), provider, produce.clone())
            .await
            .assert_passed();
    }
}

/// rental's events, made by its Rental aggregate.
fn rental_message(description: &str) -> Option<serde_json::Value> {
    use rental::domain::{CatalogueEntry, Rental};
    let now = Utc::now();
    let book = CatalogueEntry {
        book_id: Uuid::new_v4(),
        title: "The Dispossessed".into(),
        rental_fee: 450,
        retired: false,
    };
    let mut rental = Rental::request(&book, Uuid::new_v4(), now).unwrap();
    let rented = rental.paid(Uuid::new_v4(), Duration::days(14), now);
    let source = rental::SERVICE;
    Some(match description {
        "BookRented" => published(source, rented),
        "RentalCancelled" => published(
            source,
            rental.clone().cancel(Duration::minutes(30), now).unwrap(),
        ),
        "BookReturned" => published(source, rental.clone().return_book(now).unwrap()),
        "BookReturned on expiry" => published(source, rental.expire(rented.due_at).unwrap()),
        _ => return None,
    })
}

#[tokio::test]
async fn rental_publishes_what_its_consumers_read() {
    verify_producer(
        "rental",
        &["book-management", "payment", "user", "view", "points"],
        rental_message,
    )
    .await;
}

/// book-management's events, made by its Book aggregate.
fn book_message(description: &str) -> Option<serde_json::Value> {
    use book_management::domain::{Author, Book, BookChanges, RentalFee, Title};
    let now = Utc::now();
    let (mut book, registered) = Book::register(
        Title::parse("The Dispossessed").unwrap(),
        Author::parse("Ursula K. Le Guin").unwrap(),
        RentalFee::parse(450).unwrap(),
        now,
    );
    let source = book_management::SERVICE;
    Some(match description {
        "BookRegistered" => published(source, registered),
        "BookUpdated" => {
            let changes = BookChanges {
                rental_fee: Some(RentalFee::parse(500).unwrap()),
                ..BookChanges::default()
            };
            published(source, book.update(changes, now).unwrap())
        }
        "BookRetired" => published(source, book.retire(now).unwrap().unwrap()),
        _ => return None,
    })
}

#[tokio::test]
async fn book_management_publishes_what_its_consumers_read() {
    verify_producer("book-management", &["rental", "view"], book_message).await;
}

/// payment's events, made by its Payment aggregate.
fn payment_message(description: &str) -> Option<serde_json::Value> {
    use payment::domain::{Amount, DeclineRule, Payment};
    let now = Utc::now().trunc_subsecs(6);
    let (mut payment, approved) = Payment::settle(
        Uuid::new_v4(),
        Uuid::new_v4(),
        Amount::parse(450).unwrap(),
        &DeclineRule::never(),
        now,
    );
    let source = payment::SERVICE;
    Some(match description {
        "PaymentApproved" => published(source, approved.unwrap()),
        "PaymentRefunded" => published(source, payment.refund(now).unwrap().unwrap()),
        _ => return None,
    })
}

#[tokio::test]
async fn payment_publishes_what_its_consumers_read() {
    verify_producer("payment", &["view"], payment_message).await;
}

/// user's events, made by its Account aggregate.
fn user_message(description: &str) -> Option<serde_json::Value> {
    use user::domain::{Account, Email, Name};
    let (_, registered) = Account::register(
        Name::parse("Ursula").unwrap(),
        Email::parse("ursula@example.org").unwrap(),
        Utc::now(),
    );
    (description == "UserRegistered").then(|| published(user::SERVICE, registered))
}

#[tokio::test]
async fn user_publishes_what_its_consumers_read() {
    verify_producer("user", &["view"], user_message).await;
}

#[tokio::test]
async fn a_payment_approved_with_amount_renamed_fails_verification() {
    // payment's real message, with one field renamed as a careless change would.
    let renamed = |description: &str| {
        let mut message = payment_message(description)?;
        if description == "PaymentApproved" {
            let data = message["data"].as_object_mut().unwrap();
            let amount = data.remove("amount").unwrap();
            data.insert("total".into(), amount);
        }
        Some(message)
    };
    let verification =
        verify::message_provider(&pacts::file("view", "payment"), "payment", renamed).await;
    // Only PaymentApproved broke, and the report names the missing field.
    verification.assert_failed_with(&["Verifying a pact between view and payment - \
         PaymentApproved: $.data -> Actual map is missing the following keys: amount"]);
}
