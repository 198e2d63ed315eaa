//! `book-management dlq`, run as an operator runs it: a dead-lettered event is listed, its cause
//! fixed, and its replay applied exactly once however often it is replayed.

use std::process::Output;
use std::time::{Duration, Instant};

use fleet_testing::{eventually, fleet_binary};
use shared_events::{CloudEvent, Topic, topic::dlq_of};
use uuid::Uuid;

use crate::helpers::*;

/// `book-management dlq <args>` with nothing but the test's broker settings: the command needs
/// no database and no token keys.
async fn dlq(kafka: &[(String, String)], args: &[&str]) -> Output {
    tokio::process::Command::new(fleet_binary("book-management"))
        .arg("dlq")
        .args(args)
        .env_clear()
        .envs(kafka.iter().cloned())
        .output()
        .await
        .expect("run book-management dlq")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{:?}\nstdout: {}\nstderr: {}",
        output.status,
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout(output)
}

async fn applied_once(world: &World, event: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM book.inbox WHERE event_id = $1")
        .bind(event)
        .fetch_one(world.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_dead_letter_replayed_after_its_cause_is_fixed_is_applied_exactly_once() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let book = app.register_book("The Dispossessed").await;
    // The book goes missing from the catalogue (restored from an older backup, say), and a
    // rental of it arrives: dead-lettered, as no such book exists.
    let lost =
        format!("CREATE TABLE book.lost_books AS SELECT * FROM book.books WHERE id = '{book}'");
    sqlx::query(&lost).execute(world.pool()).await.unwrap();
    sqlx::query("DELETE FROM book.books WHERE id = $1")
        .bind(book)
        .execute(world.pool())
        .await
        .unwrap();
    let event = world.publish(rented(book, Uuid::new_v4())).await;
    let dead_letters = world
        .kafka
        .reader(&dlq_of(&world.kafka.topic(Topic::Rental)))
        .await;
    let dead = dead_letters
        .next(WAIT)
        .await
        .expect("the rental dead-lettered");
    assert!(
        dead.headers["dlq-reason"].contains("no book"),
        "{:?}",
        dead.headers
    );

    let kafka = world.kafka_env();
    let listed = succeeded(&dlq(&kafka, &["list"]).await);
    for expected in [
        format!("event={event} type=BookRented"),
        format!("group={}book-management", world.kafka.prefix),
        format!("no book {book} in the catalogue"),
    ] {
        assert!(listed.contains(&expected), "{expected} not in:\n{listed}");
    }
    let dry = succeeded(&dlq(&kafka, &["replay", "--all", "--dry-run"]).await);
    assert!(
        dry.contains("would replay") && dry.contains(&event.to_string()),
        "{dry}"
    );

    // The fix: the book is back in the catalogue.
    sqlx::query("INSERT INTO book.books SELECT * FROM book.lost_books")
        .execute(world.pool())
        .await
        .unwrap();
    let replayed = succeeded(&dlq(&kafka, &["replay", "--event", &event.to_string()]).await);
    assert!(replayed.contains("1 replayed"), "{replayed}");
    book_becomes(&app, book, "RENTED", 1).await;
    assert_eq!(applied_once(&world, event).await, 1);

    // Again: the inbox knows the event, so nothing changes.
    let again = succeeded(&dlq(&kafka, &["replay", "--all"]).await);
    assert!(again.contains("1 replayed"), "{again}");
    eventually("the second replay seen as a duplicate", WAIT, || async {
        let metrics = app.metrics().await;
        (sample(&metrics, "events_consumed_total{outcome=\"duplicate\"") == 1.0).then_some(())
    })
    .await;
    let status = app.book(book).await;
    assert_eq!(status["timesRented"], 1, "{status}");
    assert_eq!(status["status"], "RENTED", "{status}");
    assert_eq!(applied_once(&world, event).await, 1);
    assert!(
        dead_letters.next(Duration::from_secs(1)).await.is_none(),
        "a replay of an applied event is not dead-lettered again"
    );
}

#[tokio::test]
async fn dlq_replay_refuses_what_it_cannot_do_with_a_clear_message() {
    let world = World::new().await;
    let kafka = world.kafka_env();
    let listed = succeeded(&dlq(&kafka, &["list"]).await);
    assert!(listed.contains("rental.events.dlq: empty"), "{listed}");

    let unknown = Uuid::new_v4();
    let output = dlq(&kafka, &["replay", "--event", &unknown.to_string()]).await;
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("no dead letter of event {unknown}")),
        "{stderr}"
    );
    let output = dlq(&kafka, &["replay", "--offset", "0:0"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no dead letter at 0:0"));

    let output = dlq(&kafka, &["replay"]).await;
    assert_eq!(output.status.code(), Some(2), "a misused command");

    // No broker listens there: the command gives up within its timeout.
    let nowhere = [
        ("KAFKA_BROKERS".to_owned(), "127.0.0.1:1".to_owned()),
        ("DLQ_TIMEOUT_MS".to_owned(), "2000".to_owned()),
    ];
    let started = Instant::now();
    let output = dlq(&nowhere, &["list"]).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "gave up after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn dlq_replay_passes_over_an_event_older_than_the_inbox_retention() {
    let world = World::new().await;
    let _consumer = world.spawn(&[]).await;
    // Older than the inbox keeps event ids (INBOX_RETENTION_HOURS, 30 days by default): a
    // consumer that applied it may have forgotten it, and a replay would apply it twice.
    let mut envelope = CloudEvent::new("rental", rented(Uuid::new_v4(), Uuid::new_v4()));
    envelope.time -= chrono::Duration::days(31);
    world.publish_envelope(&envelope).await;
    let dead_letters = world
        .kafka
        .reader(&dlq_of(&world.kafka.topic(Topic::Rental)))
        .await;
    dead_letters
        .next(WAIT)
        .await
        .expect("the rental dead-lettered");

    let kafka = world.kafka_env();
    let listed = succeeded(&dlq(&kafka, &["list"]).await);
    assert!(listed.contains("not replayable"), "{listed}");
    let output = dlq(&kafka, &["replay", "--event", &envelope.id.to_string()]).await;
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("older than the inbox retention"),
        "{stderr}"
    );
    let all = succeeded(&dlq(&kafka, &["replay", "--all"]).await);
    assert!(
        all.contains("not replayed, older than the inbox retention"),
        "{all}"
    );
    assert!(all.contains("nothing to replay"), "{all}");
}
