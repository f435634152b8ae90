//! Small helpers of the simulator: vendor error bodies, query/form decoding,
//! the vendor's date formats, ids.
use axum::http::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;

/// An error answer: the status and the vendor's `error_message`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

pub type ApiResult = Result<Value, ApiError>;

pub fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError { status: StatusCode::BAD_REQUEST, message: message.into() }
}

pub fn not_found(message: impl Into<String>) -> ApiError {
    ApiError { status: StatusCode::NOT_FOUND, message: message.into() }
}

/// The documented JSON error body.
pub fn json_error(message: &str) -> String {
    json!({"error": true, "error_message": message}).to_string()
}

/// The documented XML error body (the `/app/api` endpoints answer in it).
pub fn xml_error(message: &str) -> String {
    let escaped = message.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    format!("<?xml version=\"1.0\"?>\n<result>\n  <error>1</error>\n  <error_message>{escaped}</error_message>\n</result>\n")
}

/// `{"error": false, "error_message": null}` plus the given fields.
pub fn ok(fields: Value) -> Value {
    let mut out = json!({"error": false, "error_message": null});
    if let (Some(out), Some(fields)) = (out.as_object_mut(), fields.as_object()) {
        out.extend(fields.clone());
    }
    out
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(h * 16 + l);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a=1&b=x` (a query string or a form body) to a map; the last value wins.
pub fn decode_pairs(text: &str) -> HashMap<String, String> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// An optional integer parameter; present but not an integer is a 400.
pub fn int_param(params: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    match params.get(name) {
        None => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|_| bad_request(format!("Invalid GET variable {name}: {v:?}"))),
    }
}

/// A {0,1} switch, as the docs write them.
pub fn switch_param(params: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match params.get(name).map(String::as_str) {
        None | Some("0") => Ok(false),
        Some("1") => Ok(true),
        Some(v) => Err(bad_request(format!("Invalid GET variable {name}: {v:?} (0 or 1)"))),
    }
}

/// A boolean given as 1/0 or true/false.
pub fn bool_param(params: &HashMap<String, String>, name: &str, default: bool) -> Result<bool, ApiError> {
    match params.get(name).map(String::as_str) {
        None => Ok(default),
        Some("1") | Some("true") => Ok(true),
        Some("0") | Some("false") => Ok(false),
        Some(v) => Err(bad_request(format!("Invalid parameter {name}: {v:?}"))),
    }
}

pub fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        && (1..=12).contains(&s[5..7].parse::<u32>().unwrap_or(0))
        && (1..=31).contains(&s[8..10].parse::<u32>().unwrap_or(0))
}

/// A required yyyy-mm-dd GET parameter.
pub fn date_param(params: &HashMap<String, String>, name: &str) -> Result<String, ApiError> {
    match params.get(name) {
        None => Err(bad_request(format!("{name} is required"))),
        Some(v) if is_date(v) => Ok(v.clone()),
        Some(v) => Err(bad_request(format!("Invalid GET variable {name}: {v:?} (yyyy-mm-dd)"))),
    }
}

use civil::civil_from_days;

fn parts(ms: i64) -> (i64, u32, u32, i64, i64, i64) {
    let secs = ms.div_euclid(1000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    (y, m, d, sod / 3600, sod % 3600 / 60, sod % 60)
}

/// The docs' `datetime`: yyyy-mm-dd hh:mm:ss.
pub fn datetime(ms: i64) -> String {
    let (y, m, d, h, mi, s) = parts(ms);
    format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

/// The leads' ISO 8601 with offset, e.g. 2020-04-14T06:33:26+00:00.
pub fn iso8601(ms: i64) -> String {
    let (y, m, d, h, mi, s) = parts(ms);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}+00:00")
}

/// A version-4-shaped UUID from a counter and the time: unique per
/// simulator, no randomness needed.
pub fn uuid(counter: u64, now_ms: i64) -> String {
    let mut x = counter.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (now_ms as u64).rotate_left(17);
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (a, b) = (next(), next());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        (a & 0xfff) as u16,
        ((b >> 48) as u16 & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_queries_and_dates() {
        let q = decode_pairs("a=1&b=x%20y+z&c");
        assert_eq!(q["b"], "x y z");
        assert_eq!(q["c"], "");
        assert_eq!(datetime(1_657_012_068_444), "2022-07-05 09:07:48");
        assert_eq!(iso8601(0), "1970-01-01T00:00:00+00:00");
        assert!(is_date("2023-01-23") && !is_date("23-01-2023"));
        let u = uuid(1, 5);
        assert_eq!(u.len(), 36);
        assert_ne!(u, uuid(2, 5));
    }
}
