//! The script API: what a `.rhai` file can call. Registered once per
//! engine; per-run state (which script, which run, the deadline) lives in a
//! thread-local because every run has its own blocking thread.
use super::context::{self, LoadCtx};
use crate::error::CallError;
use crate::flow::{replay, FlowRunner};
use crate::store::{now_ms, STATE_LIST_MAX};
use crate::Host;
use rhai::{Dynamic, Engine, EvalAltResult, FnPtr, ImmutableString, Map, Module, NativeCallContext, Position};
use std::sync::Arc;

/// Script engine limits, from `[scripts]` in spoke.toml.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScriptLimits {
    pub max_operations: u64,
    pub max_call_levels: usize,
    pub max_string_bytes: usize,
    pub max_array_len: usize,
    pub max_map_len: usize,
    /// Wall-clock bound of one run, vendor calls included.
    pub max_run_secs: f64,
    /// Wall-clock bound of loading a script (its top level), so one slow
    /// file never holds up the others or a shutdown.
    pub max_load_secs: f64,
    /// Memory one load or run may hold, all its values together.
    pub max_memory_mib: u32,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        ScriptLimits { max_operations: 50_000_000, max_call_levels: 48, max_string_bytes: 1 << 20, max_array_len: 100_000, max_map_len: 100_000, max_run_secs: 300.0, max_load_secs: 10.0, max_memory_mib: 256 }
    }
}

pub(super) fn rt_error(message: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(Dynamic::from(message.into()), Position::NONE))
}

fn to_dynamic(v: &serde_json::Value) -> Result<Dynamic, Box<EvalAltResult>> {
    rhai::serde::to_dynamic(v)
}

fn to_json(v: &Dynamic) -> Result<serde_json::Value, Box<EvalAltResult>> {
    rhai::serde::from_dynamic(v)
}

/// A connector error as the map a script catches:
/// `#{kind, message, vendor_code, field, retry_after_ms, status, details, connector, operation, transient}`.
fn error_value(e: &CallError, connector: &str, operation: &str) -> Dynamic {
    let mut m = Map::new();
    m.insert("kind".into(), e.kind.as_str().into());
    m.insert("message".into(), e.message.clone().into());
    m.insert("vendor_code".into(), e.vendor_code.clone().map(Dynamic::from).unwrap_or(Dynamic::UNIT));
    m.insert("field".into(), e.field.clone().map(Dynamic::from).unwrap_or(Dynamic::UNIT));
    m.insert("retry_after_ms".into(), e.retry_after_ms.map(|v| Dynamic::from(v as i64)).unwrap_or(Dynamic::UNIT));
    m.insert("status".into(), e.status.map(|v| Dynamic::from(v as i64)).unwrap_or(Dynamic::UNIT));
    m.insert("details".into(), e.details.as_ref().and_then(|d| rhai::serde::to_dynamic(d).ok()).unwrap_or(Dynamic::UNIT));
    m.insert("connector".into(), connector.into());
    m.insert("operation".into(), operation.into());
    m.insert("transient".into(), e.is_transient().into());
    m.into()
}

/// Build an engine with the whole API for the host's current connectors.
pub fn engine(host: &Arc<Host>, limits: &ScriptLimits, handle: tokio::runtime::Handle, dir: &std::path::Path, flows: &Arc<FlowRunner>) -> Engine {
    let mut engine = Engine::new();
    // A script's code is its file: no eval, imports only from its folder.
    engine.disable_symbol("eval");
    engine.set_module_resolver(super::sandbox::ConfinedResolver::new(dir.to_path_buf()));
    engine
        .set_max_operations(limits.max_operations)
        .set_max_call_levels(limits.max_call_levels)
        .set_max_string_size(limits.max_string_bytes)
        .set_max_array_size(limits.max_array_len)
        .set_max_map_size(limits.max_map_len)
        .set_max_expr_depths(128, 64);
    let max_memory = i64::from(limits.max_memory_mib) << 20;
    engine.on_progress(move |_| {
        if let Some(why) = context::past_deadline() {
            return Some(Dynamic::from(why));
        }
        (context::memory_held() > max_memory).then(|| Dynamic::from(format!("the script holds more than {} MiB (scripts.max_memory_mib)", max_memory >> 20)))
    });
    engine.on_print(|text| {
        context::record_log(tracing::Level::INFO, text);
        tracing::info!(target: "spoke::script", script = %context::script_name(), "{text}")
    });
    engine.on_debug(|text, _, pos| tracing::debug!(target: "spoke::script", script = %context::script_name(), line = pos.line().unwrap_or(0), "{text}"));

    // Connectors: `wics::create_order(#{...})`.
    for binding in host.connectors() {
        let mut module = Module::new();
        for op in &binding.manifest().operations {
            let (h, rt, connector, operation, idempotent) = (host.clone(), handle.clone(), binding.name().to_string(), op.name.clone(), op.idempotent);
            let call = move |input: serde_json::Value| -> Result<Dynamic, Box<EvalAltResult>> {
                if context::is_loading() {
                    return Err(rt_error(format!("{connector}::{operation} cannot be called while the script loads; call it from a triggered function")));
                }
                replay::before_vendor_call(&connector, &operation, idempotent)?;
                let (result, waits) = rt.block_on(crate::rate_limit::recording_waits(h.call(&connector, &operation, input)));
                replay::after_vendor_call(idempotent, result.as_ref().err());
                // A wait for vendor budget shows in the run (`spoke runs show`).
                for w in waits {
                    context::record_note(&w);
                }
                match result {
                    Ok(v) => to_dynamic(&v),
                    Err(e) => Err(Box::new(EvalAltResult::ErrorRuntime(error_value(&e, &connector, &operation), Position::NONE))),
                }
            };
            let with_input = call.clone();
            module.set_native_fn(op.name.as_str(), move |input: Map| with_input(to_json(&Dynamic::from(input))?));
            module.set_native_fn(op.name.as_str(), move || call(serde_json::json!({})));
        }
        engine.register_static_module(binding.name(), module.into());
    }

    // Triggers, registered while the script loads.
    engine.register_fn("on", |connector: ImmutableString, topic: ImmutableString, function: ImmutableString| -> Result<(), Box<EvalAltResult>> {
        context::with_load(|l: &mut LoadCtx| l.on(connector.as_str(), topic.as_str(), function.as_str()))
    });
    engine.register_fn("expose", |function: ImmutableString| -> Result<(), Box<EvalAltResult>> {
        context::with_load(|l: &mut LoadCtx| {
            l.exposed.push(function.to_string());
            Ok(())
        })
    });
    engine.register_fn("every", |spec: ImmutableString, function: ImmutableString| -> Result<(), Box<EvalAltResult>> {
        context::with_load(|l: &mut LoadCtx| l.every(spec.as_str(), function.as_str()))
    });
    register_flows(&mut engine, host, flows);

    // step(key, || ...): once per key, per script, forever. In a flow: once
    // per flow, replayed by its place in the flow (flow::replay).
    let store = host.store().clone();
    engine.register_fn("step", move |ctx: NativeCallContext, key: ImmutableString, f: FnPtr| -> Result<Dynamic, Box<EvalAltResult>> {
        if replay::active() {
            return replay::step(&ctx, &key, &f, None);
        }
        let (script, run_id) = context::run_identity().ok_or_else(|| rt_error("step() can only be used inside a run"))?;
        // Two runs taking the same step at once: the second waits and then
        // gets the first one's stored result, instead of calling the vendor too.
        let _guard = step_lock::lock(&script, &key);
        if let Some(stored) = store.step_get(&script, &key).map_err(|e| rt_error(format!("step store: {e:#}")))? {
            context::record_step(&key, true);
            let v: serde_json::Value = serde_json::from_str(&stored).map_err(|e| rt_error(format!("stored step {key} is unreadable: {e}")))?;
            return to_dynamic(&v);
        }
        let value: Dynamic = f.call_within_context(&ctx, ())?;
        let json = to_json(&value)?;
        store.step_put(&script, &key, &json.to_string(), run_id, now_ms()).map_err(|e| rt_error(format!("step store: {e:#}")))?;
        context::record_step(&key, false);
        Ok(value)
    });

    // state::get/set/delete
    let mut state = Module::new();
    let s1 = host.store().clone();
    state.set_native_fn("get", move |key: ImmutableString| -> Result<Dynamic, Box<EvalAltResult>> {
        let script = context::script_name();
        match s1.state_get(&script, &key).map_err(|e| rt_error(format!("state: {e:#}")))? {
            Some(text) => state_value(&text),
            None => Ok(Dynamic::UNIT),
        }
    });
    let s2 = host.store().clone();
    state.set_native_fn("set", move |key: ImmutableString, value: Dynamic| -> Result<(), Box<EvalAltResult>> {
        let text = state_text("set", &key, &value)?;
        s2.state_set(&context::script_name(), &key, &text, now_ms()).map_err(|e| rt_error(format!("state: {e:#}")))
    });
    let s3 = host.store().clone();
    state.set_native_fn("delete", move |key: ImmutableString| -> Result<(), Box<EvalAltResult>> {
        s3.state_delete(&context::script_name(), &key).map_err(|e| rt_error(format!("state: {e:#}")))
    });
    // state::update(key, |old| new): compare-and-swap, so runs in this and
    // other processes never lose each other's writes. On a conflict the
    // closure runs again on the newer value: it must only compute.
    let s4 = host.store().clone();
    state.set_native_fn("update", move |ctx: NativeCallContext, key: ImmutableString, f: FnPtr| -> Result<Dynamic, Box<EvalAltResult>> {
        let script = context::script_name();
        for attempt in 0..STATE_UPDATE_ATTEMPTS {
            if attempt > 0 {
                // Many runs on one key retry in lockstep otherwise: back off
                // a random while, longer after each conflict (≤ ~50 ms).
                let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
                let ceiling_us = 200u64 << attempt.min(8);
                std::thread::sleep(std::time::Duration::from_micros(u64::from(nanos) % ceiling_us));
            }
            let old = s4.state_get(&script, &key).map_err(|e| rt_error(format!("state: {e:#}")))?;
            let old_value = old.as_deref().map(state_value).transpose()?.unwrap_or(Dynamic::UNIT);
            let new: Dynamic = f.call_within_context(&ctx, (old_value,))?;
            let text = state_text("update", &key, &new)?;
            if s4.state_swap(&script, &key, old.as_deref(), &text, now_ms()).map_err(|e| rt_error(format!("state: {e:#}")))? {
                return Ok(new);
            }
        }
        Err(rt_error(format!("state::update({key}): other writers changed it {STATE_UPDATE_ATTEMPTS} times in a row; gave up")))
    });
    let s5 = host.store().clone();
    state.set_native_fn("incr", move |key: ImmutableString, by: i64| -> Result<i64, Box<EvalAltResult>> {
        s5.state_incr(&context::script_name(), &key, by, now_ms()).map_err(|e| rt_error(format!("state::incr: {e:#}")))
    });
    let s6 = host.store().clone();
    state.set_native_fn("list", move |prefix: ImmutableString| -> Result<rhai::Array, Box<EvalAltResult>> {
        Ok(state_listed(&*s6, &prefix)?.into_iter().map(|(key, _)| Dynamic::from(key)).collect())
    });
    let s7 = host.store().clone();
    state.set_native_fn("entries", move |prefix: ImmutableString| -> Result<Map, Box<EvalAltResult>> {
        state_listed(&*s7, &prefix)?.into_iter().map(|(key, text)| Ok((key.into(), state_value(&text)?))).collect()
    });
    engine.register_static_module("state", state.into());

    // log::info/warn/error, within the script's log quota.
    let mut log = Module::new();
    for level in [tracing::Level::INFO, tracing::Level::WARN, tracing::Level::ERROR] {
        let budget = host.log_budget().clone();
        log.set_native_fn(level.as_str().to_ascii_lowercase(), move |m: Dynamic| -> Result<(), Box<EvalAltResult>> {
            script_log(&budget, level, &m.to_string());
            Ok(())
        });
    }
    engine.register_static_module("log", log.into());

    // Time: now() is RFC 3339 UTC; date:: helpers work on that text.
    engine.register_fn("now", || crate::time::rfc3339(now_ms()));
    engine.register_fn("now_ms", now_ms);
    let mut date = Module::new();
    date.set_native_fn("parse", |text: ImmutableString| -> Result<i64, Box<EvalAltResult>> {
        crate::time::parse(&text).ok_or_else(|| rt_error(format!("date::parse: {text:?} is not a date or RFC 3339 date-time")))
    });
    date.set_native_fn("format", |ms: i64| -> Result<String, Box<EvalAltResult>> { Ok(crate::time::rfc3339(ms)) });
    date.set_native_fn("add_days", |text: ImmutableString, days: i64| -> Result<String, Box<EvalAltResult>> {
        let ms = crate::time::parse(&text).ok_or_else(|| rt_error(format!("date::add_days: {text:?} is not a date")))?;
        Ok(crate::time::rfc3339(ms + days * 86_400_000))
    });
    date.set_native_fn("today", || -> Result<String, Box<EvalAltResult>> { Ok(crate::time::rfc3339(now_ms())[..10].to_string()) });
    date.set_native_fn("days_between", |a: ImmutableString, b: ImmutableString| -> Result<i64, Box<EvalAltResult>> {
        let (a, b) = (crate::time::parse(&a), crate::time::parse(&b));
        match (a, b) {
            (Some(a), Some(b)) => Ok((b - a).div_euclid(86_400_000)),
            _ => Err(rt_error("date::days_between: both arguments must be dates")),
        }
    });
    engine.register_static_module("date", date.into());

    // JSON, for scripts that talk to forms and other systems.
    engine.register_fn("to_json", |v: Dynamic| -> Result<String, Box<EvalAltResult>> { Ok(to_json(&v)?.to_string()) });
    engine.register_fn("parse_json", |text: ImmutableString| -> Result<Dynamic, Box<EvalAltResult>> {
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| rt_error(format!("parse_json: {e}")))?;
        to_dynamic(&v)
    });
    // What the embedding service registered (native functions, modules).
    host.extensions().apply(&mut engine);
    engine
}

/// Flows: `flow()` at load; `start_flow()` from any run; the durable calls
/// (`sleep`, `wait_event`, `poll`, `step` with a check) inside a flow.
fn register_flows(engine: &mut Engine, host: &Arc<Host>, runner: &Arc<FlowRunner>) {
    engine.register_fn("flow", |function: ImmutableString| -> Result<(), Box<EvalAltResult>> { context::with_load(|l: &mut LoadCtx| l.flow(function.as_str(), &[])) });
    engine.register_fn("flow", |function: ImmutableString, events: rhai::Array| -> Result<(), Box<EvalAltResult>> {
        let events: Vec<String> = events.into_iter().map(|e| e.to_string()).collect();
        context::with_load(|l: &mut LoadCtx| l.flow(function.as_str(), &events))
    });
    let (store, nudge) = (host.store().clone(), runner.clone());
    let start = move |function: &str, key: &str, input: serde_json::Value| -> Result<i64, Box<EvalAltResult>> {
        let (script, version, declared) = context::current_flows().ok_or_else(|| rt_error("start_flow() works inside a run (a trigger, a schedule, an exposed function or a flow)"))?;
        if !declared.iter().any(|f| f == function) {
            return Err(rt_error(format!("start_flow({function:?}, ...): this script declares no flow({function:?}) at its top level; it declares: [{}]", declared.join(", "))));
        }
        if key.is_empty() || key.len() > 512 {
            return Err(rt_error(format!("start_flow({function:?}, key): the key must be 1 to 512 bytes, got {}", key.len())));
        }
        let (id, new) = store.flow_start(&script, function, key, &input, version, now_ms()).map_err(|e| rt_error(format!("flow store: {e:#}")))?;
        if new {
            context::record_note(&format!("started flow {id} ({function} {key})"));
            nudge.nudge();
        }
        Ok(id)
    };
    let with_input = start.clone();
    engine.register_fn("start_flow", move |function: ImmutableString, key: Dynamic, input: Dynamic| -> Result<i64, Box<EvalAltResult>> {
        with_input(&function, &key.to_string(), to_json(&input)?)
    });
    engine.register_fn("start_flow", move |function: ImmutableString, key: Dynamic| -> Result<i64, Box<EvalAltResult>> { start(&function, &key.to_string(), serde_json::Value::Null) });
    engine.register_fn("flow_key", || -> Result<String, Box<EvalAltResult>> { replay::flow_identity().map(|(_, k)| k).ok_or_else(|| rt_error("flow_key() works inside a flow")) });
    engine.register_fn("flow_id", || -> Result<i64, Box<EvalAltResult>> { replay::flow_identity().map(|(id, _)| id).ok_or_else(|| rt_error("flow_id() works inside a flow")) });

    engine.register_fn("step", |ctx: NativeCallContext, key: ImmutableString, f: FnPtr, check: FnPtr| -> Result<Dynamic, Box<EvalAltResult>> {
        if !replay::active() {
            return Err(rt_error(format!("step({key:?}, f, check): a check is for steps inside a flow, where an interrupted step is looked up instead of repeated")));
        }
        replay::step(&ctx, &key, &f, Some(&check))
    });
    engine.register_fn("sleep", |d: Dynamic| -> Result<(), Box<EvalAltResult>> { replay::sleep(duration_ms("sleep", &d)?) });
    engine.register_fn("wait_event", |connector: ImmutableString, topic: ImmutableString, pattern: Map| -> Result<Dynamic, Box<EvalAltResult>> {
        replay::wait_event(&connector, &topic, to_json(&Dynamic::from(pattern))?, None)
    });
    engine.register_fn("wait_event", |connector: ImmutableString, topic: ImmutableString, pattern: Map, timeout: Dynamic| -> Result<Dynamic, Box<EvalAltResult>> {
        replay::wait_event(&connector, &topic, to_json(&Dynamic::from(pattern))?, Some(duration_ms("wait_event timeout", &timeout)?))
    });
    let defaults = runner.settings.clone();
    let poll = move |ctx: NativeCallContext, name: ImmutableString, fetch: FnPtr, until: FnPtr, options: Map| -> Result<Dynamic, Box<EvalAltResult>> {
        let get = |k: &str| options.get(k).map(|d| duration_ms(&format!("poll option {k}"), d)).transpose();
        let every = get("every")?.unwrap_or((defaults.poll_every_secs * 1000.0) as i64).max(1);
        let max_every = get("max_every")?.unwrap_or((defaults.poll_max_every_secs * 1000.0) as i64).max(every);
        if let Some(k) = options.keys().find(|k| !matches!(k.as_str(), "every" | "max_every" | "timeout")) {
            return Err(rt_error(format!("poll({name:?}): unknown option {k:?}; options are every, max_every, timeout")));
        }
        replay::poll(&ctx, &name, &fetch, &until, replay::PollOptions { every_ms: every, max_every_ms: max_every, timeout_ms: get("timeout")? })
    };
    let without_options = poll.clone();
    engine.register_fn("poll", poll);
    engine.register_fn("poll", move |ctx: NativeCallContext, name: ImmutableString, fetch: FnPtr, until: FnPtr| -> Result<Dynamic, Box<EvalAltResult>> {
        without_options(ctx, name, fetch, until, Map::new())
    });
}

/// A duration: `"30s"`, `"5m"`, `"2h"`, `"7d"`, `"250ms"`, or milliseconds.
fn duration_ms(what: &str, d: &Dynamic) -> Result<i64, Box<EvalAltResult>> {
    if let Ok(ms) = d.as_int() {
        return Ok(ms.max(0));
    }
    let text = d.clone().into_string().map_err(|t| rt_error(format!("{what}: expected a duration like \"30s\" or milliseconds, got a {t}")))?;
    super::schedule::parse_duration(&text).map(|d| d.as_millis() as i64).ok_or_else(|| rt_error(format!("{what}: {text:?} is not a duration (\"250ms\", \"30s\", \"5m\", \"2h\", \"7d\")")))
}

/// Conflicting writes `state::update` takes before it gives up: each one
/// means another writer succeeded, so only a hot key under heavy contention
/// gets here.
const STATE_UPDATE_ATTEMPTS: usize = 100;

/// A stored state value as the script sees it.
fn state_value(text: &str) -> Result<Dynamic, Box<EvalAltResult>> {
    to_dynamic(&serde_json::from_str(text).unwrap_or(serde_json::Value::Null))
}

/// A value as stored, within the size bound.
fn state_text(function: &str, key: &str, value: &Dynamic) -> Result<String, Box<EvalAltResult>> {
    let text = to_json(value)?.to_string();
    if text.len() > 64 * 1024 {
        return Err(rt_error(format!("state::{function}({key}): values are at most 64 KiB, got {} bytes", text.len())));
    }
    Ok(text)
}

/// The script's keys with `prefix` and their values; more than
/// [`STATE_LIST_MAX`] is an error rather than a silently cut list.
fn state_listed(store: &dyn crate::store::Store, prefix: &str) -> Result<Vec<(String, String)>, Box<EvalAltResult>> {
    let listed = store.state_list(&context::script_name(), prefix, STATE_LIST_MAX + 1).map_err(|e| rt_error(format!("state: {e:#}")))?;
    if listed.len() > STATE_LIST_MAX {
        return Err(rt_error(format!("state: more than {STATE_LIST_MAX} keys start with {prefix:?}; list a longer prefix")));
    }
    Ok(listed)
}

fn script_log(budget: &crate::log_budget::LogBudget, level: tracing::Level, message: &str) {
    let script = context::script_name();
    let Some(admitted) = budget.admit(&format!("script:{script}"), message) else { return };
    let m = admitted.line;
    if let Some(d) = admitted.dropped {
        tracing::warn!(target: "spoke::script", script = %script, dropped_lines = d.lines, dropped_bytes = d.bytes, "log quota: lines and bytes not written since this script's last line");
    }
    context::record_log(level, &m);
    // The run's span (script/mod.rs) adds run id, function and flow key.
    match level {
        tracing::Level::ERROR => tracing::error!(target: "spoke::script", script = %script, "{m}"),
        tracing::Level::WARN => tracing::warn!(target: "spoke::script", script = %script, "{m}"),
        _ => tracing::info!(target: "spoke::script", script = %script, "{m}"),
    }
}

/// One step key at a time, within this host. Runs are on blocking threads,
/// so waiting on a condition variable is the right tool.
mod step_lock {
    use std::collections::HashSet;
    use std::sync::{Condvar, Mutex, OnceLock};

    type Held = (Mutex<HashSet<(String, String)>>, Condvar);

    fn held() -> &'static Held {
        static HELD: OnceLock<Held> = OnceLock::new();
        HELD.get_or_init(Default::default)
    }

    pub struct Guard(Option<(String, String)>);

    pub fn lock(script: &str, key: &str) -> Guard {
        let key = (script.to_string(), key.to_string());
        let (set, freed) = held();
        let mut taken = set.lock().unwrap_or_else(|p| p.into_inner());
        while taken.contains(&key) {
            taken = freed.wait(taken).unwrap_or_else(|p| p.into_inner());
        }
        taken.insert(key.clone());
        Guard(Some(key))
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            let (set, freed) = held();
            if let Some(key) = self.0.take() {
                set.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
            }
            freed.notify_all();
        }
    }
}
