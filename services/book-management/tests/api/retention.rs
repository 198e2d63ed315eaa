//! Retention: sent outbox rows and processed inbox rows older than their age are deleted, in
//! batches, while the relay and the consumer go on; nothing younger, nothing unsent, and a
//! redelivery inside the inbox's window is still a duplicate.

use std::str::FromStr;
use std::time::{Duration, Instant};

use fleet_messaging::retention::{Pruned, Retention, RetentionConfig};
use fleet_testing::eventually;
use shared_events::CloudEvent;
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::*;

const HOUR: Duration = Duration::from_secs(3600);

/// Settings that prune often: outbox rows sent an hour ago, inbox rows processed a day ago.
const PRUNING: &[(&str, &str)] = &[
    ("RETENTION_INTERVAL_MS", "100"),
    ("OUTBOX_RETENTION_HOURS", "1"),
    ("INBOX_RETENTION_HOURS", "24"),
];

/// The service's own pool on its schema, with the kit's and the service's migrations run.
async fn service_pool(world: &World) -> PgPool {
    let options = PgConnectOptions::from_str(&world.database_url)
        .unwrap()
        .options([("search_path", "book")]);
    let pool = PgPool::connect_with(options).await.unwrap();
    fleet_database::migrator(&book_management::MIGRATIONS)
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    pool
}

async fn ids(pool: &PgPool, sql: &str) -> Vec<String> {
    sqlx::query_scalar(sql).fetch_all(pool).await.unwrap()
}

#[tokio::test]
async fn only_sent_or_processed_rows_older_than_their_age_are_deleted() {
    let world = World::new().await;
    let pool = service_pool(&world).await;
    sqlx::raw_sql(
        "INSERT INTO outbox (event_id, topic, key, payload, created_at, sent_at) VALUES \
           (gen_random_uuid(), 'book.events', 'old-sent', '{}', now() - interval '3 hours', now() - interval '2 hours'), \
           (gen_random_uuid(), 'book.events', 'young-sent', '{}', now() - interval '3 hours', now() - interval '50 minutes'), \
           (gen_random_uuid(), 'book.events', 'old-unsent', '{}', now() - interval '3 hours', NULL); \
         INSERT INTO inbox (event_id, topic, event_type, processed_at) VALUES \
           ('00000000-0000-0000-0000-000000000001', 'rental.events', 'old', now() - interval '25 hours'), \
           ('00000000-0000-0000-0000-000000000002', 'rental.events', 'old', now() - interval '24 hours 1 minute'), \
           ('00000000-0000-0000-0000-000000000003', 'rental.events', 'young', now() - interval '23 hours')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let metrics = fleet_telemetry::metrics::Metrics::new("book-management");
    let retention = Retention {
        pool: pool.clone(),
        metrics: metrics.clone(),
        config: RetentionConfig {
            outbox: HOUR,
            inbox: Some(24 * HOUR),
            interval: Duration::from_secs(60),
            batch_size: 1, // one row per transaction: every batch boundary is crossed
        },
    };

    let pruned = retention.pass(&CancellationToken::new()).await.unwrap();
    assert_eq!(
        pruned,
        Pruned {
            outbox: 1,
            inbox: 2
        }
    );
    assert_eq!(
        ids(&pool, "SELECT key FROM outbox ORDER BY key").await,
        ["old-unsent", "young-sent"],
        "an unsent event is never deleted, however old"
    );
    assert_eq!(ids(&pool, "SELECT event_type FROM inbox").await, ["young"]);
    let rendered = metrics.render();
    assert_eq!(
        sample(&rendered, "retention_rows_deleted_total{table=\"inbox\""),
        2.0,
        "{rendered}"
    );
    assert!(sample(&rendered, "table_size_bytes{table=\"outbox\"") > 0.0);

    // Nothing is left to delete: a second pass deletes nothing; keeping the inbox for ever
    // deletes nothing from it.
    assert_eq!(
        retention.pass(&CancellationToken::new()).await.unwrap(),
        Pruned::default()
    );
    sqlx::query("UPDATE inbox SET processed_at = now() - interval '400 days'")
        .execute(&pool)
        .await
        .unwrap();
    let for_ever = Retention {
        config: RetentionConfig {
            inbox: None,
            ..retention.config.clone()
        },
        ..retention
    };
    assert_eq!(
        for_ever.pass(&CancellationToken::new()).await.unwrap(),
        Pruned::default()
    );
}

#[tokio::test]
async fn a_redelivery_inside_the_inbox_window_is_still_a_duplicate() {
    let world = World::new().await;
    let app = world.spawn(PRUNING).await;
    let book = app.register_book("The Dispossessed").await;
    let rental = Uuid::new_v4();
    let envelope = CloudEvent::new("rental", rented(book, rental));
    world.publish_envelope(&envelope).await;
    book_becomes(&app, book, "RENTED", 1).await;

    // Processed 23 hours ago, by the database's clock: inside the 24-hour window.
    sqlx::query("UPDATE book.inbox SET processed_at = now() - interval '23 hours'")
        .execute(world.pool())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await; // several retention passes
    world.publish_envelope(&envelope).await;
    world.publish(returned(book, rental)).await;
    book_becomes(&app, book, "AVAILABLE", 1).await;
    let metrics = app.metrics().await;
    assert_eq!(
        sample(&metrics, "events_consumed_total{outcome=\"duplicate\""),
        1.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_burst_of_twenty_thousand_events_is_pruned_while_the_relay_keeps_publishing() {
    const BURST: i64 = 20_000;
    let world = World::new().await;
    // Pruning waits until the rows are in place: a long interval, then one pass at a time.
    let app = world
        .spawn(&[
            ("RETENTION_INTERVAL_MS", "60000"),
            ("OUTBOX_RETENTION_HOURS", "1"),
            ("INBOX_RETENTION_HOURS", "24"),
        ])
        .await;
    sqlx::raw_sql(&format!(
        "INSERT INTO book.outbox (event_id, topic, key, payload, created_at, sent_at) \
           SELECT gen_random_uuid(), 'book.events', n::text, repeat('x', 400), \
                  now() - interval '3 hours', now() - interval '2 hours' \
           FROM generate_series(1, {BURST}) n; \
         INSERT INTO book.inbox (event_id, topic, event_type, processed_at) \
           SELECT gen_random_uuid(), 'rental.events', 'BookRented', now() - interval '25 hours' \
           FROM generate_series(1, {BURST}) n; \
         ANALYZE book.outbox; ANALYZE book.inbox"
    ))
    .execute(world.pool())
    .await
    .unwrap();

    // A retention job of its own, as the service runs it, with the default batch size.
    let pool = service_pool(&world).await;
    let retention = Retention {
        pool,
        metrics: fleet_telemetry::metrics::Metrics::new("book-management"),
        config: RetentionConfig {
            outbox: HOUR,
            inbox: Some(24 * HOUR),
            interval: Duration::from_secs(60),
            batch_size: 1_000,
        },
    };
    let started = Instant::now();
    let pruning = tokio::spawn(async move { retention.pass(&CancellationToken::new()).await });

    // Meanwhile books are registered: each event must still be published promptly.
    let mut registered = 0;
    while !pruning.is_finished() {
        app.register_book(&format!("Published during pruning {registered}"))
            .await;
        registered += 1;
    }
    let pruned = pruning.await.unwrap().unwrap();
    let took = started.elapsed();
    assert_eq!(
        pruned,
        Pruned {
            outbox: BURST as u64,
            inbox: BURST as u64
        }
    );
    eventually("every new event published", WAIT, || async {
        (world.unsent().await == 0).then_some(())
    })
    .await;
    let slowest: f64 = sqlx::query_scalar(
        "SELECT coalesce(max(extract(epoch FROM sent_at - created_at)), 0)::float8 \
         FROM book.outbox",
    )
    .fetch_one(world.pool())
    .await
    .unwrap();
    assert_eq!(world.count("outbox").await, registered);
    assert!(registered >= 1);
    assert!(
        slowest < 2.0,
        "an event waited {slowest:.3} s for the relay while retention pruned"
    );
    eprintln!(
        "retention pruned {} rows in {took:.2?} ({:.0} rows/s) in batches of 1,000; {registered} \
         events published meanwhile, the slowest {:.0} ms after its commit",
        2 * BURST,
        (2 * BURST) as f64 / took.as_secs_f64(),
        slowest * 1000.0
    );
}
