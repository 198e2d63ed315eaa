//! Refunds through the internal API (rental's reconciler): once, however often asked; never for a
//! decline.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn refunding_through_the_api_refunds_once_however_often_it_is_asked() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let (rental, user) = (Uuid::new_v4(), Uuid::new_v4());
    let paid = app.pay_for(rental, user, 450).await;
    let id = id_of(&paid).to_owned();

    let response = app.refund(&id).await;
    assert_eq!(response.status(), 200);
    let refunded: Value = response.json().await.unwrap();
    assert_eq!(refunded["status"], "REFUNDED");
    assert!(refunded["refundedAt"].is_string(), "{refunded}");
    assert_eq!(refunded["createdAt"], paid["createdAt"]);
    assert_eq!(app.payment(&id).await, refunded);

    // Again, and concurrently: the same answer, and no second refund.
    let again = futures::future::join_all((0..5).map(|_| app.refund(&id))).await;
    for response in again {
        assert_eq!(response.status(), 200);
        assert_eq!(response.json::<Value>().await.unwrap(), refunded);
    }

    let messages = world.payment_events().await.expect(2, WAIT).await;
    assert_eq!(
        messages[0].partition, messages[1].partition,
        "one rental, one partition: the refund follows the approval"
    );
    let (approved, refund) = (messages[0].event(), messages[1].event());
    assert_eq!(approved.event_type, "PaymentApproved");
    assert_eq!(refund.event_type, "PaymentRefunded");
    assert_eq!(messages[1].key, rental.to_string());
    assert_eq!(
        refund.data,
        json!({
            "paymentId": id,
            "rentalId": rental,
            "userId": user,
            "amount": 450,
            "refundedAt": refunded["refundedAt"],
        })
    );
}

#[tokio::test]
async fn a_declined_payment_cannot_be_refunded() {
    let world = World::new().await;
    let app = world.spawn(&[("PAYMENT_DECLINE_AMOUNT_ABOVE", "0")]).await;
    let declined = app.pay_for(Uuid::new_v4(), Uuid::new_v4(), 1).await;
    assert_eq!(declined["status"], "DECLINED");

    let problem = refused(app.refund(id_of(&declined)).await, 409).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("declined"),
        "{problem}"
    );
    assert_eq!(app.payment(id_of(&declined)).await, declined);
    assert_eq!(world.count("outbox").await, 0);
}
