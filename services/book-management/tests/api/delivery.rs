//! The outbox: one event per committed change, none for a rolled-back one, nothing lost while
//! the broker is away or when the process dies between commit and publish.

use std::path::Path;
use std::time::Duration;

use fleet_testing::{ServiceProcess, TestKafka};
use serde_json::json;
use shared_events::{BookRegistered, RawEvent};

use crate::helpers::*;

#[tokio::test]
async fn while_events_keep_coming_the_relay_looks_again_soon_not_after_its_idle_poll() {
    let world = World::new().await;
    // Idle, the relay waits a second between passes; after one that published something, 20 ms.
    let app = world
        .spawn(&[
            ("OUTBOX_POLL_INTERVAL_MS", "1000"),
            ("OUTBOX_BUSY_POLL_INTERVAL_MS", "20"),
        ])
        .await;
    // Books registered one after another for 3 s: once a pass has found the stream, every later
    // one follows 20 ms after the last, where the idle poll alone would make at most four.
    let until = std::time::Instant::now() + Duration::from_secs(3);
    let mut registered = 0;
    while std::time::Instant::now() < until {
        app.register_book(&format!("Stream {registered}")).await;
        registered += 1;
    }
    world
        .kafka
        .reader(&topic(&world))
        .await
        .expect(registered, WAIT)
        .await;
    let passes = sample(&app.metrics().await, "outbox_pass_events_count");
    assert!(
        passes >= 10.0,
        "{registered} books in 3 s published in {passes} passes"
    );
}

#[tokio::test]
async fn registering_a_book_publishes_exactly_one_book_registered() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let id = app.register_book("A Wizard of Earthsea").await;

    let messages = world
        .kafka
        .reader(&topic(&world))
        .await
        .expect(1, WAIT)
        .await;
    let message = &messages[0];
    assert_eq!(
        message.key,
        id.to_string(),
        "book events are keyed by book id"
    );
    assert_eq!(
        message.headers["content-type"],
        "application/cloudevents+json"
    );
    let event = message.event();
    assert_eq!(event.event_type, "BookRegistered");
    assert_eq!(event.source, "book-management");
    assert_eq!(event.subject, id.to_string());
    assert_eq!(
        event.data,
        json!({"bookId": id, "title": "A Wizard of Earthsea", "author": "Ursula K. Le Guin", "rentalFee": 300})
    );
    let unsent = world.unsent().await;
    assert_eq!(unsent, 0, "the relay marked it sent");
}

#[tokio::test]
async fn a_rolled_back_transaction_publishes_nothing() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let pool = sqlx::PgPool::connect(&world.database_url).await.unwrap();

    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL search_path = book")
        .execute(&mut *tx)
        .await
        .unwrap();
    let phantom = BookRegistered {
        book_id: uuid::Uuid::new_v4(),
        title: "Never".into(),
        author: "Nobody".into(),
        rental_fee: 1,
    };
    fleet_messaging::outbox::enqueue(&mut tx, "book-management", phantom)
        .await
        .unwrap();
    tx.rollback().await.unwrap();

    // A committed change after it: the relay is running and publishes that one only.
    let id = app.register_book("Committed").await;
    let messages = world
        .kafka
        .reader(&topic(&world))
        .await
        .expect(1, WAIT)
        .await;
    assert_eq!(messages[0].event().subject, id.to_string());
}

#[tokio::test]
async fn registrations_succeed_while_the_broker_is_down_and_are_delivered_when_it_returns() {
    let world = World::with_kafka(TestKafka::own().await).await;
    let app = world.spawn(&[]).await;
    world.kafka.go_down().await;

    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(app.register_book(&format!("Offline {n}")).await);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let unsent = world.unsent().await;
    assert_eq!(
        unsent, 3,
        "nothing can be published while the broker is down"
    );

    world.kafka.come_back().await;
    // Delivery is at least once: a message that timed out in flight while the broker was away
    // may have been written all the same, and the relay sends it again; consumers' inboxes drop
    // the copy by its event id. So: every event arrives, and nothing else does.
    let reader = world.kafka.reader(&topic(&world)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    let mut events = std::collections::BTreeMap::new();
    let mut copies = 0;
    while events.len() < 3 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Some(message) = reader.next(left).await else {
            panic!("only {} of 3 events delivered: {events:?}", events.len());
        };
        let event = message.event();
        copies += usize::from(events.insert(event.id, event.subject).is_some());
    }
    while let Some(message) = reader.next(Duration::from_millis(500)).await {
        let event = message.event();
        assert!(
            events.contains_key(&event.id),
            "an event nobody wrote: {event:?}"
        );
        copies += 1;
    }
    let mut published: Vec<_> = events.into_values().collect();
    published.sort();
    let mut expected: Vec<_> = ids.iter().map(|id| id.to_string()).collect();
    expected.sort();
    assert_eq!(published, expected);
    if copies > 0 {
        eprintln!("{copies} event(s) delivered twice after the broker came back");
    }
}

#[tokio::test]
async fn killing_the_process_between_commit_and_publish_loses_nothing() {
    let world = World::new().await;
    let binary = Path::new(env!("CARGO_BIN_EXE_book-management"));
    // No broker at this address: every commit waits in the outbox.
    let mut first =
        ServiceProcess::spawn(binary, &world.env_with(&[("KAFKA_BROKERS", "127.0.0.1:1")])).await;
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/books", first.base_url))
        .bearer_auth(world.manager_token())
        .json(&json!({"title": "Survivor", "author": "A", "rentalFee": 10}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    first.kill().await; // SIGKILL: no shutdown flush
    assert_eq!(world.unsent().await, 1);

    let mut second = ServiceProcess::spawn(binary, &world.env()).await;
    let messages = world
        .kafka
        .reader(&topic(&world))
        .await
        .expect(1, Duration::from_secs(30))
        .await;
    let event: RawEvent = messages[0].event();
    assert_eq!(event.event_type, "BookRegistered");
    assert_eq!(event.data["title"], "Survivor");
    assert!(second.terminate().await, "SIGTERM ends the service cleanly");
}

#[tokio::test]
async fn one_books_events_are_published_in_the_order_they_happened() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let id = app.register_book("Ordered").await;
    for fee in [301, 302, 303, 304] {
        let response = app
            .client
            .patch(app.url(&format!("/api/v1/books/{id}")))
            .json(&json!({"rentalFee": fee}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    app.client
        .delete(app.url(&format!("/api/v1/books/{id}")))
        .send()
        .await
        .unwrap();

    let messages = world
        .kafka
        .reader(&topic(&world))
        .await
        .expect(6, WAIT)
        .await;
    assert!(
        messages
            .iter()
            .all(|m| m.partition == messages[0].partition),
        "one key, one partition"
    );
    let history: Vec<String> = messages
        .iter()
        .map(|m| {
            let event = m.event();
            format!("{} {}", event.event_type, event.data["rentalFee"])
        })
        .collect();
    assert_eq!(
        history,
        [
            "BookRegistered 300",
            "BookUpdated 301",
            "BookUpdated 302",
            "BookUpdated 303",
            "BookUpdated 304",
            "BookRetired null"
        ]
    );
}
