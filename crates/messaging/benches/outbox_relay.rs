//! Outbox relay throughput: how many events per second one relay moves from the outbox table to
//! the broker, marking them sent. Needs the test Postgres (DATABASE_ADMIN_URL) and uses the
//! embedded broker (or KAFKA_BROKERS).
//!
//! `cargo bench -p fleet-messaging --bench outbox_relay` (EVENTS=20000 ROUNDS=5)

use std::time::Instant;

use fleet_database::DatabaseConfig;
use fleet_messaging::MessagingConfig;
use fleet_messaging::kafka::Kafka;
use fleet_messaging::outbox::{Relay, enqueue};
use fleet_telemetry::metrics::Metrics;
use fleet_testing::{TestDatabase, TestKafka, env_of, service_env};
use shared_events::BookRegistered;
use uuid::Uuid;

fn var(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events = var("EVENTS", 20_000);
    let rounds = var("ROUNDS", 5);
    let database = TestDatabase::create().await;
    let url = database.add_service("bench_svc", "bench").await;
    let kafka = TestKafka::start().await;
    // It relays book events, as book-management does, under its principal.
    let mut env = env_of(&service_env("book-management", &url, &kafka));
    let settings = DatabaseConfig::read(&mut env, "bench");
    let config = MessagingConfig::read(&mut env);
    env.finish()?;
    let pool = fleet_database::pool(&settings)?;
    fleet_database::KIT_MIGRATIONS.run(&pool).await?;
    let relay = Relay {
        pool: pool.clone(),
        producer: Kafka::new(&config).producer()?,
        kafka: Kafka::new(&config),
        metrics: Metrics::new("bench"),
        batch_size: config.outbox_batch_size,
        poll_interval: config.outbox_poll_interval,
        busy_poll_interval: config.outbox_busy_poll_interval,
    };

    let mut rates = Vec::new();
    for round in 1..=rounds {
        for chunk in 0..events.div_ceil(1000) {
            let mut tx = pool.begin().await?;
            for _ in 0..1000.min(events - chunk * 1000) {
                let event = BookRegistered {
                    book_id: Uuid::now_v7(),
                    title: "Benchmark".into(),
                    author: "Relay".into(),
                    rental_fee: 300,
                };
                enqueue(&mut tx, "bench", event).await?;
            }
            tx.commit().await?;
        }
        let started = Instant::now();
        let mut published = 0;
        while published < events {
            published += relay.relay_batch().await?;
        }
        let rate = events as f64 / started.elapsed().as_secs_f64();
        println!(
            "round {round}: {events} events in {:.2?} = {rate:.0} events/s",
            started.elapsed()
        );
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "outbox relay: median {:.0} events/s over {rounds} rounds of {events} (batch {}, min {:.0}, max {:.0})",
        rates[rates.len() / 2],
        config.outbox_batch_size,
        rates[0],
        rates[rates.len() - 1]
    );
    Ok(())
}
