pub use fleet_testing::{TestApp as App, WAIT, assert_problem, assert_settles, sample};
use fleet_testing::{
    TestDatabase, TestIdentity, TestKafka, env_of, eventually, init_logs, service_env,
};
use reqwest::Response;
use serde_json::{Value, json};
use shared_events::Topic;
use uuid::Uuid;

/// rental, payment and book-management in one database (a schema and role each) and one broker.
pub struct Fleet {
    pub db: TestDatabase,
    pub kafka: TestKafka,
    /// Issues the customers' and managers' access tokens.
    pub identity: TestIdentity,
    rental_url: String,
    payment_url: String,
    book_url: String,
}

/// Test settings for rental: a short breaker window and a quick reconciler.
pub const RENTAL_DEFAULTS: &[(&str, &str)] = &[
    ("PAYMENT_TIMEOUT_MS", "1000"),
    ("BREAKER_MIN_CALLS", "3"),
    ("BREAKER_WINDOW_MS", "1000"),
    ("BREAKER_OPEN_MS", "1000"),
    ("BREAKER_HALF_OPEN_CALLS", "1"),
    ("RECONCILE_AFTER_MS", "2100"),
    ("RECONCILE_INTERVAL_MS", "200"),
];

impl Fleet {
    pub async fn new() -> Self {
        init_logs();
        let db = TestDatabase::create().await;
        let rental_url = db.add_service("rental_svc", "rental").await;
        let payment_url = db.add_service("payment_svc", "payment").await;
        let book_url = db.add_service("book_svc", "book").await;
        let kafka = TestKafka::start().await;
        let identity = TestIdentity::start().await;
        Self {
            identity,
            db,
            kafka,
            rental_url,
            payment_url,
            book_url,
        }
    }

    fn env(
        &self,
        principal: &str,
        database_url: &str,
        extra: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let mut env = service_env(principal, database_url, &self.kafka);
        env.retain(|(k, _)| !extra.iter().any(|(name, _)| name == k));
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    }

    /// payment, on `port` when given (so it can come back at the same address). It checks the
    /// tokens of its public reads and rental's token on its internal endpoints.
    pub async fn payment(&self, port: Option<u16>, extra: &[(&str, &str)]) -> App {
        let port = port.map(|p| p.to_string()).unwrap_or_else(|| "0".into());
        let mut settings = vec![("HTTP_PORT", port.as_str())];
        settings.extend_from_slice(extra);
        let mut env = self.env("payment", &self.payment_url, &settings);
        env.extend(self.identity.env());
        let config = payment::Config::from_env(env_of(&env)).unwrap();
        App::spawn(payment::build(config).await.unwrap()).await
    }

    /// book-management, with a client signed in as a manager.
    pub async fn books(&self) -> App {
        let mut env = self.env("book-management", &self.book_url, &[]);
        env.extend(self.identity.env());
        let config = book_management::Config::from_env(env_of(&env)).unwrap();
        let manager = self.identity.token(Uuid::new_v4(), &["manager"]);
        App::spawn(book_management::build(config).await.unwrap())
            .await
            .signed_in_as(&manager)
    }

    /// rental's settings for a payment at `payment`: the test defaults with `extra` on top.
    pub fn rental_env(&self, payment: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut settings: Vec<(&str, &str)> = RENTAL_DEFAULTS.to_vec();
        settings.push(("PAYMENT_URL", payment));
        settings.retain(|(k, _)| !extra.iter().any(|(name, _)| name == k));
        settings.extend_from_slice(extra);
        let mut env = self.env("rental", &self.rental_url, &settings);
        env.extend(self.identity.env());
        env.extend(self.identity.client_env());
        env
    }

    pub async fn rental(&self, payment: &str, extra: &[(&str, &str)]) -> App {
        self.rental_with_clock(payment, extra, rental::application::Clock::default())
            .await
    }

    /// rental, recording times by `clock` (one that drifts, say).
    pub async fn rental_with_clock(
        &self,
        payment: &str,
        extra: &[(&str, &str)],
        clock: rental::application::Clock,
    ) -> App {
        let config = rental::Config::from_env(env_of(&self.rental_env(payment, extra))).unwrap();
        App::spawn(rental::build_with_clock(config, clock).await.unwrap()).await
    }

    /// Registers a book with book-management and waits until rental's catalogue has it.
    pub async fn book(&self, books: &App, fee: u32) -> Uuid {
        let response = books
            .client
            .post(books.url("/api/v1/books"))
            .json(&json!({"title": "The Left Hand of Darkness", "author": "Ursula K. Le Guin", "rentalFee": fee}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let id: Uuid = response.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        self.in_catalogue(id, false).await;
        id
    }

    /// Waits until rental's replica holds the book (retired or not).
    pub async fn in_catalogue(&self, book_id: Uuid, retired: bool) {
        eventually("the book in rental's catalogue", WAIT, || async {
            let found: Option<bool> =
                sqlx::query_scalar("SELECT retired FROM rental.catalogue WHERE book_id = $1")
                    .bind(book_id)
                    .fetch_optional(&self.db.admin)
                    .await
                    .unwrap();
            (found == Some(retired)).then_some(())
        })
        .await
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.db.admin)
            .await
            .unwrap()
    }

    pub async fn rental_status(&self, id: Uuid) -> String {
        sqlx::query_scalar("SELECT status FROM rental.rentals WHERE id = $1")
            .bind(id)
            .fetch_one(&self.db.admin)
            .await
            .unwrap()
    }

    pub fn topic(&self, topic: Topic) -> String {
        self.kafka.topic(topic)
    }

    pub async fn agree(&self) {
        assert_settles(
            &self.db.admin,
            "rental and payment disagree",
            include_str!("../rentals-and-payments-disagree.sql"),
            WAIT,
        )
        .await;
    }
}

/// The rental API as one signed-in customer calls it.
pub struct Customer {
    pub id: Uuid,
    pub token: String,
}

impl Fleet {
    /// A new customer with a valid access token.
    pub fn customer(&self) -> Customer {
        let id = Uuid::new_v4();
        Customer {
            id,
            token: self.identity.token(id, &["customer"]),
        }
    }
}

impl Customer {
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    pub async fn rent(&self, rental: &App, book_id: Uuid) -> Response {
        rental
            .client
            .post(rental.url("/api/v1/rentals"))
            .header("authorization", self.bearer())
            .json(&json!({"bookId": book_id}))
            .send()
            .await
            .unwrap()
    }

    /// Rents with an `Idempotency-Key`.
    pub async fn rent_with_key(&self, rental: &App, book_id: Uuid, key: &str) -> Response {
        rental
            .client
            .post(rental.url("/api/v1/rentals"))
            .header("authorization", self.bearer())
            .header("idempotency-key", key)
            .json(&json!({"bookId": book_id}))
            .send()
            .await
            .unwrap()
    }

    /// Rents and expects 201; returns the rental.
    pub async fn rents(&self, rental: &App, book_id: Uuid) -> Value {
        let response = self.rent(rental, book_id).await;
        assert_eq!(response.status(), 201, "{:?}", response.text().await);
        response.json().await.unwrap()
    }

    pub async fn act(&self, rental: &App, id: &str, action: &str) -> Response {
        rental
            .client
            .post(rental.url(&format!("/api/v1/rentals/{id}/{action}")))
            .header("authorization", self.bearer())
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, rental: &App, id: &str) -> Response {
        rental
            .client
            .get(rental.url(&format!("/api/v1/rentals/{id}")))
            .header("authorization", self.bearer())
            .send()
            .await
            .unwrap()
    }
}

/// A port held for this test, for a service that must come back at the same address.
pub fn free_port() -> fleet_testing::ReservedPort {
    fleet_testing::ReservedPort::new()
}

pub fn id_of(value: &Value) -> &str {
    value["id"].as_str().unwrap()
}

pub async fn payment_of(fleet: &Fleet, rental_id: &str) -> Option<(Uuid, String)> {
    sqlx::query_as("SELECT id, status FROM payment.payments WHERE rental_id = $1::uuid")
        .bind(rental_id)
        .fetch_optional(&fleet.db.admin)
        .await
        .unwrap()
}

/// A book's status and times rented, as book-management answers them.
pub async fn book_status(books: &App, id: Uuid) -> (String, u64) {
    let book: Value = books
        .client
        .get(books.url(&format!("/api/v1/books/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        book["status"].as_str().unwrap().to_owned(),
        book["timesRented"].as_u64().unwrap(),
    )
}
