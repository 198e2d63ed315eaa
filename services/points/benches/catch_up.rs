//! Catching up, on this machine: a history of rentals published while points is stopped (or
//! before it ever ran), then points started against a real Postgres and the broker in
//! `KAFKA_BROKERS` (the embedded one without it).
//!
//! `cargo bench -p points --bench catch_up` (RENTALS=10000: each a `BookRented` and its end, a
//! quarter cancelled, a quarter expired, the rest returned); needs `DATABASE_ADMIN_URL` as
//! `scripts/test.sh` sets it up.
//!
//! Prints how long points took from its start to apply every event, and its rate once the first
//! event was applied (the consumer group's join is not the earning's speed), then checks the
//! balances it computed.

use std::time::{Duration, Instant};

use chrono::Utc;
use fleet_testing::{TestApp, TestWorld, env_of};
use futures::StreamExt;
use rdkafka::producer::FutureRecord;
use shared_events::{
    BookRented, BookReturned, CloudEvent, DomainEvent, RentalCancelled, ReturnReason, Topic,
};
use uuid::Uuid;

fn var(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// An event as published: its key and CloudEvent bytes (all on `rental.events`).
fn event<E: DomainEvent>(event: E) -> (String, Vec<u8>) {
    let envelope = CloudEvent::new("rental", event);
    (envelope.data.key(), serde_json::to_vec(&envelope).unwrap())
}

/// `rentals` rentals of a busy fleet, each started and ended, and the points they earn in all
/// at 10 %.
fn history(rentals: usize) -> (Vec<(String, Vec<u8>)>, u64) {
    let customers: Vec<Uuid> = (0..(rentals / 20).max(1)).map(|_| Uuid::now_v7()).collect();
    let books: Vec<Uuid> = (0..(rentals / 10).max(1)).map(|_| Uuid::now_v7()).collect();
    let now = Utc::now();
    let mut events = Vec::with_capacity(rentals * 2);
    let mut earned = 0;
    for n in 0..rentals {
        let (rental_id, payment_id) = (Uuid::now_v7(), Uuid::now_v7());
        let (book_id, user_id) = (books[n % books.len()], customers[n % customers.len()]);
        let rental_fee = 100 + (n % 50) as u32 * 10;
        events.push(event(BookRented {
            rental_id,
            book_id,
            user_id,
            rental_fee,
            payment_id,
            rented_at: now,
            due_at: now + chrono::Duration::days(14),
        }));
        let reason = match n % 4 {
            0 => {
                events.push(event(RentalCancelled {
                    rental_id,
                    book_id,
                    user_id,
                    payment_id,
                    cancelled_at: now,
                }));
                continue;
            }
            1 => ReturnReason::Expired,
            _ => ReturnReason::Returned,
        };
        events.push(event(BookReturned {
            rental_id,
            book_id,
            user_id,
            returned_at: now,
            reason,
        }));
        earned += u64::from(rental_fee / 10);
    }
    (events, earned)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rentals = var("RENTALS", 10_000);
    let world = TestWorld::new("points_svc", "points").await;
    let (events, earned) = history(rentals);
    let count = events.len() as i64;

    // Published while no points runs.
    let producer = world.kafka.producer();
    let topic = world.kafka.topic(Topic::Rental);
    futures::stream::iter(&events)
        .map(|(key, payload)| {
            producer.send(
                FutureRecord::to(&topic).key(key).payload(payload),
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
    let config = points::Config::from_env(env_of(&env))?;
    let started = Instant::now();
    let app = TestApp::start(points::build(config).await?);
    let mut first: Option<Instant> = None;
    loop {
        // Until points has run its migrations there is no inbox: nothing applied yet.
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM points.inbox")
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
        "catch-up: {rentals} rentals, {count} events in {total:.2?} from start ({:.0} events/s); {:.0} events/s once the first was applied ({:.2?} to join the group and apply it)",
        count as f64 / total.as_secs_f64(),
        count as f64 / applying.as_secs_f64(),
        first - started,
    );
    let balances: i64 =
        sqlx::query_scalar("SELECT coalesce(sum(points), 0)::bigint FROM points.balances")
            .fetch_one(world.pool())
            .await?;
    anyhow::ensure!(
        balances == earned as i64,
        "the balances add up to {balances} points, not the {earned} earned"
    );
    println!("balances: {earned} points in all, as earned");
    app.stop().await;
    Ok(())
}
