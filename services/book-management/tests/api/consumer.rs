//! The idempotent consumer of `rental.events`: one effect per event, replicas sharing the work,
//! poison messages dead-lettered without blocking the partition.

use std::time::Duration;

use shared_events::{CloudEvent, Topic};
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn the_book_status_follows_rentals() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let id = app.register_book("Kindred").await;
    let first = Uuid::new_v4();
    world.publish(rented(id, first)).await;
    book_becomes(&app, id, "RENTED", 1).await;
    world.publish(cancelled(id, first)).await;
    book_becomes(&app, id, "AVAILABLE", 1).await;
    let second = Uuid::new_v4();
    world.publish(rented(id, second)).await;
    book_becomes(&app, id, "RENTED", 2).await;
    world.publish(returned(id, second)).await;
    book_becomes(&app, id, "AVAILABLE", 2).await;
}

#[tokio::test]
async fn a_redelivered_book_rented_has_one_effect() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let id = app.register_book("Parable of the Sower").await;
    let rental = Uuid::new_v4();
    let envelope = CloudEvent::new("rental", rented(id, rental));
    world.publish_envelope(&envelope).await;
    world.publish_envelope(&envelope).await; // the same event id again

    // The return comes after both copies on the same partition: once it shows, both were seen.
    world.publish(returned(id, rental)).await;
    book_becomes(&app, id, "AVAILABLE", 1).await;
    let metrics = app.metrics().await;
    assert_eq!(
        sample(&metrics, "events_consumed_total{outcome=\"duplicate\""),
        1.0,
        "{metrics}"
    );
    assert_eq!(world.count("inbox").await, 2);
}

#[tokio::test]
async fn two_replicas_split_the_partitions_and_process_each_event_once() {
    let world = World::new().await;
    let one = world.spawn(&[]).await;
    let two = world.spawn(&[]).await;
    service_kit::testing::eventually(
        "both replicas to own partitions",
        Duration::from_secs(60),
        || async {
            let (a, b) = (one.metrics().await, two.metrics().await);
            let (a, b) = (
                sample(&a, "consumer_assigned_partitions"),
                sample(&b, "consumer_assigned_partitions"),
            );
            (a > 0.0 && b > 0.0 && a + b == service_kit::testing::PARTITIONS as f64).then_some(())
        },
    )
    .await;

    let mut books = Vec::new();
    for n in 0..16 {
        let id = one.register_book(&format!("Shared {n}")).await;
        world.publish(rented(id, Uuid::new_v4())).await;
        books.push(id);
    }
    for id in &books {
        book_becomes(&one, *id, "RENTED", 1).await;
    }
    let applied = |m: &str| sample(m, "events_consumed_total{outcome=\"applied\",topic=");
    let (a, b) = (applied(&one.metrics().await), applied(&two.metrics().await));
    assert_eq!(a + b, 16.0, "each event applied once in all");
    assert!(a > 0.0 && b > 0.0, "both replicas did work: {a} and {b}");
    assert_eq!(world.count("inbox").await, 16);
    one.stop().await;
    two.stop().await;
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_and_the_next_one_is_processed() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let id = app.register_book("Lilith's Brood").await;
    // Same key, so the same partition: the poison sits right in front of a good event.
    world
        .kafka
        .send(Topic::Rental, &id.to_string(), b"{not json")
        .await;
    world.publish(rented(id, Uuid::new_v4())).await;
    book_becomes(&app, id, "RENTED", 1).await;

    let dlq = world
        .kafka
        .reader(
            &world
                .kafka
                .topic(Topic::Rental)
                .replace("rental.events", "rental.events.dlq"),
        )
        .await;
    let dead = dlq.expect(1, WAIT).await;
    assert_eq!(dead[0].payload, b"{not json");
    assert_eq!(dead[0].key, id.to_string());
    assert!(
        dead[0].headers["dlq-reason"].contains("not a CloudEvents JSON envelope"),
        "{:?}",
        dead[0].headers
    );
    assert_eq!(
        dead[0].headers["dlq-topic"],
        world.kafka.topic(Topic::Rental)
    );
    assert_eq!(
        dead[0].headers["dlq-consumer-group"],
        format!("{}book-management", world.kafka.prefix)
    );

    // An event that parses but breaks the contract (a book nobody registered) goes there too.
    world.publish(rented(Uuid::new_v4(), Uuid::new_v4())).await;
    let dead = dlq.next(WAIT).await.expect("a second dead letter");
    assert!(
        dead.headers["dlq-reason"].contains("no book"),
        "{:?}",
        dead.headers
    );
    let metrics = app.metrics().await;
    assert_eq!(sample(&metrics, "events_dead_lettered_total"), 2.0);
}
