use std::ops::Deref;

use chrono::{DateTime, SubsecRound, Utc};
use fleet_testing::{TestWorld, env_of};
use points::{Config, build};
use reqwest::Response;
use serde_json::Value;
use shared_events::{
    BookRented, BookReturned, CloudEvent, DomainEvent, RentalCancelled, ReturnReason, Topic,
};
use uuid::Uuid;

pub use fleet_testing::{TestApp as App, WAIT, assert_problem, eventually, sample};

pub const MY_POINTS: &str = "/api/v1/points/me";

/// One published event, ready to be sent (again, with the same id, to redeliver it).
#[derive(Debug, Clone)]
pub struct Event {
    pub key: String,
    pub payload: Vec<u8>,
}

impl Event {
    pub fn of<E: DomainEvent>(event: E) -> Self {
        let envelope = CloudEvent::new("rental", event);
        Self {
            key: envelope.data.key(),
            payload: serde_json::to_vec(&envelope).unwrap(),
        }
    }
}

/// points' world: its database, a broker and a token issuer; replicas of points run in it.
pub struct World(TestWorld);

impl Deref for World {
    type Target = TestWorld;
    fn deref(&self) -> &TestWorld {
        &self.0
    }
}

impl World {
    pub async fn new() -> Self {
        Self(TestWorld::new("points_svc", "points").await)
    }

    /// A replica of points in this process, once it is ready.
    pub async fn spawn(&self, extra: &[(&str, &str)]) -> App {
        let config =
            Config::from_env(env_of(&self.env_with(extra))).expect("valid test configuration");
        App::spawn(build(config).await.expect("the service builds")).await
    }

    pub fn manager_token(&self) -> String {
        self.identity.token(Uuid::new_v4(), &["manager"])
    }

    pub fn customer_token(&self, customer: Uuid) -> String {
        self.identity.token(customer, &["customer"])
    }

    /// Publishes `events` on `rental.events` in this order: one book's events keep it (they share
    /// a partition); points reads the partitions side by side.
    pub async fn publish_all(&self, events: &[Event]) {
        for event in events {
            self.kafka
                .send(Topic::Rental, &event.key, &event.payload)
                .await;
        }
    }

    /// Waits until points has applied `count` distinct events.
    pub async fn applied(&self, count: usize) {
        eventually(&format!("{count} events applied"), WAIT, || async {
            (self.count("inbox").await == count as i64).then_some(())
        })
        .await
    }
}

/// One rental's facts, for making its events.
#[derive(Debug, Clone, Copy)]
pub struct Rental {
    pub id: Uuid,
    pub book: Uuid,
    pub customer: Uuid,
    pub fee: u32,
    pub rented_at: DateTime<Utc>,
}

impl Rental {
    /// A rental of a book of its own, started `days_ago`.
    pub fn new(customer: Uuid, fee: u32, days_ago: i64) -> Self {
        Self::of(Uuid::now_v7(), customer, fee, days_ago)
    }

    /// A rental of `book`, started `days_ago`.
    pub fn of(book: Uuid, customer: Uuid, fee: u32, days_ago: i64) -> Self {
        Self {
            id: Uuid::now_v7(),
            book,
            customer,
            fee,
            // What Postgres keeps, so that times read back compare equal.
            rented_at: Utc::now().trunc_subsecs(6) - chrono::Duration::days(days_ago),
        }
    }

    pub fn rented(&self) -> Event {
        Event::of(BookRented {
            rental_id: self.id,
            book_id: self.book,
            user_id: self.customer,
            rental_fee: self.fee,
            payment_id: Uuid::now_v7(),
            rented_at: self.rented_at,
            due_at: self.due_at(),
        })
    }

    pub fn cancelled(&self) -> Event {
        Event::of(RentalCancelled {
            rental_id: self.id,
            book_id: self.book,
            user_id: self.customer,
            payment_id: Uuid::now_v7(),
            cancelled_at: self.rented_at + chrono::Duration::minutes(10),
        })
    }

    /// Returned by the customer three days in.
    pub fn returned(&self) -> Event {
        Event::of(self.ended(ReturnReason::Returned))
    }

    /// Expired at its due date.
    pub fn expired(&self) -> Event {
        Event::of(self.ended(ReturnReason::Expired))
    }

    pub fn ended(&self, reason: ReturnReason) -> BookReturned {
        BookReturned {
            rental_id: self.id,
            book_id: self.book,
            user_id: self.customer,
            returned_at: self.ended_at(reason),
            reason,
        }
    }

    pub fn due_at(&self) -> DateTime<Utc> {
        self.rented_at + chrono::Duration::days(14)
    }

    pub fn ended_at(&self, reason: ReturnReason) -> DateTime<Utc> {
        match reason {
            ReturnReason::Returned => self.rented_at + chrono::Duration::days(3),
            ReturnReason::Expired => self.due_at(),
        }
    }
}

pub async fn get(app: &App, path: &str, token: Option<&str>) -> Response {
    let mut request = app.client.get(app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// The statement at `path`, checked to be a 200.
pub async fn statement(app: &App, path: &str, token: &str) -> Value {
    let response = get(app, path, Some(token)).await;
    assert_eq!(
        response.status(),
        200,
        "{path}: {:?}",
        response.text().await
    );
    response.json().await.unwrap()
}

/// A customer's statement as a manager reads it.
pub async fn points_of(world: &World, app: &App, customer: Uuid) -> Value {
    statement(
        app,
        &format!("/api/v1/points/{customer}"),
        &world.manager_token(),
    )
    .await
}

pub fn balance(statement: &Value) -> u64 {
    statement["balance"].as_u64().expect("a balance")
}

pub fn history(statement: &Value) -> &Vec<Value> {
    statement["history"].as_array().expect("a history")
}

/// The rental ids of a history, in its order.
pub fn rental_ids(statement: &Value) -> Vec<String> {
    history(statement)
        .iter()
        .map(|entry| entry["rentalId"].as_str().unwrap().to_owned())
        .collect()
}
