//! points through the gateway: what a customer earns, who may read it, and that renting does not
//! depend on it (it only reads `rental.events`).

use fleet_testing::{ServiceProcess, WAIT, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Customer, Fleet, refused};

/// Rents `book` as `customer` and gives it back (`return` or `cancel`): the rental's id.
async fn rent_and(fleet: &Fleet, customer: &Customer, book: &str, action: &str) -> String {
    let rental = fleet.rent(customer, book).await;
    let id = rental["id"].as_str().unwrap().to_owned();
    let response = fleet
        .post(
            &format!("/api/v1/rentals/{id}/{action}"),
            &customer.token,
            json!({}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK, "{action} {id}");
    id
}

/// Waits until points has taken in every event rental published: from then on its answers are
/// final, cancellations included (which earn nothing, and so show nowhere).
async fn points_caught_up(fleet: &Fleet) {
    let sql = "SELECT count(*) FROM rental.outbox o WHERE NOT EXISTS \
               (SELECT 1 FROM points.inbox i WHERE i.event_id = o.event_id)";
    eventually("every rental event in points' inbox", WAIT, || async {
        let missing: i64 = sqlx::query_scalar(sql)
            .fetch_one(&fleet.db.admin)
            .await
            .ok()?;
        (missing == 0).then_some(())
    })
    .await;
}

async fn points_at(fleet: &Fleet, gateway: &ServiceProcess, path: &str, token: &str) -> Value {
    let response = fleet.get_at(&gateway.base_url, path, token).await;
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    response.json().await.unwrap()
}

async fn gateway_is_ready(fleet: &Fleet, gateway: &ServiceProcess) {
    let ready = fleet
        .client
        .get(format!("{}/readyz", gateway.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
}

#[tokio::test]
async fn returned_rentals_earn_a_tenth_of_their_fee_and_a_cancelled_one_nothing() {
    let fleet = Fleet::start().await;
    let manager = fleet.manager().await;
    let first = fleet.book(&manager, 300).await;
    let second = fleet.book(&manager, 450).await;
    let third = fleet.book(&manager, 200).await;
    let customer = fleet.sign_up().await;

    let returned = [
        rent_and(&fleet, &customer, &first, "return").await,
        rent_and(&fleet, &customer, &second, "return").await,
    ];
    let cancelled = rent_and(&fleet, &customer, &third, "cancel").await;
    points_caught_up(&fleet).await;

    // 10 % (POINTS_PERCENT's default) of 300 and of 450; nothing of the cancelled 200.
    let mine = points_at(&fleet, &fleet.gateway, "/api/v1/points/me", &customer.token).await;
    assert_eq!(mine["userId"], customer.id.to_string(), "{mine}");
    assert_eq!(mine["balance"], 75, "{mine}");
    let history = mine["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{mine}");
    let mut earned: Vec<(String, u64)> = history
        .iter()
        .map(|e| {
            assert_eq!(e["reason"], "RETURNED", "{e}");
            (
                e["rentalId"].as_str().unwrap().to_owned(),
                e["points"].as_u64().unwrap(),
            )
        })
        .collect();
    earned.sort_by_key(|(_, points)| *points);
    assert_eq!(
        earned,
        [(returned[0].clone(), 30), (returned[1].clone(), 45)],
        "{mine}"
    );
    assert!(earned.iter().all(|(id, _)| *id != cancelled));

    // A manager reads the customer's points by id, and so does the customer; another customer
    // may not, and has none.
    let path = format!("/api/v1/points/{}", customer.id);
    let seen = points_at(&fleet, &fleet.gateway, &path, &manager).await;
    assert_eq!(seen["balance"], 75, "{seen}");
    assert_eq!(seen["history"], mine["history"]);
    let own = points_at(&fleet, &fleet.gateway, &path, &customer.token).await;
    assert_eq!(own["balance"], 75, "{own}");
    let other = fleet.sign_up().await;
    refused(fleet.get(&path, &other.token).await, 403).await;
    let theirs = points_at(&fleet, &fleet.gateway, "/api/v1/points/me", &other.token).await;
    assert_eq!(theirs["balance"], 0, "{theirs}");
    refused(fleet.get("/api/v1/points/me", "not a token").await, 401).await;
}

#[tokio::test]
async fn renting_goes_on_through_the_gateway_while_points_is_away() {
    let mut fleet = Fleet::start().await;
    let manager = fleet.manager().await;
    let book = fleet.book(&manager, 300).await;
    let customer = fleet.sign_up().await;

    fleet.points.kill().await;
    rent_and(&fleet, &customer, &book, "return").await;
    gateway_is_ready(&fleet, &fleet.gateway).await;
    refused(fleet.get("/api/v1/points/me", &customer.token).await, 502).await;
    // The merged document is still served, without points' operations until it is back.
    let doc = fleet
        .client
        .get(fleet.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(doc.status(), StatusCode::OK);
    let doc: Value = doc.json().await.unwrap();
    assert!(doc["paths"]["/api/v1/rentals"]["post"].is_object());

    // A gateway that is not told where points is (a deployment without it) starts, is ready,
    // rents, and answers points' paths 404.
    let without = fleet.gateway_without("UPSTREAM_POINTS").await;
    gateway_is_ready(&fleet, &without).await;
    let rented = fleet
        .client
        .post(format!("{}/api/v1/rentals", without.base_url))
        .bearer_auth(&customer.token)
        .json(&json!({"bookId": book}))
        .send()
        .await
        .unwrap();
    assert_eq!(rented.status(), StatusCode::CREATED);
    let rental: Value = rented.json().await.unwrap();
    let id = rental["id"].as_str().unwrap();
    let returned = fleet
        .client
        .post(format!("{}/api/v1/rentals/{id}/return", without.base_url))
        .bearer_auth(&customer.token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(returned.status(), StatusCode::OK);
    for path in [
        "/api/v1/points/me".to_owned(),
        format!("/api/v1/points/{}", customer.id),
    ] {
        refused(fleet.get_at(&without.base_url, &path, &manager).await, 404).await;
    }
    let doc: Value = fleet
        .get_at(&without.base_url, "/api/v1/openapi.json", "")
        .await
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert!(
        paths.keys().all(|p| !p.starts_with("/api/v1/points")),
        "{:?}",
        paths.keys()
    );

    // Back, points catches up from its committed offsets: both returns earn their points.
    fleet.points.restart().await;
    gateway_is_ready(&fleet, &fleet.gateway).await;
    eventually("the returns' points", WAIT, || async {
        let response = fleet.get("/api/v1/points/me", &customer.token).await;
        let mine: Value = response.json().await.ok()?;
        (mine["balance"] == 60).then_some(())
    })
    .await;
}
