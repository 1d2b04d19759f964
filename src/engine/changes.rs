//! What an update carries: the fields whose mapped value differs from the baseline (the body last
//! sent, or the one the initial sync would send back for what it wrote), so a field someone set
//! by hand in the target is left alone unless the source changed it.
//!
//! Fields compare at the top level of the body, by value: a nested object (an address) or a list
//! (BOM lines) that differs in any part is sent whole, as the mapping renders it.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// Fields an update always carries when the mapping renders them: the record's identity and its
/// revision, which optimistic locking needs.
const ALWAYS: [&str; 2] = ["id", "version"];

/// `id` and `version`, which every update carries.
pub fn is_identity(field: &str) -> bool {
    ALWAYS.contains(&field)
}

/// The top-level fields of `body` that are new or differ from `baseline`. A field the baseline has
/// and `body` leaves out is not a change: an update cannot unset it, and the full body never did.
pub fn changed_fields(body: &Value, baseline: &Value) -> BTreeSet<String> {
    let (Some(body), Some(baseline)) = (body.as_object(), baseline.as_object()) else {
        // Not an object on one side: the body as a whole is the one field.
        return if body == baseline {
            BTreeSet::new()
        } else {
            BTreeSet::from([String::new()])
        };
    };
    body.iter()
        .filter(|(k, v)| !baseline.get(k.as_str()).is_some_and(|b| same(b, v)))
        .map(|(k, _)| k.clone())
        .collect()
}

/// Equal values, numbers by value (`100` and `100.0` are one price).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w))
        }
        (x, y) => x == y,
    }
}

/// `body` cut down to the `changed` fields plus `id` and `version`, in the body's own order.
pub fn partial(body: &Value, changed: &BTreeSet<String>) -> Value {
    let Some(fields) = body.as_object() else {
        return body.clone();
    };
    if changed.contains("") {
        return body.clone();
    }
    let kept: Map<String, Value> = fields
        .iter()
        .filter(|(k, _)| changed.contains(k.as_str()) || ALWAYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(kept)
}

/// Whether the target's value `has` already holds what the body `wants`: equal scalars (numbers
/// by value, `100` holds `100.0`), every field of a wanted object held by the target's (which
/// may have more), lists item by item.
pub fn holds(has: &Value, wants: &Value) -> bool {
    match (has, wants) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Object(a), Value::Object(b)) => {
            b.iter().all(|(k, w)| a.get(k).is_some_and(|h| holds(h, w)))
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(h, w)| holds(h, w))
        }
        (a, b) => a == b,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_what_differs_is_sent_with_the_identity() {
        let baseline = json!({
            "name": "Fjord AS", "email": "post@fjord.no", "invoiceEmail": "post@fjord.no",
            "postalAddress": { "addressLine1": "Kaia 1", "city": "Bergen" },
            "lines": [{ "product": 1, "count": 2 }],
        });
        let renamed = json!({
            "name": "Fjord Bygg AS", "email": "post@fjord.no", "invoiceEmail": "post@fjord.no",
            "postalAddress": { "addressLine1": "Kaia 1", "city": "Bergen" },
            "lines": [{ "product": 1, "count": 2 }],
        });
        let changed = changed_fields(&renamed, &baseline);
        assert_eq!(changed, BTreeSet::from(["name".to_string()]));

        // What is sent is rendered against the target: it has the revision and sub-record ids.
        let with_target = json!({
            "name": "Fjord Bygg AS", "email": "post@fjord.no", "invoiceEmail": "post@fjord.no",
            "postalAddress": { "id": 7, "addressLine1": "Kaia 1", "city": "Bergen" },
            "version": 3,
        });
        assert_eq!(
            partial(&with_target, &changed),
            json!({ "name": "Fjord Bygg AS", "version": 3 })
        );
    }

    #[test]
    fn nested_objects_and_lists_compare_as_a_whole() {
        let baseline = json!({ "a": { "x": 1, "y": 2 }, "l": [1, 2], "n": 1.5 });
        let body = json!({ "a": { "x": 1, "y": 3 }, "l": [2, 1], "n": 1.5 });
        assert_eq!(
            changed_fields(&body, &baseline),
            BTreeSet::from(["a".to_string(), "l".to_string()])
        );
        assert_eq!(
            partial(&body, &changed_fields(&body, &baseline)),
            json!({ "a": { "x": 1, "y": 3 }, "l": [2, 1] })
        );
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(
            changed_fields(
                &json!({ "p": 100.0, "l": [1] }),
                &json!({ "p": 100, "l": [1.0] })
            )
            .is_empty()
        );
    }

    #[test]
    fn nothing_differs_means_nothing_to_send_and_a_left_out_field_is_no_change() {
        let baseline = json!({ "name": "A", "phoneNumber": "555" });
        assert!(changed_fields(&json!({ "name": "A" }), &baseline).is_empty());
        assert_eq!(
            changed_fields(&json!({ "name": "A", "isInactive": true }), &baseline),
            BTreeSet::from(["isInactive".to_string()])
        );
    }

    #[test]
    fn a_target_holds_what_it_has_at_least() {
        let has =
            json!({ "id": 7, "name": "A", "price": 100.0, "address": { "id": 3, "city": "Oslo" } });
        assert!(holds(&has["price"], &json!(100)));
        assert!(holds(&has["address"], &json!({ "city": "Oslo" })));
        assert!(!holds(&has["address"], &json!({ "city": "Bergen" })));
        assert!(!holds(&has["name"], &json!("B")));
        assert!(holds(
            &json!([1, { "a": 1, "b": 2 }]),
            &json!([1, { "a": 1 }])
        ));
        assert!(!holds(&json!([1]), &json!([1, 2])));
    }

    #[test]
    fn a_body_that_is_not_an_object_is_one_field() {
        assert!(changed_fields(&json!([1]), &json!([1])).is_empty());
        let changed = changed_fields(&json!([1, 2]), &json!({ "a": 1 }));
        assert_eq!(partial(&json!([1, 2]), &changed), json!([1, 2]));
    }
}
