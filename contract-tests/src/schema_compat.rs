//! Whether an event's JSON Schema (`shared-events/schemas/`) can replace an earlier one without
//! breaking a consumer that reads events by the earlier one. A schema describes what producers
//! send, so a change is compatible when everything the old schema promised still holds: a new
//! optional property is fine; a removed property, a property whose type changed (beyond
//! narrowing, e.g. no longer null) or a property that became required is not. Nested objects are
//! checked the same way, property by property.

use serde_json::Value;

/// Every way `new` breaks the promises of `old`, as `Event.field: what changed` lines; empty
/// when `new` is compatible.
pub fn incompatibilities(event: &str, old: &Value, new: &Value) -> Vec<String> {
    let mut found = Vec::new();
    compare(event, old, new, &mut found);
    found
}

fn compare(path: &str, old: &Value, new: &Value, found: &mut Vec<String>) {
    let (old_type, new_type) = (types(old), types(new));
    if !new_type.iter().all(|t| old_type.contains(t)) {
        found.push(format!(
            "{path}: type {} → {}",
            describe(old),
            describe(new)
        ));
        return;
    }
    if format(old) != format(new) {
        found.push(format!(
            "{path}: type {} → {}",
            describe(old),
            describe(new)
        ));
        return;
    }
    let empty = serde_json::Map::new();
    let old_props = old["properties"].as_object().unwrap_or(&empty);
    let new_props = new["properties"].as_object().unwrap_or(&empty);
    for (name, old_prop) in old_props {
        let field = format!("{path}.{name}");
        match new_props.get(name) {
            None => found.push(format!("{field}: removed")),
            Some(new_prop) => compare(&field, old_prop, new_prop, found),
        }
    }
    let old_required = required(old);
    for name in required(new) {
        if !old_required.contains(&name) {
            let what = if old_props.contains_key(&name) {
                "now required"
            } else {
                "added as required"
            };
            found.push(format!("{path}.{name}: {what}"));
        }
    }
}

/// The JSON types a schema allows (`type` as one name or a list); empty when it says none.
fn types(schema: &Value) -> Vec<String> {
    match &schema["type"] {
        Value::String(t) => vec![t.clone()],
        Value::Array(ts) => ts
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn format(schema: &Value) -> Option<&str> {
    schema["format"].as_str()
}

fn required(schema: &Value) -> Vec<String> {
    schema["required"]
        .as_array()
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// `integer`, `string (uuid)`, `string | null`.
fn describe(schema: &Value) -> String {
    let types = types(schema);
    let mut text = if types.is_empty() {
        "any".to_owned()
    } else {
        types.join(" | ")
    };
    if let Some(format) = format(schema) {
        text.push_str(&format!(" ({format})"));
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn payment_approved() -> Value {
        json!({
            "title": "PaymentApproved",
            "type": "object",
            "properties": {
                "paymentId": {"type": "string", "format": "uuid"},
                "amount": {"type": "integer", "format": "uint32", "minimum": 0},
                "note": {"type": ["string", "null"]}
            },
            "required": ["paymentId", "amount"]
        })
    }

    fn changed(change: impl FnOnce(&mut Value)) -> Value {
        let mut schema = payment_approved();
        change(&mut schema);
        schema
    }

    #[test]
    fn the_same_schema_is_compatible() {
        let schema = payment_approved();
        assert!(incompatibilities("PaymentApproved", &schema, &schema).is_empty());
    }

    #[test]
    fn adding_an_optional_field_passes() {
        let new = changed(|s| s["properties"]["currency"] = json!({"type": ["string", "null"]}));
        assert_eq!(
            incompatibilities("PaymentApproved", &payment_approved(), &new),
            Vec::<String>::new()
        );
    }

    #[test]
    fn removing_a_field_fails_naming_it() {
        let new = changed(|s| {
            s["properties"].as_object_mut().unwrap().remove("amount");
            s["required"] = json!(["paymentId"]);
        });
        assert_eq!(
            incompatibilities("PaymentApproved", &payment_approved(), &new),
            ["PaymentApproved.amount: removed"]
        );
    }

    #[test]
    fn renaming_a_field_fails_as_a_removal_and_a_new_required_field() {
        let new = changed(|s| {
            let props = s["properties"].as_object_mut().unwrap();
            let amount = props.remove("amount").unwrap();
            props.insert("total".into(), amount);
            s["required"] = json!(["paymentId", "total"]);
        });
        assert_eq!(
            incompatibilities("PaymentApproved", &payment_approved(), &new),
            [
                "PaymentApproved.amount: removed",
                "PaymentApproved.total: added as required"
            ]
        );
    }

    #[test]
    fn retyping_a_field_fails_naming_both_types() {
        let new = changed(|s| s["properties"]["amount"] = json!({"type": "string"}));
        assert_eq!(
            incompatibilities("PaymentApproved", &payment_approved(), &new),
            ["PaymentApproved.amount: type integer (uint32) → string"]
        );
        let new = changed(|s| s["properties"]["paymentId"]["format"] = json!("date-time"));
        assert_eq!(
            incompatibilities("PaymentApproved", &payment_approved(), &new),
            ["PaymentApproved.paymentId: type string (uuid) → string (date-time)"]
        );
    }

    #[test]
    fn a_field_that_may_now_be_null_fails_and_one_never_null_passes() {
        let nullable = changed(|s| s["properties"]["amount"]["type"] = json!(["integer", "null"]));
        assert_eq!(
            incompatibilities("PaymentApproved", &payment_approved(), &nullable),
            ["PaymentApproved.amount: type integer (uint32) → integer | null (uint32)"]
        );
        let never_null = changed(|s| s["properties"]["note"]["type"] = json!("string"));
        assert!(incompatibilities("PaymentApproved", &payment_approved(), &never_null).is_empty());
    }

    #[test]
    fn a_new_required_field_fails() {
        let new = changed(|s| {
            s["properties"]["currency"] = json!({"type": "string"});
            s["required"] = json!(["paymentId", "amount", "currency"]);
        });
        assert_eq!(
            incompatibilities("PaymentApproved", &payment_approved(), &new),
            ["PaymentApproved.currency: added as required"]
        );
    }

    #[test]
    fn an_optional_field_made_required_fails() {
        let new = changed(|s| s["required"] = json!(["paymentId", "amount", "note"]));
        assert_eq!(
            incompatibilities("PaymentApproved", &payment_approved(), &new),
            ["PaymentApproved.note: now required"]
        );
    }

    #[test]
    fn nested_objects_are_checked_field_by_field() {
        let old = json!({"type": "object", "properties": {
            "book": {"type": "object", "properties": {"rentalFee": {"type": "integer"}}}
        }});
        let new = json!({"type": "object", "properties": {
            "book": {"type": "object", "properties": {"rentalFee": {"type": "string"}}}
        }});
        assert_eq!(
            incompatibilities("BookRented", &old, &new),
            ["BookRented.book.rentalFee: type integer → string"]
        );
    }
}
