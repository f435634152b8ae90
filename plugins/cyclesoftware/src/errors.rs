//! CycleSoftware's three error forms (JSON, XML, SOAP fault) and its status
//! codes, mapped to Spoke error kinds.
use spoke_pdk::http::Response;
use spoke_pdk::{Error, ErrorKind, Value};

/// What a 400 means for an endpoint. The input already passed its schema,
/// so a 400 is the vendor refusing what was sent (`vendor`: `invalid-input`
/// means nothing was sent), and on a state change (cancel, convert) the
/// vendor refusing the thing's current state (`conflict`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BadRequest {
    Refused,
    Conflict,
}

/// The vendor's own description of an error, whichever form it came in.
#[derive(Debug, Default, PartialEq)]
pub struct VendorError {
    pub message: Option<String>,
    /// A SOAP `faultcode`; the JSON and XML forms carry no code of their own.
    pub code: Option<String>,
}

/// Reads the error out of a body in any of the documented forms.
pub fn parse_error_body(body: &[u8]) -> VendorError {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim_start();
    if trimmed.starts_with('<') {
        if let Some(fault) = xml_element(trimmed, "faultstring") {
            return VendorError { message: Some(fault), code: xml_element(trimmed, "faultcode") };
        }
        return VendorError { message: xml_element(trimmed, "error_message"), code: None };
    }
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error_message").and_then(Value::as_str).map(str::to_string))
        .filter(|m| !m.is_empty());
    VendorError { message, code: None }
}

/// The text of the first `<name>` element (namespace prefix allowed),
/// entities decoded. Enough for the vendor's flat error documents.
pub fn xml_element(xml: &str, name: &str) -> Option<String> {
    let mut rest = xml;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        let end = rest.find('>')?;
        let tag = &rest[..end];
        let tag_name = tag.split_whitespace().next().unwrap_or("");
        let local = tag_name.rsplit(':').next().unwrap_or(tag_name);
        if local == name && !tag.starts_with('/') && !tag.ends_with('/') {
            let body = &rest[end + 1..];
            let close = body.find("</")?;
            return Some(decode_entities(body[..close].trim()));
        }
        rest = &rest[end + 1..];
    }
    None
}

fn decode_entities(text: &str) -> String {
    let text = text.strip_prefix("<![CDATA[").and_then(|t| t.strip_suffix("]]>")).unwrap_or(text);
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn kind_for(status: u16, bad_request: BadRequest) -> ErrorKind {
    match status {
        400 => match bad_request {
            BadRequest::Refused => ErrorKind::Vendor,
            BadRequest::Conflict => ErrorKind::Conflict,
        },
        401 => ErrorKind::Unauthorized,
        403 => ErrorKind::Forbidden,
        404 => ErrorKind::NotFound,
        429 => ErrorKind::RateLimited,
        other => Error::kind_for_status(other),
    }
}

/// How long to wait after a 429. The docs give no Retry-After; the daily
/// reset header says when a spent daily budget returns, otherwise the
/// moving minute is the longest wait.
pub fn retry_after_ms(resp: &Response, now_unix_s: u64) -> u64 {
    if let Some(ms) = resp.retry_after_ms() {
        return ms;
    }
    let header_u64 = |name: &str| resp.header(name).and_then(|v| v.trim().parse::<u64>().ok());
    if header_u64("x-ratelimit-daily-remaining") == Some(0) {
        if let Some(reset) = header_u64("x-ratelimit-daily-reset") {
            return reset.saturating_sub(now_unix_s).max(1) * 1000;
        }
    }
    60_000
}

/// The error for a response that is not a success, or a success whose body
/// says `"error": true`. `None` when the response is a real success.
pub fn check(resp: &Response, bad_request: BadRequest) -> Option<Error> {
    let flagged = resp.is_success()
        && serde_json::from_slice::<Value>(&resp.body)
            .ok()
            .is_some_and(|v| v.get("error").is_some_and(|e| e == true || e == 1));
    let xml_flagged = resp.is_success() && resp.is_xml() && xml_element(&resp.text(), "error").is_some_and(|e| e == "1");
    if resp.is_success() && !flagged && !xml_flagged {
        return None;
    }
    let vendor = parse_error_body(&resp.body);
    let kind = if resp.is_success() { ErrorKind::Vendor } else { kind_for(resp.status, bad_request) };
    let text = vendor.message.clone().unwrap_or_else(|| format!("HTTP {}", resp.status));
    let mut err = Error::new(kind, format!("CycleSoftware answered {}: {text}", resp.status))
        .with_status(resp.status)
        .with_vendor_code(vendor.code.unwrap_or_else(|| resp.status.to_string()));
    if kind == ErrorKind::RateLimited {
        err = err.with_retry_after_ms(retry_after_ms(resp, crate::time::now_unix_s()));
    }
    Some(err)
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
    fn json_error_keeps_the_vendor_message_and_status() {
        let err = check(&resp(401, &[], r#"{"error": true, "error_message": "Unauthorized"}"#), BadRequest::Refused).unwrap();
        assert_eq!(err.kind, ErrorKind::Unauthorized);
        assert!(err.message.contains("Unauthorized"));
        assert_eq!(err.vendor_code.as_deref(), Some("401"));
        assert_eq!(err.status, Some(401));
    }

    #[test]
    fn xml_error_is_read() {
        let body = "<?xml version=\"1.0\"?>\n<result>\n  <error>1</error>\n  <error_message>Unknown barcode &amp; more</error_message>\n</result>";
        let err = check(&resp(404, &[("content-type", "text/xml")], body), BadRequest::Refused).unwrap();
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert!(err.message.contains("Unknown barcode & more"), "{}", err.message);
    }

    #[test]
    fn soap_fault_gives_code_and_message() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">
  <SOAP-ENV:Body>
    <SOAP-ENV:Fault>
      <faultcode>400</faultcode>
      <faultstring>The problem description</faultstring>
    </SOAP-ENV:Fault>
  </SOAP-ENV:Body>
</SOAP-ENV:Envelope>"#;
        let v = parse_error_body(body.as_bytes());
        assert_eq!(v, VendorError { message: Some("The problem description".into()), code: Some("400".into()) });
        let err = check(&resp(500, &[], body), BadRequest::Refused).unwrap();
        assert_eq!(err.kind, ErrorKind::Vendor);
        assert_eq!(err.vendor_code.as_deref(), Some("400"));
    }

    #[test]
    fn error_flag_on_a_200_is_an_error() {
        let err = check(&resp(200, &[], r#"{"error": true, "error_message": "Order is invoiced"}"#), BadRequest::Refused).unwrap();
        assert_eq!(err.kind, ErrorKind::Vendor);
        assert!(check(&resp(200, &[], r#"{"error": false, "error_message": null}"#), BadRequest::Refused).is_none());
    }

    #[test]
    fn bad_request_on_a_state_change_is_a_conflict() {
        let err = check(&resp(400, &[], r#"{"error": true, "error_message": "not cancellable"}"#), BadRequest::Conflict).unwrap();
        assert_eq!(err.kind, ErrorKind::Conflict);
    }

    #[test]
    fn too_many_requests_waits_for_the_daily_reset_when_the_day_is_spent() {
        let r = resp(429, &[("x-ratelimit-daily-remaining", "0"), ("x-ratelimit-daily-reset", "1000")], "{}");
        assert_eq!(retry_after_ms(&r, 990), 10_000);
        let r = resp(429, &[("x-ratelimit-minutely-remaining", "0"), ("x-ratelimit-daily-remaining", "5")], "{}");
        assert_eq!(retry_after_ms(&r, 990), 60_000);
        let err = check(&r, BadRequest::Refused).unwrap();
        assert_eq!(err.kind, ErrorKind::RateLimited);
        assert_eq!(err.retry_after_ms, Some(60_000));
    }
}
