//! The event bus trusts no writer: only rental may publish on `rental.events`. A
//! `RentalCancelled` forged without credentials, with view's or points' credentials, or with
//! rental's name and a wrong password, is refused by the broker, and payment refunds nothing;
//! the same event sent by rental is refunded, so the refusals were the broker's doing.

use std::time::Duration;

use fleet_testing::{KafkaCredentials, KafkaError, RDKafkaErrorCode};
use shared_events::{CloudEvent, DomainEvent, Topic};
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn a_forged_cancel_is_refused_by_the_broker_and_refunds_nothing() {
    let world = World::new().await;
    if !world.kafka.is_real() {
        eprintln!("not run on librdkafka's mock broker: it has no authentication or ACLs");
        return;
    }
    assert!(
        world.kafka.has_access_control(),
        "the broker in KAFKA_BROKERS has not the fleet's principals and ACLs: \
         run the tests with scripts/test.sh, or set FLEET_KAFKA_ACCESS=scram for one that has"
    );
    let app = world.spawn(&[]).await;
    let paid = app.pay_for(Uuid::new_v4(), Uuid::new_v4(), 300).await;
    let rental: Uuid = paid["rentalId"].as_str().unwrap().parse().unwrap();
    let payment: Uuid = id_of(&paid).parse().unwrap();
    let forged = CloudEvent::new("rental", cancelled(Uuid::new_v4(), rental, payment));
    let payload = serde_json::to_vec(&forged).unwrap();
    let key = forged.data.key();
    let send = |credentials: Option<KafkaCredentials>| {
        let (world, payload, key) = (&world, &payload, &key);
        async move {
            world
                .kafka
                .send_as(
                    credentials.as_ref(),
                    Topic::Rental,
                    key,
                    payload,
                    Duration::from_secs(8),
                )
                .await
        }
    };

    // No credentials: the broker answers nothing but a SASL handshake, so nothing is delivered.
    let anonymous = send(None).await;
    assert!(anonymous.is_err(), "delivered without credentials");
    for principal in ["view", "points"] {
        let refused = send(Some(KafkaCredentials::service(principal))).await;
        assert!(
            matches!(
                refused,
                Err(KafkaError::MessageProduction(
                    RDKafkaErrorCode::TopicAuthorizationFailed
                ))
            ),
            "{principal} publishing on rental.events: {refused:?}"
        );
    }
    let mut impostor = KafkaCredentials::service("rental");
    impostor.password.push_str("-guessed");
    assert!(
        send(Some(impostor)).await.is_err(),
        "delivered with rental's name and a wrong password"
    );

    // Nothing reached the topic, and the payment stands.
    let rental_events = world.kafka.reader(&world.kafka.topic(Topic::Rental)).await;
    rental_events.expect(0, Duration::from_secs(1)).await;
    assert_eq!(app.payment(id_of(&paid)).await["status"], "APPROVED");
    assert_eq!(world.count("inbox").await, 0);

    // The same cancel from rental itself is taken and refunded: payment was listening.
    send(Some(KafkaCredentials::service("rental")))
        .await
        .expect("rental publishes on rental.events");
    payment_becomes(&app, id_of(&paid), "REFUNDED").await;
    let payment_events = world.payment_events().await.expect(2, WAIT).await;
    assert_eq!(payment_events[1].event().event_type, "PaymentRefunded");
}
