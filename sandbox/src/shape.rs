//! Answers in exactly a documented shape.
//!
//! A simulator keeps what callers sent and what it derived; what it answers
//! is that record seen through the docs' example: every field the example
//! shows (null where the record has no value), none it does not, each in the
//! example's JSON type (`"0"` where the docs show a number as a string).
use serde_json::{Map, Value};

/// `record` in the shape of `template`, a JSON example whose values stand
/// for their types only ("" a string, 0 a number, false a boolean, null any).
pub fn conform(template: &str, record: &Value) -> Value {
    let template: Value = serde_json::from_str(template).expect("a documented shape is JSON");
    shape(&template, record)
}

fn shape(template: &Value, record: &Value) -> Value {
    match (template, record) {
        (_, Value::Null) | (Value::Null, _) => record.clone(),
        (Value::Object(fields), Value::Object(values)) => {
            let out: Map<String, Value> = fields.iter().map(|(k, t)| (k.clone(), shape(t, values.get(k).unwrap_or(&Value::Null)))).collect();
            Value::Object(out)
        }
        (Value::Array(example), Value::Array(items)) => match example.first() {
            Some(element) => Value::Array(items.iter().map(|i| shape(element, i)).collect()),
            None => record.clone(),
        },
        (Value::String(_), Value::String(_)) | (Value::Number(_), Value::Number(_)) | (Value::Bool(_), Value::Bool(_)) => record.clone(),
        (Value::String(_), Value::Number(n)) => Value::String(match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        }),
        (Value::String(_), Value::Bool(b)) => Value::String(b.to_string()),
        (Value::Number(_), Value::String(s)) => s.trim().parse::<f64>().ok().and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number),
        (Value::Bool(_), Value::String(s)) => s.parse::<bool>().map_or(Value::Null, Value::Bool),
        // Anything else cannot be shown in the documented type.
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::conform;
    use serde_json::json;

    #[test]
    fn only_documented_fields_in_documented_types() {
        let template = r#"{"id": 0, "state": "", "flag": "", "rows": [{"amount": ""}], "missing": 0, "any": null}"#;
        let record = json!({"id": 7, "state": 20, "flag": true, "rows": [{"amount": 1.5, "extra": 1}, {"amount": 2.0}], "undocumented": "x", "any": {"a": 1}});
        assert_eq!(
            conform(template, &record),
            json!({"id": 7, "state": "20", "flag": "true", "rows": [{"amount": "1.5"}, {"amount": "2"}], "missing": null, "any": {"a": 1}})
        );
    }
}
