//! Rhai scripts: loading, triggers, runs, exactly-once steps, hot reload.
//!
//! A script is compiled off to the side and its top level run once to
//! collect its triggers (`on`, `every`). Only if both succeed does it
//! replace the running version — one `Arc` swap, so runs in flight finish
//! on the version they started with and every new event sees the new one.
//! A script that fails to load leaves the old version running and the error
//! (file:line) in the log and in `spoke scripts`.
pub mod api;
pub(crate) mod context;
pub mod sandbox;
pub mod schedule;
mod syntax;
mod watch;

pub use api::ScriptLimits;

use crate::dispatch::{Failure, Subscriber};
use crate::flow::replay::Wake;
use crate::flow::{FlowDecl, FlowRecord, FlowRunner, Settle};
use crate::manifest::Event;
use crate::store::now_ms;
use crate::Host;
use rhai::{Dynamic, Engine, EvalAltResult, Scope, AST};
use schedule::Schedule;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    On { connector: String, topic: String, function: String },
    Every { spec: String, schedule: Schedule, function: String },
}

impl Trigger {
    fn function(&self) -> &str {
        match self {
            Trigger::On { function, .. } | Trigger::Every { function, .. } => function,
        }
    }
    fn describe(&self) -> String {
        match self {
            Trigger::On { connector, topic, function } => format!("on {connector}/{topic} -> {function}"),
            Trigger::Every { spec, function, .. } => format!("every {spec} -> {function}"),
        }
    }
}

/// One loaded version of a script.
pub struct Script {
    pub name: String,
    pub path: PathBuf,
    pub version: i64,
    pub ast: AST,
    pub triggers: Vec<Trigger>,
    /// Functions callable over the admin surface (`expose("fn")`); no other.
    pub exposed: Vec<String>,
    /// Flow functions (`flow("fn", [...])`).
    pub flows: Vec<FlowDecl>,
    /// SHA-256 of the file, hex: the same content is the same version.
    source_hash: String,
}

/// Why a run failed.
#[derive(Debug, Clone, Serialize)]
pub struct RunError {
    pub message: String,
    /// file:line where it failed.
    pub location: Option<String>,
    /// A vendor call failed in a way that may pass (rate-limited, transport,
    /// timeout, 5xx): worth retrying.
    pub transient: bool,
    pub run_id: i64,
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.location {
            Some(l) => write!(f, "{l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

pub struct Scripts {
    host: Arc<Host>,
    handle: tokio::runtime::Handle,
    limits: ScriptLimits,
    dir: PathBuf,
    engine: RwLock<Arc<Engine>>,
    loaded: RwLock<BTreeMap<String, Arc<Script>>>,
    errors: RwLock<BTreeMap<String, String>>,
    schedules: Mutex<HashMap<String, Vec<tokio::task::AbortHandle>>>,
    /// One reload at a time per script; different scripts reload in parallel,
    /// so a slow file never holds up another.
    reloading: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    flows: Arc<FlowRunner>,
    me: Weak<Scripts>,
}

fn hash(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// `name` of `scripts/name.rhai`.
pub fn script_name(path: &Path) -> Option<String> {
    (path.extension()? == "rhai").then(|| path.file_stem()?.to_str().map(str::to_string))?
}

impl Scripts {
    /// An engine with nothing loaded yet, for scripts in `dir`.
    fn new(host: Arc<Host>, dir: PathBuf) -> Arc<Scripts> {
        let handle = tokio::runtime::Handle::current();
        let limits = host.config().scripts.clone();
        let flows = FlowRunner::new(host.store().clone(), host.config().flows.clone(), limits.max_run_secs);
        let engine = Arc::new(api::engine(&host, &limits, handle.clone(), &dir, &flows));
        Arc::new_cyclic(|me| Scripts {
            host,
            handle,
            limits,
            dir,
            engine: RwLock::new(engine),
            loaded: Default::default(),
            errors: Default::default(),
            schedules: Default::default(),
            reloading: Default::default(),
            flows,
            me: me.clone(),
        })
    }

    /// Build the engine and load every script in the configured folder.
    pub async fn start(host: Arc<Host>) -> Arc<Scripts> {
        let dir = host.config().scripts_dir.clone();
        match host.store().interrupt_orphan_runs(now_ms(), &process_alive) {
            Ok(n) if n > 0 => tracing::warn!("{n} run(s) left running by a stopped process marked interrupted"),
            Ok(_) => {}
            Err(e) => tracing::warn!("marking interrupted runs failed: {e:#}"),
        }
        let scripts = Scripts::new(host, dir.clone());
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir).map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
        paths.sort();
        // In parallel: each load is bounded, and none waits for another.
        let paths: Vec<PathBuf> = paths.into_iter().filter(|p| script_name(p).is_some()).collect();
        futures::future::join_all(paths.iter().map(|p| scripts.reload(p))).await;
        // Flows run once the scripts that define them are loaded.
        tokio::spawn(scripts.flows.clone().run(Arc::downgrade(&scripts)));
        scripts
    }

    /// The flow runner: `start_flow` nudges it, the CLI reads its settings.
    pub fn flows(&self) -> &Arc<FlowRunner> {
        &self.flows
    }

    /// Start with only the script at `path` (for `spoke script run`); its
    /// load error, if any, is returned.
    pub async fn start_only(host: Arc<Host>, path: &Path) -> anyhow::Result<Arc<Scripts>> {
        let scripts = Scripts::new(host, path.parent().unwrap_or(Path::new(".")).to_path_buf());
        let name = script_name(path).ok_or_else(|| anyhow::anyhow!("{} is not a .rhai file", path.display()))?;
        if !scripts.reload(path).await {
            anyhow::bail!("{}", scripts.error(&name).unwrap_or_else(|| format!("{} did not load", path.display())));
        }
        Ok(scripts)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }

    pub fn current(&self, name: &str) -> Option<Arc<Script>> {
        self.loaded.read().unwrap().get(name).cloned()
    }

    pub fn loaded(&self) -> Vec<Arc<Script>> {
        self.loaded.read().unwrap().values().cloned().collect()
    }

    /// The last load error of a script whose newest file did not load.
    /// Have the flow runner look for ready flows now (an operator resolved one).
    pub fn nudge_flows(&self) {
        self.flows.nudge();
    }

    pub fn error(&self, name: &str) -> Option<String> {
        self.errors.read().unwrap().get(name).cloned()
    }

    /// Rebuild the engine after a plugin swap changed the operations.
    pub fn refresh_engine(&self) {
        *self.engine.write().unwrap() = Arc::new(api::engine(&self.host, &self.limits, self.handle.clone(), &self.dir, &self.flows));
    }

    fn connectors(&self) -> Vec<(String, Vec<String>)> {
        let bindings = self.host.connectors();
        let connectors = bindings.iter().map(|b| (b.name().to_string(), b.manifest().webhook_topics.iter().map(|t| t.name.clone()).collect::<Vec<_>>()));
        // An embedder's own event sources can be subscribed to like connectors.
        connectors.chain(self.host.extensions().sources()).collect()
    }

    /// (Re)load the script at `path`, or unload it if the file is gone.
    /// Returns whether a new version was installed.
    pub async fn reload(&self, path: &Path) -> bool {
        let Some(name) = script_name(path) else { return false };
        let lock = self.reloading.lock().unwrap().entry(name.clone()).or_default().clone();
        let _one_at_a_time = lock.lock().await;
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(_) if !path.exists() => {
                self.unload(&name);
                return false;
            }
            Err(e) => {
                self.load_failed(&name, format!("{}: cannot read: {e}", path.display()));
                return false;
            }
        };
        let previous = self.current(&name);
        let source_hash = hash(&text);
        if previous.as_ref().is_some_and(|p| p.source_hash == source_hash) && self.error(&name).is_none() {
            return false; // an editor's extra events for one save
        }
        let engine = self.engine.read().unwrap().clone();
        let connectors = self.connectors();
        let (n, p) = (name.clone(), path.to_path_buf());
        // The same content keeps its version (a restart is not a change);
        // versions never restart: a removed script's row keeps its last one.
        let stored = self.stored_version(&name);
        let version = if self.host.store().script_hash(&name).ok().flatten() == Some(source_hash) {
            stored
        } else {
            previous.as_ref().map(|s| s.version).unwrap_or(0).max(stored) + 1
        };
        let max_load = self.limits.max_load_secs;
        let compiled = tokio::task::spawn_blocking(move || compile(&engine, &n, &p, &text, version, connectors, max_load)).await;
        match compiled {
            Ok(Ok(script)) => {
                self.install(Arc::new(script));
                self.host.metrics().reload("script", true);
                true
            }
            Ok(Err(e)) => {
                self.load_failed(&name, e);
                false
            }
            Err(e) => {
                self.load_failed(&name, format!("{}: loading panicked: {e}", path.display()));
                false
            }
        }
    }

    fn stored_version(&self, name: &str) -> i64 {
        self.host.store().script_version(name).unwrap_or(0)
    }

    fn load_failed(&self, name: &str, error: String) {
        let keeping = self.current(name).map(|s| format!("; version {} keeps running", s.version)).unwrap_or_default();
        tracing::error!(script = name, "script not loaded: {error}{keeping}");
        self.host.metrics().reload("script", false);
        let _ = self.host.store().script_error(name, &error, now_ms());
        self.errors.write().unwrap().insert(name.to_string(), error);
    }

    fn install(&self, script: Arc<Script>) {
        let name = script.name.clone();
        let old = self.loaded.write().unwrap().insert(name.clone(), script.clone());
        self.errors.write().unwrap().remove(&name);
        let dispatcher = self.host.dispatcher();
        // One subscriber per function, taking every `on(...)` that names it.
        let wanted = subscriptions(&script.triggers);
        if let Some(old) = &old {
            for function in subscriptions(&old.triggers).keys() {
                if !wanted.contains_key(function) {
                    dispatcher.unsubscribe(&subscriber_name(&name, function));
                }
            }
        }
        for (function, patterns) in wanted {
            dispatcher.subscribe(Arc::new(ScriptSubscriber { scripts: self.me.clone(), name: subscriber_name(&name, &function), script: name.clone(), patterns, function }));
        }
        // Events its flows wait for: one subscriber per script.
        let flow_events: Vec<(String, String)> = script.flows.iter().flat_map(|f| f.events.iter().cloned()).collect();
        if flow_events.is_empty() {
            dispatcher.unsubscribe(&flow_subscriber_name(&name));
        } else {
            dispatcher.subscribe(Arc::new(FlowEvents { name: flow_subscriber_name(&name), script: name.clone(), patterns: flow_events, store: self.host.store().clone(), runner: self.flows.clone() }));
        }
        if !script.flows.is_empty() {
            self.flows.nudge();
        }
        self.restart_schedules(&script);
        let triggers: Vec<String> = script.triggers.iter().map(Trigger::describe).collect();
        let before: Option<Vec<String>> = match &old {
            Some(old) => Some(old.triggers.iter().map(Trigger::describe).collect()),
            None => self.stored_triggers(&name),
        };
        let change = before.and_then(|before| {
            let added: Vec<&String> = triggers.iter().filter(|t| !before.contains(t)).collect();
            let removed: Vec<&String> = before.iter().filter(|t| !triggers.contains(t)).collect();
            (!added.is_empty() || !removed.is_empty()).then(|| serde_json::json!({ "version": script.version, "at": now_ms(), "added": added, "removed": removed }))
        });
        if let Some(c) = &change {
            tracing::warn!(script = %name, version = script.version, added = %c["added"], removed = %c["removed"], "script triggers changed");
        }
        let _ = self.host.store().script_loaded(&name, script.version, &script.source_hash, &serde_json::json!(triggers), change.as_ref(), now_ms());
        tracing::info!(script = %name, version = script.version, triggers = %triggers.join("; "), "script loaded from {}", script.path.display());
    }

    /// The triggers the store last recorded for a script (a previous process,
    /// or before its file was removed).
    fn stored_triggers(&self, name: &str) -> Option<Vec<String>> {
        let all = self.host.store().scripts().ok()?;
        let s = all.into_iter().find(|s| s.name == name && s.version > 0)?;
        serde_json::from_value(s.triggers).ok()
    }

    fn unload(&self, name: &str) {
        let Some(old) = self.loaded.write().unwrap().remove(name) else { return };
        // The dispatcher holds events for these for the hold window, in
        // case the file comes back (a sync tool, `rm` then `cp`).
        for function in subscriptions(&old.triggers).keys() {
            self.host.dispatcher().unsubscribe(&subscriber_name(name, function));
        }
        self.host.dispatcher().unsubscribe(&flow_subscriber_name(name));
        if let Some(tasks) = self.schedules.lock().unwrap().remove(name) {
            tasks.iter().for_each(|t| t.abort());
        }
        self.errors.write().unwrap().remove(name);
        let _ = self.host.store().script_removed(name, now_ms());
        tracing::info!(script = name, version = old.version, "script removed; its triggers stopped");
    }

    fn restart_schedules(&self, script: &Arc<Script>) {
        let mut all = self.schedules.lock().unwrap();
        if let Some(tasks) = all.remove(&script.name) {
            tasks.iter().for_each(|t| t.abort());
        }
        let mut tasks = Vec::new();
        for t in &script.triggers {
            let Trigger::Every { schedule, function, spec } = t else { continue };
            let (me, name, function, schedule, spec) = (self.me.clone(), script.name.clone(), function.clone(), schedule.clone(), spec.clone());
            let owner = crate::store::new_owner();
            let task = self.handle.spawn(async move {
                let mut next = schedule.next_after(now_ms());
                loop {
                    let wait = (next - now_ms()).max(0) as u64;
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    let Some(scripts) = me.upgrade() else { return };
                    // Each tick fires once among all hosts sharing the store.
                    let store = scripts.host.store().clone();
                    let (n, f, owner) = (name.clone(), function.clone(), owner.clone());
                    let mine = match tokio::task::spawn_blocking(move || store.schedule_claim(&n, &f, next, &owner)).await {
                        Ok(Ok(mine)) => mine,
                        Ok(Err(e)) => {
                            // Unsure whether another host fired it: skipping
                            // a tick is better than firing it twice.
                            tracing::warn!(script = %name, function = %function, "claiming a schedule tick failed, tick skipped: {e:#}");
                            false
                        }
                        Err(e) => {
                            tracing::warn!(script = %name, function = %function, "claiming a schedule tick panicked: {e}");
                            false
                        }
                    };
                    // One run at a time per schedule: the next tick waits.
                    if mine {
                        if let Err(e) = scripts.run(&name, &function, None, &format!("schedule:{spec}")).await {
                            tracing::warn!(script = %name, function = %function, "scheduled run failed: {e}");
                        }
                    }
                    next = schedule.next_after(now_ms().max(next));
                }
            });
            tasks.push(task.abort_handle());
        }
        all.insert(script.name.clone(), tasks);
    }

    /// Run `function` of the current version of script `name`, with `arg`
    /// if given, as a recorded run.
    pub async fn run(&self, name: &str, function: &str, arg: Option<serde_json::Value>, trigger: &str) -> Result<serde_json::Value, RunError> {
        let script = self.current(name).ok_or_else(|| RunError {
            message: format!("no script named {name:?} is loaded{}", self.error(name).map(|e| format!(" (it failed to load: {e})")).unwrap_or_default()),
            location: None,
            transient: false,
            run_id: 0,
        })?;
        let engine = self.engine.read().unwrap().clone();
        let store = self.host.store().clone();
        let (function, trigger) = (function.to_string(), trigger.to_string());
        let max = Duration::from_secs_f64(self.limits.max_run_secs);
        let (f, t, n) = (function.clone(), trigger.clone(), script.name.clone());
        let metrics = self.host.metrics().clone();
        let result = tokio::task::spawn_blocking(move || run_blocking(&engine, &*store, &metrics, &script, &function, arg, &trigger, max, None).0)
            .await
            .unwrap_or_else(|e| Err(RunError { message: format!("the run panicked: {e}"), location: None, transient: false, run_id: 0 }));
        self.host.extensions().run_finished(crate::extend::RunOutcome {
            script: n,
            function: f,
            trigger: t,
            run_id: Some(match &result {
                Ok((_, id)) => *id,
                Err(e) => e.run_id,
            })
            .filter(|id| *id > 0),
            result: result.as_ref().map(|(v, _)| v.clone()).map_err(|e| match &e.location {
                Some(l) => format!("{l}: {}", e.message),
                None => e.message.clone(),
            }),
        });
        result.map(|(v, _)| v)
    }
}

impl Scripts {
    /// Wake a flow the runner leased: run its function from the top on the
    /// current version of its script, replaying durable calls, and say how
    /// the wake ended.
    pub async fn wake_flow(&self, flow: FlowRecord, runner: &Arc<FlowRunner>) -> Settle {
        let later = |why: String| Settle::Later { at: now_ms() + 30_000, why };
        let Some(script) = self.current(&flow.script) else {
            return later(format!("script {} is not loaded{}", flow.script, self.error(&flow.script).map(|e| format!(" ({e})")).unwrap_or_default()));
        };
        let Some(decl) = script.flows.iter().find(|d| d.function == flow.function) else {
            return later(format!("script {} version {} declares no flow({:?}); the flow waits until it does", script.name, script.version, flow.function));
        };
        let host = self.host.clone();
        let rates = Arc::new(move |c: &str, o: &str| host.connector(c).ok().and_then(|b| b.budget(o)));
        let store = self.host.store().clone();
        let wake = Wake::new(flow.clone(), store.clone(), runner.settings.clone(), runner.pacer.clone(), rates, decl.events.clone());
        let engine = self.engine.read().unwrap().clone();
        let max = Duration::from_secs_f64(self.limits.max_run_secs);
        let (function, trigger, input) = (flow.function.clone(), format!("flow:{}:{}", flow.id, flow.key), flow.input.clone());
        let metrics = self.host.metrics().clone();
        let ran = tokio::task::spawn_blocking(move || run_blocking(&engine, &*store, &metrics, &script, &function, Some(input), &trigger, max, Some(wake))).await;
        let (result, wake) = match ran {
            Ok(r) => r,
            Err(e) => return Settle::Retry { at: runner.retry_at(flow.attempts), error: format!("the wake panicked: {e}") },
        };
        if let Some(settle) = wake.and_then(|w| w.outcome) {
            return settle;
        }
        match result {
            Ok((v, _)) => Settle::Done(v),
            Err(e) if e.transient => Settle::Retry { at: runner.retry_at(flow.attempts), error: format!("run {}: {e}", e.run_id) },
            Err(e) => Settle::Failed(format!("run {}: {e}", e.run_id)),
        }
    }
}

/// Whether another process with this id runs. Called before this process
/// starts any run, so a run under its own id is a previous incarnation's
/// (a container restarts with the same pid). Without /proc, every other
/// process counts as gone.
pub(crate) fn process_alive(pid: i64) -> bool {
    pid != std::process::id() as i64 && pid > 0 && Path::new("/proc").join(pid.to_string()).exists()
}

fn subscriber_name(script: &str, function: &str) -> String {
    format!("script:{script}:{function}")
}

fn flow_subscriber_name(script: &str) -> String {
    format!("flows:{script}")
}

/// The `on(...)` patterns of each function, (connector, topic) each.
fn subscriptions(triggers: &[Trigger]) -> BTreeMap<String, Vec<(String, String)>> {
    let mut by_function: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for t in triggers {
        if let Trigger::On { connector, topic, function } = t {
            by_function.entry(function.clone()).or_default().push((connector.clone(), topic.clone()));
        }
    }
    by_function
}

fn compile(engine: &Engine, name: &str, path: &Path, text: &str, version: i64, connectors: Vec<(String, Vec<String>)>, max_load_secs: f64) -> Result<Script, String> {
    let file = path.display().to_string();
    let mut ast = engine.compile(text).map_err(|e| syntax_error(&file, text, &e))?;
    ast.set_source(file.as_str());
    let deadline = Instant::now() + Duration::from_secs_f64(max_load_secs);
    context::begin_load(name, context::LoadCtx { triggers: Vec::new(), exposed: Vec::new(), connectors, flows: Vec::new() }, deadline, max_load_secs);
    let result = engine.run_ast_with_scope(&mut Scope::new(), &ast);
    let ctx = context::end_load().expect("load context");
    if let Err(e) = result {
        let (message, location, _) = explain(&e, &file);
        return Err(format!("{}: {message}", location.unwrap_or(file.clone())));
    }
    for t in &ctx.triggers {
        let f = t.function();
        if !ast.iter_functions().any(|d| d.name == f) {
            return Err(format!("{file}: {} names function {f:?}, which this script does not define", t.describe()));
        }
    }
    for f in &ctx.exposed {
        if !ast.iter_functions().any(|d| d.name == f) {
            return Err(format!("{file}: expose({f:?}) names a function this script does not define"));
        }
    }
    for f in &ctx.flows {
        if !ast.iter_functions().any(|d| d.name == f.function && d.params.len() <= 1) {
            return Err(format!("{file}: flow({:?}) names no function of this script taking (input) or nothing", f.function));
        }
    }
    Ok(Script { name: name.into(), path: path.into(), version, ast, triggers: ctx.triggers, exposed: ctx.exposed, flows: ctx.flows, source_hash: hash(text) })
}

/// `file:line: syntax error: ...`. For a missing closing bracket Rhai
/// points where it gave up (often the end of the file); the line of the
/// bracket left open says where to look.
fn syntax_error(file: &str, text: &str, e: &rhai::ParseError) -> String {
    let line = e.1.line().unwrap_or(0);
    if let rhai::ParseErrorType::MissingToken(token, _) = &*e.0 {
        if let Some((open_line, open_col)) = syntax::opener_of(token).and_then(|open| syntax::unclosed(text, open)) {
            let open = syntax::opener_of(token).unwrap_or('{');
            return format!("{file}:{open_line}: syntax error: `{open}` at column {open_col} is never closed ({} at line {line})", e.0);
        }
    }
    format!("{file}:{line}: syntax error: {}", e.0)
}

/// Message, file:line and transience of a script error.
fn explain(err: &EvalAltResult, file: &str) -> (String, Option<String>, bool) {
    let inner = err.unwrap_inner();
    let pos = if inner.position().is_none() { err.position() } else { inner.position() };
    let location = pos.line().map(|l| format!("{file}:{l}"));
    match inner {
        EvalAltResult::ErrorRuntime(value, _) if value.is_map() => {
            let m = value.clone().cast::<rhai::Map>();
            let get = |k: &str| m.get(k).filter(|v| !v.is_unit()).map(|v| v.to_string());
            let mut message = format!("{}: {}", get("kind").unwrap_or_else(|| "error".into()), get("message").unwrap_or_default());
            if let (Some(c), Some(o)) = (get("connector"), get("operation")) {
                message.push_str(&format!(" (in {c}::{o})"));
            }
            if let Some(code) = get("vendor_code") {
                message.push_str(&format!(" [vendor code {code}]"));
            }
            // Every failing field the vendor named, not just the first.
            if let Some(details) = m.get("details").filter(|v| !v.is_unit()) {
                let json = rhai::serde::from_dynamic::<serde_json::Value>(details).map(|d| d.to_string()).unwrap_or_else(|_| details.to_string());
                message.push_str(&format!("; details: {json}"));
            }
            let transient = m.get("transient").and_then(|v| v.as_bool().ok()).unwrap_or(false);
            (message, location, transient)
        }
        EvalAltResult::ErrorRuntime(value, _) => (value.to_string(), location, false),
        EvalAltResult::ErrorTerminated(why, _) => (format!("stopped: {why}"), location, false),
        EvalAltResult::ErrorTooManyOperations(_) => ("stopped: the run exceeded its operation limit".into(), location, false),
        other => {
            let text = other.to_string();
            let text = text.split(" (line ").next().unwrap_or(&text).to_string();
            (text, location, false)
        }
    }
}

type RunResult = Result<(serde_json::Value, i64), RunError>;

/// One recorded run; with `wake`, the run is a wake of a flow, and the
/// wake comes back with how it ended.
#[allow(clippy::too_many_arguments)]
fn run_blocking(engine: &Engine, store: &dyn crate::store::Store, metrics: &crate::metrics::Metrics, script: &Script, function: &str, arg: Option<serde_json::Value>, trigger: &str, max: Duration, wake: Option<Wake>) -> (RunResult, Option<Wake>) {
    let file = script.path.display().to_string();
    let arity = script.ast.iter_functions().find(|f| f.name == function).map(|f| f.params.len());
    let Some(arity) = arity else {
        return (Err(RunError { message: format!("{file} has no function {function:?}"), location: None, transient: false, run_id: 0 }), wake);
    };
    let run_id = store.run_start(&script.name, script.version, function, trigger, now_ms()).unwrap_or(0);
    let flow_key = wake.as_ref().map(|w| w.flow.key.clone());
    // Every line logged during the run, on this thread (plugin calls
    // included), carries the run's id and its flow's key.
    let span = tracing::info_span!("run", run = run_id, script = %script.name, function, flow = flow_key.as_deref().unwrap_or(""));
    let _in_run = span.enter();
    context::begin_run(&script.name, script.version, script.flows.iter().map(|f| f.function.clone()).collect(), run_id, Instant::now() + max);
    let in_flow = wake.is_some();
    if let Some(w) = wake {
        crate::flow::replay::begin(w);
    }
    let arg = arg.map(|a| rhai::serde::to_dynamic(&a)).transpose();
    let result = arg.and_then(|arg| {
        let options = rhai::CallFnOptions::new().eval_ast(false).rewind_scope(true);
        let mut scope = Scope::new();
        match (arity, arg) {
            (0, _) => engine.call_fn_with_options::<Dynamic>(options, &mut scope, &script.ast, function, ()),
            (_, Some(a)) => engine.call_fn_with_options::<Dynamic>(options, &mut scope, &script.ast, function, (a,)),
            (_, None) => engine.call_fn_with_options::<Dynamic>(options, &mut scope, &script.ast, function, (Dynamic::UNIT,)),
        }
    });
    let (mut steps, lines) = context::end_run();
    let logs = crate::store::RunLogs { lines, flow_key };
    let finish = |error: Option<(&str, Option<&str>)>, steps: &[String]| {
        metrics.run(&script.name, if error.is_some() { "failed" } else { "ok" });
        let _ = store.run_finish(run_id, now_ms(), error, steps, &logs);
    };
    let mut wake = if in_flow { crate::flow::replay::end() } else { None };
    if let Some(w) = wake.as_mut() {
        steps.append(&mut w.notes);
        // A durable wait ended the wake: the run did its part.
        if let Some(settle) = &w.outcome {
            steps.push(match settle {
                Settle::InDoubt { step, .. } => format!("in doubt: {step}"),
                Settle::Wait { step, .. } => format!("waits: {step}"),
                _ => "ended".into(),
            });
            finish(None, &steps);
            return (Ok((serde_json::Value::Null, run_id)), wake);
        }
    }
    let outcome = result.map_err(|e| explain(&e, &file)).and_then(|v| {
        rhai::serde::from_dynamic::<serde_json::Value>(&v).map_err(|e| (format!("the function returned a value that is not JSON: {e}"), None, false))
    });
    let result = match outcome {
        Ok(v) => {
            finish(None, &steps);
            Ok((v, run_id))
        }
        Err((message, location, transient)) => {
            finish(Some((&message, location.as_deref())), &steps);
            tracing::warn!(script = %script.name, function, run = run_id, "run failed at {}: {message}", location.as_deref().unwrap_or("?"));
            Err(RunError { message, location, transient, run_id })
        }
    };
    (result, wake)
}

/// Delivers events of every `on(...)` naming one function to the script's
/// current version.
struct ScriptSubscriber {
    scripts: Weak<Scripts>,
    name: String,
    script: String,
    /// (connector, topic or `*`)
    patterns: Vec<(String, String)>,
    function: String,
}

impl Subscriber for ScriptSubscriber {
    fn name(&self) -> &str {
        &self.name
    }
    fn wants(&self, connector: &str, topic: &str) -> bool {
        wants(&self.patterns, connector, topic)
    }
    fn deliver<'a>(&'a self, connector: &'a str, event: &'a Event) -> futures::future::BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            let scripts = self.scripts.upgrade().ok_or_else(|| Failure::transient("the script engine is stopping"))?;
            // Removed or between versions: the file may come back; retry.
            if scripts.current(&self.script).is_none() {
                return Err(Failure::transient(format!("script {} is not loaded (removed, or its file is being replaced)", self.script)));
            }
            let arg = event_value(connector, event);
            scripts.run(&self.script, &self.function, Some(arg), &format!("event:{connector}/{}:{}", event.topic, event.id)).await.map(|_| ()).map_err(|e| {
                let message = format!("run {}: {e}", e.run_id);
                if e.transient { Failure::transient(message) } else { Failure::permanent(message) }
            })
        })
    }
}

/// Whether (connector, topic) is among `patterns` (topic `*`: any).
fn wants(patterns: &[(String, String)], connector: &str, topic: &str) -> bool {
    patterns.iter().any(|(c, t)| c == connector && (t == "*" || t == topic))
}

/// Routes events on the (connector, topic) pairs a script's flows wait on:
/// each is kept in the flows' inbox (once, by event id) and given to the
/// oldest waiting flow whose pattern it matches; one no flow waits for
/// yet stays there for the flow that reaches its `wait_event` later.
struct FlowEvents {
    name: String,
    script: String,
    patterns: Vec<(String, String)>,
    store: Arc<dyn crate::store::Store>,
    runner: Arc<FlowRunner>,
}

impl Subscriber for FlowEvents {
    fn name(&self) -> &str {
        &self.name
    }
    fn wants(&self, connector: &str, topic: &str) -> bool {
        wants(&self.patterns, connector, topic)
    }
    fn deliver<'a>(&'a self, connector: &'a str, event: &'a Event) -> futures::future::BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            let value = event_value(connector, event);
            let failed = |e: anyhow::Error| Failure::transient(format!("flow inbox: {e:#}"));
            let now = now_ms();
            let Some(inbox_id) = self.store.flow_inbox_put(&self.script, connector, &event.topic, &event.id, &value, now).map_err(failed)? else {
                return Ok(()); // a redelivery of an event a flow already took
            };
            for wait in self.store.flow_event_waits(&self.script, connector, &event.topic).map_err(failed)? {
                if crate::flow::matching::matches(&wait.pattern, &event.payload) && self.store.flow_inbox_claim(inbox_id, wait.flow_id, wait.ordinal, now).map_err(failed)? {
                    self.runner.nudge();
                    break;
                }
            }
            Ok(())
        })
    }
}

/// An event as scripts see it, in `on(...)` handlers and from `wait_event`.
fn event_value(connector: &str, event: &Event) -> serde_json::Value {
    serde_json::json!({
        "connector": connector, "topic": event.topic, "id": event.id,
        "subject": event.subject, "occurred_at": event.occurred_at, "payload": event.payload,
    })
}
