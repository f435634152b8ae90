//! JSON Schema written in the vocabulary of the CycleSoftware docs, so each
//! operation's schema reads like the vendor's property tables.
//!
//! `t("?date")` is the docs' `?date`: a nullable yyyy-mm-dd string.
use spoke_pdk::{json, Value};

/// Schema of one documented type name. A leading `?` makes it nullable and
/// a trailing `[]` makes it an array of that type.
pub fn t(spec: &str) -> Value {
    if let Some(inner) = spec.strip_prefix('?') {
        return nullable(t(inner));
    }
    if let Some(inner) = spec.strip_suffix("[]") {
        return array_of(t(inner));
    }
    match spec {
        "string" => json!({"type": "string"}),
        "boolean" | "bool" => json!({"type": "boolean"}),
        // 64-bit signed integer.
        "integer" => json!({"type": "integer"}),
        // Amounts in cents are whole numbers and never negative in these APIs.
        "cents" => json!({"type": "integer", "minimum": 0}),
        "id" => json!({"type": "integer", "minimum": 1}),
        "float" => json!({"type": "number"}),
        "decimal" => json!({"type": "number", "format": "decimal2"}),
        "date" => json!({"type": "string", "format": "date"}),
        "datetime" => json!({"type": "string", "format": "datetime"}),
        // Leads use ISO 8601 with an offset, e.g. 2020-04-14T06:33:26+02:00.
        "date-time" => json!({"type": "string", "format": "date-time"}),
        "timestamp" => json!({"type": "integer", "minimum": 0}),
        "uuid" => json!({"type": "string", "minLength": 36, "maxLength": 36}),
        // The docs' {0,1} integer switches.
        "switch" => json!({"type": "integer", "enum": [0, 1]}),
        "object" => json!({"type": "object"}),
        other => panic!("unknown CycleSoftware type {other}"),
    }
}

/// Adds `null` to a schema's type.
pub fn nullable(mut schema: Value) -> Value {
    let types = match schema.get("type") {
        Some(Value::String(s)) => vec![Value::String(s.clone()), json!("null")],
        Some(Value::Array(list)) => list.iter().cloned().chain([json!("null")]).collect(),
        _ => return schema,
    };
    schema["type"] = Value::Array(types);
    // `enum` must admit null too, or a nullable enum rejects null.
    if let Some(Value::Array(list)) = schema.get_mut("enum") {
        list.push(Value::Null);
    }
    schema
}

pub fn array_of(item: Value) -> Value {
    json!({"type": "array", "items": item})
}

/// An output record: every listed property, none required (vendors add fields).
pub fn record(fields: &[(&str, Value)]) -> Value {
    let props: serde_json::Map<String, Value> = fields.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    json!({"type": "object", "properties": props})
}

/// An input object: only the listed properties, `required` ones present.
pub fn input(fields: &[(&str, Value)], required: &[&str]) -> Value {
    let mut schema = record(fields);
    schema["required"] = json!(required);
    schema["additionalProperties"] = json!(false);
    schema
}

/// Adds a description to a schema.
pub fn doc(mut schema: Value, text: &str) -> Value {
    schema["description"] = json!(text);
    schema
}

/// The output of a documented `{error, error_message, ...}` envelope with
/// its payload fields.
pub fn envelope(fields: &[(&str, Value)]) -> Value {
    let mut all = vec![("error", t("boolean")), ("error_message", t("?string"))];
    all.extend(fields.iter().cloned());
    record(&all)
}

/// `all_pages` of every paged operation.
pub fn all_pages() -> Value {
    doc(t("boolean"), "walk every page and return all items (default: one page)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use spoke_pdk::schema::validate;

    #[test]
    fn nullable_types_admit_null_and_the_type() {
        let s = t("?integer");
        assert_eq!(s["type"], json!(["integer", "null"]));
        assert!(validate(&s, &json!(null)).is_ok());
        assert!(validate(&s, &json!(3)).is_ok());
        assert!(validate(&s, &json!("3")).is_err());
    }

    #[test]
    fn dates_and_decimals_use_the_documented_formats() {
        assert!(validate(&t("date"), &json!("2023-01-23")).is_ok());
        assert!(validate(&t("date"), &json!("23-01-2023")).is_err());
        assert!(validate(&t("datetime"), &json!("2023-01-23 12:34:33")).is_ok());
        assert!(validate(&t("datetime"), &json!("2023-01-23T12:34:33")).is_err());
        assert!(validate(&t("decimal"), &json!(0.22)).is_ok());
        assert!(validate(&t("decimal"), &json!(0.225)).is_err());
        assert!(validate(&t("cents"), &json!(-1)).is_err());
        assert!(validate(&t("?date[]"), &json!(["2023-01-23"])).is_ok());
    }
}
