//! The host's own check of an operation's input against the JSON Schema the
//! plugin published, before the guest runs: what `spoke describe` shows is
//! refused the same way whatever language the plugin is written in (the
//! Rust pdk checks again inside; plugins in other languages may not).
//! Validators are compiled once, when the plugin loads.
use crate::error::{CallError, ErrorKind};
use crate::manifest::Manifest;
use jsonschema::paths::LocationSegment;
use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use serde_json::Value;
use std::collections::HashMap;

/// Input errors listed in a refusal's details, at most.
const MAX_LISTED: usize = 10;

/// Compiled input validators of one plugin, by operation name.
#[derive(Default)]
pub struct Inputs(HashMap<String, Validator>);

/// Compile `schema`, or say why it is not a JSON Schema. Formats are
/// checked (`date`, `date-time`, and the pdk's `datetime`); unknown formats
/// are annotations, as the standard says.
pub fn compile(schema: &Value) -> Result<Validator, String> {
    if let Value::String(text) = schema {
        // `plugin::v0_1_0` keeps a schema that is not JSON as its text.
        return Err(match serde_json::from_str::<Value>(text) {
            Err(e) => format!("is not JSON ({e}): {}", clip(text)),
            Ok(_) => format!("is a JSON string, not a schema: {}", clip(text)),
        });
    }
    jsonschema::options()
        .should_validate_formats(true)
        .with_format("datetime", is_datetime)
        .build(schema)
        .map_err(|e| format!("is not a valid JSON Schema: {e} (at {})", pointer(e.schema_path().as_str())))
}

impl Inputs {
    pub fn insert(&mut self, operation: &str, validator: Validator) {
        self.0.insert(operation.to_string(), validator);
    }

    /// Compile every operation's input schema (tests and embedders; a load
    /// gets them from `check::manifest`, which reports every bad schema).
    pub fn for_manifest(m: &Manifest) -> Result<Inputs, String> {
        let mut inputs = Inputs::default();
        for op in &m.operations {
            inputs.insert(&op.name, compile(&op.input_schema).map_err(|e| format!("operation `{}`: input schema {e}", op.name))?);
        }
        Ok(inputs)
    }

    /// Parse `input` and check it against `operation`'s schema. An empty
    /// input is `{}`, as the pdk reads it.
    pub fn check(&self, plugin: &str, operation: &str, input: &str) -> Result<(), CallError> {
        let Some(validator) = self.0.get(operation) else { return Ok(()) };
        let value: Value = if input.trim().is_empty() {
            Value::Object(Default::default())
        } else {
            serde_json::from_str(input).map_err(|e| CallError::new(ErrorKind::InvalidInput, format!("{plugin}.{operation}: the input is not JSON: {e}")))?
        };
        let errors: Vec<ValidationError> = validator.iter_errors(&value).take(MAX_LISTED).collect();
        let Some(first) = errors.first() else { return Ok(()) };
        let (field, message) = describe(first);
        let mut e = CallError::new(ErrorKind::InvalidInput, format!("{plugin}.{operation}: {message} (the host checked the input against the operation's input schema)"));
        e.field = Some(field).filter(|f| !f.is_empty());
        e.details = Some(Value::Array(
            errors
                .iter()
                .map(|err| {
                    let (field, message) = describe(err);
                    serde_json::json!({ "field": field, "message": message, "rule": pointer(err.schema_path().as_str()) })
                })
                .collect(),
        ));
        Err(e)
    }
}

/// The failing field in the pdk's notation (`lines[0].sku`; a missing
/// required property is named itself) and a message naming field and rule.
fn describe(e: &ValidationError) -> (String, String) {
    let mut field = String::new();
    for segment in e.instance_path().iter() {
        match segment {
            LocationSegment::Property(p) => {
                if !field.is_empty() {
                    field.push('.');
                }
                field.push_str(&p);
            }
            LocationSegment::Index(i) => field.push_str(&format!("[{i}]")),
        }
    }
    // A missing or unexpected property is the field at fault, not its object.
    let named = match e.kind() {
        ValidationErrorKind::Required { property } => Some(property.as_str().map(str::to_string).unwrap_or_else(|| property.to_string())),
        ValidationErrorKind::AdditionalProperties { unexpected } => unexpected.first().cloned(),
        _ => None,
    };
    if let Some(name) = named {
        field = if field.is_empty() { name } else { format!("{field}.{name}") };
    }
    let at = if field.is_empty() { "input".to_string() } else { field.clone() };
    let text = match e.kind() {
        // Every allowed value, as the pdk says it: jsonschema shortens the list.
        ValidationErrorKind::Enum { options } => {
            let list: Vec<String> = options.as_array().map(|a| a.iter().map(Value::to_string).collect()).unwrap_or_else(|| vec![options.to_string()]);
            format!("{} is not allowed; allowed values: {}", e.instance(), list.join(", "))
        }
        _ => e.to_string(),
    };
    (field, format!("{at}: {text} (schema rule `{}` at {})", e.kind().keyword(), pointer(e.schema_path().as_str())))
}

fn pointer(p: &str) -> &str {
    if p.is_empty() { "/" } else { p }
}

fn clip(text: &str) -> String {
    let mut t: String = text.chars().take(80).collect();
    if t.len() < text.len() {
        t.push('…');
    }
    t
}

/// `yyyy-mm-dd hh:mm:ss`, the pdk's `datetime` format.
fn is_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
        return false;
    }
    if !(digits(0..4) && digits(5..7) && digits(8..10) && digits(11..13) && digits(14..16) && digits(17..19)) {
        return false;
    }
    let n = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap_or(99);
    (1..=12).contains(&n(5..7)) && (1..=31).contains(&n(8..10)) && n(11..13) < 24 && n(14..16) < 60 && n(17..19) < 61
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inputs(schema: Value) -> Inputs {
        let mut i = Inputs::default();
        i.insert("op", compile(&schema).unwrap());
        i
    }

    #[test]
    fn refusals_name_the_field_and_the_rule() {
        let i = inputs(json!({"type": "object", "required": ["name"], "additionalProperties": false, "properties": {
            "name": {"type": "string"}, "count": {"type": "integer", "minimum": 0},
            "state": {"enum": ["A", "B", "C", "D", "E", "F"]},
            "lines": {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": "string"}}}},
            "day": {"type": "string", "format": "date"}, "at": {"type": "string", "format": "datetime"}
        }}));
        let e = i.check("acme", "op", r#"{"x":1}"#).unwrap_err();
        assert_eq!((e.kind, e.field.as_deref()), (ErrorKind::InvalidInput, Some("x")), "{e}");
        assert!(e.message.contains("acme.op: x:") && e.message.contains("`additionalProperties`"), "{e}");
        // Every failure is listed, not only the first.
        let details = e.details.as_ref().unwrap().as_array().unwrap();
        assert_eq!(details.len(), 2, "{e}");
        assert_eq!(details[1]["field"], "name", "{e}");
        assert!(details[1]["message"].as_str().unwrap().contains("`required`"), "{e}");
        let e = i.check("acme", "op", r#"{}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("name"), "{e}");
        let e = i.check("acme", "op", r#"{"name":"a","state":"GONE"}"#).unwrap_err();
        assert!(e.message.contains(r#""GONE" is not allowed; allowed values: "A", "B", "C", "D", "E", "F""#), "{e}");

        let e = i.check("acme", "op", r#"{"name":"a","count":-1}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("count"));
        assert!(e.message.contains("`minimum`") && e.message.contains("/properties/count/minimum"), "{e}");
        let e = i.check("acme", "op", r#"{"name":"a","lines":[{"sku":1}]}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("lines[0].sku"), "{e}");
        assert_eq!(i.check("acme", "op", r#"{"name":"a","day":"2026-02-30"}"#).unwrap_err().field.as_deref(), Some("day"));
        assert_eq!(i.check("acme", "op", r#"{"name":"a","at":"2026-02-03T10:00:00"}"#).unwrap_err().field.as_deref(), Some("at"));
        i.check("acme", "op", r#"{"name":"a","count":0,"day":"2026-02-28","at":"2026-02-03 10:00:00"}"#).unwrap();
        assert!(i.check("acme", "op", "{nope").unwrap_err().message.contains("not JSON"));
        // An operation without a validator (unknown to the manifest) is the guest's to refuse.
        i.check("acme", "other", r#"{"x":1}"#).unwrap();
    }

    #[test]
    fn broken_schemas_say_what_is_wrong() {
        assert!(compile(&Value::String("{not json".into())).unwrap_err().starts_with("is not JSON"));
        let e = compile(&json!({"type": "nope"})).unwrap_err();
        assert!(e.starts_with("is not a valid JSON Schema"), "{e}");
        compile(&json!({"type": "number", "format": "decimal2"})).unwrap();
    }
}
