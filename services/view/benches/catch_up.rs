//! Catching up, on this machine: events published while the view is stopped, then the view
//! started against a real Postgres and the embedded broker (or `KAFKA_BROKERS`).
//!
//! `cargo bench -p view --bench catch_up` (EVENTS=5000); needs `DATABASE_ADMIN_URL` as
//! `scripts/test.sh` sets it up.
//!
//! Prints how long the view took from its start to apply every event, and its rate once the
//! first event was applied (the consumer group's join is not the projection's speed).

use std::time::{Duration, Instant};

use chrono::Utc;
use fleet_testing::{TestApp, TestWorld, env_of};
use futures::StreamExt;
use rdkafka::producer::FutureRecord;
use shared_events::{
    BookRegistered, BookRented, BookReturned, CloudEvent, DomainEvent, PaymentApproved,
    PaymentRefunded, RentalCancelled, Topic, UserRegistered,
};
use uuid::Uuid;

fn var(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// An event as published: its topic, key and CloudEvent bytes.
fn event<E: DomainEvent>(source: &str, event: E) -> (Topic, String, Vec<u8>) {
    let envelope = CloudEvent::new(source, event);
    (
        E::TOPIC,
        envelope.data.key(),
        serde_json::to_vec(&envelope).unwrap(),
    )
}

/// About `count` events of a busy fleet: customers and books first, then rentals, each paid,
/// and every other one cancelled and refunded or returned.
fn history(count: usize) -> Vec<(Topic, String, Vec<u8>)> {
    let customers: Vec<Uuid> = (0..(count / 25).max(1)).map(|_| Uuid::now_v7()).collect();
    let books: Vec<Uuid> = (0..(count / 25).max(1)).map(|_| Uuid::now_v7()).collect();
    let mut events = Vec::with_capacity(count + 4);
    for (n, id) in customers.iter().enumerate() {
        events.push(event(
            "user",
            UserRegistered {
                user_id: *id,
                name: format!("Customer {n}"),
                email: format!("customer{n}@example.org"),
            },
        ));
    }
    for (n, id) in books.iter().enumerate() {
        events.push(event(
            "book-management",
            BookRegistered {
                book_id: *id,
                title: format!("Book {n}"),
                author: "Ursula K. Le Guin".into(),
                rental_fee: 300,
            },
        ));
    }
    let now = Utc::now();
    let mut n = 0;
    while events.len() < count {
        let (rental_id, payment_id) = (Uuid::now_v7(), Uuid::now_v7());
        let (book_id, user_id) = (books[n % books.len()], customers[n % customers.len()]);
        events.push(event(
            "rental",
            BookRented {
                rental_id,
                book_id,
                user_id,
                rental_fee: 300,
                payment_id,
                rented_at: now,
                due_at: now + chrono::Duration::days(14),
            },
        ));
        events.push(event(
            "payment",
            PaymentApproved {
                payment_id,
                rental_id,
                user_id,
                amount: 300,
                approved_at: now,
            },
        ));
        match n % 4 {
            0 => {
                events.push(event(
                    "rental",
                    RentalCancelled {
                        rental_id,
                        book_id,
                        user_id,
                        payment_id,
                        cancelled_at: now,
                    },
                ));
                events.push(event(
                    "payment",
                    PaymentRefunded {
                        payment_id,
                        rental_id,
                        user_id,
                        amount: 300,
                        refunded_at: now,
                    },
                ));
            }
            2 => events.push(event(
                "rental",
                BookReturned {
                    rental_id,
                    book_id,
                    user_id,
                    returned_at: now,
                    reason: shared_events::ReturnReason::Returned,
                },
            )),
            _ => {}
        }
        n += 1;
    }
    events
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count = var("EVENTS", 5000);
    let world = TestWorld::new("view_svc", "view").await;
    let events = history(count);
    let count = events.len() as i64;

    // Published while no view runs.
    let producer = world.kafka.producer();
    let topics: Vec<String> = events
        .iter()
        .map(|(t, _, _)| world.kafka.topic(*t))
        .collect();
    futures::stream::iter(events.iter().zip(&topics))
        .map(|((_, key, payload), topic)| {
            producer.send(
                FutureRecord::to(topic).key(key).payload(payload),
                Duration::from_secs(30),
            )
        })
        .buffered(500)
        .for_each(|delivered| async move {
            delivered.expect("event delivered");
        })
        .await;

    let mut env = world.env();
    env.push(("RUST_LOG".into(), "error".into()));
    let config = view::Config::from_env(env_of(&env))?;
    let started = Instant::now();
    let app = TestApp::start(view::build(config).await?);
    let mut first: Option<Instant> = None;
    loop {
        // Until the view has run its migrations there is no inbox: nothing applied yet.
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM view.inbox")
            .fetch_one(world.pool())
            .await
            .unwrap_or(0);
        if applied > 0 && first.is_none() {
            first = Some(Instant::now());
        }
        if applied == count {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "only {applied} of {count} events applied after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = started.elapsed();
    let first = first.expect("an event was applied");
    let applying = first.elapsed();
    println!(
        "catch-up: {count} events in {total:.2?} from start ({:.0} events/s); {:.0} events/s once the first was applied ({:.2?} to join the group and apply it)",
        count as f64 / total.as_secs_f64(),
        count as f64 / applying.as_secs_f64(),
        first - started,
    );
    app.stop().await;
    Ok(())
}
