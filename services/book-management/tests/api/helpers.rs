use std::ops::Deref;

use book_management::{Config, build};
pub use fleet_testing::{TestApp as App, WAIT, assert_problem, sample};
use fleet_testing::{TestKafka, TestWorld, env_of};
use reqwest::Response;
use serde_json::Value;
use shared_events::{BookRented, BookReturned, DomainEvent, RentalCancelled, Topic};
use uuid::Uuid;

/// book-management's world: its database and a broker; replicas of the service run in it.
pub struct World(TestWorld);

impl Deref for World {
    type Target = TestWorld;
    fn deref(&self) -> &TestWorld {
        &self.0
    }
}

impl World {
    pub async fn new() -> Self {
        Self(TestWorld::new("book_svc", "book").await)
    }

    /// With the broker `kafka` (one the test can take down, say).
    pub async fn with_kafka(kafka: TestKafka) -> Self {
        Self(TestWorld::with_kafka("book_svc", "book", kafka).await)
    }

    /// A replica of the service in this process, once it is ready; its client is signed in
    /// as a manager.
    pub async fn spawn(&self, extra: &[(&str, &str)]) -> App {
        App::spawn(self.service(self.env_with(extra)).await)
            .await
            .signed_in_as(&self.manager_token())
    }

    /// A replica started with exactly `env`, without waiting for it to be ready.
    pub async fn start(&self, env: Vec<(String, String)>) -> App {
        App::start(self.service(env).await).signed_in_as(&self.manager_token())
    }

    pub fn manager_token(&self) -> String {
        self.identity.token(Uuid::new_v4(), &["manager"])
    }

    async fn service(&self, env: Vec<(String, String)>) -> fleet_service::Service {
        let config = Config::from_env(env_of(&env)).expect("valid test configuration");
        build(config).await.expect("the service builds")
    }

    /// Publishes a rental event as the rental service would, returning its event id.
    pub async fn publish<E: DomainEvent>(&self, event: E) -> Uuid {
        self.0.publish("rental", event).await
    }
}

/// The catalogue API, as a test calls it.
pub trait CatalogueApi {
    async fn register(&self, body: Value) -> Response;
    /// Registers a valid book and returns its id.
    async fn register_book(&self, title: &str) -> Uuid;
    async fn book(&self, id: Uuid) -> Value;
}

impl CatalogueApi for App {
    async fn register(&self, body: Value) -> Response {
        self.client
            .post(self.url("/api/v1/books"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn register_book(&self, title: &str) -> Uuid {
        let response = self
            .register(serde_json::json!({"title": title, "author": "Ursula K. Le Guin", "rentalFee": 300}))
            .await;
        assert_eq!(response.status(), 201);
        let book: Value = response.json().await.unwrap();
        book["id"].as_str().unwrap().parse().unwrap()
    }

    async fn book(&self, id: Uuid) -> Value {
        let response = self
            .client
            .get(self.url(&format!("/api/v1/books/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

pub fn rented(book_id: Uuid, rental_id: Uuid) -> BookRented {
    let now = chrono::Utc::now();
    BookRented {
        rental_id,
        book_id,
        user_id: Uuid::new_v4(),
        rental_fee: 300,
        payment_id: Uuid::new_v4(),
        rented_at: now,
        due_at: now + chrono::Duration::days(14),
    }
}

pub fn returned(book_id: Uuid, rental_id: Uuid) -> BookReturned {
    BookReturned {
        rental_id,
        book_id,
        user_id: Uuid::new_v4(),
        returned_at: chrono::Utc::now(),
        reason: shared_events::ReturnReason::Returned,
    }
}

pub fn cancelled(book_id: Uuid, rental_id: Uuid) -> RentalCancelled {
    RentalCancelled {
        rental_id,
        book_id,
        user_id: Uuid::new_v4(),
        payment_id: Uuid::new_v4(),
        cancelled_at: chrono::Utc::now(),
    }
}

/// Waits until the book's status and times-rented count are as given.
pub async fn book_becomes(app: &App, id: Uuid, status: &str, times_rented: u64) {
    fleet_testing::eventually(
        &format!("book {id} to be {status} x{times_rented}"),
        WAIT,
        || async {
            let book = app.book(id).await;
            (book["status"] == status && book["timesRented"] == times_rented).then_some(())
        },
    )
    .await
}

pub fn topic(world: &World) -> String {
    world.kafka.topic(Topic::Book)
}
