//! Active-rental counts from `rental.events`: each event counted once, whatever is redelivered;
//! never below zero; events about unknown accounts ignored without blocking the partition.

use serde_json::Value;
use shared_events::CloudEvent;
use uuid::Uuid;

use crate::helpers::*;

/// Waits until the account's profile shows `count` active rentals.
async fn active_rentals_become(app: &App, token: &str, count: u64) {
    eventually(&format!("{count} active rentals"), WAIT, || async {
        let profile: Value = app.me(token).await.json().await.unwrap();
        (profile["activeRentals"] == count).then_some(())
    })
    .await
}

/// Waits until the consumer has recorded `count` events in its inbox.
async fn inbox_holds(world: &World, count: i64) {
    eventually(&format!("{count} events in the inbox"), WAIT, || async {
        (world.count("inbox").await == count).then_some(())
    })
    .await
}

#[tokio::test]
async fn a_rental_is_counted_once_however_often_it_is_delivered() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let account = app.register_customer("Ursula", "ursula@example.org").await;
    let user: Uuid = id_of(&account).parse().unwrap();
    let token = app.sign_in("ursula@example.org", PASSWORD).await;
    let (book, rental) = (Uuid::new_v4(), Uuid::new_v4());

    let envelope = CloudEvent::new("rental", rented(user, book, rental));
    world.publish_envelope(&envelope).await;
    world.publish_envelope(&envelope).await; // the same event id again
    active_rentals_become(&app, &token, 1).await;
    inbox_holds(&world, 1).await;

    world.publish(returned(user, book, rental)).await;
    active_rentals_become(&app, &token, 0).await;
    let metrics = app.metrics().await;
    assert_eq!(
        sample(&metrics, "events_consumed_total{outcome=\"duplicate\""),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "events_consumed_total{outcome=\"applied\""),
        2.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn cancels_and_returns_count_down_but_never_below_zero() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let account = app.register_customer("Ursula", "ursula@example.org").await;
    let user: Uuid = id_of(&account).parse().unwrap();
    let token = app.sign_in("ursula@example.org", PASSWORD).await;
    let book = Uuid::new_v4(); // one book: one partition, so the events apply in order
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());

    world.publish(rented(user, book, first)).await;
    world.publish(rented(user, book, second)).await;
    world.publish(cancelled(user, book, first)).await;
    world.publish(returned(user, book, second)).await;
    // Ends of rentals never counted: the count stays at zero.
    world.publish(returned(user, book, Uuid::new_v4())).await;
    world.publish(cancelled(user, book, Uuid::new_v4())).await;
    inbox_holds(&world, 6).await;
    active_rentals_become(&app, &token, 0).await;

    world.publish(rented(user, book, Uuid::new_v4())).await;
    active_rentals_become(&app, &token, 1).await;
}

#[tokio::test]
async fn an_event_for_an_unknown_account_is_ignored_and_the_partition_flows() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let account = app.register_customer("Ursula", "ursula@example.org").await;
    let user: Uuid = id_of(&account).parse().unwrap();
    let token = app.sign_in("ursula@example.org", PASSWORD).await;
    let book = Uuid::new_v4();

    world
        .publish(rented(Uuid::new_v4(), book, Uuid::new_v4()))
        .await;
    world.publish(rented(user, book, Uuid::new_v4())).await;
    active_rentals_become(&app, &token, 1).await;
    inbox_holds(&world, 2).await;
    let metrics = app.metrics().await;
    assert_eq!(
        sample(&metrics, "events_consumed_total{outcome=\"dead_lettered\""),
        0.0,
        "{metrics}"
    );
    assert_eq!(world.count("accounts").await, 1, "no account appears");
}
