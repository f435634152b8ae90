//! The admin surface's JSON API: what the status page (`status.rs`) shows
//! and does, and what an operator's own tooling may script against. Every
//! route sits behind the admin [`super::admin::Gate`]. The same store calls
//! as the `spoke` commands, so the page and the CLI never disagree.
use crate::flow::{FlowFilter, Resolution};
use crate::script::Scripts;
use crate::store::{EventFilter, RunFilter, RunOutcome, Store};
use crate::Host;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Clone)]
pub struct Api {
    pub host: Arc<Host>,
    pub scripts: Arc<Scripts>,
}

pub fn router(api: Api) -> Router {
    Router::new()
        .route("/api/overview", get(overview))
        .route("/api/flows", get(flows))
        .route("/api/flows/{id}", get(flow))
        .route("/api/flows/{id}/resolve", post(resolve_flow))
        .route("/api/flows/{id}/retry", post(retry_flow))
        .route("/api/events", get(events))
        .route("/api/events/{seq}", get(event))
        .route("/api/events/{seq}/replay", post(replay_event))
        .route("/api/runs", get(runs))
        .route("/api/runs/{id}", get(run))
        .route("/api/refused", get(refused))
        .with_state(api)
}

/// An error answer that names what was wrong.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
    }
}

type Answer = Result<Json<Value>, ApiError>;

/// A query parameter as a filter: absent and empty both mean "any" (an
/// HTML form sends empty fields).
fn nonempty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// A list's length: 100 unless asked, never more than `max`.
fn limit(asked: Option<usize>, max: usize) -> usize {
    asked.unwrap_or(100).min(max)
}

fn not_found(what: String) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, what)
}

/// Store calls block (SQLite): off the async workers.
async fn with_store<T: Send + 'static>(host: &Host, f: impl FnOnce(&dyn Store) -> anyhow::Result<T> + Send + 'static) -> Result<T, ApiError> {
    let store = host.store().clone();
    tokio::task::spawn_blocking(move || f(&*store)).await.map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("store call panicked: {e}")))?.map_err(ApiError::from)
}

/// Everything the first screen shows: connectors with live budgets and
/// recent errors, scripts with their load errors, the backlog, flows.
async fn overview(State(api): State<Api>) -> Answer {
    let snapshot = api.host.snapshot().await?;
    let connectors: Vec<Value> = api
        .host
        .connectors()
        .iter()
        .map(|b| {
            let m = b.manifest();
            let in_use = snapshot.pool_in_use.iter().find(|(c, _)| c == b.name()).map(|(_, n)| *n).unwrap_or(0);
            json!({
                "name": b.name(),
                "plugin": m.name,
                "version": m.version,
                "base_url": b.base_url.as_str(),
                "operations": m.operations.len(),
                "calls_in_use": in_use,
                "waiting_for_budget": api.host.metrics().rate_waiting_now(b.name()),
                "budgets": snapshot.buckets.iter().filter(|r| r.connector == b.name()).collect::<Vec<_>>(),
                "recent_errors": api.host.metrics().recent_errors(b.name()),
            })
        })
        .collect();
    let stored = with_store(&api.host, |s| s.scripts()).await?;
    let backlog = snapshot.backlog;
    // The store knows every script ever loaded; the loader knows the error
    // that is blocking a new version right now.
    let scripts: Vec<Value> = stored
        .into_iter()
        .filter(|s| s.removed_at.is_none())
        .map(|s| {
            let live = api.scripts.current(&s.name);
            json!({
                "name": s.name,
                "version": live.as_ref().map(|l| l.version).unwrap_or(s.version),
                "loaded_at": s.loaded_at,
                "triggers": s.triggers,
                "error": api.scripts.error(&s.name).or(s.error),
                "error_at": s.error_at,
                "last_run": s.last_run,
            })
        })
        .collect();
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "connectors": connectors,
        "scripts": scripts,
        "backlog": { "counts": backlog.counts.into_iter().map(|(s, n)| (s, Value::from(n))).collect::<serde_json::Map<String, Value>>(), "oldest_ms": backlog.oldest_ms },
        "flows": snapshot.flows.into_iter().map(|(s, n)| (s, Value::from(n))).collect::<serde_json::Map<String, Value>>(),
        "pool_slots": snapshot.pool_slots,
    })))
}

#[derive(Deserialize)]
struct FlowQuery {
    key: Option<String>,
    status: Option<String>,
    script: Option<String>,
    limit: Option<usize>,
}

async fn flows(State(api): State<Api>, Query(q): Query<FlowQuery>) -> Answer {
    // Search by key: any flow whose key contains the text, so an operator
    // can paste part of a lead id.
    let filter = FlowFilter { script: q.script, status: nonempty(q.status), key: None, limit: 500 };
    let needle = nonempty(q.key);
    let limit = limit(q.limit, 500);
    let found = with_store(&api.host, move |s| s.flows(&filter)).await?;
    let found: Vec<_> = found.into_iter().filter(|f| needle.as_ref().is_none_or(|k| f.key.contains(k.as_str()))).take(limit).collect();
    Ok(Json(json!({ "flows": found })))
}

async fn flow(State(api): State<Api>, Path(id): Path<i64>) -> Answer {
    let (flow, calls) = with_store(&api.host, move |s| Ok((s.flow(id)?, s.flow_steps(id)?))).await?;
    let flow = flow.ok_or_else(|| not_found(format!("no flow {id}")))?;
    Ok(Json(json!({ "flow": flow, "calls": calls })))
}

/// `{"value": <JSON>}`: the step happened and this is its result;
/// `{"rerun": true}`: it did not, run it again.
#[derive(Deserialize)]
struct ResolveBody {
    value: Option<Value>,
    #[serde(default)]
    rerun: bool,
}

async fn resolve_flow(State(api): State<Api>, Path(id): Path<i64>, body: Option<Json<ResolveBody>>) -> Answer {
    let resolution = match body.map(|b| b.0) {
        Some(ResolveBody { rerun: true, value: None }) => Resolution::Rerun,
        Some(ResolveBody { rerun: false, value: Some(v) }) => Resolution::Value(v),
        _ => return Err(ApiError(StatusCode::BAD_REQUEST, "send {\"value\": <the step's result as JSON>} if the step happened, or {\"rerun\": true} if it did not".into())),
    };
    let rerun = matches!(resolution, Resolution::Rerun);
    let step = with_store(&api.host, move |s| s.flow_resolve(id, &resolution, crate::store::now_ms())).await.map_err(|e| ApiError(StatusCode::CONFLICT, e.1))?;
    tracing::info!(flow = id, step = %step, rerun, "flow resolved from the admin surface");
    api.scripts.nudge_flows();
    Ok(Json(json!({ "flow": id, "step": step, "rerun": rerun })))
}

async fn retry_flow(State(api): State<Api>, Path(id): Path<i64>) -> Answer {
    with_store(&api.host, move |s| s.flow_retry(id, crate::store::now_ms())).await.map_err(|e| ApiError(StatusCode::CONFLICT, e.1))?;
    api.scripts.nudge_flows();
    Ok(Json(json!({ "flow": id, "status": "ready" })))
}

#[derive(Deserialize)]
struct EventQuery {
    connector: Option<String>,
    topic: Option<String>,
    status: Option<String>,
    limit: Option<usize>,
}

async fn events(State(api): State<Api>, Query(q): Query<EventQuery>) -> Answer {
    let filter = EventFilter { connector: nonempty(q.connector), topic: nonempty(q.topic), status: nonempty(q.status), limit: limit(q.limit, 1000) };
    let found = with_store(&api.host, move |s| s.list_events(&filter)).await?;
    Ok(Json(json!({ "events": found })))
}

async fn event(State(api): State<Api>, Path(seq): Path<i64>) -> Answer {
    let found = with_store(&api.host, move |s| s.event(seq)).await?.ok_or_else(|| not_found(format!("no event {seq}")))?;
    Ok(Json(serde_json::to_value(found).map_err(anyhow::Error::from)?))
}

async fn replay_event(State(api): State<Api>, Path(seq): Path<i64>) -> Answer {
    let n = with_store(&api.host, move |s| s.replay(seq, crate::store::now_ms())).await?;
    if n == 0 {
        return Err(not_found(format!("event {seq} has no dispatches to replay")));
    }
    tracing::info!(seq, dispatches = n, "event replayed from the admin surface");
    api.host.dispatcher().notify();
    Ok(Json(json!({ "seq": seq, "replayed": n })))
}

#[derive(Deserialize)]
struct RunQuery {
    script: Option<String>,
    function: Option<String>,
    outcome: Option<String>,
    limit: Option<usize>,
}

async fn runs(State(api): State<Api>, Query(q): Query<RunQuery>) -> Answer {
    let outcome = match nonempty(q.outcome) {
        Some(o) => Some(o.parse::<RunOutcome>().map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?),
        None => None,
    };
    let filter = RunFilter { script: nonempty(q.script), function: nonempty(q.function), outcome, limit: limit(q.limit, 1000) };
    let found = with_store(&api.host, move |s| s.runs(&filter)).await?;
    Ok(Json(json!({ "runs": found })))
}

async fn run(State(api): State<Api>, Path(id): Path<i64>) -> Answer {
    let found = with_store(&api.host, move |s| s.run(id)).await?.ok_or_else(|| not_found(format!("no run {id}")))?;
    Ok(Json(serde_json::to_value(found).map_err(anyhow::Error::from)?))
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn refused(State(api): State<Api>, Query(q): Query<Limit>) -> Answer {
    let n = limit(q.limit, 1000);
    let found = with_store(&api.host, move |s| s.refusals(n)).await?;
    Ok(Json(json!({ "refused": found })))
}
