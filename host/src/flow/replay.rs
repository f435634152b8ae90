//! One wake of a flow: the thread-local context its durable calls replay
//! against. Every durable call (`step`, `sleep`, `wait_event`, `poll`) takes
//! the next ordinal; the store's record at that ordinal says whether it is
//! already done (replay its result), still waiting (end the wake again), or
//! interrupted between intent and result (check, or park in doubt).
//!
//! A durable call whose kind or name differs from what the store holds at
//! its ordinal means the script changed under a running flow in a way
//! replay cannot follow: the wake fails with both names, and the flow waits
//! for a fixed script and `spoke flows retry`.
use super::matching;
use super::pacer::PollPacer;
use super::store::{FlowRecord, FlowStep, Settle};
use super::FlowSettings;
use crate::store::{now_ms, Store};
use rhai::{Dynamic, EvalAltResult, FnPtr, NativeCallContext, Position};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::sync::Arc;

/// The token of the uncatchable stop that ends a wake at a durable wait.
pub const SUSPENDED: &str = "the flow waits (a durable wait ends this wake; it resumes from the store)";

/// A wake in progress.
pub struct Wake {
    pub flow: FlowRecord,
    pub store: Arc<dyn Store>,
    pub settings: FlowSettings,
    pub pacer: Arc<PollPacer>,
    /// What each (connector, operation) may spend: (requests per second
    /// sustained, most at once); see `Binding::budget`.
    pub rates: Arc<dyn Fn(&str, &str) -> Option<(f64, u32)> + Send + Sync>,
    /// (connector, topic) pairs the script routes to its flows.
    pub events: Vec<(String, String)>,
    next_ordinal: u32,
    /// Set when the wake must end: a wait, or a step in doubt.
    pub outcome: Option<Settle>,
    /// Depth of `step` closures being run.
    in_step: u32,
    /// Writes in the current step that may have reached the vendor.
    step_writes: u32,
    /// The ordinal of the step being run, and whether its record already
    /// says a write was sent.
    step_ordinal: Option<(u32, bool)>,
    /// Vendor operations a poll's fetch called.
    polled: Option<Vec<(String, String)>>,
    /// Lines for the run record.
    pub notes: Vec<String>,
}

impl Wake {
    pub fn new(flow: FlowRecord, store: Arc<dyn Store>, settings: FlowSettings, pacer: Arc<PollPacer>, rates: Arc<dyn Fn(&str, &str) -> Option<(f64, u32)> + Send + Sync>, events: Vec<(String, String)>) -> Wake {
        Wake { flow, store, settings, pacer, rates, events, next_ordinal: 0, outcome: None, in_step: 0, step_writes: 0, step_ordinal: None, polled: None, notes: Vec::new() }
    }
}

thread_local! {
    static WAKE: RefCell<Option<Wake>> = const { RefCell::new(None) };
}

pub fn begin(wake: Wake) {
    WAKE.with(|w| *w.borrow_mut() = Some(wake));
}

pub fn end() -> Option<Wake> {
    WAKE.with(|w| w.borrow_mut().take())
}

pub fn active() -> bool {
    WAKE.with(|w| w.borrow().is_some())
}

/// Run `f` on the current wake. Never call into Rhai inside `f`: a
/// closure the script passed may reach this module again.
fn with<R>(f: impl FnOnce(&mut Wake) -> R) -> Option<R> {
    WAKE.with(|w| w.borrow_mut().as_mut().map(f))
}

pub fn flow_identity() -> Option<(i64, String)> {
    with(|w| (w.flow.id, w.flow.key.clone()))
}

fn err(message: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(Dynamic::from(message.into()), Position::NONE))
}

fn store_err(e: anyhow::Error) -> Box<EvalAltResult> {
    err(format!("flow store: {e:#}"))
}

/// End the wake with `settle`. Rhai cannot catch a termination, so a
/// `try` around a wait cannot swallow it.
fn stop(settle: Settle) -> Box<EvalAltResult> {
    with(|w| w.outcome = Some(settle));
    Box::new(EvalAltResult::ErrorTerminated(Dynamic::from(SUSPENDED), Position::NONE))
}

fn to_dynamic(v: &Value) -> Result<Dynamic, Box<EvalAltResult>> {
    rhai::serde::to_dynamic(v)
}

fn to_json(v: &Dynamic) -> Result<Value, Box<EvalAltResult>> {
    rhai::serde::from_dynamic(v)
}

/// Take the next ordinal for a durable call of `kind` named `name` and read
/// what the store holds there, refusing one that no longer fits.
fn next_call(kind: &str, name: &str) -> Result<(i64, u32, Arc<dyn Store>, Option<FlowStep>), Box<EvalAltResult>> {
    let (flow_id, ordinal, store, in_step) = with(|w| {
        let o = w.next_ordinal;
        w.next_ordinal += 1;
        (w.flow.id, o, w.store.clone(), w.in_step)
    })
    .ok_or_else(|| err(format!("{kind}() is a durable call: it works inside a flow (see flow() and start_flow())")))?;
    if in_step > 0 {
        return Err(err(format!("{kind}({name:?}) inside a step: a step is one unit of work; make durable calls between steps, not within one")));
    }
    let stored = store.flow_step(flow_id, ordinal).map_err(store_err)?;
    if let Some(s) = &stored {
        if s.kind != kind || s.name != name {
            return Err(err(format!(
                "the script changed under this flow: durable call #{ordinal} was {}({:?}) when the flow ran it, the script now makes {kind}({name:?}) there. \
                 Durable calls a running flow has passed must stay in order; add new ones after them or start a new flow function. \
                 Fix the script, then `spoke flows retry {flow_id}`",
                s.kind, s.name
            )));
        }
    }
    Ok((flow_id, ordinal, store, stored))
}

fn note(line: String) {
    with(|w| w.notes.push(line));
}

/// Whether a step that failed certainly left nothing at the vendor: no
/// write in it was sent without a definite refusal.
fn step_left_no_trace() -> bool {
    with(|w| w.step_writes).unwrap_or(0) == 0
}

/// `step(name, || ...)` or `step(name, || ..., || check)` inside a flow.
pub fn step(ctx: &NativeCallContext, name: &str, f: &FnPtr, check: Option<&FnPtr>) -> Result<Dynamic, Box<EvalAltResult>> {
    let (flow_id, ordinal, store, stored) = next_call("step", name)?;
    match stored.as_ref().map(|s| s.status.as_str()) {
        Some("done") => {
            note(format!("{name} (stored)"));
            return to_dynamic(stored.and_then(|s| s.result).as_ref().unwrap_or(&Value::Null));
        }
        Some("started") if !stored.as_ref().and_then(|s| s.detail.as_ref()).is_some_and(|d| d["write_sent"] == true) => {
            // Interrupted before any write left: nothing can have happened.
            note(format!("{name} (interrupted before it sent a write: running it again)"));
        }
        Some("started") => {
            let since = stored.as_ref().map(|s| s.started_at).unwrap_or(0);
            // Interrupted between intent and result: find out, never guess.
            let Some(check) = check else {
                return Err(stop(Settle::InDoubt {
                    step: name.to_string(),
                    waiting_for: json!({
                        "in_doubt": name, "ordinal": ordinal, "since": crate::time::rfc3339(since),
                        "why": "the step was interrupted after it sent a write and before its result was stored; it has no check, so whether the write happened is unknown",
                        "resolve": format!("spoke flows resolve {flow_id} --value JSON (it happened: this is its result) or --rerun (it did not)"),
                    }),
                }));
            };
            let found = check.call_within_context::<Dynamic>(ctx, ())?;
            if !found.is_unit() {
                let v = to_json(&found)?;
                store.flow_step_update(flow_id, ordinal, "done", Some(&v), Some(&json!({"resolved_by": "check"})), now_ms()).map_err(store_err)?;
                note(format!("{name} (interrupted; its check found the result)"));
                return Ok(found);
            }
            note(format!("{name} (interrupted; its check found nothing: running it again)"));
        }
        Some("rerun") => note(format!("{name} (run again on an operator's word)")),
        Some(other) => return Err(err(format!("step {name:?}: unexpected stored status {other:?}"))),
        None => {}
    }
    // The intent is committed before anything reaches the vendor.
    store.flow_step_begin(flow_id, ordinal, "step", name, "started", None, now_ms()).map_err(store_err)?;
    let outer_writes = with(|w| {
        w.in_step += 1;
        w.step_ordinal = Some((ordinal, false));
        std::mem::take(&mut w.step_writes)
    })
    .unwrap_or(0);
    let result = f.call_within_context::<Dynamic>(ctx, ());
    let no_trace = result.is_err() && step_left_no_trace();
    with(|w| {
        w.in_step -= 1;
        w.step_ordinal = None;
        w.step_writes = outer_writes;
    });
    match result {
        Ok(v) => {
            let json = to_json(&v)?;
            store.flow_step_update(flow_id, ordinal, "done", Some(&json), None, now_ms()).map_err(store_err)?;
            note(name.to_string());
            Ok(v)
        }
        Err(e) => {
            if no_trace {
                store.flow_step_forget(flow_id, ordinal).map_err(store_err)?;
            }
            Err(e)
        }
    }
}

/// Called before every vendor call a script makes. Inside a flow a write
/// must be in a step, or a replay would repeat it.
pub fn before_vendor_call(connector: &str, operation: &str, idempotent: bool) -> Result<(), Box<EvalAltResult>> {
    let outside_step = with(|w| {
        if let Some(p) = w.polled.as_mut() {
            if !p.iter().any(|(c, o)| c == connector && o == operation) {
                p.push((connector.to_string(), operation.to_string()));
            }
        }
        w.in_step == 0
    });
    if outside_step == Some(true) && !idempotent {
        return Err(err(format!(
            "{connector}::{operation} changes data at the vendor: inside a flow, call it within step(\"name\", || ...) so that a replay does not repeat it"
        )));
    }
    // The first write of a step is recorded before it leaves: a step
    // interrupted before that is safely run again, one interrupted after it
    // is checked or waits for an operator.
    if !idempotent {
        let mark = with(|w| match w.step_ordinal {
            Some((ordinal, false)) => {
                w.step_ordinal = Some((ordinal, true));
                Some((w.flow.id, ordinal, w.store.clone()))
            }
            _ => None,
        })
        .flatten();
        if let Some((flow_id, ordinal, store)) = mark {
            store.flow_step_update(flow_id, ordinal, "started", None, Some(&json!({"write_sent": true})), now_ms()).map_err(store_err)?;
        }
    }
    Ok(())
}

/// Called after every vendor call: a write that was sent and not clearly
/// refused may have happened.
pub fn after_vendor_call(idempotent: bool, error: Option<&crate::CallError>) {
    let maybe_done = match error {
        None => true,
        // A 5xx, a timeout or a lost connection after sending: unknown.
        Some(e) => matches!(e.kind, crate::ErrorKind::Timeout | crate::ErrorKind::Transport | crate::ErrorKind::Internal) || e.status.is_some_and(|s| s >= 500),
    };
    if !idempotent && maybe_done {
        with(|w| {
            if w.in_step > 0 {
                w.step_writes += 1;
            }
        });
    }
}

/// `sleep(duration)`: a durable wait of `ms`.
pub fn sleep(ms: i64) -> Result<(), Box<EvalAltResult>> {
    let (flow_id, ordinal, store, stored) = next_call("sleep", "sleep")?;
    let now = now_ms();
    let until = match &stored {
        Some(s) if s.status == "done" => return Ok(()),
        Some(s) => s.detail.as_ref().and_then(|d| d["until"].as_i64()).unwrap_or(now),
        None => {
            let until = now + ms.max(0);
            store.flow_step_begin(flow_id, ordinal, "sleep", "sleep", "waiting", Some(&json!({"until": until})), now).map_err(store_err)?;
            until
        }
    };
    if now >= until {
        store.flow_step_update(flow_id, ordinal, "done", None, None, now).map_err(store_err)?;
        return Ok(());
    }
    Err(stop(Settle::Wait { at: Some(until), step: format!("sleep #{ordinal}"), waiting_for: json!({"sleep_until": crate::time::rfc3339(until)}) }))
}

/// `wait_event(connector, topic, pattern, timeout_ms)`: the first event on
/// (connector, topic) whose payload matches, or `()` after the timeout.
pub fn wait_event(connector: &str, topic: &str, pattern: Value, timeout_ms: Option<i64>) -> Result<Dynamic, Box<EvalAltResult>> {
    let routed = with(|w| w.events.iter().any(|(c, t)| c == connector && t == topic)).unwrap_or(false);
    let name = format!("{connector}/{topic}");
    if !routed && active() {
        return Err(err(format!(
            "wait_event({connector:?}, {topic:?}, ...): events on {name} are not routed to this script's flows; name them where the flow is declared: flow(\"function\", [\"{name}\"])"
        )));
    }
    if !pattern.is_object() {
        return Err(err(format!("wait_event({connector:?}, {topic:?}, ...): the pattern must be a map of payload paths to values, e.g. #{{\"orderReference\": ref}}")));
    }
    let (flow_id, ordinal, store, stored) = next_call("wait", &name)?;
    let now = now_ms();
    let script = with(|w| w.flow.script.clone()).unwrap_or_default();
    let (deadline, pattern) = match &stored {
        Some(s) if s.status == "done" => return to_dynamic(s.result.as_ref().unwrap_or(&Value::Null)),
        Some(s) => {
            let d = s.detail.clone().unwrap_or(Value::Null);
            (d["deadline"].as_i64(), d.get("match").cloned().unwrap_or(pattern))
        }
        None => {
            let deadline = timeout_ms.map(|t| now + t.max(0));
            let detail = json!({"connector": connector, "topic": topic, "match": pattern, "deadline": deadline});
            store.flow_step_begin(flow_id, ordinal, "wait", &name, "waiting", Some(&detail), now).map_err(store_err)?;
            (deadline, pattern)
        }
    };
    // Routed to us already, or waiting in the inbox since before we waited.
    let mut event = store.flow_inbox_claimed(flow_id, ordinal).map_err(store_err)?;
    if event.is_none() {
        for (id, e) in store.flow_inbox_open(&script, connector, topic, 1000).map_err(store_err)? {
            if matching::matches(&pattern, &e["payload"]) && store.flow_inbox_claim(id, flow_id, ordinal, now).map_err(store_err)? {
                event = Some(e);
                break;
            }
        }
    }
    if let Some(e) = event {
        store.flow_step_update(flow_id, ordinal, "done", Some(&e), None, now).map_err(store_err)?;
        note(format!("{name}: event {} arrived", e["id"].as_str().unwrap_or("?")));
        return to_dynamic(&e);
    }
    if deadline.is_some_and(|d| now >= d) {
        store.flow_step_update(flow_id, ordinal, "done", Some(&Value::Null), None, now).map_err(store_err)?;
        note(format!("{name}: timed out"));
        return Ok(Dynamic::UNIT);
    }
    Err(stop(Settle::Wait {
        at: deadline,
        step: name.clone(),
        waiting_for: json!({"event": name, "match": pattern, "until": deadline.map(crate::time::rfc3339)}),
    }))
}

/// How a poll asks: `#{every: "30s", max_every: "15m", timeout: "7d"}`.
pub struct PollOptions {
    pub every_ms: i64,
    pub max_every_ms: i64,
    pub timeout_ms: Option<i64>,
}

/// `poll(name, || fetch, |v| done?, options)`: ask until the condition
/// holds, backing off, in slots shared by every flow's polls of the same
/// operation. Returns the value that satisfied it, or `()` after the timeout.
pub fn poll(ctx: &NativeCallContext, name: &str, fetch: &FnPtr, until: &FnPtr, options: PollOptions) -> Result<Dynamic, Box<EvalAltResult>> {
    let (flow_id, ordinal, store, stored) = next_call("poll", name)?;
    let now = now_ms();
    let script = with(|w| w.flow.script.clone()).unwrap_or_default();
    let (attempts, deadline) = match &stored {
        Some(s) if s.status == "done" => return to_dynamic(s.result.as_ref().unwrap_or(&Value::Null)),
        Some(s) => {
            let d = s.detail.clone().unwrap_or(Value::Null);
            (d["attempts"].as_u64().unwrap_or(0), d["deadline"].as_i64())
        }
        None => {
            let deadline = options.timeout_ms.map(|t| now + t);
            store.flow_step_begin(flow_id, ordinal, "poll", name, "waiting", Some(&json!({"attempts": 0, "deadline": deadline})), now).map_err(store_err)?;
            // A poll this host has seen before is paced from its first
            // attempt, so 1,000 new flows do not all ask at once.
            if let Some(at) = with(|w| pace(w, &script, name, now, 0)).flatten().filter(|at| *at > now + 50) {
                return Err(stop(Settle::Wait { at: Some(at), step: format!("poll {name}"), waiting_for: json!({"poll": name, "attempts": 0, "next": crate::time::rfc3339(at)}) }));
            }
            (0, deadline)
        }
    };
    with(|w| w.polled = Some(Vec::new()));
    let fetched = fetch.call_within_context::<Dynamic>(ctx, ());
    let polled = with(|w| w.polled.take()).flatten().unwrap_or_default();
    if !polled.is_empty() {
        with(|w| w.pacer.learn(&script, name, polled.clone()));
    }
    let value = match fetched {
        Ok(v) => Some(v),
        // A busy or unreachable vendor is a miss, not a failure.
        Err(e) if is_transient(&e) => {
            note(format!("poll {name}: {}", e));
            None
        }
        Err(e) => return Err(e),
    };
    if let Some(v) = value {
        let done = until.call_within_context::<Dynamic>(ctx, (v.clone(),))?;
        if done.as_bool().unwrap_or(!done.is_unit()) {
            let json = to_json(&v)?;
            store.flow_step_update(flow_id, ordinal, "done", Some(&json), Some(&json!({"attempts": attempts + 1, "deadline": deadline})), now).map_err(store_err)?;
            note(format!("poll {name}: done after {} attempt(s)", attempts + 1));
            return Ok(v);
        }
    }
    let attempts = attempts + 1;
    if deadline.is_some_and(|d| now >= d) {
        store.flow_step_update(flow_id, ordinal, "done", Some(&Value::Null), Some(&json!({"attempts": attempts, "deadline": deadline})), now).map_err(store_err)?;
        note(format!("poll {name}: timed out after {attempts} attempt(s)"));
        return Ok(Dynamic::UNIT);
    }
    let backoff = options.every_ms.saturating_mul(1i64 << (attempts - 1).min(20)).min(options.max_every_ms);
    let wanted = now + backoff;
    let at = with(|w| pace(w, &script, name, wanted, 1)).flatten().unwrap_or(wanted);
    let at = deadline.map_or(at, |d| at.min(d.max(now)));
    store.flow_step_update(flow_id, ordinal, "waiting", None, Some(&json!({"attempts": attempts, "deadline": deadline})), now).map_err(store_err)?;
    Err(stop(Settle::Wait { at: Some(at), step: format!("poll {name}"), waiting_for: json!({"poll": name, "attempts": attempts, "next": crate::time::rfc3339(at)}) }))
}

/// Reserve the poll's next slot on the calendars of the operations it
/// calls: the latest of their slots. `None` before the poll was seen.
fn pace(w: &Wake, script: &str, name: &str, wanted: i64, _attempt: u64) -> Option<i64> {
    let ops = w.pacer.learned(script, name)?;
    let mut at = wanted;
    for (c, o) in ops {
        let Some((rate, burst)) = (w.rates)(&c, &o) else { continue };
        let spacing = (1000.0 / (rate * w.settings.poll_share)).ceil() as i64;
        let burst = ((f64::from(burst) * w.settings.poll_share).floor() as u32).max(1);
        at = at.max(w.pacer.reserve(&c, &o, wanted, spacing, burst));
    }
    Some(at)
}

/// Whether a script error is a vendor error worth asking again.
pub fn is_transient(e: &EvalAltResult) -> bool {
    match e.unwrap_inner() {
        EvalAltResult::ErrorRuntime(v, _) if v.is_map() => v.clone().cast::<rhai::Map>().get("transient").and_then(|t| t.as_bool().ok()).unwrap_or(false),
        _ => false,
    }
}
