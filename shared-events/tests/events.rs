use chrono::{TimeZone, Utc};
use serde_json::json;
use shared_events::*;
use uuid::Uuid;

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn at(secs: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
}

fn round_trip<
    E: DomainEvent + PartialEq,
    T: TopicEvents + PartialEq + std::fmt::Debug + From<E>,
>(
    event: E,
) -> serde_json::Value {
    let envelope = CloudEvent::new("test", event.clone());
    let bytes = serde_json::to_vec(&envelope).unwrap();
    let raw = RawEvent::from_slice(&bytes).unwrap();
    assert_eq!(raw.id, envelope.id);
    assert_eq!(raw.event_type, E::TYPE);
    assert_eq!(raw.decode::<T>().unwrap(), Some(T::from(event)));
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn every_event_survives_a_round_trip_through_its_envelope() {
    round_trip::<_, BookEvent>(BookRegistered {
        book_id: id(1),
        title: "Dune".into(),
        author: "Herbert".into(),
        rental_fee: 300,
    });
    round_trip::<_, BookEvent>(BookUpdated {
        book_id: id(1),
        title: "Dune".into(),
        author: "F. Herbert".into(),
        rental_fee: 350,
    });
    round_trip::<_, BookEvent>(BookRetired { book_id: id(1) });
    round_trip::<_, RentalEvent>(BookRented {
        rental_id: id(2),
        book_id: id(1),
        user_id: id(3),
        rental_fee: 300,
        payment_id: id(4),
        rented_at: at(0),
        due_at: at(86_400),
    });
    round_trip::<_, RentalEvent>(RentalCancelled {
        rental_id: id(2),
        book_id: id(1),
        user_id: id(3),
        payment_id: id(4),
        cancelled_at: at(10),
    });
    round_trip::<_, RentalEvent>(BookReturned {
        rental_id: id(2),
        book_id: id(1),
        user_id: id(3),
        returned_at: at(20),
        reason: shared_events::ReturnReason::Expired,
    });
    round_trip::<_, PaymentEvent>(PaymentApproved {
        payment_id: id(4),
        rental_id: id(2),
        user_id: id(3),
        amount: 300,
        approved_at: at(1),
    });
    round_trip::<_, PaymentEvent>(PaymentRefunded {
        payment_id: id(4),
        rental_id: id(2),
        user_id: id(3),
        amount: 300,
        refunded_at: at(11),
    });
    round_trip::<_, UserEvent>(UserRegistered {
        user_id: id(3),
        name: "Ada".into(),
        email: "ada@example.com".into(),
    });
}

#[test]
fn the_envelope_is_cloudevents_structured_json_with_the_published_field_names() {
    let rented = BookRented {
        rental_id: id(2),
        book_id: id(1),
        user_id: id(3),
        rental_fee: 300,
        payment_id: id(4),
        rented_at: at(0),
        due_at: at(86_400),
    };
    let json = round_trip::<_, RentalEvent>(rented);
    assert_eq!(json["specversion"], "1.0");
    assert_eq!(json["type"], "BookRented");
    assert_eq!(json["source"], "test");
    assert_eq!(json["subject"], id(2).to_string());
    assert_eq!(json["datacontenttype"], "application/json");
    assert_eq!(json["correlationid"], id(2).to_string());
    assert!(
        json.get("traceparent").is_none(),
        "absent extensions are left out"
    );
    assert_eq!(
        json["data"],
        json!({
            "rentalId": id(2), "bookId": id(1), "userId": id(3), "rentalFee": 300,
            "paymentId": id(4), "rentedAt": "2023-11-14T22:13:20Z", "dueAt": "2023-11-15T22:13:20Z"
        })
    );
}

#[test]
fn topics_and_keys_follow_the_design() {
    let rented = BookRented {
        rental_id: id(2),
        book_id: id(1),
        user_id: id(3),
        rental_fee: 1,
        payment_id: id(4),
        rented_at: at(0),
        due_at: at(1),
    };
    assert_eq!(BookRented::TOPIC.name(), "rental.events");
    assert_eq!(
        rented.key(),
        id(1).to_string(),
        "rental events are keyed by book"
    );
    let approved = PaymentApproved {
        payment_id: id(4),
        rental_id: id(2),
        user_id: id(3),
        amount: 1,
        approved_at: at(0),
    };
    assert_eq!(
        approved.key(),
        id(2).to_string(),
        "payment events are keyed by rental"
    );
    assert_eq!(BookRetired { book_id: id(1) }.key(), id(1).to_string());
    assert_eq!(
        UserRegistered {
            user_id: id(3),
            name: "A".into(),
            email: "a@b.c".into()
        }
        .key(),
        id(3).to_string()
    );
    assert_eq!(Topic::Payment.dlq_name(), "payment.events.dlq");
    let names: Vec<_> = Topic::ALL.iter().map(|t| t.name()).collect();
    assert_eq!(
        names,
        [
            "book.events",
            "rental.events",
            "payment.events",
            "user.events"
        ]
    );
}

#[test]
fn unknown_event_types_are_skipped_and_bad_data_is_an_error() {
    let raw = RawEvent::from_slice(
        br#"{"specversion":"1.0","id":"00000000-0000-0000-0000-000000000009","type":"RentalExtended",
            "source":"rental","subject":"x","time":"2026-01-01T00:00:00Z","datacontenttype":"application/json","data":{}}"#,
    )
    .unwrap();
    assert_eq!(raw.decode::<RentalEvent>().unwrap(), None);

    let mut bad = raw.clone();
    bad.event_type = "BookRented".into();
    let err = bad.decode::<RentalEvent>().unwrap_err();
    assert!(
        err.to_string()
            .starts_with("BookRented data does not match"),
        "{err}"
    );

    assert!(matches!(
        RawEvent::from_slice(b"not json"),
        Err(DecodeError::Envelope(_))
    ));
    let v2 = serde_json::to_vec(&CloudEvent {
        specversion: "2.0".into(),
        ..raw
    })
    .unwrap();
    assert!(matches!(
        RawEvent::from_slice(&v2),
        Err(DecodeError::SpecVersion(_))
    ));
}

#[test]
fn newer_producers_may_add_fields() {
    let data = json!({"bookId": id(1), "title": "T", "author": "A", "rentalFee": 5, "isbn": "978"});
    let event = BookEvent::decode("BookRegistered", &data).unwrap();
    assert!(matches!(event, Some(BookEvent::BookRegistered(_))));
}

#[test]
fn a_book_returned_from_before_expiry_existed_reads_as_returned_by_the_customer() {
    let data = json!({"rentalId": id(2), "bookId": id(1), "userId": id(3), "returnedAt": at(20)});
    let Some(RentalEvent::BookReturned(event)) =
        RentalEvent::decode("BookReturned", &data).unwrap()
    else {
        panic!("not a BookReturned");
    };
    assert_eq!(event.reason, shared_events::ReturnReason::Returned);
    let expired = json!({"rentalId": id(2), "bookId": id(1), "userId": id(3), "returnedAt": at(20), "reason": "EXPIRED"});
    let Some(RentalEvent::BookReturned(event)) =
        RentalEvent::decode("BookReturned", &expired).unwrap()
    else {
        panic!("not a BookReturned");
    };
    assert_eq!(event.reason, shared_events::ReturnReason::Expired);
}
