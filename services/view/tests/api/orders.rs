//! The boards depend on the events only: not on how often they arrive, not on their order across
//! topics, not on restarts, and a rebuild from the topics gives the same boards.

use std::collections::HashMap;
use std::time::Duration;

use shared_events::Topic;
use uuid::Uuid;

use crate::helpers::*;

/// A fixed-seed linear congruential generator (Knuth's MMIX constants): the same shuffle on
/// every run, no dependency.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// `events` shuffled (Fisher–Yates), except that one book's own events keep their order, as
/// Kafka keeps the order of one key: the slots the shuffle gave them are refilled in order.
fn shuffled(events: &[Event], seed: u64) -> Vec<Event> {
    let mut order = events.to_vec();
    let mut lcg = Lcg(seed);
    for i in (1..order.len()).rev() {
        order.swap(i, lcg.below(i + 1));
    }
    keep_book_order(events, order)
}

fn keep_book_order(original: &[Event], mut order: Vec<Event>) -> Vec<Event> {
    let mut per_book: HashMap<String, Vec<Event>> = HashMap::new();
    for event in original.iter().filter(|e| e.topic == Topic::Book) {
        per_book
            .entry(event.key.clone())
            .or_default()
            .push(event.clone());
    }
    for books in per_book.values_mut() {
        books.reverse();
    }
    for slot in order.iter_mut().filter(|e| e.topic == Topic::Book) {
        *slot = per_book.get_mut(&slot.key).unwrap().pop().unwrap();
    }
    order
}

/// Payments and customers before anything else, then the rental events backwards (returns and
/// cancels before rents), then the books.
fn payments_first(events: &[Event]) -> Vec<Event> {
    let of = |topics: &'static [Topic]| {
        events
            .iter()
            .filter(move |e| topics.contains(&e.topic))
            .cloned()
    };
    of(&[Topic::Payment, Topic::User])
        .chain(of(&[Topic::Rental]).rev())
        .chain(of(&[Topic::Book]))
        .collect()
}

/// Everything backwards, books kept in their own order.
fn reversed(events: &[Event]) -> Vec<Event> {
    keep_book_order(events, events.iter().rev().cloned().collect())
}

#[tokio::test]
async fn the_boards_are_the_same_whatever_the_order_across_topics() {
    let story = Story::new();
    let orders = [
        story.events.clone(),
        payments_first(&story.events),
        reversed(&story.events),
        shuffled(&story.events, 7),
        shuffled(&story.events, 2026),
    ];
    for order in &orders[1..] {
        assert_ne!(
            ids_of(order),
            ids_of(&story.events),
            "each order differs from the fleet's"
        );
    }
    let boards = futures::future::join_all(orders.iter().map(|order| boards_after(order))).await;
    story.assert_told(&boards[0]);
    for (n, other) in boards.iter().enumerate().skip(1) {
        assert_eq!(other, &boards[0], "order {n} ends in another board");
    }
}

fn ids_of(events: &[Event]) -> Vec<Uuid> {
    events.iter().map(|e| e.id).collect()
}

#[tokio::test]
async fn every_event_delivered_twice_changes_nothing() {
    let world = World::new().await;
    let app = world.spawn().await;
    let story = Story::new();
    world.publish_all(&story.events).await;
    world.applied(story.count()).await;
    let once = boards(&app).await;
    story.assert_told(&once);

    // Every topic replayed, the same event ids again, in another order.
    world.publish_all(&shuffled(&story.events, 11)).await;
    eventually("every copy seen", WAIT, || async {
        let duplicates = sample(
            &app.metrics().await,
            "events_consumed_total{outcome=\"duplicate\"",
        );
        (duplicates == story.count() as f64).then_some(())
    })
    .await;
    assert_eq!(world.count("inbox").await, story.count());
    assert_eq!(boards(&app).await, once);
    app.stop().await;
}

#[tokio::test]
async fn events_published_while_the_view_is_stopped_are_applied_when_it_starts() {
    let story = Story::new();
    let (half, rest) = story.events.split_at(story.events.len() / 2);
    let restarted = async {
        let world = World::new().await;
        let app = world.spawn().await;
        world.publish_all(half).await;
        world.applied(half.len() as i64).await;
        app.stop().await;

        world.publish_all(rest).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            world.count("inbox").await,
            half.len() as i64,
            "nothing is applied while the view is stopped"
        );
        let app = world.spawn().await;
        world.applied(story.count()).await;
        let boards = boards(&app).await;
        app.stop().await;
        boards
    };
    // The same events seen by a view that never stopped, side by side.
    let (restarted, reference) = tokio::join!(restarted, boards_after(&story.events));
    story.assert_told(&restarted);
    assert_eq!(restarted, reference);
}

fn view_binary() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_view"))
}

/// Runs `view rebuild` as an operator would, with the service's own settings.
async fn rebuild(world: &World, extra: &[(&str, &str)]) -> std::process::Output {
    tokio::process::Command::new(view_binary())
        .arg("rebuild")
        .env_clear()
        .envs(world.env_with(extra))
        .output()
        .await
        .expect("run view rebuild")
}

#[tokio::test]
async fn a_rebuild_from_the_topics_gives_the_same_boards() {
    let world = World::new().await;
    let app = world.spawn().await;
    let story = Story::new();
    world.publish_all(&story.events).await;
    world.applied(story.count()).await;
    let built = boards(&app).await;
    story.assert_told(&built);
    app.stop().await;

    let output = rebuild(&world, &[]).await;
    assert!(output.status.success(), "{output:?}");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(said.contains("16 partitions rewound"), "{said}");
    for table in ["rentals", "books", "customers", "inbox"] {
        assert_eq!(world.count(table).await, 0, "{table} emptied");
    }

    let app = world.spawn().await;
    world.applied(story.count()).await;
    assert_eq!(boards(&app).await, built);

    // And the rebuilt view carries on with new events.
    let next = Rental::new(Uuid::now_v7(), story.octavia, 0);
    world.publish_all(&[next.rented()]).await;
    world.applied(story.count() + 1).await;
    app.stop().await;
}

#[tokio::test]
async fn a_rebuild_refuses_while_the_view_runs_and_changes_nothing() {
    let world = World::new().await;
    let app = world.spawn().await;
    let story = Story::new();
    world.publish_all(&story.events).await;
    world.applied(story.count()).await;
    let built = boards(&app).await;

    let output = rebuild(&world, &[("REBUILD_WAIT_MS", "3000")]).await;
    assert!(!output.status.success(), "{output:?}");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("stop every replica"), "{said}");
    assert_eq!(world.count("inbox").await, story.count());
    assert_eq!(boards(&app).await, built);

    // The running view still owns its partitions and applies new events.
    let next = Rental::new(Uuid::now_v7(), story.octavia, 0);
    world.publish_all(&[next.rented()]).await;
    world.applied(story.count() + 1).await;
    app.stop().await;
}
