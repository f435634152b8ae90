//! The control API, for tests and `spoke sandbox` users (JSON):
//!
//! - `POST /_control/advance` `{"ms": 60000}`: move the simulated clock on
//! - `GET  /_control/stats`: `{requests, violations, deliveries}`
//! - `GET  /_control/violations`: `{violations}` (every 429 sent)
//! - `POST /_control/reset`: starting data back, counters and limits to zero
//! - `POST /_control/seed`: load the sample data
//! - `POST /_control/limits` `{minutely_limit, invoice_minutely_limit, daily_limit, window_ms, daily_window_ms}`
//! - `POST /_control/webhook-url` `{"url": "http://127.0.0.1:PORT/hook"}`
//! - `POST /_control/leads/{uuid}/status` `{"status": "accepted"}`
//! - `POST /_control/outbound-orders` an outbound order (webhook payload shape)
//! - `POST /_control/stock-items` a stock item; `.../{id}/ship`, `.../{id}/release`
//! - `GET  /_control/deliveries`, `POST /_control/deliveries/{id}/redeliver`
use super::api::{lead_transition_allowed, LEAD_STATUSES, OUTBOUND_ORDER_CHANGED, STOCK_ITEM_RELEASED, STOCK_ITEM_UPDATED};
use super::model::{OutboundOrder, StockItem};
use super::{control_json, util, webhooks, Bucket, Inner, State};
use axum::extract::{Path, State as AxumState};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;

type S = AxumState<Arc<State>>;

pub fn router() -> Router<Arc<State>> {
    Router::new()
        .route("/_control/advance", post(advance))
        .route("/_control/stats", get(stats))
        .route("/_control/violations", get(|AxumState(s): S| async move { control_json(StatusCode::OK, json!({"violations": s.lock().violations})) }))
        .route("/_control/reset", post(|AxumState(s): S| async move {
            reset(&s);
            control_json(StatusCode::OK, json!({"reset": true}))
        }))
        .route("/_control/seed", post(|AxumState(s): S| async move {
            s.lock().data = super::seed::seed();
            control_json(StatusCode::OK, json!({"seeded": true}))
        }))
        .route("/_control/limits", post(limits))
        .route("/_control/webhook-url", post(webhook_url))
        .route("/_control/leads/{uuid}/status", post(lead_status))
        .route("/_control/outbound-orders", post(outbound_order))
        .route("/_control/stock-items", post(stock_item))
        .route("/_control/stock-items/{id}/{action}", post(stock_item_action))
        .route("/_control/deliveries", get(|AxumState(s): S| async move { control_json(StatusCode::OK, json!(s.lock().deliveries)) }))
        .route("/_control/deliveries/{id}/redeliver", post(|AxumState(s): S, Path(id): Path<String>| async move {
            result(webhooks::redeliver(&s, &id).map(|_| json!({"redelivered": id})))
        }))
}

fn result(outcome: Result<Value, String>) -> Response {
    match outcome {
        Ok(v) => control_json(StatusCode::OK, v),
        Err(e) => control_json(StatusCode::CONFLICT, json!({"error": e})),
    }
}

async fn advance(AxumState(s): S, Json(body): Json<Value>) -> Response {
    let ms = body["ms"].as_i64().unwrap_or(0);
    s.clock.advance_ms(ms);
    control_json(StatusCode::OK, json!({"now_ms": s.clock.now_ms()}))
}

async fn stats(AxumState(s): S) -> Response {
    let inner = s.lock();
    control_json(StatusCode::OK, json!({"requests": inner.requests, "violations": inner.violations, "deliveries": inner.deliveries.len()}))
}

async fn limits(AxumState(s): S, Json(body): Json<Value>) -> Response {
    let (minutely, invoices, daily, window, day) = {
        let o = &s.lock().opts;
        let get = |k: &str, d: i64| body[k].as_i64().unwrap_or(d);
        (
            get("minutely_limit", o.minutely_limit.into()) as u32,
            get("invoice_minutely_limit", o.invoice_minutely_limit.into()) as u32,
            get("daily_limit", o.daily_limit.into()) as u32,
            get("window_ms", o.window_ms),
            get("daily_window_ms", o.daily_window_ms),
        )
    };
    set_limits(&s, minutely, invoices, daily, window, day);
    control_json(StatusCode::OK, json!({"minutely_limit": minutely, "invoice_minutely_limit": invoices, "daily_limit": daily, "window_ms": window, "daily_window_ms": day}))
}

async fn webhook_url(AxumState(s): S, Json(body): Json<Value>) -> Response {
    let url = body["url"].as_str().map(str::to_string);
    if url.as_deref().is_some_and(|u| !crate::serve::is_loopback_url(u)) {
        return control_json(StatusCode::BAD_REQUEST, json!({"error": "webhook URLs must be loopback"}));
    }
    s.lock().opts.webhook_url = url.clone();
    control_json(StatusCode::OK, json!({"url": url}))
}

async fn lead_status(AxumState(s): S, Path(uuid): Path<String>, Json(body): Json<Value>) -> Response {
    let status = body["status"].as_str().unwrap_or_default().to_string();
    result(set_lead_status(&s, &uuid, &status).map(|_| json!({"uuid": uuid, "status": status})))
}

async fn outbound_order(AxumState(s): S, Json(body): Json<Value>) -> Response {
    match serde_json::from_value::<OutboundOrder>(body) {
        Ok(order) => control_json(StatusCode::OK, json!(create_outbound_order(&s, order))),
        Err(e) => control_json(StatusCode::BAD_REQUEST, json!({"error": e.to_string()})),
    }
}

async fn stock_item(AxumState(s): S, Json(body): Json<Value>) -> Response {
    match serde_json::from_value::<StockItem>(body) {
        Ok(item) => control_json(StatusCode::OK, json!(create_stock_item(&s, item))),
        Err(e) => control_json(StatusCode::BAD_REQUEST, json!({"error": e.to_string()})),
    }
}

async fn stock_item_action(AxumState(s): S, Path((id, action)): Path<(i64, String)>) -> Response {
    let outcome = match action.as_str() {
        "ship" => ship_stock_item(&s, id),
        "release" => release_stock_item(&s, id),
        other => Err(format!("unknown action {other}; use ship or release")),
    };
    result(outcome.map(|_| json!({"stock_item_id": id, "done": action})))
}

pub fn reset(state: &Arc<State>) {
    let mut inner = state.lock();
    let opts = inner.opts.clone();
    *inner = Inner::new(opts);
}

pub fn set_limits(state: &Arc<State>, minutely: u32, invoices: u32, daily: u32, window_ms: i64, daily_window_ms: i64) {
    let mut inner = state.lock();
    inner.opts.minutely_limit = minutely;
    inner.opts.invoice_minutely_limit = invoices;
    inner.opts.daily_limit = daily;
    inner.opts.window_ms = window_ms;
    inner.opts.daily_window_ms = daily_window_ms;
    inner.general = Bucket::new(minutely, window_ms, daily, daily_window_ms);
    inner.invoices = Bucket::new(invoices, window_ms, daily, daily_window_ms);
}

pub fn set_lead_status(state: &Arc<State>, uuid: &str, status: &str) -> Result<(), String> {
    if !LEAD_STATUSES.contains(&status) {
        return Err(format!("unknown status {status:?}; allowed: {}", LEAD_STATUSES.join(", ")));
    }
    let now = util::iso8601(state.clock.now_ms());
    let mut inner = state.lock();
    let lead = inner.data.leads.get_mut(uuid).ok_or_else(|| format!("no lead {uuid}"))?;
    let from = lead["status"].as_str().unwrap_or_default().to_string();
    if !lead_transition_allowed(&from, status) {
        return Err(format!("a lead cannot go from {from} to {status}"));
    }
    lead["status"] = json!(status);
    lead["modified_at"] = json!(now);
    Ok(())
}

pub fn create_outbound_order(state: &Arc<State>, mut order: OutboundOrder) -> OutboundOrder {
    let now = state.clock.now_ms();
    let payload = {
        let mut inner = state.lock();
        if order.outbound_order_id == 0 {
            order.outbound_order_id = inner.data.next_id();
        }
        for item in &mut order.order_items {
            if item.outbound_order_item_id == 0 {
                item.outbound_order_item_id = inner.data.next_id();
            }
        }
        if order.created_at.is_empty() || order.created_at == OutboundOrder::default().created_at {
            order.created_at = util::datetime(now);
        }
        inner.data.outbound_orders.insert(order.outbound_order_id, order.clone());
        order.webhook_payload()
    };
    webhooks::emit(state, vec![(OUTBOUND_ORDER_CHANGED, payload)]);
    order
}

pub fn create_stock_item(state: &Arc<State>, mut item: StockItem) -> StockItem {
    let payload = {
        let mut inner = state.lock();
        if item.stock_item_id == 0 {
            item.stock_item_id = inner.data.next_id();
        }
        inner.data.stock_items.insert(item.stock_item_id, item.clone());
        item.webhook_payload()
    };
    webhooks::emit(state, vec![(STOCK_ITEM_UPDATED, payload)]);
    item
}

/// Apply `change` to a stock item and send `event` about it.
fn change_stock_item(state: &Arc<State>, id: i64, event: &'static str, change: impl FnOnce(&mut StockItem, i64)) -> Result<(), String> {
    let now = state.clock.now_ms();
    let payload = {
        let mut inner = state.lock();
        let item = inner.data.stock_items.get_mut(&id).ok_or_else(|| format!("no stock item {id}"))?;
        change(item, now);
        item.webhook_payload()
    };
    webhooks::emit(state, vec![(event, payload)]);
    Ok(())
}

pub fn ship_stock_item(state: &Arc<State>, id: i64) -> Result<(), String> {
    change_stock_item(state, id, STOCK_ITEM_UPDATED, |item, now| {
        item.is_shipped = true;
        item.shipped_at = Some(util::datetime(now));
        if item.outbound_shipment_id == 0 {
            item.outbound_shipment_id = id + 1;
            item.outbound_shipment_item_id = id + 2;
        }
    })
}

pub fn release_stock_item(state: &Arc<State>, id: i64) -> Result<(), String> {
    change_stock_item(state, id, STOCK_ITEM_RELEASED, |item, _| item.is_assembled = true)
}
