use std::time::Duration;

use book_management::{Config, build};
use reqwest::{Client, Response};
use serde_json::Value;
use service_kit::testing::{TestDatabase, TestKafka, env_of, init_logs, service_env};
use shared_events::{BookRented, BookReturned, CloudEvent, DomainEvent, RentalCancelled, Topic};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const WAIT: Duration = Duration::from_secs(20);

/// One service's world: its database and a broker. Replicas of the service run in it.
pub struct World {
    pub db: TestDatabase,
    pub kafka: TestKafka,
    pub database_url: String,
}

impl World {
    pub async fn new() -> Self {
        init_logs();
        let db = TestDatabase::create().await;
        let database_url = db.add_service("book_svc", "book").await;
        let kafka = TestKafka::start().await;
        Self {
            db,
            kafka,
            database_url,
        }
    }

    pub fn env(&self) -> Vec<(String, String)> {
        service_env(&self.database_url, &self.kafka)
    }

    /// A replica of the service in this process, on a random port.
    pub async fn spawn(&self, extra: &[(&str, &str)]) -> App {
        let mut env = self.env();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = Config::from_env(env_of(&env)).expect("valid test configuration");
        let service = build(config).await.expect("the service builds");
        let address = format!("http://127.0.0.1:{}", service.port());
        let stop = service.stop_token();
        let running = tokio::spawn(service.run());
        let app = App {
            address,
            client: Client::new(),
            stop,
            running: Some(running),
        };
        service_kit::testing::wait_ready(&app.address, WAIT).await;
        app
    }

    pub fn pool(&self) -> &PgPool {
        &self.db.admin
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM book.{table}"))
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    /// Publishes a rental event as the rental service would, returning its event id.
    pub async fn publish<E: DomainEvent>(&self, event: E) -> Uuid {
        let envelope = CloudEvent::new("rental", event.clone());
        self.publish_envelope(&envelope).await;
        envelope.id
    }

    pub async fn publish_envelope<E: DomainEvent>(&self, envelope: &CloudEvent<E>) {
        let payload = serde_json::to_vec(envelope).unwrap();
        self.kafka
            .send(E::TOPIC, &envelope.data.key(), &payload)
            .await;
    }
}

pub struct App {
    pub address: String,
    pub client: Client,
    stop: CancellationToken,
    running: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl App {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn register(&self, body: Value) -> Response {
        self.client
            .post(self.url("/api/v1/books"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Registers a valid book and returns its id.
    pub async fn register_book(&self, title: &str) -> Uuid {
        let response = self
            .register(serde_json::json!({"title": title, "author": "Ursula K. Le Guin", "rentalFee": 300}))
            .await;
        assert_eq!(response.status(), 201);
        let book: Value = response.json().await.unwrap();
        book["id"].as_str().unwrap().parse().unwrap()
    }

    pub async fn book(&self, id: Uuid) -> Value {
        let response = self
            .client
            .get(self.url(&format!("/api/v1/books/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Shuts the replica down as SIGTERM would and waits for it.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(running) = self.running.take() {
            running.await.unwrap().unwrap();
        }
    }
}

/// The value of a Prometheus sample whose line starts with `series`, summed over matches.
pub fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(series))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
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
    service_kit::testing::eventually(
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
