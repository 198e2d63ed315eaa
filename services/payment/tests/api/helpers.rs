use std::ops::Deref;

use fleet_testing::{TestWorld, TopicReader, env_of};
use payment::{Config, build};
use reqwest::Response;
use serde_json::{Value, json};
use shared_events::{BookRented, BookReturned, DomainEvent, RentalCancelled, Topic};
use uuid::Uuid;

pub use fleet_testing::{TestApp as App, WAIT, assert_problem as refused, sample};

/// payment's world: its database and a broker; replicas of the service run in it.
pub struct World(TestWorld);

impl Deref for World {
    type Target = TestWorld;
    fn deref(&self) -> &TestWorld {
        &self.0
    }
}

impl World {
    pub async fn new() -> Self {
        Self(TestWorld::new("payment_svc", "payment").await)
    }

    /// A replica of the service in this process, once it is ready; its client is signed in as a
    /// manager, who reads every payment. The internal calls carry rental's token.
    pub async fn spawn(&self, extra: &[(&str, &str)]) -> App {
        let config =
            Config::from_env(env_of(&self.env_with(extra))).expect("valid test configuration");
        App::spawn(build(config).await.expect("the service builds"))
            .await
            .signed_in_as(&self.manager_token())
    }

    pub fn manager_token(&self) -> String {
        self.identity.token(Uuid::new_v4(), &["manager"])
    }

    /// A token of customer `user_id`.
    pub fn customer_token(&self, user_id: Uuid) -> String {
        self.identity.token(user_id, &["customer"])
    }

    /// Everything published on `payment.events`, from the beginning.
    pub async fn payment_events(&self) -> TopicReader {
        self.kafka.reader(&self.kafka.topic(Topic::Payment)).await
    }

    /// Publishes a rental event as the rental service would, returning its event id.
    pub async fn publish<E: DomainEvent>(&self, event: E) -> Uuid {
        self.0.publish("rental", event).await
    }
}

pub const INTERNAL_PAYMENTS: &str = "/internal/v1/payments";

/// A client without a token, as anyone who has not signed in calls payment.
pub fn anonymous() -> reqwest::Client {
    reqwest::Client::new()
}

/// A client carrying rental's own token, as rental calls payment's internal endpoints.
pub fn as_rental() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", fleet_testing::rental_token())
            .parse()
            .unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// payment's API, as a test calls it: the internal calls as rental makes them (rental's token),
/// the public reads with the app's client.
pub trait PaymentApi {
    async fn pay(&self, body: Value) -> Response;

    /// Pays for a new rental and returns the payment, checking it was made now (201).
    async fn pay_for(&self, rental_id: Uuid, user_id: Uuid, amount: u32) -> Value;

    /// `GET /api/v1/payments/{id}`, checked to answer 200.
    async fn payment(&self, id: &str) -> Value;

    async fn refund(&self, id: &str) -> Response;

    /// rental's lookup: `GET /internal/v1/payments?rentalId=`.
    async fn look_up(&self, rental_id: Uuid) -> Response;
}

impl PaymentApi for App {
    async fn pay(&self, body: Value) -> Response {
        as_rental()
            .post(self.url(INTERNAL_PAYMENTS))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Pays for a new rental and returns the payment, checking it was made now (201).
    async fn pay_for(&self, rental_id: Uuid, user_id: Uuid, amount: u32) -> Value {
        let response = self
            .pay(json!({"rentalId": rental_id, "userId": user_id, "amount": amount}))
            .await;
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    async fn payment(&self, id: &str) -> Value {
        let response = self
            .client
            .get(self.url(&format!("/api/v1/payments/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn refund(&self, id: &str) -> Response {
        as_rental()
            .post(self.url(&format!("{INTERNAL_PAYMENTS}/{id}/refund")))
            .send()
            .await
            .unwrap()
    }

    async fn look_up(&self, rental_id: Uuid) -> Response {
        as_rental()
            .get(self.url(INTERNAL_PAYMENTS))
            .query(&[("rentalId", rental_id)])
            .send()
            .await
            .unwrap()
    }
}

/// The id of a payment as the API answered it.
pub fn id_of(payment: &Value) -> &str {
    payment["id"].as_str().expect("a payment id")
}

pub fn cancelled(book_id: Uuid, rental_id: Uuid, payment_id: Uuid) -> RentalCancelled {
    RentalCancelled {
        rental_id,
        book_id,
        user_id: Uuid::new_v4(),
        payment_id,
        cancelled_at: chrono::Utc::now(),
    }
}

pub fn rented(book_id: Uuid, rental_id: Uuid, payment_id: Uuid) -> BookRented {
    let now = chrono::Utc::now();
    BookRented {
        rental_id,
        book_id,
        user_id: Uuid::new_v4(),
        rental_fee: 300,
        payment_id,
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

/// Waits until the payment has `status`, and returns it.
pub async fn payment_becomes(app: &App, id: &str, status: &str) -> Value {
    fleet_testing::eventually(&format!("payment {id} to be {status}"), WAIT, || async {
        let payment = app.payment(id).await;
        (payment["status"] == status).then_some(payment)
    })
    .await
}

/// Waits until the consumer has recorded `count` events in its inbox.
pub async fn inbox_holds(world: &World, count: i64) {
    fleet_testing::eventually(&format!("{count} events in the inbox"), WAIT, || async {
        (world.count("inbox").await == count).then_some(())
    })
    .await
}
