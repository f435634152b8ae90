//! Constructors for the WIT `error` record, so plugins say what went wrong
//! in one line.
use crate::{Error, ErrorKind};
use serde_json::Value;

/// Where the WIT error's `message` ends and its structured details begin.
/// The WIT record has no field for the rest of a vendor's error (every
/// failing field of a validation error, Lagerkoll's `errorData`), so it
/// travels after this marker as JSON; the host splits it off into the
/// error's `details`. A control character, so no vendor text contains it.
pub const DETAILS_MARKER: &str = "\u{1f}details:";

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            vendor_code: None,
            field: None,
            retry_after_ms: None,
            status: None,
        }
    }

    /// Input that does not fit the operation; `field` is a JSON path such as
    /// `lines[0].itemCode` (empty for the input as a whole).
    pub fn invalid_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = message.into();
        Error {
            message: if field.is_empty() { message } else { format!("{field}: {message}") },
            field: (!field.is_empty()).then_some(field),
            ..Error::new(ErrorKind::InvalidInput, "")
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub fn with_vendor_code(mut self, code: impl Into<String>) -> Self {
        self.vendor_code = Some(code.into());
        self
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// The vendor's structured error detail (null adds nothing), for the
    /// caller to read as `details`.
    pub fn with_details(mut self, details: Value) -> Self {
        if !details.is_null() {
            self.message = format!("{}{DETAILS_MARKER}{details}", self.message);
        }
        self
    }

    pub fn with_retry_after_ms(mut self, ms: u64) -> Self {
        self.retry_after_ms = Some(ms);
        self
    }

    /// The usual mapping of an HTTP status to a kind, for vendors whose
    /// statuses mean what HTTP says they mean. A vendor's 400/422 is
    /// `vendor`: the request was sent and the vendor refused it, while
    /// `invalid-input` means Spoke refused it and nothing was sent.
    pub fn kind_for_status(status: u16) -> ErrorKind {
        match status {
            400 | 422 => ErrorKind::Vendor,
            401 => ErrorKind::Unauthorized,
            403 => ErrorKind::Forbidden,
            404 => ErrorKind::NotFound,
            409 => ErrorKind::Conflict,
            429 => ErrorKind::RateLimited,
            408 | 504 => ErrorKind::Timeout,
            _ => ErrorKind::Vendor,
        }
    }
}

