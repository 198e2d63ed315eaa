use std::ops::Deref;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fleet_testing::{TestWorld, env_of};
use rdkafka::producer::{FutureProducer, FutureRecord};
use reqwest::Response;
use serde_json::Value;
use shared_events::{
    BookRegistered, BookRented, BookRetired, BookReturned, BookUpdated, CloudEvent, DomainEvent,
    PaymentApproved, PaymentRefunded, RentalCancelled, Topic, UserRegistered,
};
use uuid::Uuid;
use view::{Config, build};

pub use fleet_testing::{TestApp as App, WAIT, assert_problem, eventually, sample};

/// One published event, ready to be sent (again, with the same id, to replay it).
#[derive(Debug, Clone)]
pub struct Event {
    pub id: Uuid,
    pub topic: Topic,
    pub key: String,
    pub payload: Vec<u8>,
}

impl Event {
    pub fn of<E: DomainEvent>(source: &str, event: E) -> Self {
        let envelope = CloudEvent::new(source, event);
        Self {
            id: envelope.id,
            topic: E::TOPIC,
            key: envelope.data.key(),
            payload: serde_json::to_vec(&envelope).unwrap(),
        }
    }
}

/// view's world: its database, a broker and a token issuer; replicas of the view run in it.
pub struct World {
    world: TestWorld,
    producer: FutureProducer,
}

impl Deref for World {
    type Target = TestWorld;
    fn deref(&self) -> &TestWorld {
        &self.world
    }
}

impl World {
    pub async fn new() -> Self {
        let world = TestWorld::new("view_svc", "view").await;
        let producer = world.kafka.producer();
        Self { world, producer }
    }

    /// A replica of the view in this process, once it is ready; its client is signed in as a
    /// manager.
    pub async fn spawn(&self) -> App {
        let config = Config::from_env(env_of(&self.env())).expect("valid test configuration");
        App::spawn(build(config).await.expect("the service builds"))
            .await
            .signed_in_as(&self.manager_token())
    }

    pub fn manager_token(&self) -> String {
        self.identity.token(Uuid::new_v4(), &["manager"])
    }

    pub fn customer_token(&self, customer: Uuid) -> String {
        self.identity.token(customer, &["customer"])
    }

    pub async fn send(&self, event: &Event) {
        let topic = self.kafka.topic(event.topic);
        self.producer
            .send(
                FutureRecord::to(&topic)
                    .key(&event.key)
                    .payload(&event.payload),
                Duration::from_secs(5),
            )
            .await
            .expect("test event delivered");
    }

    /// Publishes `events` in this order (each partition keeps it; the view reads partitions
    /// side by side).
    pub async fn publish_all(&self, events: &[Event]) {
        for event in events {
            self.send(event).await;
        }
    }

    /// Publishes `events` one at a time, each once the one before is applied: the view sees
    /// them in exactly this order, across topics and partitions. Needs a running view.
    pub async fn feed_in_order(&self, events: &[Event]) {
        let mut applied = self.count("inbox").await;
        for event in events {
            self.send(event).await;
            applied += 1;
            self.applied(applied).await;
        }
    }

    /// Waits until the view has applied `count` distinct events.
    pub async fn applied(&self, count: i64) {
        eventually(&format!("{count} events applied"), WAIT, || async {
            (self.count("inbox").await == count).then_some(())
        })
        .await
    }
}

/// A whole board as a manager reads it, every page.
#[derive(Debug, Clone, PartialEq)]
pub struct Boards {
    pub rentals: Vec<Value>,
    pub books: Vec<Value>,
}

impl Boards {
    pub fn rental(&self, id: Uuid) -> &Value {
        find(&self.rentals, id)
    }

    pub fn book(&self, id: Uuid) -> &Value {
        find(&self.books, id)
    }
}

pub fn find(items: &[Value], id: Uuid) -> &Value {
    items
        .iter()
        .find(|item| item["id"] == id.to_string())
        .unwrap_or_else(|| panic!("{id} missing from {items:#?}"))
}

pub async fn get(app: &App, path: &str, token: Option<&str>) -> Response {
    let mut request = app.client.get(app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

pub async fn page(app: &App, path: &str, token: Option<&str>) -> Value {
    let response = get(app, path, token).await;
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

/// Every item of a paged list, following `next` with pages of `limit`.
pub async fn every_page(app: &App, path: &str, limit: u32, token: Option<&str>) -> Vec<Value> {
    let join = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let url = match &after {
            Some(after) => format!("{path}{join}limit={limit}&after={after}"),
            None => format!("{path}{join}limit={limit}"),
        };
        let page = page(app, &url, token).await;
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return items,
        }
    }
}

pub async fn boards(app: &App) -> Boards {
    Boards {
        rentals: every_page(app, "/api/v1/views/rentals", 100, None).await,
        books: every_page(app, "/api/v1/views/books", 100, None).await,
    }
}

pub fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

// --- the fleet's events, as its services publish them -------------------------------------------

pub fn user_registered(id: Uuid, name: &str) -> Event {
    Event::of(
        "user",
        UserRegistered {
            user_id: id,
            name: name.into(),
            email: format!("{}@example.org", name.to_lowercase()),
        },
    )
}

pub fn book_registered(id: Uuid, title: &str, fee: u32) -> Event {
    Event::of(
        "book-management",
        BookRegistered {
            book_id: id,
            title: title.into(),
            author: "Ursula K. Le Guin".into(),
            rental_fee: fee,
        },
    )
}

pub fn book_updated(id: Uuid, title: &str, fee: u32) -> Event {
    Event::of(
        "book-management",
        BookUpdated {
            book_id: id,
            title: title.into(),
            author: "Ursula K. Le Guin".into(),
            rental_fee: fee,
        },
    )
}

pub fn book_retired(id: Uuid) -> Event {
    Event::of("book-management", BookRetired { book_id: id })
}

/// One rental's facts, for making its events.
#[derive(Debug, Clone, Copy)]
pub struct Rental {
    pub id: Uuid,
    pub book: Uuid,
    pub customer: Uuid,
    pub payment: Uuid,
    pub fee: u32,
    pub rented_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
}

impl Rental {
    /// Rented `days_ago`, due 14 days after.
    pub fn new(book: Uuid, customer: Uuid, days_ago: i64) -> Self {
        let rented_at = Utc::now() - chrono::Duration::days(days_ago);
        Self {
            id: Uuid::now_v7(),
            book,
            customer,
            payment: Uuid::now_v7(),
            fee: 450,
            rented_at,
            due_at: rented_at + chrono::Duration::days(14),
        }
    }

    pub fn rented(&self) -> Event {
        Event::of(
            "rental",
            BookRented {
                rental_id: self.id,
                book_id: self.book,
                user_id: self.customer,
                rental_fee: self.fee,
                payment_id: self.payment,
                rented_at: self.rented_at,
                due_at: self.due_at,
            },
        )
    }

    pub fn approved(&self) -> Event {
        Event::of(
            "payment",
            PaymentApproved {
                payment_id: self.payment,
                rental_id: self.id,
                user_id: self.customer,
                amount: self.fee,
                approved_at: self.rented_at,
            },
        )
    }

    pub fn cancelled(&self) -> Event {
        Event::of(
            "rental",
            RentalCancelled {
                rental_id: self.id,
                book_id: self.book,
                user_id: self.customer,
                payment_id: self.payment,
                cancelled_at: self.rented_at + chrono::Duration::hours(1),
            },
        )
    }

    pub fn refunded(&self) -> Event {
        Event::of(
            "payment",
            PaymentRefunded {
                payment_id: self.payment,
                rental_id: self.id,
                user_id: self.customer,
                amount: self.fee,
                refunded_at: self.rented_at + chrono::Duration::hours(2),
            },
        )
    }

    pub fn returned(&self) -> Event {
        Event::of(
            "rental",
            BookReturned {
                rental_id: self.id,
                book_id: self.book,
                user_id: self.customer,
                returned_at: self.rented_at + chrono::Duration::days(3),
                reason: shared_events::ReturnReason::Returned,
            },
        )
    }
}

/// A small fleet's history: three customers, three books, four rentals ending every way.
pub struct Story {
    pub ursula: Uuid,
    pub octavia: Uuid,
    pub ann: Uuid,
    pub dispossessed: Uuid,
    pub kindred: Uuid,
    pub parable: Uuid,
    /// Ursula's, cancelled and refunded.
    pub cancelled: Rental,
    /// Ursula's, returned; its due date has passed since.
    pub returned: Rental,
    /// Octavia's, still rented past its due date.
    pub overdue: Rental,
    /// Ann's, rented today.
    pub rented: Rental,
    /// Every event, in the order the fleet published them.
    pub events: Vec<Event>,
}

impl Story {
    pub fn new() -> Self {
        let (ursula, octavia, ann) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let (dispossessed, kindred, parable) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let cancelled = Rental::new(dispossessed, ursula, 30);
        let returned = Rental::new(dispossessed, ursula, 20);
        let overdue = Rental::new(kindred, octavia, 15);
        let rented = Rental::new(dispossessed, ann, 0);
        let events = vec![
            user_registered(ursula, "Ursula"),
            user_registered(octavia, "Octavia"),
            book_registered(dispossessed, "The Dispossessed", 450),
            book_registered(kindred, "Kindred", 300),
            book_registered(parable, "Parable of the Sower", 350),
            book_updated(kindred, "Kindred (annotated)", 320),
            cancelled.rented(),
            cancelled.approved(),
            cancelled.cancelled(),
            cancelled.refunded(),
            returned.rented(),
            returned.approved(),
            overdue.rented(),
            overdue.approved(),
            returned.returned(),
            user_registered(ann, "Ann"),
            rented.rented(),
            rented.approved(),
            book_retired(parable),
        ];
        Self {
            ursula,
            octavia,
            ann,
            dispossessed,
            kindred,
            parable,
            cancelled,
            returned,
            overdue,
            rented,
            events,
        }
    }

    pub fn count(&self) -> i64 {
        self.events.len() as i64
    }

    /// Checks `boards` is what the whole story makes.
    pub fn assert_told(&self, boards: &Boards) {
        assert_eq!(boards.rentals.len(), 4, "{:#?}", boards.rentals);
        let cancelled = boards.rental(self.cancelled.id);
        assert_eq!(cancelled["status"], "CANCELLED");
        assert_eq!(cancelled["paymentStatus"], "REFUNDED");
        assert_eq!(cancelled["customerName"], "Ursula");
        assert_eq!(cancelled["bookTitle"], "The Dispossessed");
        assert_eq!(cancelled["paymentId"], self.cancelled.payment.to_string());
        assert!(cancelled["cancelledAt"].is_string() && cancelled["refundedAt"].is_string());
        let returned = boards.rental(self.returned.id);
        assert_eq!(returned["status"], "RETURNED");
        assert_eq!(returned["paymentStatus"], "APPROVED");
        assert_eq!(returned["overdue"], false, "returned late, but returned");
        let overdue = boards.rental(self.overdue.id);
        assert_eq!(overdue["status"], "RENTED");
        assert_eq!(overdue["overdue"], true);
        assert_eq!(overdue["customerName"], "Octavia");
        assert_eq!(overdue["bookTitle"], "Kindred (annotated)");
        let rented = boards.rental(self.rented.id);
        assert_eq!(rented["status"], "RENTED");
        assert_eq!(rented["overdue"], false);
        assert_eq!(rented["customerName"], "Ann");
        assert_eq!(rented["rentalFee"], 450);

        assert_eq!(boards.books.len(), 3, "{:#?}", boards.books);
        let dispossessed = boards.book(self.dispossessed);
        assert_eq!(dispossessed["status"], "RENTED");
        assert_eq!(dispossessed["timesRented"], 3);
        assert_eq!(dispossessed["currentRenter"]["customerName"], "Ann");
        assert_eq!(
            dispossessed["currentRenter"]["rentalId"],
            self.rented.id.to_string()
        );
        let kindred = boards.book(self.kindred);
        assert_eq!(kindred["status"], "RENTED");
        assert_eq!(kindred["rentalFee"], 320);
        assert_eq!(
            kindred["currentRenter"]["customerId"],
            self.octavia.to_string()
        );
        let parable = boards.book(self.parable);
        assert_eq!(parable["status"], "RETIRED");
        assert_eq!(parable["timesRented"], 0);
        assert!(parable["currentRenter"].is_null());
    }
}

/// The boards after `events`, fed in exactly this order to a view of a world of its own.
pub async fn boards_after(events: &[Event]) -> Boards {
    let world = World::new().await;
    let app = world.spawn().await;
    world.feed_in_order(events).await;
    let boards = boards(&app).await;
    app.stop().await;
    boards
}
