//! Refunds on `RentalCancelled`: exactly once per rental, whatever is redelivered or repeated;
//! a cancel without a payment changes nothing and never blocks the partition.

use serde_json::Value;
use shared_events::CloudEvent;
use uuid::Uuid;

use crate::helpers::*;

/// A rental paid through the API, as rental would: (rental id, payment).
async fn paid_rental(app: &App) -> (Uuid, Value) {
    let rental = Uuid::new_v4();
    let payment = app.pay_for(rental, Uuid::new_v4(), 300).await;
    (rental, payment)
}

fn payment_id(payment: &Value) -> Uuid {
    id_of(payment).parse().unwrap()
}

#[tokio::test]
async fn a_cancelled_rental_is_refunded_once() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let (rental, paid) = paid_rental(&app).await;
    let id = id_of(&paid).to_owned();

    world
        .publish(cancelled(Uuid::new_v4(), rental, payment_id(&paid)))
        .await;
    let refunded = payment_becomes(&app, &id, "REFUNDED").await;
    assert!(refunded["refundedAt"].is_string());

    // The reconciler asking for the same refund afterwards changes nothing.
    let response = app.refund(&id).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), refunded);

    let messages = world.payment_events().await.expect(2, WAIT).await;
    let refund = messages[1].event();
    assert_eq!(refund.event_type, "PaymentRefunded");
    assert_eq!(refund.subject, id);
    assert_eq!(refund.data["rentalId"], rental.to_string());
    assert_eq!(refund.data["refundedAt"], refunded["refundedAt"]);
}

#[tokio::test]
async fn a_redelivered_cancel_and_a_repeated_cancel_refund_once() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let (rental, paid) = paid_rental(&app).await;
    let (marker_rental, marker) = paid_rental(&app).await;
    let book = Uuid::new_v4();

    let envelope = CloudEvent::new("rental", cancelled(book, rental, payment_id(&paid)));
    world.publish_envelope(&envelope).await;
    world.publish_envelope(&envelope).await; // the same event id again
    world
        .publish(cancelled(book, rental, payment_id(&paid))) // a second, distinct cancel
        .await;
    // The same book key, so the same partition: once the marker is refunded, all were seen.
    world
        .publish(cancelled(book, marker_rental, payment_id(&marker)))
        .await;
    payment_becomes(&app, id_of(&marker), "REFUNDED").await;

    let refunded = app.payment(id_of(&paid)).await;
    assert_eq!(refunded["status"], "REFUNDED");
    let messages = world.payment_events().await.expect(4, WAIT).await;
    let refunds: Vec<String> = messages
        .iter()
        .map(|m| m.event())
        .filter(|e| e.event_type == "PaymentRefunded")
        .map(|e| e.subject)
        .collect();
    assert_eq!(
        refunds.iter().filter(|s| *s == id_of(&paid)).count(),
        1,
        "one refund of the cancelled rental: {refunds:?}"
    );
    assert_eq!(refunds.len(), 2);
    let metrics = app.metrics().await;
    assert_eq!(
        sample(&metrics, "events_consumed_total{outcome=\"duplicate\""),
        1.0,
        "{metrics}"
    );
    assert_eq!(world.count("inbox").await, 3);
}

#[tokio::test]
async fn a_cancel_without_a_payment_changes_nothing_and_the_partition_keeps_flowing() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let (rental, paid) = paid_rental(&app).await;
    let id = id_of(&paid).to_owned();
    let book = Uuid::new_v4();

    // All on one partition (one book key): events payment does not act on, and a cancel of a
    // rental it never paid for.
    world.publish(rented(book, rental, payment_id(&paid))).await;
    world.publish(returned(book, rental)).await;
    world
        .publish(cancelled(book, Uuid::new_v4(), Uuid::new_v4()))
        .await;
    inbox_holds(&world, 3).await;
    assert_eq!(app.payment(&id).await, paid, "nothing changed");
    assert_eq!(world.count("payments").await, 1);
    assert_eq!(world.count("outbox").await, 1);

    // The partition still flows: a later cancel on it is applied.
    world
        .publish(cancelled(book, rental, payment_id(&paid)))
        .await;
    payment_becomes(&app, &id, "REFUNDED").await;
    world.payment_events().await.expect(2, WAIT).await;

    // Applied in order on one partition: had the unknown cancel been dead-lettered, it
    // would show here already.
    let metrics = app.metrics().await;
    assert_eq!(
        sample(&metrics, "events_consumed_total{outcome=\"dead_lettered\""),
        0.0,
        "{metrics}"
    );
}
