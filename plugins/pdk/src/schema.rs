//! Validation of operation input against the operation's own JSON Schema.
//!
//! Supports the subset the connectors publish: `type` (one or a list, so
//! `["string","null"]` is a nullable string), `properties`, `required`,
//! `additionalProperties: false`, `items`, `enum`, `minimum`/`maximum`,
//! `minLength`/`maxLength`, `minItems`/`maxItems`, and the formats `date`
//! (yyyy-mm-dd), `date-time` (RFC 3339), `datetime` (yyyy-mm-dd hh:mm:ss)
//! and `decimal2` (a number with at most two decimals). Errors name the
//! JSON path of the offending field.
use crate::{Error, Value};

pub fn validate(schema: &Value, input: &Value) -> Result<(), Error> {
    check(schema, input, "")
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn matches_type(expected: &str, v: &Value) -> bool {
    let actual = type_name(v);
    actual == expected
        || (expected == "number" && actual == "integer")
        // 12.0 is an integer in JSON Schema.
        || (expected == "integer" && v.as_f64().is_some_and(|f| f.fract() == 0.0))
}

fn check(schema: &Value, v: &Value, path: &str) -> Result<(), Error> {
    let Some(schema) = schema.as_object() else { return Ok(()) };
    let here = if path.is_empty() { "input" } else { path };

    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !types.is_empty() && !types.iter().any(|t| matches_type(t, v)) {
            return Err(Error::invalid_input(
                path,
                format!("{here} must be {}, got {}", types.join(" or "), type_name(v)),
            ));
        }
    }
    if v.is_null() {
        return Ok(());
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(v) {
            let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
            return Err(Error::invalid_input(
                path,
                format!("{v} is not allowed; allowed values: {}", list.join(", ")),
            ));
        }
    }
    match v {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for key in required.iter().filter_map(Value::as_str) {
                    if map.get(key).is_none_or(Value::is_null) {
                        return Err(Error::invalid_input(join(path, key), "is required"));
                    }
                }
            }
            for (key, value) in map {
                match props.and_then(|p| p.get(key)) {
                    Some(sub) => check(sub, value, &join(path, key))?,
                    None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                        let mut known: Vec<&String> = props.map(|p| p.keys().collect()).unwrap_or_default();
                        known.sort();
                        return Err(Error::invalid_input(
                            join(path, key),
                            format!("is not a known field; known: {}", known.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")),
                        ));
                    }
                    None => {}
                }
            }
        }
        Value::Array(items) => {
            let len = items.len() as u64;
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
                if len < min {
                    return Err(Error::invalid_input(path, format!("needs at least {min} item(s), got {len}")));
                }
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
                if len > max {
                    return Err(Error::invalid_input(path, format!("allows at most {max} item(s), got {len}")));
                }
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{path}[{i}]"))?;
                }
            }
        }
        Value::String(s) => {
            let chars = s.chars().count() as u64;
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
                if chars < min {
                    return Err(Error::invalid_input(path, format!("must be at least {min} character(s)")));
                }
            }
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
                if chars > max {
                    return Err(Error::invalid_input(path, format!("must be at most {max} characters, got {chars}")));
                }
            }
            if let Some(format) = schema.get("format").and_then(Value::as_str) {
                check_format(format, s, path)?;
            }
        }
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(0.0);
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
                if f < min {
                    return Err(Error::invalid_input(path, format!("must be at least {min}, got {n}")));
                }
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
                if f > max {
                    return Err(Error::invalid_input(path, format!("must be at most {max}, got {n}")));
                }
            }
            if schema.get("format").and_then(Value::as_str) == Some("decimal2") {
                let text = n.to_string();
                if text.split('.').nth(1).is_some_and(|d| d.len() > 2) {
                    return Err(Error::invalid_input(path, format!("must have at most 2 decimals, got {n}")));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// yyyy-mm-dd with a real month and day.
pub fn is_date(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    if parts.len() != 3 || parts[0].len() != 4 || parts[1].len() != 2 || parts[2].len() != 2 {
        return false;
    }
    if !parts.iter().all(|p| digits(p)) {
        return false;
    }
    let (y, m, d): (u32, u32, u32) = (parts[0].parse().unwrap(), parts[1].parse().unwrap(), parts[2].parse().unwrap());
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    (1..=12).contains(&m) && d >= 1 && d <= days[(m - 1) as usize]
}

/// hh:mm:ss
fn is_time(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 3
        && parts.iter().all(|p| p.len() == 2 && digits(p))
        && parts[0] < "24" && parts[1] < "60" && parts[2] < "61"
}

fn check_format(format: &str, s: &str, path: &str) -> Result<(), Error> {
    let ok = match format {
        "date" => is_date(s),
        "datetime" => s.len() == 19 && is_date(&s[..10]) && &s[10..11] == " " && is_time(&s[11..]),
        "date-time" => {
            s.len() >= 20 && is_date(&s[..10]) && matches!(&s[10..11], "T" | "t") && is_time(&s[11..19]) && {
                let zone = s[19..].trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
                zone == "Z" || zone == "z" || (zone.len() == 6 && (zone.starts_with('+') || zone.starts_with('-')))
            }
        }
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        let want = match format {
            "date" => "yyyy-mm-dd",
            "datetime" => "yyyy-mm-dd hh:mm:ss",
            _ => "an RFC 3339 date-time",
        };
        Err(Error::invalid_input(path, format!("{s:?} is not a valid {format} ({want})")))
    }
}
