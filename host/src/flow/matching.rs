//! Which event a `wait_event` pattern takes. A pattern is a map of dotted
//! paths to values: `#{ "orderReference": "SO-1", "lines.metaFields.lead": "L-7" }`.
//! A path step into a list matches if any element matches the rest, so a
//! WICS SHIPMENT is found by a metafield on any of its lines. Numbers and
//! strings compare as text ("12" matches 12): vendors are not consistent.
use serde_json::Value;

/// Whether an event's payload matches `pattern` (paths are relative to the
/// payload; `null` matches every event).
pub fn matches(pattern: &Value, payload: &Value) -> bool {
    match pattern {
        Value::Object(m) => m.iter().all(|(path, want)| path_matches(payload, &path.split('.').collect::<Vec<_>>(), want)),
        Value::Null => true,
        _ => false,
    }
}

fn path_matches(value: &Value, path: &[&str], want: &Value) -> bool {
    if let Value::Array(items) = value {
        // An index names one element; any other step looks into every element.
        if let Some(i) = path.first().and_then(|p| p.parse::<usize>().ok()) {
            return items.get(i).is_some_and(|v| path_matches(v, &path[1..], want));
        }
        return items.iter().any(|v| path_matches(v, path, want));
    }
    let Some((first, rest)) = path.split_first() else { return same(value, want) };
    match value {
        Value::Object(m) => m.get(*first).is_some_and(|v| path_matches(v, rest, want)),
        _ => false,
    }
}

fn same(got: &Value, want: &Value) -> bool {
    fn text(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    got == want || matches!((text(got), text(want)), (Some(a), Some(b)) if a == b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_reach_into_maps_and_every_element_of_lists() {
        let shipment = json!({"orderReference": "SO-1", "lines": [{"metaFields": [{"key": "lead", "value": "L-7"}]}, {"quantity": 2}]});
        assert!(matches(&json!({"orderReference": "SO-1"}), &shipment));
        assert!(!matches(&json!({"orderReference": "SO-2"}), &shipment));
        assert!(matches(&json!({"lines.metaFields.value": "L-7"}), &shipment));
        assert!(matches(&json!({"lines.1.quantity": "2"}), &shipment), "numbers match their text");
        assert!(!matches(&json!({"lines.0.quantity": 2}), &shipment));
        assert!(!matches(&json!({"orderReference": "SO-1", "missing": 1}), &shipment), "every path must match");
        assert!(!matches(&json!("SO-1"), &shipment), "a pattern is a map");
    }
}
