//! What a consumer of the fleet's topics states about a message: the CloudEvents envelope
//! (docs/design.md §4.1) around an event's `data`, with matchers where any value of the kind will
//! do, so the producer is held to the shape and the consumer to nothing it does not read.

use pact_consumer::prelude::*;
use pact_consumer::{json_pattern, term};

/// A UUID, as every id in the fleet is.
pub const UUID: &str = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";
/// An RFC 3339 time, as chrono writes a `DateTime<Utc>`.
pub const DATE_TIME: &str = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$";

/// Any UUID; `example` is the value the consumer test is fed.
pub fn uuid(example: &str) -> JsonPattern {
    term!(UUID, example).into()
}

/// Any RFC 3339 time.
pub fn date_time(example: &str) -> JsonPattern {
    term!(DATE_TIME, example).into()
}

/// The structured-mode CloudEvent carrying `data` as event `event_type`: what every consumer's
/// decoding needs (the envelope's required attributes; `type` picks the event).
pub fn envelope(event_type: &str, data: JsonPattern) -> JsonPattern {
    json_pattern!({
        "specversion": "1.0",
        "id": uuid("0192f1c4-7c3a-7000-8000-0000000000e1"),
        "type": event_type,
        "source": like!("a-service"),
        "subject": like!("0192f1c4-7c3a-7000-8000-0000000000a1"),
        "time": date_time("2026-11-22T10:00:00.123456Z"),
        "datacontenttype": "application/json",
        "data": data
    })
}

/// The examples the consumer tests are fed: one book, one customer, one rental, one payment,
/// so a consumer's handler can apply the messages in order.
pub mod example {
    pub const BOOK: &str = "0192f1c4-7c3a-7000-8000-0000000000b1";
    pub const CUSTOMER: &str = "0192f1c4-7c3a-7000-8000-0000000000c1";
    pub const RENTAL: &str = "0192f1c4-7c3a-7000-8000-0000000000a1";
    pub const PAYMENT: &str = "0192f1c4-7c3a-7000-8000-0000000000d1";
    pub const FEE: u32 = 450;
}

/// One message a consumer expects: its description (the event type, or the type and the case,
/// which is also how the producer's verification knows what to build) and its pattern.
pub struct Expected {
    pub description: &'static str,
    pub body: JsonPattern,
}

fn expected(event_type: &'static str, data: JsonPattern) -> Expected {
    Expected {
        description: event_type,
        body: envelope(event_type, data),
    }
}

/// The events as their consumers read them (docs/design.md §4.2): every field of `data`, since the
/// shared event types require each one.
pub mod expect {
    use super::example::*;
    use super::*;

    const AT: &str = "2026-11-22T10:00:00.123456Z";
    const DUE: &str = "2026-12-06T10:00:00.123456Z";

    pub fn book_registered() -> Expected {
        expected(
            "BookRegistered",
            json_pattern!({
                "bookId": uuid(BOOK),
                "title": like!("The Dispossessed"),
                "author": like!("Ursula K. Le Guin"),
                "rentalFee": like!(FEE)
            }),
        )
    }

    pub fn book_updated() -> Expected {
        expected(
            "BookUpdated",
            json_pattern!({
                "bookId": uuid(BOOK),
                "title": like!("The Dispossessed: An Ambiguous Utopia"),
                "author": like!("Ursula K. Le Guin"),
                "rentalFee": like!(500)
            }),
        )
    }

    pub fn book_retired() -> Expected {
        expected("BookRetired", json_pattern!({"bookId": uuid(BOOK)}))
    }

    pub fn book_rented() -> Expected {
        expected(
            "BookRented",
            json_pattern!({
                "rentalId": uuid(RENTAL),
                "bookId": uuid(BOOK),
                "userId": uuid(CUSTOMER),
                "rentalFee": like!(FEE),
                "paymentId": uuid(PAYMENT),
                "rentedAt": date_time(AT),
                "dueAt": date_time(DUE)
            }),
        )
    }

    pub fn rental_cancelled() -> Expected {
        expected(
            "RentalCancelled",
            json_pattern!({
                "rentalId": uuid(RENTAL),
                "bookId": uuid(BOOK),
                "userId": uuid(CUSTOMER),
                "paymentId": uuid(PAYMENT),
                "cancelledAt": date_time(AT)
            }),
        )
    }

    pub fn book_returned() -> Expected {
        expected(
            "BookReturned",
            json_pattern!({
                "rentalId": uuid(RENTAL),
                "bookId": uuid(BOOK),
                "userId": uuid(CUSTOMER),
                "returnedAt": date_time(AT)
            }),
        )
    }

    /// The end of a rental whose period ran out: a `BookReturned` that says so (consumers that
    /// do not read `reason` take it as any return, which frees the book all the same).
    pub fn book_expired() -> Expected {
        Expected {
            description: "BookReturned on expiry",
            body: envelope(
                "BookReturned",
                json_pattern!({
                    "rentalId": uuid(RENTAL),
                    "bookId": uuid(BOOK),
                    "userId": uuid(CUSTOMER),
                    "returnedAt": date_time(DUE),
                    "reason": "EXPIRED"
                }),
            ),
        }
    }

    pub fn payment_approved() -> Expected {
        expected(
            "PaymentApproved",
            json_pattern!({
                "paymentId": uuid(PAYMENT),
                "rentalId": uuid(RENTAL),
                "userId": uuid(CUSTOMER),
                "amount": like!(FEE),
                "approvedAt": date_time(AT)
            }),
        )
    }

    pub fn payment_refunded() -> Expected {
        expected(
            "PaymentRefunded",
            json_pattern!({
                "paymentId": uuid(PAYMENT),
                "rentalId": uuid(RENTAL),
                "userId": uuid(CUSTOMER),
                "amount": like!(FEE),
                "refundedAt": date_time(AT)
            }),
        )
    }

    pub fn user_registered() -> Expected {
        expected(
            "UserRegistered",
            json_pattern!({
                "userId": uuid(CUSTOMER),
                "name": like!("Ursula"),
                "email": like!("ursula@example.org")
            }),
        )
    }
}

/// A V4 message pact of `consumer` on `provider`'s topic, one message per `expected`.
pub fn message_pact(consumer: &str, provider: &str, expected: Vec<Expected>) -> PactBuilder {
    let mut builder = PactBuilder::new_v4(consumer, provider);
    builder.with_output_dir(crate::pacts::scratch_dir());
    for message in expected {
        builder.message_interaction(message.description, |mut m| {
            m.json_body(message.body);
            m
        });
    }
    builder
}

/// The messages of `builder`, as the consumer test is fed them: (description, payload).
pub fn messages(builder: &PactBuilder) -> Vec<(String, Vec<u8>)> {
    builder
        .messages()
        .map(|m| {
            let payload = m
                .contents
                .contents
                .value()
                .expect("the message has contents")
                .to_vec();
            (m.description, payload)
        })
        .collect()
}
