//! Webhook ingress: `POST /hooks/{connector}`.
//!
//! The raw request goes to the connector plugin's `handle-webhook`; the
//! events it returns are committed to the store before we answer 200, so a
//! 200 always means "durably ours". Commits from concurrent deliveries are
//! grouped into one transaction by the [`Committer`]. Every refusal is
//! recorded with its reason and a bounded prefix of the body (none for an
//! unknown connector), headers with secrets redacted, off the request path
//! by the [`RefusalLog`].
mod committer;
mod refusals;

pub use committer::Committer;
pub use refusals::RefusalLog;

/// Bytes of headers a refusal keeps at most.
pub fn refusals_header_cap() -> usize {
    refusals::MAX_HEADERS
}

use crate::dispatch::Dispatcher;
use crate::error::ErrorKind;
use crate::store::{now_ms, DeliveryRecord, Incoming};
use crate::{Host, Received};
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use std::sync::Arc;

/// Largest webhook body accepted.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

pub struct Ingress {
    pub host: Arc<Host>,
    pub committer: Committer,
    pub dispatcher: Arc<Dispatcher>,
    pub max_body: usize,
}

pub fn router(ingress: Arc<Ingress>) -> Router {
    Router::new()
        .route("/hooks/{connector}", post(receive))
        // The rest of the path reaches the plugin (WICS names topics there).
        .route("/hooks/{connector}/{*rest}", post(receive_with_path))
        .with_state(ingress)
}

async fn receive_with_path(state: State<Arc<Ingress>>, Path((connector, rest)): Path<(String, String)>, query: RawQuery, headers: HeaderMap, body: Body) -> Response {
    handle(state, connector, format!("/{rest}"), query, headers, body).await
}

/// Header values that may carry a secret are not stored.
fn redact(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            let name = k.as_str().to_ascii_lowercase();
            let secret = ["authorization", "cookie", "signature", "token", "secret", "api-key", "apikey", "password"].iter().any(|s| name.contains(s));
            let value = if secret { "[redacted]".to_string() } else { String::from_utf8_lossy(v.as_bytes()).into_owned() };
            (name, value)
        })
        .collect()
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

enum BodyError {
    TooLarge,
    /// The connection ended (or failed) before the body did.
    Incomplete(String),
}

/// The whole body, at most `max` bytes; on failure, what arrived with why.
async fn read_body(body: Body, max: usize, declared: Option<u64>) -> Result<Vec<u8>, (Vec<u8>, BodyError)> {
    use futures::StreamExt;
    if declared.is_some_and(|n| n > max as u64) {
        return Err((Vec::new(), BodyError::TooLarge));
    }
    let mut stream = body.into_data_stream();
    let mut got = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) if got.len() + c.len() > max => return Err((got, BodyError::TooLarge)),
            Ok(c) => got.extend_from_slice(&c),
            Err(e) => {
                let why = std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_else(|| e.to_string());
                return Err((got, BodyError::Incomplete(why)));
            }
        }
    }
    Ok(got)
}

async fn receive(state: State<Arc<Ingress>>, Path(connector): Path<String>, query: RawQuery, headers: HeaderMap, body: Body) -> Response {
    handle(state, connector, String::new(), query, headers, body).await
}

async fn handle(State(ing): State<Arc<Ingress>>, connector: String, path: String, RawQuery(query): RawQuery, headers: HeaderMap, body: Body) -> Response {
    let mut record = DeliveryRecord { connector: connector.clone(), received_at: now_ms(), headers: redact(&headers), body: Vec::new() };
    let refuse = |record: DeliveryRecord, status: StatusCode, reason: String, known: bool| {
        tracing::warn!(connector = %record.connector, status = status.as_u16(), "webhook refused: {reason}");
        // An unknown name is the sender's text: not a label.
        let label = if known { record.connector.as_str() } else { "(unknown)" };
        ing.host.metrics().webhook(label, crate::metrics::WebhookResult::Refused);
        ing.host.refusals().record(record, status.as_u16(), &reason, known);
        answer(status, serde_json::json!({ "error": reason }))
    };

    // An unknown connector is answered before its body is read.
    let Ok(binding) = ing.host.connector(&connector) else {
        return refuse(record, StatusCode::NOT_FOUND, format!("no connector named {connector:?}"), false);
    };
    let declared = headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let body = match read_body(body, ing.max_body, declared).await {
        Ok(b) => b,
        Err((got, BodyError::TooLarge)) => {
            record.body = got;
            let len = declared.map(|n| n.to_string()).unwrap_or_else(|| "not given".into());
            return refuse(record, StatusCode::PAYLOAD_TOO_LARGE, format!("body exceeds {} bytes (content-length: {len})", ing.max_body), true);
        }
        Err((got, BodyError::Incomplete(error))) => {
            let of = declared.map(|n| format!(" of {n}")).unwrap_or_default();
            let reason = format!("incomplete body: the sender stopped after {}{of} bytes ({error})", got.len());
            record.body = got;
            return refuse(record, StatusCode::BAD_REQUEST, reason, true);
        }
    };
    record.body = body;
    let received = Received {
        method: "POST".into(),
        path,
        query: query.unwrap_or_default(),
        headers: headers.iter().map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect(),
        body: record.body.clone(),
    };
    let events = match binding.plugin.clone().handle_webhook(binding, &received).await {
        Ok(events) => events,
        Err(e) => {
            let status = match e.kind {
                ErrorKind::Unauthorized | ErrorKind::Forbidden => StatusCode::UNAUTHORIZED,
                ErrorKind::InvalidInput | ErrorKind::Unsupported => StatusCode::BAD_REQUEST,
                // Our fault (a plugin trap, a timeout): let the vendor retry.
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            return refuse(record, status, e.to_string(), true);
        }
    };
    // Matched to subscribers when dispatched (crate::dispatch::route).
    let incoming = Incoming { delivery: record, events };
    match ing.committer.commit(incoming).await {
        Ok(c) => {
            if c.new_events > 0 {
                ing.dispatcher.notify();
            }
            ing.host.metrics().webhook(&connector, crate::metrics::WebhookResult::Accepted { new: c.new_events, duplicates: c.duplicates });
            answer(StatusCode::OK, serde_json::json!({ "accepted": c.new_events, "duplicates": c.duplicates, "delivery": c.delivery_id }))
        }
        Err(e) => {
            tracing::error!(connector = %connector, "webhook not committed, answering 503 so the vendor retries: {e:#}");
            answer(StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({ "error": "the event store is unavailable; retry later" }))
        }
    }
}
