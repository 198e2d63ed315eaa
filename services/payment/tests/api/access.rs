//! Who reaches what: the public reads need an access token and show a customer only their own
//! payments (a manager every one); the internal endpoints take rental's own token and nobody
//! else's; paying and refunding are no longer under `/api/v1`, the only prefix the gateway routes.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::*;

/// `GET path` with `token`, or with none.
async fn read(app: &App, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = anonymous().get(app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn public_reads_without_a_valid_token_are_refused() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let rental = Uuid::new_v4();
    let paid = app.pay_for(rental, Uuid::new_v4(), 300).await;
    let by_id = format!("/api/v1/payments/{}", id_of(&paid));
    let by_rental = format!("/api/v1/payments?rentalId={rental}");

    // Not even a malformed query is looked at before the token.
    for path in [by_id.as_str(), &by_rental, "/api/v1/payments?rentalId=abc"] {
        let nobody = read(&app, path, None).await;
        assert_eq!(nobody.headers()["www-authenticate"], "Bearer", "{path}");
        refused(nobody, 401).await;
    }
    let now = chrono::Utc::now().timestamp();
    let expired = world.identity.sign(json!({
        "sub": Uuid::new_v4().to_string(), "roles": ["manager"], "iss": "book-rental-fleet",
        "aud": "book-rental-api", "iat": now - 3600, "exp": now - 1800,
    }));
    for path in [&by_id, &by_rental] {
        let stale = read(&app, path, Some(&expired)).await;
        assert_eq!(
            stale.headers()["www-authenticate"],
            r#"Bearer error="invalid_token""#,
            "{path}"
        );
        refused(stale, 401).await;
    }
}

#[tokio::test]
async fn a_customer_reads_their_own_payment_and_nobody_elses() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let (rental, owner) = (Uuid::new_v4(), Uuid::new_v4());
    let paid = app.pay_for(rental, owner, 300).await;
    let id = id_of(&paid);
    let by_id = format!("/api/v1/payments/{id}");
    let by_rental = format!("/api/v1/payments?rentalId={rental}");

    let own = world.customer_token(owner);
    let response = read(&app, &by_id, Some(&own)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), paid);
    let response = read(&app, &by_rental, Some(&own)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"items": [paid]})
    );

    // Someone else's payment is answered as if there were none: its existence is not revealed.
    let other = world.customer_token(Uuid::new_v4());
    let problem = refused(read(&app, &by_id, Some(&other)).await, 404).await;
    assert_eq!(problem["detail"], format!("no payment {id}"));
    let unknown = Uuid::new_v4();
    let problem = refused(
        read(&app, &format!("/api/v1/payments/{unknown}"), Some(&other)).await,
        404,
    )
    .await;
    assert_eq!(
        problem["detail"],
        format!("no payment {unknown}"),
        "the same answer as for an unknown id"
    );
    let response = read(&app, &by_rental, Some(&other)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"items": []}),
        "the same answer as for a rental without a payment"
    );
}

#[tokio::test]
async fn a_manager_reads_every_payment() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let rental = Uuid::new_v4();
    let paid = app.pay_for(rental, Uuid::new_v4(), 300).await;

    let manager = world.manager_token();
    let response = read(
        &app,
        &format!("/api/v1/payments/{}", id_of(&paid)),
        Some(&manager),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), paid);
    let response = read(
        &app,
        &format!("/api/v1/payments?rentalId={rental}"),
        Some(&manager),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"items": [paid]})
    );
}

#[tokio::test]
async fn rental_pays_looks_up_and_refunds_with_its_token() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let (rental, user) = (Uuid::new_v4(), Uuid::new_v4());

    // Every call here carries rental's token, as rental makes it.
    let response = app
        .pay(json!({"rentalId": rental, "userId": user, "amount": 300}))
        .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let paid: Value = response.json().await.unwrap();
    let id = id_of(&paid);
    assert_eq!(
        location,
        format!("/api/v1/payments/{id}"),
        "a payment is read at its public path"
    );

    let response = app.look_up(rental).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"items": [paid]})
    );

    let response = app.refund(id).await;
    assert_eq!(response.status(), 200);
    let refunded: Value = response.json().await.unwrap();
    assert_eq!(refunded["status"], "REFUNDED");
    assert_eq!(app.payment(id).await, refunded);
}

#[tokio::test]
async fn paying_and_refunding_are_gone_from_the_public_api() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let paid = app.pay_for(Uuid::new_v4(), Uuid::new_v4(), 300).await;
    let id = id_of(&paid);

    // Signed in or not, even as a manager: these are no routes of the public API.
    for client in [anonymous(), app.client.clone()] {
        let pay = client
            .post(app.url("/api/v1/payments"))
            .json(&json!({"rentalId": Uuid::new_v4(), "userId": Uuid::new_v4(), "amount": 1}))
            .send()
            .await
            .unwrap();
        refused(pay, 405).await;
        let refund = client
            .post(app.url(&format!("/api/v1/payments/{id}/refund")))
            .send()
            .await
            .unwrap();
        refused(refund, 404).await;
    }

    assert_eq!(app.payment(id).await, paid, "not refunded");
    assert_eq!(world.count("payments").await, 1, "nothing more paid");
}

#[tokio::test]
async fn the_internal_endpoints_serve_rental_alone() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let paid = app.pay_for(Uuid::new_v4(), Uuid::new_v4(), 300).await;
    let id = id_of(&paid).to_owned();
    let customer = world.customer_token(Uuid::new_v4());
    let manager = world.manager_token();
    let points = world
        .identity
        .service_token("points", "payment", "payments");
    let rental_elsewhere = world
        .identity
        .service_token("rental", "book-management", "payments");
    let rental_without_scope = world.identity.service_token("rental", "payment", "books");
    let now = chrono::Utc::now().timestamp();
    let rental_expired = world.identity.sign(json!({
        "sub": "rental", "scope": "payments", "iss": "book-rental-fleet", "aud": "payment",
        "iat": now - 3600, "exp": now - 1800,
    }));

    // rental's claims signed with the key once published with the project.
    let forged = fleet_testing::sign_with_published_key(json!({
        "sub": "rental", "scope": "payments", "iss": "book-rental-fleet", "aud": "payment",
        "iat": now, "exp": now + 300,
    }));

    let attempts = [
        (None, 401),
        (Some(forged.as_str()), 401),
        (Some("not-a-jwt"), 401),
        (Some(rental_expired.as_str()), 401),
        (Some(rental_elsewhere.as_str()), 401),
        (Some(customer.as_str()), 403),
        (Some(manager.as_str()), 403),
        (Some(points.as_str()), 403),
        (Some(rental_without_scope.as_str()), 403),
    ];
    for (token, status) in attempts {
        let with = |request: reqwest::RequestBuilder| match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let client = anonymous();
        let pay = with(client.post(app.url(INTERNAL_PAYMENTS)))
            .json(&json!({"rentalId": Uuid::new_v4(), "userId": Uuid::new_v4(), "amount": 1}))
            .send()
            .await
            .unwrap();
        let refund = with(client.post(app.url(&format!("{INTERNAL_PAYMENTS}/{id}/refund"))))
            .send()
            .await
            .unwrap();
        let look_up = with(client.get(app.url(INTERNAL_PAYMENTS)))
            .query(&[("rentalId", Uuid::new_v4())])
            .send()
            .await
            .unwrap();
        for response in [pay, refund, look_up] {
            assert_eq!(response.status(), status, "{token:?}");
            refused(response, status).await;
        }
    }

    assert_eq!(app.payment(&id).await, paid, "not refunded");
    assert_eq!(world.count("payments").await, 1, "nothing charged");
    // rental's own token does what the others could not.
    assert_eq!(app.refund(&id).await.status(), 200);
}
