//! Webhook ingress: `POST /hooks/{connector}`.
//!
//! The raw request goes to the connector plugin's `handle-webhook`; the
//! events it returns are committed to the store before we answer 200, so a
//! 200 always means "durably ours". Commits from concurrent deliveries are
//! grouped into one transaction by the [`Committer`]. Every refusal is
//! recorded with its reason and the raw body, headers with secrets redacted.
mod committer;

pub use committer::Committer;

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

async fn receive(state: State<Arc<Ingress>>, Path(connector): Path<String>, query: RawQuery, headers: HeaderMap, body: Body) -> Response {
    handle(state, connector, String::new(), query, headers, body).await
}

async fn handle(State(ing): State<Arc<Ingress>>, connector: String, path: String, RawQuery(query): RawQuery, headers: HeaderMap, body: Body) -> Response {
    let mut record = DeliveryRecord { connector: connector.clone(), received_at: now_ms(), headers: redact(&headers), body: Vec::new() };
    let refuse = |record: &DeliveryRecord, status: StatusCode, reason: String| {
        if let Err(e) = ing.host.store().record_refusal(record, status.as_u16(), &reason) {
            tracing::error!(connector = %record.connector, "could not record a refused webhook: {e:#}");
        }
        tracing::warn!(connector = %record.connector, status = status.as_u16(), "webhook refused: {reason}");
        answer(status, serde_json::json!({ "error": reason }))
    };

    let bytes = match axum::body::to_bytes(body, ing.max_body).await {
        Ok(b) => b,
        Err(_) => {
            let len = headers.get("content-length").and_then(|v| v.to_str().ok()).unwrap_or("unknown");
            return refuse(&record, StatusCode::PAYLOAD_TOO_LARGE, format!("body exceeds {} bytes (content-length: {len})", ing.max_body));
        }
    };
    record.body = bytes.to_vec();
    let Ok(binding) = ing.host.connector(&connector) else {
        return refuse(&record, StatusCode::NOT_FOUND, format!("no connector named {connector:?}"));
    };
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
            return refuse(&record, status, e.to_string());
        }
    };
    let events = events.into_iter().map(|e| {
        let subs = ing.dispatcher.subscribers_for(&connector, &e.topic);
        (e, subs)
    });
    let incoming = Incoming { delivery: record.clone(), events: events.collect() };
    match ing.committer.commit(incoming).await {
        Ok(c) => {
            if c.new_events > 0 {
                ing.dispatcher.notify();
            }
            answer(StatusCode::OK, serde_json::json!({ "accepted": c.new_events, "duplicates": c.duplicates, "delivery": c.delivery_id }))
        }
        Err(e) => {
            tracing::error!(connector = %connector, "webhook not committed, answering 503 so the vendor retries: {e:#}");
            answer(StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({ "error": "the event store is unavailable; retry later" }))
        }
    }
}
