//! The idempotent consumer of `rental.events`: one effect per event, replicas sharing the work
//! and joining or leaving under load, topics created after the consumer subscribed, poison
//! messages dead-lettered without blocking the partition.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fleet_testing::{PARTITIONS, TestKafka, eventually};
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

/// A reader of rental.events' dead-letter topic.
async fn dead_letters(world: &World) -> fleet_testing::TopicReader {
    world
        .kafka
        .reader(
            &world
                .kafka
                .topic(Topic::Rental)
                .replace("rental.events", "rental.events.dlq"),
        )
        .await
}

const BATCHES: &str = "consumer_batch_events_bucket{service=\"book-management\"";

#[tokio::test]
async fn events_waiting_together_are_applied_in_few_transactions_and_a_bad_one_alone() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let mut books = Vec::new();
    for n in 0..20 {
        books.push(app.register_book(&format!("Waiting {n}")).await);
    }
    app.stop().await;
    // While no replica runs, 20 rents pile up, a rent of a book nobody registered among them.
    for (n, id) in books.iter().enumerate() {
        if n == 10 {
            world.publish(rented(Uuid::new_v4(), Uuid::new_v4())).await;
        }
        world.publish(rented(*id, Uuid::new_v4())).await;
    }
    let app = world.spawn(&[("CONSUMER_BATCH_SIZE", "4")]).await;
    for id in &books {
        book_becomes(&app, *id, "RENTED", 1).await;
    }
    let dlq = dead_letters(&world).await;
    let dead = dlq.expect(1, WAIT).await;
    assert!(
        dead[0].headers["dlq-reason"].contains("no book"),
        "{:?}",
        dead[0].headers
    );
    let metrics = app.metrics().await;
    let transactions = sample(&metrics, "consumer_batch_events_count");
    let applied = sample(&metrics, "consumer_batch_events_sum");
    assert_eq!(applied, 20.0, "every good event applied once: {metrics}");
    // The bad one's batch went one event at a time; the others' events shared a transaction.
    assert!(
        transactions < 12.0,
        "20 events in {transactions} transactions of at most 4"
    );
    assert!(
        sample(&metrics, &format!("{BATCHES},le=\"4\"}}"))
            > sample(&metrics, &format!("{BATCHES},le=\"1\"}}")),
        "{metrics}"
    );
    assert_eq!(world.count("inbox").await, 20);
}

/// Every partition the group reads: rental.events' and its replay topic's one (what `dlq
/// replay` sends back).
const SUBSCRIBED_PARTITIONS: f64 = (PARTITIONS + 1) as f64;

#[tokio::test]
async fn two_replicas_split_the_partitions_and_process_each_event_once() {
    let world = World::new().await;
    let one = world.spawn(&[]).await;
    let two = world.spawn(&[]).await;
    fleet_testing::eventually(
        "both replicas to own partitions",
        Duration::from_secs(60),
        || async {
            let (a, b) = (one.metrics().await, two.metrics().await);
            let (a, b) = (
                sample(&a, "consumer_assigned_partitions"),
                sample(&b, "consumer_assigned_partitions"),
            );
            (a > 0.0 && b > 0.0 && a + b == SUBSCRIBED_PARTITIONS).then_some(())
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

    let dlq = dead_letters(&world).await;
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
    // Counted once the broker acknowledged it, which may be after a reader sees it.
    eventually("both dead letters counted", WAIT, || async {
        (sample(&app.metrics().await, "events_dead_lettered_total") == 2.0).then_some(())
    })
    .await;
}

/// Partitions owned by each of `apps`, from their metrics.
async fn owned(apps: &[&App]) -> Vec<f64> {
    let mut owned = Vec::new();
    for app in apps {
        owned.push(sample(&app.metrics().await, "consumer_assigned_partitions"));
    }
    owned
}

async fn until_they_share_every_partition(apps: &[&App]) {
    eventually(
        "the replicas to share every partition",
        Duration::from_secs(60),
        || async {
            let owned = owned(apps).await;
            (owned.iter().all(|n| *n > 0.0) && owned.iter().sum::<f64>() == SUBSCRIBED_PARTITIONS)
                .then_some(())
        },
    )
    .await;
}

/// Rents and returns `books` in turn, each event published as rental would (keyed by book, so
/// one book's events stay in order), until `stop`; returns how many events it published.
async fn publish_until(world: &World, books: &[Uuid], stop: &AtomicBool) -> i64 {
    let mut published = 0;
    while !stop.load(Ordering::SeqCst) {
        for book in books {
            let rental = Uuid::new_v4();
            world.publish(rented(*book, rental)).await;
            world.publish(returned(*book, rental)).await;
            published += 2;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    published
}

/// What a rebalance cost: until the joining replica owned partitions, until the leaver's were
/// taken over, and the longest stretch without an event applied while they were flowing.
struct Rebalances {
    join: Duration,
    leave: Duration,
    longest_pause: Duration,
}

/// Two replicas consume; a third joins and then the first leaves, all while events flow. Checks
/// that every event was applied exactly once.
async fn replicas_join_and_leave_under_load(world: World) -> Rebalances {
    let one = world.spawn(&[]).await;
    let two = world.spawn(&[]).await;
    let mut books = Vec::new();
    for n in 0..12 {
        books.push(one.register_book(&format!("Busy {n}")).await);
    }
    until_they_share_every_partition(&[&one, &two]).await;

    let started = Instant::now();
    let stop = AtomicBool::new(false);
    let replicas = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let joining = Instant::now();
        let three = world.spawn(&[]).await;
        until_they_share_every_partition(&[&one, &two, &three]).await;
        let join = joining.elapsed();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let leaving = Instant::now();
        one.stop().await;
        until_they_share_every_partition(&[&two, &three]).await;
        let leave = leaving.elapsed();
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, Ordering::SeqCst);
        (three, join, leave)
    };
    let (published, (three, join, leave)) =
        tokio::join!(publish_until(&world, &books, &stop), replicas);

    eventually("every event in the inbox", WAIT * 2, || async {
        (world.count("inbox").await == published).then_some(())
    })
    .await;
    // Each effect once: every rent counted once, every book returned.
    let rents: i64 = sqlx::query_scalar("SELECT sum(times_rented)::bigint FROM book.books")
        .fetch_one(&world.db.admin)
        .await
        .unwrap();
    assert_eq!(rents, published / 2, "each BookRented applied exactly once");
    let rented: i64 =
        sqlx::query_scalar("SELECT count(*) FROM book.books WHERE status <> 'AVAILABLE'")
            .fetch_one(&world.db.admin)
            .await
            .unwrap();
    assert_eq!(rented, 0, "every BookReturned applied");
    let applied = |m: &str| sample(m, "events_consumed_total{outcome=\"applied\",topic=");
    assert!(
        applied(&three.metrics().await) > 0.0,
        "the replica that joined did work"
    );

    // The longest stretch without an event applied, while they were flowing.
    let pause: f64 = sqlx::query_scalar(
        "SELECT coalesce(max(gap), 0)::float8 FROM (SELECT extract(epoch FROM processed_at \
         - lag(processed_at) OVER (ORDER BY processed_at)) AS gap FROM book.inbox) gaps",
    )
    .fetch_one(&world.db.admin)
    .await
    .unwrap();
    eprintln!(
        "{published} events in {:.1} s; longest pause in applying them {:.0} ms",
        started.elapsed().as_secs_f64(),
        pause * 1000.0
    );
    two.stop().await;
    three.stop().await;
    Rebalances {
        join,
        leave,
        longest_pause: Duration::from_secs_f64(pause),
    }
}

#[tokio::test]
async fn replicas_joining_and_leaving_under_load_apply_every_event_exactly_once() {
    // On the test run's broker (real Kafka in a full run), then on librdkafka's mock for
    // comparison: the pause a rebalance causes, side by side.
    let kafka = World::new().await;
    let on_kafka = replicas_join_and_leave_under_load(kafka).await;
    let on_mock =
        replicas_join_and_leave_under_load(World::with_kafka(TestKafka::mock()).await).await;
    for (broker, r) in [("the run's broker", on_kafka), ("the mock", on_mock)] {
        eprintln!(
            "on {broker}: a replica joined in {:.1?}, one left in {:.1?}, longest pause {:.0?}",
            r.join, r.leave, r.longest_pause
        );
    }
}

#[tokio::test]
async fn a_topic_created_after_the_consumer_subscribed_is_consumed_within_15_s() {
    let Some(kafka) = TestKafka::without_topics() else {
        eprintln!("not run on librdkafka's mock broker: it cannot create topics");
        return;
    };
    let world = World::with_kafka(kafka).await;
    let app = world.spawn(&[]).await;
    let id = app.register_book("Late").await;
    // The consumer has subscribed to rental.events, which does not exist yet.
    tokio::time::sleep(Duration::from_secs(2)).await;
    world.kafka.create_topics().await;
    let created = Instant::now();
    world.publish(rented(id, Uuid::new_v4())).await;
    eventually(
        "the event on the new topic applied",
        Duration::from_secs(15),
        || async { (app.book(id).await["status"] == "RENTED").then_some(()) },
    )
    .await;
    eprintln!(
        "consumed {:?} after the topic was created",
        created.elapsed()
    );
}
