//! The admin surface: script triggers (`POST /scripts/{name}/{fn}`, only
//! functions the script `expose`s), the detailed health, Prometheus
//! `/metrics`, the status page (`/ui`, `status.rs`) and its JSON API
//! (`/api/...`, `api.rs`). Every request passes the [`Gate`] first:
//! - `Host` must name this listener (or a configured name): a DNS-rebinding
//!   page reaches the port under its own host name and is refused;
//! - an `Origin`, when a browser sends one, must be that same host: no
//!   cross-site request runs anything (the token would stop it too);
//! - `Authorization: Bearer <admin.token>`, compared in constant time. The
//!   one exception is the status page's shell (`GET /ui`): static HTML with
//!   no data in it, which asks for the token and sends it on every API call.
use crate::config::Secret;
use crate::script::Scripts;
use crate::Host;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::net::SocketAddr;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Who may use the admin surface.
pub struct Gate {
    token: Secret,
    hosts: Vec<String>,
}

impl Gate {
    /// `addr` is the bound admin address; `extra` are further `Host` values
    /// (a name a reverse proxy forwards).
    pub fn new(token: Secret, addr: SocketAddr, extra: &[String]) -> Gate {
        let port = addr.port();
        let mut hosts = vec![addr.to_string()];
        if addr.ip().is_loopback() || addr.ip().is_unspecified() {
            hosts.extend([format!("localhost:{port}"), format!("127.0.0.1:{port}"), format!("[::1]:{port}")]);
        }
        hosts.extend(extra.iter().cloned());
        Gate { token, hosts: hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect() }
    }

    fn host_allowed(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h == &host.to_ascii_lowercase())
    }

    fn check(&self, headers: &HeaderMap, needs_token: bool) -> Result<(), (StatusCode, String)> {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !self.host_allowed(host) {
            return Err((StatusCode::FORBIDDEN, format!("Host {host:?} is not this admin surface; add it to admin.allowed_hosts if a proxy forwards it")));
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            let host_of_origin = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")).unwrap_or("");
            if !self.host_allowed(host_of_origin) {
                return Err((StatusCode::FORBIDDEN, format!("cross-origin requests are refused (Origin {origin:?})")));
            }
        }
        if !needs_token {
            return Ok(());
        }
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
        let expected = self.token.expose().as_bytes();
        if given.len() != expected.len() || !bool::from(given.as_bytes().ct_eq(expected)) {
            return Err((StatusCode::UNAUTHORIZED, "missing or wrong bearer token (admin.token)".into()));
        }
        Ok(())
    }
}

async fn gate(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    let shell = request.method() == axum::http::Method::GET && super::status::is_shell(request.uri().path());
    match gate.check(request.headers(), !shell) {
        Ok(()) => next.run(request).await,
        Err((status, message)) => {
            tracing::warn!(status = status.as_u16(), path = %request.uri().path(), "admin request refused: {message}");
            let mut response = (status, Json(serde_json::json!({ "error": message }))).into_response();
            if status == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            }
            response
        }
    }
}

/// The admin routes, every one behind `gate`.
pub fn router(host: Arc<Host>, scripts: Arc<Scripts>, gate: Gate) -> Router {
    Router::new()
        .route("/scripts/{name}/{function}", post(run_script))
        .with_state(scripts.clone())
        .merge(Router::new().route("/health", get(health)).route("/metrics", get(metrics)).with_state(host.clone()))
        .merge(super::api::router(super::api::Api { host, scripts }))
        .merge(super::status::router())
        .layer(middleware::from_fn_with_state(Arc::new(gate), self::gate))
}

/// Prometheus text format. What the store and the ledger know is read now.
async fn metrics(State(host): State<Arc<Host>>) -> Response {
    match host.snapshot().await {
        Ok(snapshot) => host.metrics().set_snapshot(&snapshot),
        // Counters are still worth scraping; the gauges keep their last values.
        Err(e) => tracing::warn!("metrics: reading the store for gauges failed: {e:#}"),
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], host.metrics().encode()).into_response()
}

async fn health(State(host): State<Arc<Host>>) -> Json<serde_json::Value> {
    let connectors: Vec<_> = host.connectors().iter().map(|b| serde_json::json!({"name": b.name(), "plugin": b.manifest().name, "version": b.manifest().version})).collect();
    Json(serde_json::json!({ "status": "ok", "connectors": connectors }))
}

async fn run_script(State(scripts): State<Arc<Scripts>>, axum::extract::Path((name, function)): axum::extract::Path<(String, String)>, body: axum::body::Bytes) -> Response {
    let arg = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(v) => Some(v),
            Err(e) => return (StatusCode::BAD_REQUEST, Json(serde_json::json!({"error": format!("the body is not JSON: {e}")}))).into_response(),
        }
    };
    match scripts.current(&name) {
        None => return (StatusCode::NOT_FOUND, Json(serde_json::json!({"error": format!("no script named {name:?}")}))).into_response(),
        // Helpers are never reachable: only what the script declared.
        Some(s) if !s.exposed.iter().any(|f| f == &function) => {
            let exposed = if s.exposed.is_empty() { "none".to_string() } else { s.exposed.join(", ") };
            return (StatusCode::NOT_FOUND, Json(serde_json::json!({"error": format!("script {name} exposes no function {function:?} (exposed: {exposed}); a script declares its HTTP functions with expose(\"fn\")")}))).into_response();
        }
        Some(_) => {}
    }
    match scripts.run(&name, &function, arg, "http").await {
        Ok(result) => Json(serde_json::json!({ "result": result })).into_response(),
        Err(e) => {
            let status = if e.transient { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::UNPROCESSABLE_ENTITY };
            (status, Json(serde_json::json!({ "error": e.message, "location": e.location, "run": e.run_id }))).into_response()
        }
    }
}
