//! Earning from `rental.events`: completed rentals earn once each (returned or expired), a
//! cancelled one never; redeliveries, copies and ends of unknown rentals change nothing and
//! block nothing; a points started late computes the same from the topic's history.

use serde_json::Value;
use shared_events::ReturnReason;
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn a_customer_who_returned_two_books_and_cancelled_one_has_the_points_for_two() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let (ursula, octavia) = (Uuid::now_v7(), Uuid::now_v7());
    let returned = Rental::new(ursula, 300, 20);
    let expired = Rental::new(ursula, 459, 30);
    let cancelled = Rental::new(ursula, 1_000, 5);
    let octavias = Rental::new(octavia, 500, 2);
    let events = [
        returned.rented(),
        expired.rented(),
        cancelled.rented(),
        octavias.rented(),
        returned.returned(),
        cancelled.cancelled(),
        expired.expired(),
        octavias.returned(),
    ];
    world.publish_all(&events).await;
    world.applied(events.len()).await;

    let mine = statement(&app, MY_POINTS, &world.customer_token(ursula)).await;
    assert_eq!(mine["userId"], ursula.to_string());
    assert_eq!(
        balance(&mine),
        30 + 45,
        "10 % of 300 and of 459, rounded down"
    );
    // Newest first: the expired one ended at its due date, after the other was returned.
    assert_eq!(
        rental_ids(&mine),
        [expired.id.to_string(), returned.id.to_string()]
    );
    let entry = &history(&mine)[0];
    assert_eq!(entry["bookId"], expired.book.to_string());
    assert_eq!(entry["points"], 45);
    assert_eq!(entry["rentalFee"], 459);
    assert_eq!(entry["reason"], "EXPIRED");
    assert_eq!(
        entry["earnedAt"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap(),
        expired.ended_at(ReturnReason::Expired)
    );
    let entry = &history(&mine)[1];
    assert_eq!(entry["points"], 30);
    assert_eq!(entry["rentalFee"], 300);
    assert_eq!(entry["reason"], "RETURNED");
    assert_eq!(
        (mine["limit"].as_u64(), mine["offset"].as_u64()),
        (Some(20), Some(0))
    );

    assert_eq!(balance(&points_of(&world, &app, octavia).await), 50);
    assert_eq!(world.count("ledger").await, 3);
    let state: String = sqlx::query_scalar("SELECT state FROM points.rentals WHERE rental_id = $1")
        .bind(cancelled.id)
        .fetch_one(world.pool())
        .await
        .unwrap();
    assert_eq!(state, "CANCELLED");
    app.stop().await;
}

/// Three customers' rentals ending every way, on books some of them share.
fn history_of_a_busy_fleet(customers: &[Uuid]) -> (Vec<Event>, Vec<u64>) {
    let shared = Uuid::now_v7();
    let mut events = Vec::new();
    let mut expected = vec![0; customers.len()];
    for n in 0..24 {
        let who = n % customers.len();
        let fee = 100 + 37 * n as u32;
        let rental = if n % 2 == 0 {
            Rental::of(shared, customers[who], fee, 40 - n as i64)
        } else {
            Rental::new(customers[who], fee, 40 - n as i64)
        };
        events.push(rental.rented());
        match n % 4 {
            0 => events.push(rental.cancelled()),
            1 => {
                events.push(rental.expired());
                expected[who] += u64::from(fee / 10);
            }
            _ => {
                events.push(rental.returned());
                expected[who] += u64::from(fee / 10);
            }
        }
    }
    (events, expected)
}

async fn statements(world: &World, app: &App, customers: &[Uuid]) -> Vec<Value> {
    let mut statements = Vec::new();
    for customer in customers {
        statements.push(
            statement(
                app,
                &format!("/api/v1/points/{customer}?limit=100"),
                &world.manager_token(),
            )
            .await,
        );
    }
    statements
}

#[tokio::test]
async fn started_after_the_rentals_were_published_points_computes_the_same_balances() {
    let customers = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
    let (events, expected) = history_of_a_busy_fleet(&customers);

    // Points running while the fleet rents.
    let live = World::new().await;
    let app = live.spawn(&[]).await;
    live.publish_all(&events).await;
    live.applied(events.len()).await;
    let as_it_happened = statements(&live, &app, &customers).await;
    app.stop().await;

    // Points started once it is all on the topic: its consumer group is new, and reads the
    // topic from its beginning.
    let late = World::new().await;
    late.publish_all(&events).await;
    let app = late.spawn(&[]).await;
    late.applied(events.len()).await;
    let caught_up = statements(&late, &app, &customers).await;
    app.stop().await;

    let balances: Vec<u64> = caught_up.iter().map(balance).collect();
    assert_eq!(balances, expected);
    assert_eq!(caught_up, as_it_happened, "the same balances and histories");
    assert_eq!(
        caught_up.iter().map(|s| history(s).len()).sum::<usize>(),
        18,
        "every rental but the six cancelled earned"
    );
}

#[tokio::test]
async fn redelivered_events_credit_nothing_twice() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let ursula = Uuid::now_v7();
    let rental = Rental::new(ursula, 300, 3);
    let (rented, returned) = (rental.rented(), rental.returned());
    world
        .publish_all(&[
            rented.clone(),
            rented,
            returned.clone(),
            returned,
            // The same facts again as new events (a producer that published them twice).
            rental.returned(),
            rental.expired(),
            rental.rented(),
            rental.cancelled(),
        ])
        .await;
    world.applied(6).await;

    let mine = statement(&app, MY_POINTS, &world.customer_token(ursula)).await;
    assert_eq!(balance(&mine), 30);
    assert_eq!(rental_ids(&mine), [rental.id.to_string()]);
    assert_eq!(history(&mine)[0]["reason"], "RETURNED");
    assert_eq!(world.count("ledger").await, 1);
    let metrics = app.metrics().await;
    assert_eq!(
        sample(&metrics, "events_consumed_total{outcome=\"duplicate\""),
        2.0,
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "events_consumed_total{outcome=\"applied\""),
        6.0,
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_end_of_a_rental_points_never_saw_credits_nothing_and_blocks_nothing() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let ursula = Uuid::now_v7();
    let book = Uuid::now_v7(); // one book: one partition, so the known rental comes after
    let unseen = Rental::of(book, ursula, 900, 60);
    let seen = Rental::of(book, ursula, 250, 2);
    let events = [
        unseen.returned(),
        unseen.cancelled(),
        seen.rented(),
        seen.returned(),
    ];
    world.publish_all(&events).await;
    world.applied(events.len()).await;

    let mine = statement(&app, MY_POINTS, &world.customer_token(ursula)).await;
    assert_eq!(balance(&mine), 25);
    assert_eq!(rental_ids(&mine), [seen.id.to_string()]);
    assert_eq!(world.count("rentals").await, 1, "nothing made up");
    let metrics = app.metrics().await;
    assert_eq!(
        sample(&metrics, "events_consumed_total{outcome=\"dead_lettered\""),
        0.0,
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "events_consumed_total{outcome=\"applied\""),
        4.0,
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_cancelled_rental_earns_nothing_even_if_an_end_follows() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let ursula = Uuid::now_v7();
    let rental = Rental::new(ursula, 800, 1);
    let events = [rental.rented(), rental.cancelled(), rental.returned()];
    world.publish_all(&events).await;
    world.applied(events.len()).await;

    let mine = statement(&app, MY_POINTS, &world.customer_token(ursula)).await;
    assert_eq!(balance(&mine), 0);
    assert!(history(&mine).is_empty(), "{mine}");
    assert_eq!(world.count("ledger").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn the_share_of_the_fee_is_configured() {
    let world = World::new().await;
    let app = world.spawn(&[("POINTS_PERCENT", "25")]).await;
    let ursula = Uuid::now_v7();
    let rental = Rental::new(ursula, 333, 1);
    world
        .publish_all(&[rental.rented(), rental.expired()])
        .await;
    world.applied(2).await;

    let mine = statement(&app, MY_POINTS, &world.customer_token(ursula)).await;
    assert_eq!(balance(&mine), 83, "25 % of 333, rounded down");
    assert_eq!(history(&mine)[0]["points"], 83);
    app.stop().await;
}
