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
}

impl CallError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        CallError { kind, message: message.into(), vendor_code: None, field: None, retry_after_ms: None, status: None }
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
        Ok(())
    }
}

impl std::error::Error for CallError {}
