//! What the gateway costs: the same GET of one book, straight to book-management and through the
//! gateway, in one run on this machine, rounds alternating so that noise hits both alike.
//!
//! `cargo bench -p gateway --bench overhead` (CONCURRENCY=16 SECONDS=3 ROUNDS=3); needs
//! `DATABASE_ADMIN_URL` as `scripts/test.sh` sets it up. Both run in this process without a log
//! subscriber, so neither pays for logging.

use std::time::{Duration, Instant};

use fleet_testing::{TestApp, TestDatabase, TestIdentity, TestKafka, env_of, service_env};
use serde_json::json;
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

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// `concurrency` clients GETting `url` for `seconds`: requests/s and p99.
async fn load(url: &str, bearer: &str, concurrency: usize, seconds: u64) -> (f64, Duration) {
    let client = reqwest::Client::new();
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, bearer) = (client.clone(), url.to_owned(), bearer.to_owned());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < until {
                    let sent = Instant::now();
                    let response = client
                        .get(&url)
                        .header("authorization", &bearer)
                        .send()
                        .await
                        .expect("an answer");
                    assert_eq!(response.status(), 200);
                    response.bytes().await.expect("a body");
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.expect("the worker finishes"));
    }
    let elapsed = started.elapsed();
    latencies.sort();
    (
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.99),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (concurrency, seconds, rounds) = (
        var("CONCURRENCY", 16),
        var("SECONDS", 3) as u64,
        var("ROUNDS", 3),
    );
    let db = TestDatabase::create().await;
    let books_url = db.add_service("book_svc", "book").await;
    let kafka = TestKafka::start().await;
    let identity = TestIdentity::start().await;
    let mut env = service_env("book-management", &books_url, &kafka);
    env.extend(identity.env());
    let books = TestApp::spawn(
        book_management::build(book_management::Config::from_env(env_of(&env))?).await?,
    )
    .await;

    let mut gateway_env = identity.env();
    for (name, value) in [
        ("HTTP_HOST", "127.0.0.1"),
        ("HTTP_PORT", "0"),
        ("OPS_PORT", "0"),
        ("UPSTREAM_BOOK_MANAGEMENT", books.address.as_str()),
        // Unused by a catalogue read, but required.
        ("UPSTREAM_USER", "http://127.0.0.1:9"),
        ("UPSTREAM_RENTAL", "http://127.0.0.1:9"),
        ("UPSTREAM_PAYMENT", "http://127.0.0.1:9"),
        ("RATE_LIMIT_PER_SECOND", "1000000"),
        ("RATE_LIMIT_BURST", "1000000"),
    ] {
        gateway_env.push((name.into(), value.into()));
    }
    let gateway = gateway::build(gateway::Config::from_env(env_of(&gateway_env))?).await?;
    let gateway_url = format!("http://127.0.0.1:{}", gateway.port());
    tokio::spawn(gateway.run());

    let manager = format!("Bearer {}", identity.token(Uuid::new_v4(), &["manager"]));
    let book: serde_json::Value = reqwest::Client::new()
        .post(books.url("/api/v1/books"))
        .header("authorization", &manager)
        .json(&json!({"title": "Dune", "author": "Frank Herbert", "rentalFee": 300}))
        .send()
        .await?
        .json()
        .await?;
    let path = format!("/api/v1/books/{}", book["id"].as_str().expect("a book id"));
    let bearer = format!("Bearer {}", identity.token(Uuid::new_v4(), &["customer"]));
    let direct = format!("{}{path}", books.address);
    let through = format!("{gateway_url}{path}");
    // Warm up connections, the key cache and the pool.
    load(&direct, &bearer, concurrency, 1).await;
    load(&through, &bearer, concurrency, 1).await;

    let (mut rates, mut p99s) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let (direct_rate, direct_p99) = load(&direct, &bearer, concurrency, seconds).await;
        let (gateway_rate, gateway_p99) = load(&through, &bearer, concurrency, seconds).await;
        println!(
            "round {round}: direct {direct_rate:.0} req/s p99 {direct_p99:.2?} | through the gateway {gateway_rate:.0} req/s p99 {gateway_p99:.2?}"
        );
        rates.push(gateway_rate / direct_rate);
        p99s.push(gateway_p99.as_secs_f64() / direct_p99.as_secs_f64());
    }
    println!(
        "gateway / direct, median of {rounds} rounds at concurrency {concurrency}: throughput {:.2}x, p99 {:.2}x",
        median(&mut rates),
        median(&mut p99s)
    );
    Ok(())
}
