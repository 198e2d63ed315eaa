//! The catalogue API: what a manager sees, and every bad input refused with nothing stored.

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn a_registered_book_can_be_read_listed_updated_and_retired() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;

    let response = app.register(json!({"title": "  The Dispossessed ", "author": "Ursula K. Le Guin", "rentalFee": 450})).await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/v1/books/{}", created["id"].as_str().unwrap())
    );
    assert_eq!(created["title"], "The Dispossessed", "titles are trimmed");
    assert_eq!(created["status"], "AVAILABLE");
    let id = created["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        app.book(id).await,
        created,
        "a read gives back what the registration answered"
    );

    let page: Value = app
        .client
        .get(app.url("/api/v1/books"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);

    let updated: Value = app
        .client
        .patch(app.url(&format!("/api/v1/books/{id}")))
        .json(&json!({"rentalFee": 500}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(updated["rentalFee"], 500);
    assert_eq!(updated["title"], "The Dispossessed");

    let retired = app
        .client
        .delete(app.url(&format!("/api/v1/books/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(retired.status(), 200);
    assert_eq!(app.book(id).await["status"], "RETIRED");
    let again = app
        .client
        .delete(app.url(&format!("/api/v1/books/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200, "retiring twice is harmless");

    let patch_retired = app
        .client
        .patch(app.url(&format!("/api/v1/books/{id}")))
        .json(&json!({"title": "New"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch_retired.status(), 409);
    assert_eq!(app.book(id).await["title"], "The Dispossessed");
}

#[tokio::test]
async fn the_catalogue_pages_in_registration_order() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(app.register_book(&format!("Book {n}")).await.to_string());
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let query = after
            .as_ref()
            .map_or(String::new(), |a| format!("&after={a}"));
        let page: Value = app
            .client
            .get(app.url(&format!("/api/v1/books?limit=2{query}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["id"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn every_bad_input_gets_its_problem_and_stores_nothing() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let post = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url("/api/v1/books"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let json = "application/json";

    let problem = assert_problem(
        post(r#"{"title":"","author":"A","rentalFee":1}"#, json)
            .await
            .unwrap(),
        422,
    )
    .await;
    assert_eq!(
        problem["errors"],
        json!([{"pointer": "#/title", "detail": "title must not be empty"}])
    );
    let problem = assert_problem(
        post(r#"{"title":"T","author":"A","rentalFee":-1}"#, json)
            .await
            .unwrap(),
        422,
    )
    .await;
    assert_eq!(problem["errors"][0]["pointer"], "#/rentalFee");
    let problem = assert_problem(
        post(r#"{"title":"T","author":"A","rentalFee":1000000000}"#, json)
            .await
            .unwrap(),
        422,
    )
    .await;
    assert_eq!(
        problem["errors"][0]["detail"],
        "rentalFee must be at most 1000000"
    );
    let problem = assert_problem(
        post(r#"{"title":" ","author":"","rentalFee":-5}"#, json)
            .await
            .unwrap(),
        422,
    )
    .await;
    assert_eq!(
        problem["errors"].as_array().unwrap().len(),
        3,
        "every invalid field is reported"
    );
    let problem = assert_problem(
        post(
            r#"{"title":"T","author":"A","rentalFee":1,"isbn":"x"}"#,
            json,
        )
        .await
        .unwrap(),
        422,
    )
    .await;
    assert!(
        problem["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("unknown field `isbn`"),
        "{problem}"
    );
    assert_problem(
        post(r#"{"title":"T","author":"A"}"#, json).await.unwrap(),
        422,
    )
    .await;
    assert_problem(
        post(r#"{"title":"T","author":"A","rentalFee":"cheap"}"#, json)
            .await
            .unwrap(),
        422,
    )
    .await;
    assert_problem(
        post(r#"{"title":"T","author":"A","rentalFee":1"#, json)
            .await
            .unwrap(),
        400,
    )
    .await;
    assert_problem(
        post(r#"{"title":"T","author":"A","rentalFee":1}"#, "text/plain")
            .await
            .unwrap(),
        415,
    )
    .await;
    let huge = format!(
        r#"{{"title":"{}","author":"A","rentalFee":1}}"#,
        "x".repeat(100 * 1024)
    );
    assert_problem(
        app.client
            .post(app.url("/api/v1/books"))
            .header("content-type", json)
            .body(huge)
            .send()
            .await
            .unwrap(),
        413,
    )
    .await;

    let unknown = uuid::Uuid::new_v4();
    assert_problem(
        app.client
            .get(app.url(&format!("/api/v1/books/{unknown}")))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    assert_problem(
        app.client
            .patch(app.url(&format!("/api/v1/books/{unknown}")))
            .json(&json!({"title": "T"}))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    assert_problem(
        app.client
            .delete(app.url(&format!("/api/v1/books/{unknown}")))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    assert_problem(
        app.client
            .get(app.url("/api/v1/books/not-a-uuid"))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert_problem(
        app.client
            .get(app.url("/api/v1/books?limit=0"))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert_problem(
        app.client
            .get(app.url("/api/v1/books?sort=title"))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert_problem(
        app.client
            .put(app.url("/api/v1/books"))
            .send()
            .await
            .unwrap(),
        405,
    )
    .await;
    assert_problem(
        app.client
            .get(app.url("/api/v1/nothing-here"))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;

    assert_eq!(world.count("books").await, 0);
    assert_eq!(world.count("outbox").await, 0);

    // Bad changes to an existing book leave it and the outbox as they were.
    let id = app.register_book("Kept").await;
    let before = app.book(id).await;
    let patch = |body: &'static str| {
        app.client
            .patch(app.url(&format!("/api/v1/books/{id}")))
            .header("content-type", json)
            .body(body)
            .send()
    };
    assert_problem(patch(r#"{}"#).await.unwrap(), 422).await;
    assert_problem(patch(r#"{"title":""}"#).await.unwrap(), 422).await;
    assert_problem(
        patch(r#"{"title":"Fine","rentalFee":-2}"#).await.unwrap(),
        422,
    )
    .await;
    assert_problem(patch(r#"{"status":"RENTED"}"#).await.unwrap(), 422).await;
    assert_problem(patch(r#"{"title":"#).await.unwrap(), 400).await;
    assert_eq!(app.book(id).await, before);
    assert_eq!(
        world.count("outbox").await,
        1,
        "only the registration's event"
    );
}

#[tokio::test]
async fn a_rented_book_cannot_be_retired_until_it_is_returned() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let id = app.register_book("Solaris").await;
    let rental = uuid::Uuid::new_v4();
    world.publish(rented(id, rental)).await;
    book_becomes(&app, id, "RENTED", 1).await;

    let problem = assert_problem(
        app.client
            .delete(app.url(&format!("/api/v1/books/{id}")))
            .send()
            .await
            .unwrap(),
        409,
    )
    .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("rented"),
        "{problem}"
    );
    assert_eq!(world.count("outbox").await, 1, "no BookRetired was written");

    world.publish(returned(id, rental)).await;
    book_becomes(&app, id, "AVAILABLE", 1).await;
    assert_eq!(
        app.client
            .delete(app.url(&format!("/api/v1/books/{id}")))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn managers_change_the_catalogue_and_anyone_signed_in_reads_it() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let id = app.register_book("Solaris").await;
    let customer = world.identity.token(uuid::Uuid::new_v4(), &["customer"]);
    let anonymous = reqwest::Client::new();

    let read = anonymous
        .get(app.url(&format!("/api/v1/books/{id}")))
        .bearer_auth(&customer)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200, "a customer reads the catalogue");
    let list = anonymous
        .get(app.url("/api/v1/books"))
        .bearer_auth(&customer)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);

    let register = anonymous
        .post(app.url("/api/v1/books"))
        .bearer_auth(&customer)
        .json(&json!({"title": "Mine", "author": "Me", "rentalFee": 1}))
        .send()
        .await
        .unwrap();
    assert_problem(register, 403).await;
    let malformed = anonymous
        .post(app.url("/api/v1/books"))
        .bearer_auth(&customer)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_problem(malformed, 403).await; // refused before the body is even read
    let patch = anonymous
        .patch(app.url(&format!("/api/v1/books/{id}")))
        .bearer_auth(&customer)
        .json(&json!({"rentalFee": 1}))
        .send()
        .await
        .unwrap();
    assert_problem(patch, 403).await;
    let retire = anonymous
        .delete(app.url(&format!("/api/v1/books/{id}")))
        .bearer_auth(&customer)
        .send()
        .await
        .unwrap();
    assert_problem(retire, 403).await;

    let nobody = anonymous
        .get(app.url("/api/v1/books"))
        .send()
        .await
        .unwrap();
    assert_eq!(nobody.headers()["www-authenticate"], "Bearer");
    assert_problem(nobody, 401).await;
    let expired = world.identity.sign(json!({
        "sub": uuid::Uuid::new_v4().to_string(), "roles": ["manager"], "iss": "book-rental-fleet",
        "aud": "book-rental-api", "iat": 0, "exp": 1
    }));
    let stale = anonymous
        .get(app.url("/api/v1/books"))
        .bearer_auth(expired)
        .send()
        .await
        .unwrap();
    assert_problem(stale, 401).await;

    assert_eq!(world.count("books").await, 1);
    assert_eq!(
        world.count("outbox").await,
        1,
        "only the manager's registration wrote an event"
    );
    assert_eq!(app.book(id).await["status"], "AVAILABLE");
}
