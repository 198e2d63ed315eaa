//! The committed JSON Schemas under `schemas/` are generated from the types. Run
//! `UPDATE_SCHEMAS=1 cargo test -p shared-events --test schemas` after changing an event.

use std::path::Path;

#[test]
fn committed_schemas_match_the_event_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
    let mut drifted = Vec::new();
    let generated = shared_events::schema::all();
    for (file, schema) in &generated {
        let text = shared_events::schema::render(schema);
        let path = dir.join(file);
        if update {
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            drifted.push(file.clone());
        }
    }
    let mut committed: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    committed.retain(|f| !generated.iter().any(|(g, _)| g == f));
    assert!(
        committed.is_empty(),
        "schemas with no event type behind them: {committed:?}"
    );
    assert!(
        drifted.is_empty(),
        "these schemas differ from the code: {drifted:?}; if the change is intended, run \
         UPDATE_SCHEMAS=1 cargo test -p shared-events --test schemas and commit the result"
    );
}

#[test]
fn schemas_describe_the_wire_format() {
    let all = shared_events::schema::all();
    let (_, rented) = all.iter().find(|(f, _)| f == "BookRented.json").unwrap();
    let json = rented.as_value();
    let required: Vec<_> = json["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for field in [
        "rentalId",
        "bookId",
        "userId",
        "rentalFee",
        "paymentId",
        "rentedAt",
        "dueAt",
    ] {
        assert!(
            required.contains(&field),
            "{field} missing from {required:?}"
        );
    }
    assert_eq!(json["properties"]["rentalId"]["format"], "uuid");
    assert_eq!(json["properties"]["rentedAt"]["format"], "date-time");
}
