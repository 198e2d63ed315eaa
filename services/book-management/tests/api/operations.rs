//! Health, metrics, OpenAPI, shutdown, and the schema-per-service boundary.

use std::time::Duration;

use fleet_testing::{ServiceProcess, TestDatabase};

use crate::helpers::*;

#[tokio::test]
async fn the_book_role_cannot_read_another_services_schema() {
    let db = TestDatabase::create().await;
    let book_url = db.add_service("book_svc", "book").await;
    let rental_url = db.add_service("rental_svc", "rental").await;
    let rental = sqlx::PgPool::connect(&rental_url).await.unwrap();
    sqlx::query("CREATE TABLE rental.rentals (id int)")
        .execute(&rental)
        .await
        .unwrap();

    let book = sqlx::PgPool::connect(&book_url).await.unwrap();
    let denied = sqlx::query("SELECT * FROM rental.rentals")
        .execute(&book)
        .await
        .unwrap_err();
    let code = denied
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned());
    assert_eq!(
        code.as_deref(),
        Some("42501"),
        "insufficient_privilege: {denied}"
    );
    let denied = sqlx::query("CREATE TABLE public.sneaky (id int)")
        .execute(&book)
        .await
        .unwrap_err();
    assert!(denied.to_string().contains("permission denied"), "{denied}");
    sqlx::query("CREATE TABLE book.mine (id int)")
        .execute(&book)
        .await
        .expect("its own schema is writable");
}

#[tokio::test]
async fn health_metrics_and_the_api_document_are_served() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    app.assert_operations_port("book-management").await;
    app.register_book("Counted").await;
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"http_requests_total{method="POST",route="/api/v1/books",status="201",service="book-management"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("process_resident_memory_bytes"));

    let doc = app
        .api_document(&["/api/v1/books", "/api/v1/books/{id}"])
        .await;
    assert!(doc["components"]["schemas"]["Problem"].is_object());
}

#[tokio::test]
async fn not_ready_until_the_database_is_reachable() {
    let world = World::new().await;
    // A port nobody listens on: the process lives but must not get traffic.
    let app = world
        .start(world.env_with(&[(
            "DATABASE_URL",
            "postgres://book_svc:book_svc@127.0.0.1:1/nowhere",
        )]))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app.client
            .get(app.url("/livez"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let readyz = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(readyz.status(), 503);
    assert_eq!(readyz.headers()["content-type"], "application/problem+json");
    app.stop().await;
}

#[tokio::test]
async fn draining_turns_unready_while_requests_are_still_answered() {
    let world = World::new().await;
    let app = world.spawn(&[("SHUTDOWN_DRAIN_DELAY_MS", "1500")]).await;
    app.begin_stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    let books = app
        .client
        .get(app.url("/api/v1/books"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        books.status(),
        200,
        "requests are still answered while draining"
    );
    assert_eq!(
        books.headers()["connection"],
        "close",
        "each answer while draining retires its keep-alive connection"
    );
    app.stop().await;
}

#[tokio::test]
async fn missing_configuration_is_reported_clearly() {
    fleet_testing::assert_refuses_to_start(
        std::path::Path::new(env!("CARGO_BIN_EXE_book-management")),
        &[("HTTP_PORT", "x")],
        &[
            "DATABASE_URL is required",
            "KAFKA_BROKERS is required",
            "HTTP_PORT=\"x\" is invalid",
        ],
    );
}

#[tokio::test]
async fn sigterm_stops_the_process_cleanly() {
    let world = World::new().await;
    let mut process = ServiceProcess::spawn(
        std::path::Path::new(env!("CARGO_BIN_EXE_book-management")),
        &world.env(),
    )
    .await;
    assert!(process.terminate().await);
}

#[tokio::test]
async fn migrations_run_over_database_migration_url_when_one_is_given() {
    // Behind a transaction pooler the services' URL cannot hold the migrator's session lock:
    // the migrations take the server's own address instead.
    let world = World::new().await;
    let nowhere = "postgres://book_svc:book_svc@127.0.0.1:1/nowhere";
    let stuck = world
        .start(world.env_with(&[("DATABASE_MIGRATION_URL", nowhere)]))
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let readyz = stuck.client.get(stuck.url("/readyz")).send().await.unwrap();
    assert_eq!(
        readyz.status(),
        503,
        "the migrations wait for their own URL"
    );
    stuck.stop().await;

    let direct = world
        .env_with(&[])
        .into_iter()
        .find(|(name, _)| name == "DATABASE_URL")
        .unwrap()
        .1;
    let app = world
        .spawn(&[("DATABASE_MIGRATION_URL", direct.as_str())])
        .await;
    assert_eq!(
        app.client
            .get(app.url("/api/v1/books"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
