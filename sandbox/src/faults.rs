//! Fault injection: kill a named process right after a simulator committed a
//! chosen write and before it answers.
//!
//! That is the window an exactly-once design must survive: the vendor has
//! made the change, the caller has not heard of it. A test arms a fault with
//! the pid of the process that will send the write (a `spoke run`, or a test's
//! own child); when the simulator's handler has answered a matching request
//! with a 2xx, the process gets SIGKILL, and the answer is held until the
//! process is gone, so the killed client never reads it.
//!
//! Every server started by [`crate::serve::serve`] has it, so every simulator:
//!
//! - `POST /_control/faults` `{"method": "POST", "path": "/api/order", "pid": 1234, "times": 1}`
//!   arms a fault (`times` defaults to 1) and answers it with its `id`;
//!   400 `{"error", "field"}` names the field it refuses
//! - `GET /_control/faults` `{"faults": [{id, method, path, pid, times, fired}], "firings": [..]}`
//! - `DELETE /_control/faults` disarms every fault and forgets the firings
//!
//! `path` is matched against the request path without its query: exactly,
//! or with `*` standing for any run of characters (`/api/order*`,
//! `/api/v1/leads/*/cancel.json`). Requests under `/_control/` never fire.
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How long a fault waits for its process to be gone before it lets the
/// answer out anyway (and records [`Outcome::StillAlive`]).
const GONE_WITHIN: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(5);
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// What to kill, after which answer, how often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fault {
    /// An HTTP method in capitals: `POST`.
    pub method: String,
    /// The request path, exactly or with `*` wildcards.
    pub path: String,
    /// The process to SIGKILL.
    pub pid: u32,
    /// How many matching 2xx answers trigger it (a kill each).
    pub times: u32,
}

impl Fault {
    /// Kill `pid` after the next 2xx answer to `method path`.
    pub fn new(method: &str, path: &str, pid: u32) -> Fault {
        Fault { method: method.to_string(), path: path.to_string(), pid, times: 1 }
    }

    pub fn times(self, times: u32) -> Fault {
        Fault { times, ..self }
    }

    /// The `POST /_control/faults` body.
    pub fn from_json(body: &Value) -> Result<Fault, FaultError> {
        let text = |field: &'static str| {
            body.get(field).and_then(Value::as_str).map(str::to_string).ok_or_else(|| FaultError::new(field, format!("{field} must be a string")))
        };
        let number = |field: &'static str, default: Option<i64>| match body.get(field) {
            None | Some(Value::Null) => default.ok_or_else(|| FaultError::new(field, format!("{field} is required"))),
            Some(v) => v.as_i64().ok_or_else(|| FaultError::new(field, format!("{field} must be an integer, got {v}"))),
        };
        if !body.is_object() {
            return Err(FaultError::new("", "the body must be a JSON object {method, path, pid, times?}"));
        }
        let pid = number("pid", None)?;
        let pid = u32::try_from(pid).map_err(|_| FaultError::new("pid", format!("pid {pid} is not a process id above 1")))?;
        let times = number("times", Some(1))?;
        let times = u32::try_from(times).map_err(|_| FaultError::new("times", format!("times {times} is not a count from 1")))?;
        Ok(Fault { method: text("method")?, path: text("path")?, pid, times })
    }

    /// Refuse what could never fire or would kill the wrong thing.
    fn check(&self) -> Result<(), FaultError> {
        if !METHODS.contains(&self.method.as_str()) {
            return Err(FaultError::new("method", format!("method {:?} is not one of {}", self.method, METHODS.join(", "))));
        }
        if self.path.is_empty() {
            return Err(FaultError::new("path", "path is empty"));
        }
        if !self.path.starts_with('/') && !self.path.starts_with('*') {
            return Err(FaultError::new("path", format!("path {:?} must start with / (it is matched against request paths)", self.path)));
        }
        // kill(0) and kill(-1) signal whole groups; 1 is init.
        if self.pid <= 1 || self.pid > i32::MAX as u32 {
            return Err(FaultError::new("pid", format!("pid {} is not a process id above 1", self.pid)));
        }
        if self.pid == std::process::id() {
            return Err(FaultError::new("pid", format!("pid {} is the simulator itself", self.pid)));
        }
        if self.times == 0 {
            return Err(FaultError::new("times", "times must be at least 1"));
        }
        if probe(self.pid) == Probe::Gone {
            return Err(FaultError::new("pid", format!("pid {}: no such process", self.pid)));
        }
        Ok(())
    }
}

/// A refused fault: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultError {
    pub field: &'static str,
    pub message: String,
}

impl FaultError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        FaultError { field, message: message.into() }
    }
}

impl std::fmt::Display for FaultError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FaultError {}

/// An armed fault and how often it has fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Armed {
    pub id: u64,
    #[serde(flatten)]
    pub fault: Fault,
    /// Matching 2xx answers so far; the fault is spent at `times`.
    pub fired: u32,
    /// The process's start time when armed (Linux), so a pid that was
    /// reused by another process after ours died is not killed.
    #[serde(skip)]
    started: Option<u64>,
}

/// One triggering answer and what became of its process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Firing {
    pub fault: u64,
    pub pid: u32,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Being killed; the answer is held.
    Killing,
    /// Killed and gone before the answer went out.
    Killed,
    /// Gone before the fault fired: nothing was sent.
    AlreadyGone,
    /// The pid now belongs to another process: nothing was sent.
    PidReused,
    /// SIGKILL sent, but the process was still there after 5 s; the answer
    /// went out anyway.
    StillAlive,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    armed: Vec<Armed>,
    firings: Vec<Firing>,
}

/// The faults of one simulator. Clones share them.
#[derive(Clone, Default)]
pub struct Faults {
    registry: Arc<Mutex<Registry>>,
}

impl Faults {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Arm a fault; its id, or the field that is wrong.
    pub fn arm(&self, fault: Fault) -> Result<Armed, FaultError> {
        fault.check()?;
        let started = start_time(fault.pid);
        let mut registry = self.lock();
        registry.next_id += 1;
        let armed = Armed { id: registry.next_id, fault, fired: 0, started };
        registry.armed.push(armed.clone());
        Ok(armed)
    }

    /// Every fault armed since the last clear, spent ones included.
    pub fn list(&self) -> Vec<Armed> {
        self.lock().armed.clone()
    }

    /// Every triggering answer since the last clear, oldest first.
    pub fn firings(&self) -> Vec<Firing> {
        self.lock().firings.clone()
    }

    /// Disarm every fault and forget the firings; how many faults there were.
    pub fn clear(&self) -> usize {
        let mut registry = self.lock();
        registry.firings.clear();
        std::mem::take(&mut registry.armed).len()
    }

    /// `router` with the faults applied to every route (and fallback) it
    /// has, plus the `/_control/faults` routes.
    pub fn wrap(&self, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(self.clone(), fire_after_answer)).merge(self.control_router())
    }

    fn control_router(&self) -> Router {
        Router::new().route("/_control/faults", get(control_list).post(control_arm).delete(control_clear)).with_state(self.clone())
    }

    /// Claim one firing of the first live fault that matches, recorded as
    /// `Killing`: (index of the firing, pid, start time when armed).
    fn claim(&self, method: &Method, path: &str, status: u16) -> Option<(usize, u32, Option<u64>)> {
        let mut registry = self.lock();
        let armed = registry.armed.iter_mut().find(|a| a.fired < a.fault.times && a.fault.method == method.as_str() && path_matches(&a.fault.path, path))?;
        armed.fired += 1;
        let (fault, pid, started) = (armed.id, armed.fault.pid, armed.started);
        registry.firings.push(Firing { fault, pid, method: method.to_string(), path: path.to_string(), status, outcome: Outcome::Killing });
        Some((registry.firings.len() - 1, pid, started))
    }

    fn settle(&self, firing: usize, outcome: Outcome) {
        if let Some(f) = self.lock().firings.get_mut(firing) {
            f.outcome = outcome;
        }
    }
}

/// The middleware: let the handler make (and commit) the change, then kill
/// before the answer leaves.
async fn fire_after_answer(State(faults): State<Faults>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    // A refused write changed nothing: killing there would test nothing.
    // Control requests come from the test harness, never from the client
    // under test, so a broad pattern must not kill on them.
    if !response.status().is_success() || path.starts_with("/_control/") {
        return response;
    }
    if let Some((firing, pid, started)) = faults.claim(&method, &path, response.status().as_u16()) {
        let outcome = kill_and_wait(pid, started).await;
        if outcome == Outcome::StillAlive {
            tracing::warn!(pid, %method, path, "fault: process still alive {GONE_WITHIN:?} after SIGKILL; answering anyway");
        }
        faults.settle(firing, outcome);
    }
    response
}

async fn kill_and_wait(pid: u32, started: Option<u64>) -> Outcome {
    match probe(pid) {
        Probe::Gone => return Outcome::AlreadyGone,
        Probe::Alive { started: now } if started.is_some() && now != started => return Outcome::PidReused,
        Probe::Alive { .. } => {}
    }
    // SAFETY: kill(2) with a pid checked to be above 1 touches no memory.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    let deadline = tokio::time::Instant::now() + GONE_WITHIN;
    while tokio::time::Instant::now() < deadline {
        if probe(pid) == Probe::Gone {
            return Outcome::Killed;
        }
        tokio::time::sleep(POLL).await;
    }
    Outcome::StillAlive
}

#[derive(Debug, PartialEq, Eq)]
enum Probe {
    Gone,
    Alive { started: Option<u64> },
}

/// Whether `pid` can still act. A killed process stays a zombie until its
/// parent reaps it, but a zombie whose threads have all exited has closed its
/// sockets and runs no more code: gone, for a client.
fn probe(pid: u32) -> Probe {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // Fields after the command name, which may hold spaces and ')'.
            let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
            let state = fields.first().copied().unwrap_or("");
            let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.count()).unwrap_or(0);
            if matches!(state, "Z" | "X" | "x") && threads <= 1 {
                Probe::Gone
            } else {
                Probe::Alive { started: fields.get(19).and_then(|s| s.parse().ok()) }
            }
        }
        Err(_) if std::path::Path::new("/proc/self/stat").exists() => Probe::Gone,
        // No procfs: ask the kernel whether the pid exists (zombies count).
        // SAFETY: signal 0 only checks existence and permission.
        Err(_) => match unsafe { libc::kill(pid as libc::pid_t, 0) } {
            0 => Probe::Alive { started: None },
            _ if std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) => Probe::Alive { started: None },
            _ => Probe::Gone,
        },
    }
}

fn start_time(pid: u32) -> Option<u64> {
    match probe(pid) {
        Probe::Alive { started } => started,
        Probe::Gone => None,
    }
}

/// `pattern` against a request path: `*` matches any run of characters
/// (slashes too), everything else itself.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), path.as_bytes());
    let (mut pi, mut si) = (0, 0);
    // Where the last `*` was and how much of `path` it has taken so far.
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((star_pi, star_si)) = star {
            // Let the last `*` take one more character and retry.
            pi = star_pi + 1;
            si = star_si + 1;
            star = Some((star_pi, star_si + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

fn refused(e: FaultError) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": e.message, "field": e.field}))).into_response()
}

async fn control_arm(State(faults): State<Faults>, body: Bytes) -> Response {
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return refused(FaultError::new("", format!("the body is not JSON: {e}"))),
    };
    match Fault::from_json(&body).and_then(|f| faults.arm(f)) {
        Ok(armed) => Json(armed).into_response(),
        Err(e) => refused(e),
    }
}

async fn control_list(State(faults): State<Faults>) -> Json<Value> {
    Json(json!({"faults": faults.list(), "firings": faults.firings()}))
}

async fn control_clear(State(faults): State<Faults>) -> Json<Value> {
    Json(json!({"cleared": faults.clear()}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_exactly_or_by_wildcard() {
        assert!(path_matches("/api/order", "/api/order"));
        assert!(!path_matches("/api/order", "/api/order/12"), "no wildcard, no prefix");
        assert!(!path_matches("/api/order", "/api/orde"));
        assert!(path_matches("/api/order*", "/api/order"));
        assert!(path_matches("/api/order*", "/api/order/12/paid"));
        assert!(!path_matches("/api/order*", "/api/announcement"));
        assert!(path_matches("/api/v1/leads/*/cancel.json", "/api/v1/leads/abc-123/cancel.json"));
        assert!(!path_matches("/api/v1/leads/*/cancel.json", "/api/v1/leads/create.json"));
        assert!(path_matches("*/create.json", "/api/v1/leads/create.json"));
        assert!(path_matches("/a*b*c", "/a-b-b-c"), "backtracks past a false b");
        assert!(!path_matches("/a*b*c", "/a-c-b"));
        assert!(path_matches("*", "/anything"));
    }

    #[test]
    fn bad_faults_are_refused_by_field() {
        let me = std::process::id();
        let field = |f: Fault| f.check().unwrap_err().field;
        assert_eq!(field(Fault::new("YANK", "/api/order", 2)), "method");
        assert_eq!(field(Fault::new("post", "/api/order", 2)), "method", "methods are capitals, as on the wire");
        assert_eq!(field(Fault::new("POST", "", 2)), "path");
        assert_eq!(field(Fault::new("POST", "api/order", 2)), "path");
        assert_eq!(field(Fault::new("POST", "/api/order", 0)), "pid");
        assert_eq!(field(Fault::new("POST", "/api/order", 1)), "pid");
        assert_eq!(field(Fault::new("POST", "/api/order", me)), "pid");
        assert_eq!(field(Fault::new("POST", "/api/order", u32::MAX)), "pid");
        assert_eq!(field(Fault::new("POST", "/api/order", 2).times(0)), "times");
        assert_eq!(Fault::from_json(&json!({"method": "POST", "path": "/x", "pid": -5})).unwrap_err().field, "pid");
        assert_eq!(Fault::from_json(&json!({"method": "POST", "path": "/x"})).unwrap_err().field, "pid");
        assert_eq!(Fault::from_json(&json!({"method": "POST", "path": "/x", "pid": "12"})).unwrap_err().field, "pid");
        assert_eq!(Fault::from_json(&json!({"path": "/x", "pid": 12})).unwrap_err().field, "method");
        assert_eq!(Fault::from_json(&json!({"method": "POST", "path": "/x", "pid": 12})).unwrap().times, 1, "times defaults to 1");
    }

    #[test]
    fn a_live_process_is_alive_and_a_reaped_one_gone() {
        let mut child = std::process::Command::new("sleep").arg("60").spawn().unwrap();
        let pid = child.id();
        assert!(matches!(probe(pid), Probe::Alive { .. }));
        assert_eq!(probe(std::process::id()), Probe::Alive { started: start_time(std::process::id()) });
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(probe(pid), Probe::Gone);
    }
}
