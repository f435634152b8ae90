//! Building requests for the host's `http.send` and reading the answers.
use crate::spoke::connector::http as wit;
use crate::{Error, ErrorKind, Method, Value};
use serde::de::DeserializeOwned;

pub use wit::Response;

/// A request under construction. The host adds the base URL and credentials.
pub struct Request(wit::Request);

impl Request {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Request(wit::Request {
            method,
            path: path.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
            auth: Vec::new(),
        })
    }
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::Get, path)
    }
    pub fn post(path: impl Into<String>) -> Self {
        Self::new(Method::Post, path)
    }
    pub fn put(path: impl Into<String>) -> Self {
        Self::new(Method::Put, path)
    }
    pub fn delete(path: impl Into<String>) -> Self {
        Self::new(Method::Delete, path)
    }

    /// Ask the host to inject the credentials of the named auth scheme.
    pub fn auth(mut self, scheme: &str) -> Self {
        self.0.auth.push(scheme.into());
        self
    }
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.query.push((name.into(), value.into()));
        self
    }
    /// Add a query parameter from a JSON scalar, skipping null.
    pub fn query_value(self, name: impl Into<String>, value: &Value) -> Self {
        match scalar_text(value) {
            Some(text) => self.query(name, text),
            None => self,
        }
    }
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.headers.push((name.into(), value.into()));
        self
    }
    pub fn body(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.0.body = Some(body);
        self.header("content-type", content_type)
    }
    pub fn json(self, body: &Value) -> Self {
        self.body("application/json", body.to_string().into_bytes())
    }
    /// An `application/x-www-form-urlencoded` body.
    pub fn form(self, fields: &[(String, String)]) -> Self {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.body("application/x-www-form-urlencoded", body.into_bytes())
    }

    /// Send through the host. An `Err` means no answer arrived (refused,
    /// rate-limited beyond the host's wait bound, timeout, transport); any
    /// answer, whatever its status, is `Ok`.
    pub fn send(self) -> Result<Response, Error> {
        wit::send(&self.0)
    }
}

/// Text of a JSON scalar as it goes into a URL; `None` for null.
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

/// Percent-encode one path segment (RFC 3986 unreserved characters stay).
pub fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn form_encode(text: &str) -> String {
    encode_segment(text).replace("%20", "+")
}

/// Fill `{name}` placeholders of a vendor path from the input, each value
/// percent-encoded as one segment. A missing value is an `invalid-input`.
pub fn fill_path(template: &str, input: &Value) -> Result<String, Error> {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else { break };
        out.push_str(&rest[..start]);
        let name = &rest[start + 1..start + len];
        let value = input.get(name).and_then(scalar_text).ok_or_else(|| {
            Error::invalid_input(name, "is required (it is part of the path)")
        })?;
        if value.is_empty() {
            return Err(Error::invalid_input(name, "must not be empty"));
        }
        out.push_str(&encode_segment(&value));
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// Parse the body as JSON, read liberally into `T` (see [`crate::read`]);
    /// a body that is not JSON at all is an `internal` error that quotes the
    /// start of what arrived, never a silent default.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice::<serde_json::Value>(&self.body).and_then(crate::read::lenient).map_err(|e| {
            let start: String = self.text().chars().take(120).collect();
            Error::new(
                ErrorKind::Internal,
                format!("vendor answered {} with a body that is not the expected JSON ({e}): {start}", self.status),
            )
            .with_status(self.status)
        })
    }
    /// Seconds from a `Retry-After` header, as milliseconds.
    pub fn retry_after_ms(&self) -> Option<u64> {
        self.header("retry-after")?.trim().parse::<u64>().ok().map(|s| s * 1000)
    }
    /// True when the body looks like XML rather than JSON.
    pub fn is_xml(&self) -> bool {
        let ct = self.header("content-type").unwrap_or("");
        ct.contains("xml") || self.body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<')
    }
}
