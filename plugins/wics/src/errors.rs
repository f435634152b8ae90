//! WICS answers every request with `{code, message, success, data}`. An error
//! is a non-2xx status or `success: false`; its kind comes from the status
//! (or from `code` when the status says success but the body does not), and
//! WICS' own message and code are kept.
use serde::Deserialize;
use spoke_pdk::http::Response;
use spoke_pdk::{Error, ErrorKind, Value};

/// The envelope around every WICS answer.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Envelope {
    #[serde(default)]
    pub code: Value,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub success: Option<bool>,
    #[serde(default)]
    pub data: Value,
}

/// WICS blocks a user for one minute on the first violation; when it does not
/// say how long, that is the least a caller must wait.
pub const FIRST_BLOCK_MS: u64 = 60_000;

/// The envelope of a successful answer, or the error the answer means.
pub fn check(resp: &Response) -> Result<Envelope, Error> {
    let envelope: Option<Envelope> = serde_json::from_slice::<Value>(&resp.body).ok().filter(Value::is_object).and_then(|v| spoke_pdk::read::lenient(v).ok());
    match envelope {
        Some(env) if resp.is_success() && env.success != Some(false) => Ok(env),
        Some(env) => Err(error_from(resp, Some(&env))),
        // A 204 or an empty 200 (e.g. a delete) is still a success.
        None if resp.is_success() && resp.body.iter().all(u8::is_ascii_whitespace) => Ok(Envelope::default()),
        None if resp.is_success() => Err(Error::internal(format!(
            "WICS answered {} with a body that is not its JSON envelope: {}",
            resp.status,
            resp.text().chars().take(120).collect::<String>()
        ))
        .with_status(resp.status)),
        None => Err(error_from(resp, None)),
    }
}

fn code_number(code: &Value) -> Option<u16> {
    match code {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn error_from(resp: &Response, env: Option<&Envelope>) -> Error {
    let body_code = env.and_then(|e| code_number(&e.code));
    // A 200 that says `success: false` is described by its body's code.
    let effective = if resp.is_success() { body_code.filter(|c| *c >= 400).unwrap_or(0) } else { resp.status };
    let kind = match effective {
        0 => ErrorKind::Vendor,
        s => Error::kind_for_status(s),
    };
    let vendor_message = env
        .and_then(|e| e.message.clone())
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| resp.text().chars().take(200).collect());
    // The envelope's `data` of an error (a validation error's failing
    // fields, say) reaches the caller whole, as the error's details.
    let details = env.map(|e| e.data.clone()).unwrap_or(Value::Null);
    let mut error = Error::new(kind, format!("WICS answered {}: {}", resp.status, vendor_message.trim()))
        .with_status(resp.status)
        .with_vendor_code(body_code.unwrap_or(resp.status).to_string())
        .with_details(details);
    if kind == ErrorKind::RateLimited {
        error = error.with_retry_after_ms(resp.retry_after_ms().unwrap_or(FIRST_BLOCK_MS));
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str, headers: &[(&str, &str)]) -> Response {
        Response {
            status,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn success_envelope_passes() {
        let env = check(&response(200, r#"{"code":200,"message":"List of Webhooks","success":true,"data":[]}"#, &[])).unwrap();
        assert_eq!(env.data, serde_json::json!([]));
    }

    #[test]
    fn statuses_map_to_kinds_and_keep_the_message() {
        let cases = [
            (401, ErrorKind::Unauthorized),
            (403, ErrorKind::Forbidden),
            (404, ErrorKind::NotFound),
            (409, ErrorKind::Conflict),
            (400, ErrorKind::Vendor),
            (422, ErrorKind::Vendor),
            (500, ErrorKind::Vendor),
        ];
        for (status, kind) in cases {
            let body = format!(r#"{{"code":{status},"message":"Order X not found","success":false,"data":null}}"#);
            let err = check(&response(status, &body, &[])).unwrap_err();
            assert_eq!(err.kind, kind, "{status}");
            assert!(err.message.contains("Order X not found"));
            assert_eq!(err.vendor_code.as_deref(), Some(status.to_string().as_str()));
            assert_eq!(err.status, Some(status));
        }
    }

    #[test]
    fn every_failing_field_of_a_validation_error_is_kept() {
        let body = r#"{"code":422,"message":"Validation failed","success":false,"data":{"deliveryAddress.zipcode":["is required"],"lines.0.quantity":["must be above 0"]}}"#;
        let err = check(&response(422, body, &[])).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Vendor, "the vendor refused it: something was sent");
        let (text, details) = err.message.split_once(spoke_pdk::error::DETAILS_MARKER).expect("details");
        assert!(text.contains("Validation failed"), "{text}");
        let details: Value = serde_json::from_str(details).unwrap();
        assert_eq!(details["deliveryAddress.zipcode"][0], "is required");
        assert_eq!(details["lines.0.quantity"][0], "must be above 0");
    }

    #[test]
    fn rate_limit_carries_retry_after() {
        let err = check(&response(429, r#"{"code":429,"message":"blocked","success":false,"data":null}"#, &[("retry-after", "300")])).unwrap_err();
        assert_eq!(err.kind, ErrorKind::RateLimited);
        assert_eq!(err.retry_after_ms, Some(300_000));
        let err = check(&response(429, "Too Many Requests", &[])).unwrap_err();
        assert_eq!(err.retry_after_ms, Some(FIRST_BLOCK_MS));
    }

    #[test]
    fn success_false_in_a_200_is_an_error() {
        let err = check(&response(200, r#"{"code":404,"message":"No item for EAN 1","success":false,"data":null}"#, &[])).unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        let err = check(&response(200, r#"{"code":0,"message":"odd","success":false,"data":null}"#, &[])).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Vendor);
    }
}
