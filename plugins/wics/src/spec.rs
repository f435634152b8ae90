//! Small builders for the JSON Schemas the operations publish and the pdk
//! enforces, so each record's fields are written once and shared by the
//! input and output schemas.
use spoke_pdk::{json, Value};

pub fn string() -> Value {
    json!({"type": "string"})
}
pub fn integer() -> Value {
    json!({"type": "integer"})
}
pub fn number() -> Value {
    json!({"type": "number"})
}
pub fn boolean() -> Value {
    json!({"type": "boolean"})
}
/// A yyyy-mm-dd date, as WICS writes dates.
pub fn date() -> Value {
    json!({"type": "string", "format": "date"})
}
/// Anything JSON: metafields and other pass-through values.
pub fn any() -> Value {
    json!({})
}
/// WICS writes some decimals as numbers and some as strings ("weight": "3.75").
pub fn decimal_or_text() -> Value {
    json!({"type": ["number", "string"]})
}
pub fn text_max(max: u64) -> Value {
    json!({"type": "string", "maxLength": max})
}
pub fn with_description(mut schema: Value, description: &str) -> Value {
    schema["description"] = Value::String(description.into());
    schema
}
/// The same schema, also accepting null (vendor answers use null for "none").
pub fn nullable(mut schema: Value) -> Value {
    let types = match schema.get("type") {
        Some(Value::String(t)) => vec![Value::String(t.clone()), "null".into()],
        Some(Value::Array(list)) => list.iter().cloned().chain([Value::from("null")]).collect(),
        _ => return schema,
    };
    schema["type"] = Value::Array(types);
    schema
}
pub fn array(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

/// A record's fields: (name, schema).
pub type Fields = Vec<(&'static str, Value)>;

/// An object with the given fields, of which `required` must be present.
/// Undocumented extra fields are allowed: the docs contradict themselves
/// (`warehouse` vs `warehouseCode`), and metafields may appear anywhere.
pub fn object(fields: &[(&'static str, Value)], required: &[&str]) -> Value {
    let properties: serde_json::Map<String, Value> =
        fields.iter().map(|(name, schema)| (name.to_string(), schema.clone())).collect();
    let mut schema = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    schema
}

/// An object that refuses fields it does not know (for our own inputs, where
/// a typo must not be silently ignored).
pub fn closed_object(fields: &[(&'static str, Value)], required: &[&str]) -> Value {
    let mut schema = object(fields, required);
    schema["additionalProperties"] = Value::Bool(false);
    schema
}

/// Output schemas describe what WICS may answer: every field nullable.
pub fn output_object(fields: &[(&'static str, Value)]) -> Value {
    let nullable_fields: Fields = fields.iter().map(|(n, s)| (*n, nullable(s.clone()))).collect();
    object(&nullable_fields, &[])
}

/// A path placeholder as an input field.
pub fn path_param(name: &'static str, description: &str) -> (&'static str, Value) {
    (name, json!({"type": "string", "minLength": 1, "description": description}))
}

