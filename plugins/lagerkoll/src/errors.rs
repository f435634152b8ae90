//! Lagerkoll's error bodies and codes, mapped to Spoke's error kinds.
//!
//! Every error answers `{errorCode, errorMessage, errorField, errorData}`
//! with a 9xxxxx code. The code is kept as `vendor_code` and the field as
//! `field`; the kind comes from the few codes whose meaning is unambiguous,
//! otherwise from the HTTP status.
use crate::scalars::{Int, Text};
use serde::Deserialize;
use spoke_pdk::http::Response;
use spoke_pdk::{Error, ErrorKind, Value};

pub const CREDENTIALS_DONT_MATCH: i64 = 900001;
pub const COMMON_ERROR: i64 = 900101;
pub const TOO_MANY_REQUESTS: i64 = 900429;
pub const ORDER_VALUE_ZERO: i64 = 900752;

/// The documented error body.
#[derive(Debug, Default, Deserialize)]
pub struct VendorError {
    #[serde(rename = "errorCode", default)]
    pub code: Option<Int>,
    #[serde(rename = "errorMessage", default)]
    pub message: Option<Text>,
    #[serde(rename = "errorField", default)]
    pub field: Option<Text>,
    #[serde(rename = "errorData", default)]
    pub data: Option<Value>,
}

/// What the documentation says each code means, for messages.
pub fn describe_code(code: i64) -> &'static str {
    match code {
        900001 => "Credentials don't match",
        900101 => "Common error",
        900429 => "Too many requests",
        900701 => "Error when getting customer order",
        900702 => "Error when creating a customer order",
        900703 => "Error when updating a customer order",
        900711 => "Error when getting picking list",
        900713 => "Error when updating picking list",
        900721 => "Error when getting rest articles",
        900732 => "Error creating drop shipment from Customer order",
        900743 => "Error sending confirmation",
        900752 => "Customer order value is 0",
        900761 => "Error when getting offer",
        900762 => "Error when creating an offer",
        900763 => "Error when updating an offer",
        _ => "undocumented error code",
    }
}

pub fn kind_for(code: Option<i64>, status: u16) -> ErrorKind {
    match code {
        Some(CREDENTIALS_DONT_MATCH) => ErrorKind::Unauthorized,
        Some(TOO_MANY_REQUESTS) => ErrorKind::RateLimited,
        // An order without value cannot be invoiced: a state problem of the order.
        Some(ORDER_VALUE_ZERO) => ErrorKind::Conflict,
        _ if status == 429 => ErrorKind::RateLimited,
        // A 5xx is the vendor's own failure, whatever the code.
        _ if status >= 500 => ErrorKind::Vendor,
        _ => Error::kind_for_status(status),
    }
}

/// Read the error body, JSON or (if Lagerkoll chose XML) the same fields as
/// XML elements.
pub fn parse_body(resp: &Response) -> Option<VendorError> {
    if resp.is_xml() {
        let text = resp.text();
        let code = xml_element(&text, "errorCode")?;
        return Some(VendorError {
            code: Some(Int(code.trim().parse().ok()?)),
            message: xml_element(&text, "errorMessage").map(Text),
            field: xml_element(&text, "errorField").filter(|f| !f.is_empty()).map(Text),
            data: None,
        });
    }
    serde_json::from_slice::<VendorError>(&resp.body).ok().filter(|e| e.code.is_some() || e.message.is_some())
}

fn xml_element(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let len = text[start..].find(&format!("</{name}>"))?;
    Some(text[start..start + len].to_string())
}

/// The error for a non-2xx answer.
pub fn from_response(resp: &Response) -> Error {
    let body = parse_body(resp);
    let code = body.as_ref().and_then(|b| b.code.as_ref()).map(|c| c.0);
    let kind = kind_for(code, resp.status);
    let vendor_text = body.as_ref().and_then(|b| b.message.as_ref()).map(|m| m.0.clone());
    let field = body.as_ref().and_then(|b| b.field.as_ref()).map(|f| f.0.clone()).filter(|f| !f.is_empty());
    let mut message = match (code, vendor_text) {
        (Some(code), Some(text)) => format!("Lagerkoll {code} ({}): {text}", describe_code(code)),
        (Some(code), None) => format!("Lagerkoll {code}: {}", describe_code(code)),
        (None, _) => {
            let start: String = resp.text().chars().take(200).collect();
            format!("Lagerkoll answered HTTP {} without its error body: {start}", resp.status)
        }
    };
    if let Some(field) = &field {
        message.push_str(&format!(" (field `{field}`)"));
    }
    let data = body.as_ref().and_then(|b| b.data.clone()).unwrap_or(Value::Null);
    let mut error = Error::new(kind, message).with_status(resp.status).with_details(data);
    error.vendor_code = Some(code.map(|c| c.to_string()).unwrap_or_else(|| resp.status.to_string()));
    error.field = field;
    if kind == ErrorKind::RateLimited {
        error.retry_after_ms = resp.retry_after_ms();
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn keeps_code_field_and_message() {
        let e = from_response(&resp(400, &[], r#"{"errorCode": 900702, "errorMessage": "customer missing", "errorField": "customerId", "errorData": null}"#));
        assert_eq!(e.kind, ErrorKind::Vendor, "Lagerkoll refused it: something was sent");
        assert_eq!(e.vendor_code.as_deref(), Some("900702"));
        assert_eq!(e.field.as_deref(), Some("customerId"));
        assert!(e.message.contains("customer missing"), "{}", e.message);
    }

    #[test]
    fn error_data_reaches_the_caller() {
        let e = from_response(&resp(400, &[], r#"{"errorCode": 900702, "errorMessage": "bad rows", "errorField": "products", "errorData": {"rows": [1, 3]}}"#));
        let (_, details) = e.message.split_once(spoke_pdk::error::DETAILS_MARKER).expect("errorData as details");
        assert_eq!(serde_json::from_str::<Value>(details).unwrap(), serde_json::json!({"rows": [1, 3]}));
    }

    #[test]
    fn rate_limit_carries_retry_after() {
        let e = from_response(&resp(429, &[("retry-after", "7")], r#"{"errorCode": 900429, "errorMessage": "slow down"}"#));
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert_eq!(e.retry_after_ms, Some(7000));
        // The code alone means rate-limited even under another status.
        let e = from_response(&resp(400, &[("retry-after", "3")], r#"{"errorCode": "900429"}"#));
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert_eq!(e.retry_after_ms, Some(3000));
    }

    #[test]
    fn codes_with_a_clear_meaning_win_over_the_status() {
        assert_eq!(from_response(&resp(400, &[], r#"{"errorCode": 900001}"#)).kind, ErrorKind::Unauthorized);
        assert_eq!(from_response(&resp(400, &[], r#"{"errorCode": 900752}"#)).kind, ErrorKind::Conflict);
        assert_eq!(from_response(&resp(404, &[], r#"{"errorCode": 900701}"#)).kind, ErrorKind::NotFound);
        assert_eq!(from_response(&resp(500, &[], r#"{"errorCode": 900101}"#)).kind, ErrorKind::Vendor);
    }

    #[test]
    fn reads_xml_error_bodies_and_survives_garbage() {
        let e = from_response(&resp(409, &[("content-type", "application/xml")],
            "<error><errorCode>900703</errorCode><errorMessage>closed</errorMessage><errorField></errorField></error>"));
        assert_eq!(e.vendor_code.as_deref(), Some("900703"));
        assert_eq!(e.kind, ErrorKind::Conflict);
        assert_eq!(e.field, None);
        let e = from_response(&resp(502, &[], "<html>bad gateway</html>"));
        assert_eq!(e.vendor_code.as_deref(), Some("502"));
        assert!(e.message.contains("bad gateway"));
    }
}
