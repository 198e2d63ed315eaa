//! JSON Schemas generated from the event types: the contract consumers outside Rust read. They
//! are committed under `schemas/`; a test fails when code and committed files drift.

use schemars::{JsonSchema, Schema, generate::SchemaSettings};

use crate::*;

fn schema_of<T: JsonSchema>() -> Schema {
    SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>()
}

/// Every schema as (file name, schema): the envelope, then each event's `data`.
pub fn all() -> Vec<(String, Schema)> {
    fn event<E: DomainEvent>() -> (String, Schema) {
        (format!("{}.json", E::TYPE), schema_of::<E>())
    }
    vec![
        ("CloudEvent.json".to_owned(), schema_of::<CloudEvent>()),
        event::<BookRegistered>(),
        event::<BookUpdated>(),
        event::<BookRetired>(),
        event::<BookRented>(),
        event::<RentalCancelled>(),
        event::<BookReturned>(),
        event::<PaymentApproved>(),
        event::<PaymentRefunded>(),
        event::<UserRegistered>(),
    ]
}

/// The schema rendered as committed: pretty JSON with a trailing newline.
pub fn render(schema: &Schema) -> String {
    let mut text = serde_json::to_string_pretty(schema).expect("a schema is always JSON");
    text.push('\n');
    text
}
