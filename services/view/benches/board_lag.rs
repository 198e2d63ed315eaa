//! Event → board lag under a steady rent load, on this machine: rental, payment and view in one
//! process, each on its own schema of one test database, with the embedded broker (or
//! `KAFKA_BROKERS`). Rents go through rental's real HTTP API at a fixed rate.
//!
//! `cargo bench -p view --bench board_lag` (RATE=100 rents/s, SECONDS=10); needs
//! `DATABASE_ADMIN_URL` as `scripts/test.sh` sets it up.
//!
//! The lag of an event is exact: from the moment its producer's transaction wrote it to the
//! outbox to the moment view's transaction applied it (both Postgres clocks, one server).

use std::time::{Duration, Instant};

use fleet_testing::{TestApp, TestDatabase, TestIdentity, TestKafka, WAIT, eventually, settings};
use serde_json::json;
use uuid::Uuid;

fn var(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (rate, seconds) = (var("RATE", 100), var("SECONDS", 10));
    let db = TestDatabase::create().await;
    let kafka = TestKafka::start().await;
    let identity = TestIdentity::start().await;
    let payment_url = db.add_service("payment_svc", "payment").await;
    let rental_url = db.add_service("rental_svc", "rental").await;
    let view_url = db.add_service("view_svc", "view").await;
    let payment = TestApp::spawn(
        payment::build(payment::Config::from_env(settings(
            "payment",
            &payment_url,
            &kafka,
            &identity,
            &[],
        ))?)
        .await?,
    )
    .await;
    let rental = TestApp::spawn(
        rental::build(rental::Config::from_env(settings(
            "rental",
            &rental_url,
            &kafka,
            &identity,
            &[("PAYMENT_URL", &payment.address)],
        ))?)
        .await?,
    )
    .await;
    let view = TestApp::spawn(
        view::build(view::Config::from_env(settings(
            "view",
            &view_url,
            &kafka,
            &identity,
            &[],
        ))?)
        .await?,
    )
    .await;

    let total = (rate * seconds) as usize;
    let books: Vec<Uuid> = (0..total).map(|_| Uuid::now_v7()).collect();
    sqlx::query(
        "INSERT INTO rental.catalogue (book_id, title, rental_fee, updated_at) SELECT id, 'Benchmark', 300, now() FROM unnest($1::uuid[]) id",
    )
    .bind(&books)
    .execute(&db.admin)
    .await?;
    // The view's consumer must own its partitions before the clock starts.
    eventually("view consuming", WAIT, || async {
        let metrics = view.metrics().await;
        (fleet_testing::sample(&metrics, "consumer_assigned_partitions") > 0.0).then_some(())
    })
    .await;

    let bearer = format!("Bearer {}", identity.token(Uuid::new_v4(), &["customer"]));
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate as u32);
    let started = Instant::now();
    let mut rents = Vec::with_capacity(total);
    for book in books {
        tick.tick().await;
        let (client, url, bearer) = (
            rental.client.clone(),
            rental.url("/api/v1/rentals"),
            bearer.clone(),
        );
        rents.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .header("authorization", bearer)
                .json(&json!({"bookId": book}))
                .send()
                .await
                .expect("rental answers");
            assert_eq!(response.status(), 201, "a rent is 201");
        }));
    }
    for rent in rents {
        rent.await?;
    }
    let offered = started.elapsed();

    let applied = "SELECT count(*) FROM view.inbox i JOIN rental.outbox o USING (event_id)";
    eventually("every BookRented on the board", WAIT * 3, || async {
        let n: i64 = sqlx::query_scalar(applied)
            .fetch_one(&db.admin)
            .await
            .unwrap();
        (n as usize == total).then_some(())
    })
    .await;
    for (topic, outbox) in [
        ("rental.events", "rental.outbox"),
        ("payment.events", "payment.outbox"),
    ] {
        let (median, p99, max): (f64, f64, f64) = sqlx::query_as(&format!(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag), \
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY lag), max(lag) \
             FROM (SELECT (EXTRACT(EPOCH FROM i.processed_at - o.created_at) * 1000)::float8 AS lag \
                   FROM view.inbox i JOIN {outbox} o USING (event_id)) lags"
        ))
        .fetch_one(&db.admin)
        .await?;
        println!(
            "{topic} → board, {total} events at {rate}/s ({:.0}/s offered): median {median:.1} ms, p99 {p99:.1} ms, max {max:.1} ms",
            total as f64 / offered.as_secs_f64()
        );
    }
    Ok(())
}
