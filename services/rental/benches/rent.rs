//! Renting under load, on this machine: rental and payment in one process, talking real HTTP,
//! each on its own schema of a real Postgres, with the embedded broker.
//!
//! `cargo bench -p rental --bench rent` (RENTS=2000 CONCURRENCY=16 FAST_FAILS=300); needs
//! `DATABASE_ADMIN_URL` as `scripts/test.sh` sets it up.
//!
//! Prints the rent latency (median, p99) and rents/s with payment healthy, then the latency of a
//! rent answered 503 by the open circuit breaker while payment is down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fleet_testing::{TestApp, TestDatabase, TestIdentity, TestKafka, settings};
use serde_json::json;
use tokio::sync::Mutex;
use uuid::Uuid;

fn var(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (rents, concurrency, fast_fails) = (
        var("RENTS", 2000),
        var("CONCURRENCY", 16),
        var("FAST_FAILS", 300),
    );
    let db = TestDatabase::create().await;
    let rental_url = db.add_service("rental_svc", "rental").await;
    let payment_url = db.add_service("payment_svc", "payment").await;
    let kafka = TestKafka::start().await;
    let identity = TestIdentity::start().await;
    let payment_config =
        payment::Config::from_env(settings("payment", &payment_url, &kafka, &identity, &[]))?;
    let payment = TestApp::spawn(payment::build(payment_config).await?).await;
    let rental_config = rental::Config::from_env(settings(
        "rental",
        &rental_url,
        &kafka,
        &identity,
        &[
            ("PAYMENT_URL", &payment.address),
            ("DATABASE_MAX_CONNECTIONS", "32"),
            // The bench's one customer holds every book it rents.
            ("MAX_ACTIVE_RENTALS_PER_CUSTOMER", "1000000"),
        ],
    ))?;
    let rental = TestApp::spawn(rental::build(rental_config).await?).await;

    // Books straight into rental's replica: this measures renting, not the catalogue.
    let books: Vec<Uuid> = (0..rents + fast_fails).map(|_| Uuid::now_v7()).collect();
    sqlx::query(
        "INSERT INTO rental.catalogue (book_id, title, rental_fee, updated_at) SELECT id, 'Benchmark', 300, now() FROM unnest($1::uuid[]) id",
    )
    .bind(&books)
    .execute(&db.admin)
    .await?;

    // One customer renting many books: the token is signed once, outside the timing.
    let bearer = format!("Bearer {}", identity.token(Uuid::new_v4(), &["customer"]));
    let (client, url) = (rental.client.clone(), rental.url("/api/v1/rentals"));
    let rent = move |book: Uuid| {
        let (client, url, bearer) = (client.clone(), url.clone(), bearer.clone());
        async move {
            let started = Instant::now();
            let response = client
                .post(url)
                .header("authorization", bearer)
                .json(&json!({"bookId": book}))
                .send()
                .await
                .expect("rental answers");
            (response.status().as_u16(), started.elapsed())
        }
    };

    // Warm up connections and caches.
    for book in &books[..20] {
        rent(*book).await;
    }
    let queue = Arc::new(Mutex::new(books[20..rents].to_vec()));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (queue, rent) = (queue.clone(), rent.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    // Take the next book and let go of the queue before renting.
                    let next = queue.lock().await.pop();
                    let Some(book) = next else { break };
                    let (status, took) = rent(book).await;
                    assert_eq!(status, 201, "a healthy rent is 201");
                    latencies.push(took);
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await?);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    println!(
        "rent, payment healthy: {} rents at concurrency {concurrency} in {elapsed:.2?}: {:.0} rents/s, median {:.2?}, p99 {:.2?}",
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );

    payment.stop().await;
    // Fail until the healthy run has left the breaker's window and the circuit opens.
    let mut tripping = 0;
    let opening = Instant::now();
    while fleet_testing::sample(&rental.metrics().await, "payment_circuit_state") != 1.0 {
        let (status, _) = rent(books[rents]).await;
        assert_eq!(status, 503, "payment is down");
        tripping += 1;
        anyhow::ensure!(
            opening.elapsed() < Duration::from_secs(60),
            "the circuit never opened"
        );
    }
    let mut fast = Vec::new();
    for book in &books[rents..] {
        let (status, took) = rent(*book).await;
        assert_eq!(status, 503, "payment is down");
        if fleet_testing::sample(&rental.metrics().await, "payment_circuit_state") == 1.0 {
            fast.push(took);
        }
    }
    fast.sort();
    println!(
        "rent, payment down, circuit open: {} rents answered 503, median {:.2?}, p99 {:.2?} (call timeout 610ms; it opened after {tripping} failed rents in {:.1?})",
        fast.len(),
        percentile(&fast, 0.5),
        percentile(&fast, 0.99),
        opening.elapsed()
    );
    Ok(())
}
