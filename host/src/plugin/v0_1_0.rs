//! Bindings for plugins built against `spoke:connector@0.1.0` — the frozen
//! folder `wit/v0.1.0`. This module only generates the bindings and converts
//! its types to the host's own (`crate::manifest`, `crate::error`); the host
//! logic lives in `crate::imports`. A future 0.2.0 gets a sibling module
//! like this one, and this one then converts to the latest.
use crate::error::{CallError, ErrorKind};
use crate::manifest as m;

wasmtime::component::bindgen!({
    world: "connector",
    path: "../wit/v0.1.0",
    imports: { default: async },
    exports: { default: async },
});

pub use spoke::connector::{auth, config, events, http, kv, log, manifest, rate_limit, types};

pub fn method(value: types::Method) -> m::Method {
    match value {
        types::Method::Get => m::Method::Get,
        types::Method::Post => m::Method::Post,
        types::Method::Put => m::Method::Put,
        types::Method::Patch => m::Method::Patch,
        types::Method::Delete => m::Method::Delete,
        types::Method::Head => m::Method::Head,
    }
}

fn kind(value: types::ErrorKind) -> ErrorKind {
    use types::ErrorKind as K;
    match value {
        K::InvalidInput => ErrorKind::InvalidInput,
        K::Unauthorized => ErrorKind::Unauthorized,
        K::Forbidden => ErrorKind::Forbidden,
        K::NotFound => ErrorKind::NotFound,
        K::Conflict => ErrorKind::Conflict,
        K::RateLimited => ErrorKind::RateLimited,
        K::Vendor => ErrorKind::Vendor,
        K::Transport => ErrorKind::Transport,
        K::Timeout => ErrorKind::Timeout,
        K::Refused => ErrorKind::Refused,
        K::Unsupported => ErrorKind::Unsupported,
        K::Internal => ErrorKind::Internal,
    }
}

fn wit_kind(value: ErrorKind) -> types::ErrorKind {
    use types::ErrorKind as K;
    match value {
        ErrorKind::InvalidInput => K::InvalidInput,
        ErrorKind::Unauthorized => K::Unauthorized,
        ErrorKind::Forbidden => K::Forbidden,
        ErrorKind::NotFound => K::NotFound,
        ErrorKind::Conflict => K::Conflict,
        ErrorKind::RateLimited => K::RateLimited,
        ErrorKind::Vendor => K::Vendor,
        ErrorKind::Transport => K::Transport,
        ErrorKind::Timeout => K::Timeout,
        ErrorKind::Refused => K::Refused,
        ErrorKind::Unsupported => K::Unsupported,
        ErrorKind::Internal => K::Internal,
    }
}

impl From<types::Error> for CallError {
    fn from(e: types::Error) -> Self {
        let (message, details) = crate::error::split_details(e.message);
        CallError {
            kind: kind(e.kind),
            message,
            details,
            vendor_code: e.vendor_code,
            field: e.field,
            retry_after_ms: e.retry_after_ms,
            status: e.status,
        }
    }
}

impl From<CallError> for types::Error {
    fn from(e: CallError) -> Self {
        types::Error {
            kind: wit_kind(e.kind),
            message: match &e.details {
                Some(details) => format!("{}{}{details}", e.message, crate::error::DETAILS_MARKER),
                None => e.message,
            },
            vendor_code: e.vendor_code,
            field: e.field,
            retry_after_ms: e.retry_after_ms,
            status: e.status,
        }
    }
}

fn schema(text: &str) -> serde_json::Value {
    // A plugin that publishes a broken schema still loads; describe shows
    // the text so the author sees what went wrong.
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_string()))
}

impl From<manifest::Manifest> for m::Manifest {
    fn from(w: manifest::Manifest) -> Self {
        m::Manifest {
            name: w.name,
            version: w.version,
            vendor: w.vendor,
            description: w.description,
            base_urls: w.base_urls.into_iter().map(|b| m::BaseUrl { key: b.key, url: b.url }).collect(),
            auth_schemes: w
                .auth_schemes
                .into_iter()
                .map(|s| m::AuthScheme {
                    name: s.name,
                    description: s.description,
                    optional: s.optional,
                    method: match s.method {
                        manifest::AuthMethod::Basic(f) => m::AuthMethod::Basic { username_field: f.username, password_field: f.password },
                        manifest::AuthMethod::Headers(headers) => m::AuthMethod::Headers { headers },
                        manifest::AuthMethod::Bearer(field) => m::AuthMethod::Bearer { field },
                        manifest::AuthMethod::Query(params) => m::AuthMethod::Query { params },
                    },
                })
                .collect(),
            rate_policies: w
                .rate_policies
                .into_iter()
                .map(|p| m::RatePolicy {
                    name: p.name,
                    description: p.description,
                    operations: p.operations,
                    windows: p.windows.into_iter().map(|w| m::Window { limit: w.limit, seconds: w.seconds }).collect(),
                    headers: p
                        .headers
                        .into_iter()
                        .map(|h| m::RateHeader {
                            name: h.name.to_ascii_lowercase(),
                            window_seconds: h.window_seconds,
                            meaning: match h.meaning {
                                manifest::HeaderMeaning::Limit => m::HeaderMeaning::Limit,
                                manifest::HeaderMeaning::Remaining => m::HeaderMeaning::Remaining,
                                manifest::HeaderMeaning::ResetSeconds => m::HeaderMeaning::ResetSeconds,
                                manifest::HeaderMeaning::ResetAt => m::HeaderMeaning::ResetAt,
                            },
                        })
                        .collect(),
                    penalty_seconds: p.penalty_seconds,
                })
                .collect(),
            operations: w
                .operations
                .into_iter()
                .map(|o| m::Operation {
                    name: o.name,
                    description: o.description,
                    method: method(o.method),
                    path: o.path,
                    input_schema: schema(&o.input_schema),
                    output_schema: schema(&o.output_schema),
                    idempotent: o.idempotent,
                    paged: o.paged,
                })
                .collect(),
            webhook_topics: w.webhook_topics.into_iter().map(|t| m::WebhookTopic { name: t.name, description: t.description }).collect(),
        }
    }
}

impl From<&m::Received> for events::Received {
    fn from(r: &m::Received) -> Self {
        events::Received {
            method: r.method.clone(),
            path: r.path.clone(),
            query: r.query.clone(),
            headers: r.headers.clone(),
            body: r.body.clone(),
        }
    }
}

impl TryFrom<events::Event> for m::Event {
    type Error = CallError;
    fn try_from(e: events::Event) -> Result<Self, CallError> {
        let payload = serde_json::from_str(&e.payload).map_err(|err| {
            CallError::new(ErrorKind::Internal, format!("plugin produced event {} whose payload is not JSON: {err}", e.id))
        })?;
        Ok(m::Event { id: e.id, topic: e.topic, occurred_at: e.occurred_at, subject: e.subject, payload })
    }
}
