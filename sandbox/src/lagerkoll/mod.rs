//! Simulator of the Lagerkoll customer orders API (`/v1/customer_orders`).
//!
//! In-memory orders, offers, picking lists and purchase orders with the
//! documented state machines, error bodies (`{errorCode, errorMessage,
//! errorField, errorData}`) and codes, `store` + `api_key` (or `store` +
//! `user_id` + `user_token`) auth, 200 requests per minute (answered with 429
//! and `Retry-After` beyond it), and real PDF bytes from the print endpoints.
//! The control API under `/_control/` moves the clock, reads the counters,
//! scales the limit, seeds and resets.
mod classes;
mod data;
mod offers;
mod orders;
mod picking_lists;
mod print;
mod rest_articles;

use crate::{serve, Clock};
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use data::State;

/// A person who can log in (the `user-token` way) and be a warehouse worker.
#[derive(Clone, Debug)]
pub struct User {
    pub id: i64,
    pub token: String,
    pub name: String,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub store: String,
    pub api_key: String,
    pub users: Vec<User>,
    /// Requests allowed per window (documented: 200 per minute).
    pub limit_per_window: u32,
    pub window_ms: i64,
    /// Also load sample orders and an offer (`seed`).
    pub seed: bool,
    /// 0 picks a free port.
    pub port: u16,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            store: "4711".into(),
            api_key: "lk-demo-key".into(),
            users: vec![
                User { id: 1001, token: "tok-anna".into(), name: "Anna Lager".into() },
                User { id: 1002, token: "tok-bo".into(), name: "Bo Plock".into() },
            ],
            limit_per_window: 200,
            window_ms: 60_000,
            seed: false,
            port: 0,
        }
    }
}

/// An error as Lagerkoll sends it.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub code: i64,
    pub message: String,
    pub field: Option<String>,
}

pub type ApiResult<T> = Result<T, ApiError>;

pub fn err(status: u16, code: i64, message: impl Into<String>) -> ApiError {
    ApiError { status, code, message: message.into(), field: None }
}

pub fn err_field(status: u16, code: i64, field: &str, message: impl Into<String>) -> ApiError {
    ApiError { status, code, message: message.into(), field: Some(field.into()) }
}

pub enum Reply {
    Json(Value),
    File { content_type: &'static str, bytes: Vec<u8> },
    Empty,
}

/// One API request, as the section handlers see it.
pub struct Req {
    pub method: Method,
    /// Path segments after `/v1/customer_orders`.
    pub segs: Vec<String>,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    pub fn json(&self) -> ApiResult<Value> {
        if self.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|e| err(400, 900101, format!("body is not valid JSON: {e}")))
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }
    pub fn q(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str).filter(|s| !s.is_empty())
    }
    /// An integer parameter with its documented default.
    pub fn q_int(&self, name: &str, default: i64) -> ApiResult<i64> {
        match self.q(name) {
            None => Ok(default),
            Some(text) => text.parse().map_err(|_| err_field(400, 900101, name, format!("{name} must be an integer, got {text:?}"))),
        }
    }
    pub fn q_bool(&self, name: &str, default: bool) -> ApiResult<bool> {
        match self.q(name) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(text) => Err(err_field(400, 900101, name, format!("{name} must be true or false, got {text:?}"))),
        }
    }
    /// A parameter restricted to documented values.
    pub fn q_enum(&self, name: &str, allowed: &[&str], default: &'static str) -> ApiResult<String> {
        let value = self.q(name).unwrap_or(default);
        if allowed.contains(&value) {
            Ok(value.to_string())
        } else {
            Err(err_field(400, 900101, name, format!("{name} {value:?} is not allowed; allowed values: {}", allowed.join(","))))
        }
    }
    /// The worker a request identifies by `user_id` or `device_id` header.
    pub fn worker(&self) -> Option<Worker> {
        if let Some(id) = self.header("user_id") {
            return Some(Worker::User(id));
        }
        self.header("device_id").map(Worker::Device)
    }
}

pub enum Worker {
    User(String),
    Device(String),
}

type Shared = Mutex<State>;

pub struct Simulator {
    pub server: serve::Server,
    pub state: Arc<Mutex<State>>,
}

impl Simulator {
    pub async fn start(opts: Options) -> anyhow::Result<Simulator> {
        let port = opts.port;
        let mut state = State::new(opts, Clock::new());
        if state.opts.seed {
            state.seed();
        }
        let state = Arc::new(Mutex::new(state));
        let server = serve::serve(router(state.clone()), port).await?;
        Ok(Simulator { server, state })
    }
    pub fn url(&self) -> String {
        self.server.url()
    }
    /// Kill a process right after a chosen write is answered; see [`crate::faults`].
    pub fn faults(&self) -> &crate::Faults {
        self.server.faults()
    }
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }
    pub fn advance_ms(&self, ms: i64) {
        self.with(|s| s.clock.advance_ms(ms));
    }
    pub fn violations(&self) -> u64 {
        self.with(|s| s.violations)
    }
    pub fn request_count(&self) -> u64 {
        self.with(|s| s.requests)
    }
    /// Most requests admitted within any one window so far.
    pub fn peak_window_hits(&self) -> u32 {
        self.with(|s| s.peak_window_hits)
    }
    pub fn set_limit(&self, limit: u32, window_ms: i64) {
        self.with(|s| s.set_limit(limit, window_ms));
    }
    pub fn reset(&self) {
        self.with(|s| s.reset());
    }
    pub fn seed(&self) {
        self.with(|s| s.seed());
    }
    /// Answer XML instead of JSON from now on (to test clients that asked for JSON).
    pub fn set_xml(&self, on: bool) {
        self.with(|s| s.force_xml = on);
    }
    /// Every file the print endpoints served: (path, content type, bytes).
    pub fn served_files(&self) -> Vec<(String, String, Vec<u8>)> {
        self.with(|s| s.served_files.clone())
    }
    /// Every e-mail the simulator "sent": (what, id, address).
    pub fn emails(&self) -> Vec<(String, i64, String)> {
        self.with(|s| s.emails.clone())
    }
    /// Counters and sizes, as `/_control/stats` shows them.
    pub fn stats(&self) -> Value {
        self.with(|s| s.stats())
    }
    /// Run anything against the state (tests).
    pub fn inspect<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        self.with(f)
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_control/stats", get(control_stats))
        .route("/_control/advance", post(control_advance))
        .route("/_control/reset", post(control_reset))
        .route("/_control/seed", post(control_seed))
        .route("/_control/limits", post(control_limits))
        .route("/_control/xml", post(control_xml))
        .fallback(api)
        .with_state(shared)
}

async fn control_stats(AxState(sh): AxState<Arc<Shared>>) -> Json<Value> {
    Json(sh.lock().unwrap().stats())
}

/// `{"ms": 1000}` or `{"seconds": 60}`.
async fn control_advance(AxState(sh): AxState<Arc<Shared>>, Json(body): Json<Value>) -> Json<Value> {
    let ms = body.get("ms").and_then(Value::as_i64).unwrap_or(0) + body.get("seconds").and_then(Value::as_i64).unwrap_or(0) * 1000;
    let s = sh.lock().unwrap();
    s.clock.advance_ms(ms);
    Json(json!({"now_ms": s.clock.now_ms()}))
}

async fn control_reset(AxState(sh): AxState<Arc<Shared>>) -> Json<Value> {
    let mut s = sh.lock().unwrap();
    s.reset();
    Json(s.stats())
}

async fn control_seed(AxState(sh): AxState<Arc<Shared>>) -> Json<Value> {
    let mut s = sh.lock().unwrap();
    s.seed();
    Json(s.stats())
}

/// `{"limit": 20, "window_ms": 2000}`.
async fn control_limits(AxState(sh): AxState<Arc<Shared>>, Json(body): Json<Value>) -> Json<Value> {
    let mut s = sh.lock().unwrap();
    let limit = body.get("limit").and_then(Value::as_u64).unwrap_or(s.opts.limit_per_window as u64) as u32;
    let window_ms = body.get("window_ms").and_then(Value::as_i64).unwrap_or(s.opts.window_ms);
    s.set_limit(limit, window_ms);
    Json(s.stats())
}

/// `{"enabled": true}` makes every answer XML.
async fn control_xml(AxState(sh): AxState<Arc<Shared>>, Json(body): Json<Value>) -> Json<Value> {
    let mut s = sh.lock().unwrap();
    s.force_xml = body.get("enabled").and_then(Value::as_bool).unwrap_or(false);
    Json(s.stats())
}

fn parse_query(uri: &Uri) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in uri.query().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(percent_decode(k), percent_decode(v));
    }
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn api(AxState(sh): AxState<Arc<Shared>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let wants_xml = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/xml") && !a.contains("application/json"));
    let mut state = sh.lock().unwrap();
    let xml = wants_xml || state.force_xml;
    let result = handle(&mut state, method, &uri, headers, body);
    match result {
        Ok(Reply::Json(value)) => body_response(200, &value, xml, None),
        Ok(Reply::File { content_type, bytes }) => {
            state.served_files.push((uri.path().to_string(), content_type.to_string(), bytes.clone()));
            ([("content-type", content_type)], bytes).into_response()
        }
        Ok(Reply::Empty) => StatusCode::OK.into_response(),
        Err((e, retry_after)) => {
            let value = json!({"errorCode": e.code, "errorMessage": e.message, "errorField": e.field, "errorData": null});
            body_response(e.status, &value, xml, retry_after)
        }
    }
}

fn body_response(status: u16, value: &Value, xml: bool, retry_after: Option<i64>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (content_type, text) = if xml {
        ("application/xml", format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>{}", to_xml("response", value)))
    } else {
        ("application/json", value.to_string())
    };
    let mut resp = (status, [("content-type", content_type)], text).into_response();
    if let Some(secs) = retry_after {
        resp.headers_mut().insert("retry-after", secs.to_string().parse().unwrap());
    }
    resp
}

/// A JSON value as XML elements, the way the API's XML variant nests them.
fn to_xml(name: &str, value: &Value) -> String {
    match value {
        Value::Object(map) => format!("<{name}>{}</{name}>", map.iter().map(|(k, v)| to_xml(k, v)).collect::<String>()),
        Value::Array(items) => items.iter().map(|v| to_xml(name, v)).collect(),
        Value::Null => format!("<{name}/>"),
        Value::String(s) => format!("<{name}>{}</{name}>", s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")),
        other => format!("<{name}>{other}</{name}>"),
    }
}

/// Count, rate-limit, authenticate, route.
fn handle(state: &mut State, method: Method, uri: &Uri, headers: HeaderMap, body: Bytes) -> Result<Reply, (ApiError, Option<i64>)> {
    state.requests += 1;
    let now = state.clock.now_ms();
    if !state.window.try_hit(now) {
        state.violations += 1;
        let secs = ((state.window.reset_in_ms(now) + 999) / 1000).max(1);
        return Err((err(429, 900429, format!("Too many requests: at most {} per {} ms", state.window.limit, state.window.window_ms)), Some(secs)));
    }
    let used = state.window.limit - state.window.remaining(now);
    state.peak_window_hits = state.peak_window_hits.max(used);

    let path = uri.path();
    let Some(rest) = path.strip_prefix("/v1/customer_orders") else {
        return Err((err(404, 900101, format!("no such resource {path}")), None));
    };
    let segs: Vec<String> = rest.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
    let req = Req { method, segs, query: parse_query(uri), headers, body };
    state.authenticate(&req).map_err(|e| (e, None))?;
    route(state, &req).map_err(|e| (e, None))
}

fn route(state: &mut State, req: &Req) -> ApiResult<Reply> {
    let segs: Vec<&str> = req.segs.iter().map(String::as_str).collect();
    let m = req.method.clone();
    if let Some(reply) = offers::route(state, req, &m, &segs)? {
        return Ok(reply);
    }
    if let Some(reply) = picking_lists::route(state, req, &m, &segs)? {
        return Ok(reply);
    }
    if let Some(reply) = print::route(state, req, &m, &segs)? {
        return Ok(reply);
    }
    if let Some(reply) = rest_articles::route(state, req, &m, &segs)? {
        return Ok(reply);
    }
    if let Some(reply) = orders::route(state, req, &m, &segs)? {
        return Ok(reply);
    }
    Err(err(404, 900101, format!("no endpoint {} /v1/customer_orders/{}", req.method, req.segs.join("/"))))
}

/// A numeric path id, or the documented "not found" for it.
pub fn path_id(text: &str, code: i64, what: &str) -> ApiResult<i64> {
    text.parse().map_err(|_| err(404, code, format!("{what} {text:?} not found")))
}
