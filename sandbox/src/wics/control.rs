//! `/_control/...`: the simulator's own API for tests and `spoke sandbox`
//! users. Not authenticated, not rate limited, not counted as requests.
use super::{actions, Limits, Shared};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;

type Answer = (StatusCode, Json<Value>);

fn answer(result: Result<Value, String>) -> Answer {
    match result {
        Ok(value) => (StatusCode::OK, Json(value)),
        Err(message) => (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))),
    }
}

/// Run a warehouse action and deliver the events it emitted.
fn act(shared: &Arc<Shared>, action: impl FnOnce(&mut super::State, i64) -> Result<Value, String>) -> Answer {
    let now = shared.clock.now_ms();
    let result = action(&mut shared.state.lock().unwrap(), now);
    shared.flush_outbox();
    answer(result)
}

fn stats(shared: &Shared) -> Value {
    json!({
        "violations": shared.violations.load(Ordering::SeqCst),
        "requests": shared.requests.load(Ordering::SeqCst),
        "now_ms": shared.clock.now_ms(),
    })
}

pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_control/advance", post(|State(s): State<Arc<Shared>>, Json(body): Json<Value>| async move {
            let ms = body["ms"].as_i64().unwrap_or(0);
            s.clock.advance_ms(ms);
            s.deliver_due().await;
            answer(Ok(stats(&s)))
        }))
        .route("/_control/ship-order", post(|State(s): State<Arc<Shared>>, Json(body): Json<Value>| async move {
            act(&s, |state, now| actions::ship_order(state, now, &body))
        }))
        .route("/_control/receive-announcement", post(|State(s): State<Arc<Shared>>, Json(body): Json<Value>| async move {
            act(&s, |state, now| actions::receive_announcement(state, now, &body))
        }))
        .route("/_control/stock", post(|State(s): State<Arc<Shared>>, Json(body): Json<Value>| async move {
            act(&s, |state, now| actions::change_stock(state, now, &body))
        }))
        .route("/_control/rma", post(|State(s): State<Arc<Shared>>, Json(body): Json<Value>| async move {
            act(&s, |state, _| actions::register_return(state, &body))
        }))
        .route("/_control/limits", post(|State(s): State<Arc<Shared>>, Json(body): Json<Value>| async move {
            let mut limits = s.limits.lock().unwrap().clone();
            let get = |key: &str| body.get(key).and_then(Value::as_i64);
            if let Some(v) = get("per_minute") { limits.per_minute = v as u32; }
            if let Some(v) = get("minute_ms") { limits.minute_ms = v; }
            if let Some(v) = get("per_day") { limits.per_day = v as u32; }
            if let Some(v) = get("day_ms") { limits.day_ms = v; }
            if let Some(list) = body.get("penalties_ms").and_then(Value::as_array) {
                for (slot, v) in limits.penalties_ms.iter_mut().zip(list) {
                    *slot = v.as_i64().unwrap_or(*slot);
                }
            }
            s.set_limits(limits.clone());
            answer(Ok(limits_json(&limits)))
        }))
        .route("/_control/deliver", post(|State(s): State<Arc<Shared>>| async move {
            s.deliver_due().await;
            answer(Ok(json!({})))
        }))
        .route("/_control/reset", post(|State(s): State<Arc<Shared>>| async move {
            s.reset();
            answer(Ok(stats(&s)))
        }))
        .route("/_control/stats", get(|State(s): State<Arc<Shared>>| async move { answer(Ok(stats(&s))) }))
        .route("/_control/deliveries", get(|State(s): State<Arc<Shared>>| async move {
            answer(Ok(serde_json::to_value(s.deliveries.lock().unwrap().clone()).unwrap_or_default()))
        }))
}

fn limits_json(limits: &Limits) -> Value {
    json!({
        "per_minute": limits.per_minute, "minute_ms": limits.minute_ms,
        "per_day": limits.per_day, "day_ms": limits.day_ms, "penalties_ms": limits.penalties_ms,
    })
}
