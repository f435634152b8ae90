//! The error a caller of a connector gets: the WIT `error` record in host
//! terms, plus the failures that happen before a plugin is reached.
use serde::Serialize;
use std::fmt;

/// What kind of failure happened; mirrors the WIT `error-kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    InvalidInput,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    RateLimited,
    Vendor,
    Transport,
    Timeout,
    Refused,
    Unsupported,
    Internal,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::InvalidInput,
        ErrorKind::Unauthorized,
        ErrorKind::Forbidden,
        ErrorKind::NotFound,
        ErrorKind::Conflict,
        ErrorKind::RateLimited,
        ErrorKind::Vendor,
        ErrorKind::Transport,
        ErrorKind::Timeout,
        ErrorKind::Refused,
        ErrorKind::Unsupported,
        ErrorKind::Internal,
    ];

    /// The kebab-case name scripts and the CLI use, e.g. "invalid-input".
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid-input",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not-found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::RateLimited => "rate-limited",
            ErrorKind::Vendor => "vendor",
            ErrorKind::Transport => "transport",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Refused => "refused",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Internal => "internal",
        }
    }

    /// Whether trying the same call again later may succeed.
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorKind::RateLimited | ErrorKind::Transport | ErrorKind::Timeout)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed call, with everything needed to decide what to do next.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallError {
    pub kind: ErrorKind,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The rest of the vendor's error, as the vendor sent it: every failing
    /// field of a validation error, Lagerkoll's `errorData`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// Where a plugin's error message ends and its JSON details begin (the WIT
/// error record has no field for them; see `spoke_pdk::error::DETAILS_MARKER`).
pub const DETAILS_MARKER: &str = "\u{1f}details:";

/// A plugin's message split into the text and the details after the marker.
pub fn split_details(message: String) -> (String, Option<serde_json::Value>) {
    match message.split_once(DETAILS_MARKER) {
        Some((text, details)) => {
            let details = serde_json::from_str(details).unwrap_or_else(|_| serde_json::Value::String(details.to_string()));
            (text.to_string(), Some(details))
        }
        None => (message, None),
    }
}

impl CallError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        CallError { kind, message: message.into(), vendor_code: None, field: None, retry_after_ms: None, status: None, details: None }
    }

    /// Transient by kind, or a vendor 5xx.
    pub fn is_transient(&self) -> bool {
        self.kind.is_transient() || self.status.is_some_and(|s| s >= 500)
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        if let Some(code) = &self.vendor_code {
            write!(f, " (vendor code {code})")?;
        }
        if let Some(details) = &self.details {
            write!(f, "; details: {details}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CallError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_after_the_marker_are_split_off_as_json() {
        let (text, details) = split_details(format!("WICS answered 422: Validation failed{DETAILS_MARKER}{{\"zipcode\":[\"is required\"],\"email\":[\"is invalid\"]}}"));
        assert_eq!(text, "WICS answered 422: Validation failed");
        assert_eq!(details, Some(serde_json::json!({"zipcode": ["is required"], "email": ["is invalid"]})));
        assert_eq!(split_details("plain".into()), ("plain".to_string(), None));
        let mut e = CallError::new(ErrorKind::Vendor, text);
        e.details = details;
        assert!(e.to_string().contains("email"), "{e}");
    }
}
