//! Paying for a rental: once per rental id, whatever the retries or their concurrency; declines;
//! the simulated latency; and every bad input refused with nothing stored.

use std::time::Instant;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn an_approved_payment_is_stored_read_back_and_announced_once() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let (rental, user) = (Uuid::new_v4(), Uuid::new_v4());

    let response = app
        .pay(json!({"rentalId": rental, "userId": user, "amount": 450}))
        .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    let id = id_of(&created).to_owned();
    assert_eq!(location, format!("/api/v1/payments/{id}"));
    assert_eq!(created["rentalId"], rental.to_string());
    assert_eq!(created["userId"], user.to_string());
    assert_eq!(created["amount"], 450);
    assert_eq!(created["status"], "APPROVED");
    assert!(created["createdAt"].is_string());
    assert!(created["refundedAt"].is_null(), "{created}");
    assert_eq!(
        created.as_object().unwrap().len(),
        7,
        "exactly the documented fields: {created}"
    );

    assert_eq!(
        app.payment(&id).await,
        created,
        "a read gives back what the payment answered"
    );
    let found: Value = app
        .client
        .get(app.url(&format!("/api/v1/payments?rentalId={rental}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found, json!({"items": [created]}));
    let looked_up: Value = app.look_up(rental).await.json().await.unwrap();
    assert_eq!(looked_up, found, "rental's lookup answers the same");
    let none: Value = app
        .client
        .get(app.url(&format!("/api/v1/payments?rentalId={}", Uuid::new_v4())))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(none, json!({"items": []}));

    let messages = world.payment_events().await.expect(1, WAIT).await;
    let message = &messages[0];
    assert_eq!(
        message.key,
        rental.to_string(),
        "payment events are keyed by rental id"
    );
    assert_eq!(
        message.headers["content-type"],
        "application/cloudevents+json"
    );
    let event = message.event();
    assert_eq!(event.event_type, "PaymentApproved");
    assert_eq!(event.source, "payment");
    assert_eq!(event.subject, id);
    assert_eq!(event.correlationid, Some(rental.to_string()));
    assert_eq!(
        event.data,
        json!({
            "paymentId": id,
            "rentalId": rental,
            "userId": user,
            "amount": 450,
            "approvedAt": created["createdAt"],
        })
    );
}

#[tokio::test]
async fn a_retried_payment_answers_the_stored_one_and_publishes_nothing_more() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let (rental, user) = (Uuid::new_v4(), Uuid::new_v4());
    let first = app.pay_for(rental, user, 300).await;

    let retry = app
        .pay(json!({"rentalId": rental, "userId": user, "amount": 300}))
        .await;
    assert_eq!(retry.status(), 200, "a retry is not a new payment");
    assert_eq!(retry.json::<Value>().await.unwrap(), first);

    assert_eq!(world.count("payments").await, 1);
    world.payment_events().await.expect(1, WAIT).await;
}

#[tokio::test]
async fn concurrent_attempts_for_one_rental_make_one_payment_and_one_event() {
    let world = World::new().await;
    // A processing time makes every attempt miss the stored payment and race to insert.
    let app = world.spawn(&[("PAYMENT_LATENCY_MS", "50..150")]).await;
    let (rental, user) = (Uuid::new_v4(), Uuid::new_v4());
    let body = json!({"rentalId": rental, "userId": user, "amount": 300});

    let responses = futures::future::join_all((0..10).map(|_| app.pay(body.clone()))).await;
    let mut statuses = Vec::new();
    let mut ids = Vec::new();
    for response in responses {
        statuses.push(response.status().as_u16());
        ids.push(id_of(&response.json::<Value>().await.unwrap()).to_owned());
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 200, 200, 200, 201]);
    assert!(ids.iter().all(|id| *id == ids[0]), "one payment: {ids:?}");

    assert_eq!(world.count("payments").await, 1);
    assert_eq!(world.count("outbox").await, 1);
    let messages = world.payment_events().await.expect(1, WAIT).await;
    assert_eq!(messages[0].event().subject, ids[0]);
}

#[tokio::test]
async fn a_rental_id_reused_for_another_request_is_a_conflict() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let (rental, user) = (Uuid::new_v4(), Uuid::new_v4());
    let paid = app.pay_for(rental, user, 300).await;

    let problem = refused(
        app.pay(json!({"rentalId": rental, "userId": user, "amount": 301}))
            .await,
        409,
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("different customer or amount"),
        "{problem}"
    );
    refused(
        app.pay(json!({"rentalId": rental, "userId": Uuid::new_v4(), "amount": 300}))
            .await,
        409,
    )
    .await;

    assert_eq!(app.payment(id_of(&paid)).await, paid, "the payment stands");
    assert_eq!(world.count("payments").await, 1);
    world.payment_events().await.expect(1, WAIT).await;
}

#[tokio::test]
async fn a_payment_above_the_decline_amount_is_declined_and_announces_nothing() {
    let world = World::new().await;
    let app = world
        .spawn(&[("PAYMENT_DECLINE_AMOUNT_ABOVE", "500")])
        .await;
    let (declined_rental, user) = (Uuid::new_v4(), Uuid::new_v4());

    let declined = app.pay_for(declined_rental, user, 501).await;
    assert_eq!(declined["status"], "DECLINED");
    let retry = app
        .pay(json!({"rentalId": declined_rental, "userId": user, "amount": 501}))
        .await;
    assert_eq!(retry.status(), 200);
    assert_eq!(
        retry.json::<Value>().await.unwrap(),
        declined,
        "a retry does not turn a decline into a payment"
    );

    let approved_rental = Uuid::new_v4();
    let approved = app.pay_for(approved_rental, user, 500).await;
    assert_eq!(approved["status"], "APPROVED", "the limit itself is paid");

    // Only the approval is published: once it is out, nothing else came before it.
    let messages = world.payment_events().await.expect(1, WAIT).await;
    assert_eq!(messages[0].key, approved_rental.to_string());
    assert_eq!(world.count("outbox").await, 1);
    assert_eq!(world.count("payments").await, 2);
}

#[tokio::test]
async fn a_new_payment_takes_at_least_the_configured_latency() {
    let world = World::new().await;
    let app = world.spawn(&[("PAYMENT_LATENCY_MS", "300")]).await;
    let started = Instant::now();
    app.pay_for(Uuid::new_v4(), Uuid::new_v4(), 100).await;
    let took = started.elapsed();
    assert!(took.as_millis() >= 300, "took only {took:?}");
}

#[tokio::test]
async fn every_bad_input_gets_its_problem_and_stores_nothing() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let post = |body: String, content_type: &'static str| {
        as_rental()
            .post(app.url(INTERNAL_PAYMENTS))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let json = "application/json";
    let (rental, user) = (Uuid::new_v4(), Uuid::new_v4());
    let body = |rental_id: &str, user_id: &str, amount: &str| {
        format!(r#"{{"rentalId":"{rental_id}","userId":"{user_id}","amount":{amount}}}"#)
    };
    let (r, u) = (rental.to_string(), user.to_string());

    let problem = refused(post(body(&r, &u, "-1"), json).await.unwrap(), 422).await;
    assert_eq!(
        problem["errors"],
        json!([{"pointer": "#/amount", "detail": "amount must not be negative"}])
    );
    let problem = refused(post(body(&r, &u, "1000001"), json).await.unwrap(), 422).await;
    assert_eq!(
        problem["errors"][0]["detail"],
        "amount must be at most 1000000"
    );
    let problem = refused(post(body("abc", &u, "1"), json).await.unwrap(), 422).await;
    assert_eq!(
        problem["errors"],
        json!([{"pointer": "#/rentalId", "detail": "rentalId must be a UUID"}])
    );
    let nil = Uuid::nil().to_string();
    let problem = refused(post(body(&r, &nil, "1"), json).await.unwrap(), 422).await;
    assert_eq!(problem["errors"][0]["pointer"], "#/userId");
    let problem = refused(post(body("", "x", "-5"), json).await.unwrap(), 422).await;
    assert_eq!(
        problem["errors"].as_array().unwrap().len(),
        3,
        "every invalid field is reported"
    );
    let problem = refused(
        post(
            format!(r#"{{"rentalId":"{r}","userId":"{u}","amount":1,"tip":5}}"#),
            json,
        )
        .await
        .unwrap(),
        422,
    )
    .await;
    assert_eq!(problem["errors"][0]["pointer"], "#/tip");
    assert!(
        problem["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("unknown field `tip`"),
        "{problem}"
    );
    refused(
        post(format!(r#"{{"rentalId":"{r}","userId":"{u}"}}"#), json)
            .await
            .unwrap(),
        422,
    )
    .await;
    refused(post(body(&r, &u, r#""cheap""#), json).await.unwrap(), 422).await;
    refused(post(body(&r, &u, "1.5"), json).await.unwrap(), 422).await;
    refused(
        post(
            format!(r#"{{"rentalId":"{r}","userId":"{u}","amount":1"#),
            json,
        )
        .await
        .unwrap(),
        400,
    )
    .await;
    refused(post(body(&r, &u, "1"), "text/plain").await.unwrap(), 415).await;

    let get = |path: String| app.client.get(app.url(&path)).send();
    refused(
        get("/api/v1/payments/not-a-uuid".into()).await.unwrap(),
        400,
    )
    .await;
    refused(app.refund("not-a-uuid").await, 400).await;
    refused(get("/api/v1/payments".into()).await.unwrap(), 400).await;
    let look_up = |query: &str| {
        as_rental()
            .get(app.url(&format!("{INTERNAL_PAYMENTS}{query}")))
            .send()
    };
    refused(look_up("").await.unwrap(), 400).await;
    refused(look_up("?rentalId=abc").await.unwrap(), 400).await;
    refused(
        get("/api/v1/payments?rentalId=abc".into()).await.unwrap(),
        400,
    )
    .await;
    refused(
        get(format!("/api/v1/payments?rentalId={r}&userId={u}"))
            .await
            .unwrap(),
        400,
    )
    .await;
    let unknown = Uuid::new_v4();
    refused(
        get(format!("/api/v1/payments/{unknown}")).await.unwrap(),
        404,
    )
    .await;
    refused(app.refund(&unknown.to_string()).await, 404).await;
    refused(
        app.client
            .put(app.url("/api/v1/payments"))
            .send()
            .await
            .unwrap(),
        405,
    )
    .await;

    assert_eq!(world.count("payments").await, 0);
    assert_eq!(world.count("outbox").await, 0);
}
