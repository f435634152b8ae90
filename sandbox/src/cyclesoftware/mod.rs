//! Simulator of the CycleSoftware APIs: the warehouse API, the platform API
//! (keys, stock-in-store locator, sales leads) and sales orders, with Basic
//! auth, the JSON and XML error forms, both pagination styles, the
//! documented rate limits with their headers (and a violation counter), lead
//! statuses, and signed warehouse webhooks.
//!
//! Control API (JSON) under `/_control/`: see [`control`].
mod api;
mod control;
mod model;
mod seed;
mod util;
mod webhooks;

pub use api::{BucketName, LEAD_STATUSES, LEAD_TYPES, OUTBOUND_ORDER_CHANGED, STOCK_ITEM_RELEASED, STOCK_ITEM_UPDATED};
pub use model::{OutboundItem, OutboundOrder, StockItem};
pub use webhooks::{sign, Delivery, SignatureEncoding};

use crate::limits::RollingWindow;
use crate::serve::{self, Server};
use crate::Clock;
use axum::body::{Body, Bytes};
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use base64::Engine;
use serde_json::Value;
use std::sync::{Arc, Mutex, MutexGuard};

/// How the simulator behaves. `Default` is the documented behaviour.
#[derive(Debug, Clone)]
pub struct Options {
    pub username: String,
    pub password: String,
    /// The account's hash secret that signs webhooks.
    pub hash_secret: String,
    pub signature_encoding: SignatureEncoding,
    /// Requests per moving window on the general limited endpoints (360/minute).
    pub minutely_limit: u32,
    /// create-invoices' own limit (15/minute).
    pub invoice_minutely_limit: u32,
    /// Requests per day, per bucket (15,000).
    pub daily_limit: u32,
    /// Length of the "minutely" window; scale it down in tests.
    pub window_ms: i64,
    /// Length of the day the daily limit counts.
    pub daily_window_ms: i64,
    /// Records per page of the paged lists (the docs' example pages by 1000).
    pub page_size: usize,
    /// Where webhooks go; loopback only.
    pub webhook_url: Option<String>,
    /// Start with the sample data of [`seed`] (otherwise empty).
    pub seed: bool,
    /// 0 picks a free port.
    pub port: u16,
    /// Answer create-lead and get-lead with only what the caller sent (plus
    /// the uuid and status): the docs do not promise the full record back,
    /// and a connector must not depend on it.
    pub echo_created_leads: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            username: "demo".into(),
            password: "demo-password".into(),
            hash_secret: "demo-hash-secret".into(),
            signature_encoding: SignatureEncoding::Hex,
            minutely_limit: 360,
            invoice_minutely_limit: 15,
            daily_limit: 15_000,
            window_ms: 60_000,
            daily_window_ms: 86_400_000,
            page_size: 1000,
            webhook_url: None,
            seed: true,
            port: 0,
            echo_created_leads: false,
        }
    }
}

/// One rate bucket: a moving "minute" and a calendar "day".
#[derive(Debug, Clone)]
pub struct Bucket {
    minute: RollingWindow,
    daily_limit: u32,
    daily_window_ms: i64,
    day: i64,
    day_count: u32,
    /// Requests let through, and when the first and last of them came: how
    /// much of the budget a client used.
    used: u64,
    first_ms: Option<i64>,
    last_ms: i64,
}

impl Bucket {
    fn new(limit: u32, window_ms: i64, daily_limit: u32, daily_window_ms: i64) -> Self {
        Bucket { minute: RollingWindow::new(limit, window_ms), daily_limit, daily_window_ms: daily_window_ms.max(1), day: 0, day_count: 0, used: 0, first_ms: None, last_ms: 0 }
    }
    fn roll_day(&mut self, now_ms: i64) {
        let day = now_ms.div_euclid(self.daily_window_ms);
        if day != self.day {
            self.day = day;
            self.day_count = 0;
        }
    }
    /// Count a request; false (and nothing counted) when over either limit.
    fn try_hit(&mut self, now_ms: i64) -> bool {
        self.roll_day(now_ms);
        if self.day_count >= self.daily_limit || !self.minute.try_hit(now_ms) {
            return false;
        }
        self.day_count += 1;
        self.used += 1;
        self.first_ms.get_or_insert(now_ms);
        self.last_ms = now_ms;
        true
    }

    /// (requests let through, the most a client could have sent between the
    /// first and the last of them: a full window's limit per window begun).
    pub fn budget(&self) -> (u64, u64) {
        let Some(first) = self.first_ms else { return (0, 0) };
        let windows_begun = (self.last_ms - first) / self.minute.window_ms.max(1) + 1;
        (self.used, windows_begun as u64 * u64::from(self.minute.limit))
    }
    /// The documented X-RateLimit headers.
    fn headers(&mut self, now_ms: i64) -> Vec<(&'static str, String)> {
        self.roll_day(now_ms);
        vec![
            ("X-RateLimit-Minutely-Limit", self.minute.limit.to_string()),
            ("X-RateLimit-Minutely-Remaining", self.minute.remaining(now_ms).to_string()),
            ("X-RateLimit-Daily-Limit", self.daily_limit.to_string()),
            ("X-RateLimit-Daily-Remaining", self.daily_limit.saturating_sub(self.day_count).to_string()),
            ("X-RateLimit-Daily-Reset", ((self.day + 1) * self.daily_window_ms / 1000).to_string()),
        ]
    }
}

/// Everything behind the lock.
pub struct Inner {
    pub opts: Options,
    pub data: model::Data,
    pub requests: u64,
    pub violations: u64,
    pub general: Bucket,
    pub invoices: Bucket,
    pub deliveries: Vec<Delivery>,
    delivery_counter: u64,
}

impl Inner {
    fn new(opts: Options) -> Self {
        let data = if opts.seed { seed::seed() } else { model::Data { next_id: 900_000, account_stores: vec![1, 2, 3], ..Default::default() } };
        Inner {
            general: Bucket::new(opts.minutely_limit, opts.window_ms, opts.daily_limit, opts.daily_window_ms),
            invoices: Bucket::new(opts.invoice_minutely_limit, opts.window_ms, opts.daily_limit, opts.daily_window_ms),
            opts,
            data,
            requests: 0,
            violations: 0,
            deliveries: vec![],
            delivery_counter: 0,
        }
    }
    fn bucket(&mut self, name: BucketName) -> &mut Bucket {
        match name {
            BucketName::General => &mut self.general,
            BucketName::CreateInvoices => &mut self.invoices,
        }
    }
}

pub struct State {
    pub clock: Clock,
    inner: Mutex<Inner>,
}

impl State {
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Simulator {
    pub server: Server,
    pub state: Arc<State>,
}

impl Simulator {
    pub async fn start(opts: Options) -> anyhow::Result<Simulator> {
        let port = opts.port;
        let state = Arc::new(State { clock: Clock::new(), inner: Mutex::new(Inner::new(opts)) });
        let router = control::router().fallback(api_entry).with_state(state.clone());
        let server = serve::serve(router, port).await?;
        Ok(Simulator { server, state })
    }

    pub fn url(&self) -> String {
        self.server.url()
    }
    /// Kill a process right after a chosen write is answered; see [`crate::faults`].
    pub fn faults(&self) -> &crate::Faults {
        self.server.faults()
    }
    pub fn advance_ms(&self, ms: i64) {
        self.state.clock.advance_ms(ms);
    }
    /// Every 429 the simulator has sent.
    pub fn violations(&self) -> u64 {
        self.state.lock().violations
    }
    /// Requests that reached the API (not the control API).
    pub fn request_count(&self) -> u64 {
        self.state.lock().requests
    }
    /// Back to the starting data; counters and limit windows to zero.
    pub fn reset(&self) {
        control::reset(&self.state);
    }
    /// Load the sample data (articles, stock, outbound orders, stores, sales
    /// orders with their customers) over whatever is there.
    pub fn seed(&self) {
        self.state.lock().data = seed::seed();
    }
    pub fn set_webhook_url(&self, url: Option<String>) {
        self.state.lock().opts.webhook_url = url;
    }
    /// Dealer-side status change of a lead; Err names why it is not allowed.
    pub fn set_lead_status(&self, uuid: &str, status: &str) -> Result<(), String> {
        control::set_lead_status(&self.state, uuid, status)
    }
    pub fn lead_status(&self, uuid: &str) -> Option<String> {
        self.state.lock().data.leads.get(uuid).and_then(|l| l["status"].as_str().map(str::to_string))
    }
    /// Create (or replace) an outbound order; fires created_or_updated.
    pub fn create_outbound_order(&self, order: OutboundOrder) -> OutboundOrder {
        control::create_outbound_order(&self.state, order)
    }
    /// Create (or replace) a warehouse stock item; fires stock_item.updated.
    pub fn create_stock_item(&self, item: StockItem) -> StockItem {
        control::create_stock_item(&self.state, item)
    }
    /// Release a stock item for shipment; fires released_for_shipment.
    pub fn release_stock_item(&self, id: i64) -> Result<(), String> {
        control::release_stock_item(&self.state, id)
    }
    /// Mark a stock item shipped; fires stock_item.updated.
    pub fn ship_stock_item(&self, id: i64) -> Result<(), String> {
        control::ship_stock_item(&self.state, id)
    }
    pub fn outbound_order(&self, id: i64) -> Option<OutboundOrder> {
        self.state.lock().data.outbound_orders.get(&id).cloned()
    }
    pub fn stock_item(&self, id: i64) -> Option<StockItem> {
        self.state.lock().data.stock_items.get(&id).cloned()
    }
    /// (used, allowed) of a bucket's minutely budget; see [`Bucket::budget`].
    pub fn budget(&self, bucket: BucketName) -> (u64, u64) {
        self.state.lock().bucket(bucket).budget()
    }
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state.lock().deliveries.clone()
    }
    /// Send a delivery again with the same X-CycleSoftware-Delivery.
    pub fn redeliver(&self, delivery_id: &str) -> Result<(), String> {
        webhooks::redeliver(&self.state, delivery_id)
    }
    /// Scale the limits (and their windows) at run time.
    pub fn set_limits(&self, minutely: u32, invoices_minutely: u32, daily: u32, window_ms: i64, daily_window_ms: i64) {
        control::set_limits(&self.state, minutely, invoices_minutely, daily, window_ms, daily_window_ms);
    }
}

fn authorized(headers: &HeaderMap, opts: &Options) -> bool {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else { return false };
    let Some(encoded) = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic ")) else { return false };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else { return false };
    decoded == format!("{}:{}", opts.username, opts.password).into_bytes()
}

fn respond(status: StatusCode, body: String, content_type: &str, extra: Vec<(&'static str, String)>) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert("content-type", HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("application/json")));
    for (name, value) in extra {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    resp
}

/// Every vendor endpoint: count, authenticate, rate-limit, route, deliver
/// the webhooks the change caused.
async fn api_entry(AxumState(state): AxumState<Arc<State>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // The older /app/api endpoints answer errors in the XML form.
    let xml = segs.first() == Some(&"app");
    let error = |status: StatusCode, message: &str, extra| {
        if xml {
            respond(status, util::xml_error(message), "text/xml; charset=utf-8", extra)
        } else {
            respond(status, util::json_error(message), "application/json; charset=utf-8", extra)
        }
    };
    let now = state.clock.now_ms();
    let mut events = vec![];
    let (result, limit_headers) = {
        let mut inner = state.lock();
        inner.requests += 1;
        if !authorized(&headers, &inner.opts) {
            return error(StatusCode::UNAUTHORIZED, "Unauthorized", vec![]);
        }
        let bucket = api::bucket_for(&method, &segs);
        let mut limit_headers = vec![];
        if let Some(name) = bucket {
            let allowed = inner.bucket(name).try_hit(now);
            limit_headers = inner.bucket(name).headers(now);
            if !allowed {
                inner.violations += 1;
                return error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests", limit_headers);
            }
        }
        let call = api::Call { method: &method, segs: segs.clone(), query: util::decode_pairs(uri.query().unwrap_or("")), body: &body };
        let page_size = inner.opts.page_size.max(1);
        let echo_created_leads = inner.opts.echo_created_leads;
        let mut ctx = api::Ctx { data: &mut inner.data, now_ms: now, page_size, events: &mut events, echo_created_leads };
        (api::route(&mut ctx, &call), limit_headers)
    };
    webhooks::emit(&state, events);
    match result {
        Ok(value) => respond(StatusCode::OK, value.to_string(), "application/json; charset=utf-8", limit_headers),
        Err(e) => error(e.status, &e.message, limit_headers),
    }
}

/// A JSON value as the control API returns it.
pub(crate) fn control_json(status: StatusCode, value: Value) -> Response {
    respond(status, value.to_string(), "application/json", vec![])
}
