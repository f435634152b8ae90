//! Per-thread state of the script being loaded or run. Each load and each
//! run happens on its own blocking thread, so a thread-local is exactly
//! "the current run" and costs nothing to reach from a registered function.
use super::api::rt_error;
use super::schedule::Schedule;
use super::Trigger;
use rhai::EvalAltResult;
use std::cell::RefCell;
use std::time::Instant;

pub struct LoadCtx {
    pub triggers: Vec<Trigger>,
    /// Functions the script makes callable over HTTP (`expose("fn")`).
    pub exposed: Vec<String>,
    pub connectors: Vec<(String, Vec<String>)>,
    /// Flow functions (`flow("fn", ["connector/topic", ...])`).
    pub flows: Vec<crate::flow::FlowDecl>,
}

impl LoadCtx {
    pub fn on(&mut self, connector: &str, topic: &str, function: &str) -> Result<(), Box<EvalAltResult>> {
        self.check_topic(connector, topic, &format!("on({connector:?}, {topic:?}, ...)"))?;
        self.triggers.push(Trigger::On { connector: connector.into(), topic: topic.into(), function: function.into() });
        Ok(())
    }

    /// A configured connector, and one of its webhook topics (or `*`).
    fn check_topic(&self, connector: &str, topic: &str, call: &str) -> Result<(), Box<EvalAltResult>> {
        match self.connectors.iter().find(|(c, _)| c == connector) {
            None => {
                let known: Vec<_> = self.connectors.iter().map(|(c, _)| c.as_str()).collect();
                Err(rt_error(format!("{call}: no connector named {connector:?}; configured: {}", known.join(", "))))
            }
            Some((_, topics)) if !topics.is_empty() && topic != "*" && !topics.iter().any(|t| t == topic) => {
                Err(rt_error(format!("{call}: {connector} has no webhook topic {topic:?}; it has: {}", topics.join(", "))))
            }
            _ => Ok(()),
        }
    }

    pub fn flow(&mut self, function: &str, events: &[String]) -> Result<(), Box<EvalAltResult>> {
        let mut pairs = Vec::new();
        for e in events {
            let Some((connector, topic)) = e.split_once('/') else {
                return Err(rt_error(format!("flow({function:?}, ...): {e:?} is not \"connector/topic\"")));
            };
            self.check_topic(connector, topic, &format!("flow({function:?}, [{e:?}])"))?;
            pairs.push((connector.to_string(), topic.to_string()));
        }
        if self.flows.iter().any(|f| f.function == function) {
            return Err(rt_error(format!("flow({function:?}) is declared twice")));
        }
        self.flows.push(crate::flow::FlowDecl { function: function.to_string(), events: pairs });
        Ok(())
    }

    pub fn every(&mut self, spec: &str, function: &str) -> Result<(), Box<EvalAltResult>> {
        let schedule = Schedule::parse(spec).map_err(|e| rt_error(format!("every({spec:?}, ...): {e}")))?;
        self.triggers.push(Trigger::Every { spec: spec.into(), schedule, function: function.into() });
        Ok(())
    }
}

/// Log lines one run keeps with its record, and the longest kept line.
const RUN_LOG_LINES: usize = 200;
const RUN_LOG_LINE_CHARS: usize = 1000;

struct RunCtx {
    script: String,
    run_id: i64,
    steps: Vec<String>,
    logs: Vec<crate::store::RunLogLine>,
    /// Lines past `RUN_LOG_LINES`, reported as one last line.
    logs_dropped: usize,
    /// The running version and its flow functions, for `start_flow`.
    version: i64,
    flows: Vec<String>,
}

/// The bound of the current load or run: when, and what to say past it.
struct Bound {
    deadline: Instant,
    message: String,
    /// Bytes the thread held when the load or run began.
    memory_base: i64,
}

thread_local! {
    static BOUND: RefCell<Option<Bound>> = const { RefCell::new(None) };
    static LOAD: RefCell<Option<LoadCtx>> = const { RefCell::new(None) };
    static RUN: RefCell<Option<RunCtx>> = const { RefCell::new(None) };
    static SCRIPT: RefCell<String> = const { RefCell::new(String::new()) };
}

fn bound(deadline: Instant, message: String) {
    let memory_base = super::sandbox::thread_bytes();
    BOUND.with(|b| *b.borrow_mut() = Some(Bound { deadline, message, memory_base }));
}

pub fn begin_load(script: &str, ctx: LoadCtx, deadline: Instant, max_secs: f64) {
    SCRIPT.with(|s| *s.borrow_mut() = script.to_string());
    LOAD.with(|l| *l.borrow_mut() = Some(ctx));
    bound(deadline, format!("the script's top level ran past its load bound of {max_secs:.1} s (scripts.max_load_secs)"));
}

pub fn end_load() -> Option<LoadCtx> {
    BOUND.with(|b| b.borrow_mut().take());
    LOAD.with(|l| l.borrow_mut().take())
}

/// Why the current load or run must stop now, if it must.
pub fn past_deadline() -> Option<String> {
    BOUND.with(|b| b.borrow().as_ref().filter(|b| Instant::now() > b.deadline).map(|b| b.message.clone()))
}

/// Bytes the current load or run holds beyond what its thread held before.
pub fn memory_held() -> i64 {
    BOUND.with(|b| b.borrow().as_ref().map(|b| super::sandbox::thread_bytes() - b.memory_base).unwrap_or(0))
}

pub fn is_loading() -> bool {
    LOAD.with(|l| l.borrow().is_some())
}

pub fn with_load<R>(f: impl FnOnce(&mut LoadCtx) -> Result<R, Box<EvalAltResult>>) -> Result<R, Box<EvalAltResult>> {
    LOAD.with(|l| match l.borrow_mut().as_mut() {
        Some(ctx) => f(ctx),
        None => Err(rt_error("on(), every(), flow() and expose() only work at the top level of a script, while it loads")),
    })
}

pub fn begin_run(script: &str, version: i64, flows: Vec<String>, run_id: i64, deadline: Instant) {
    SCRIPT.with(|s| *s.borrow_mut() = script.to_string());
    bound(deadline, "the run exceeded its wall-clock bound (scripts.max_run_secs)".into());
    RUN.with(|r| *r.borrow_mut() = Some(RunCtx { script: script.into(), run_id, steps: Vec::new(), logs: Vec::new(), logs_dropped: 0, version, flows }));
}

/// The running script, its version and its flow functions.
pub fn current_flows() -> Option<(String, i64, Vec<String>)> {
    RUN.with(|r| r.borrow().as_ref().map(|c| (c.script.clone(), c.version, c.flows.clone())))
}

/// End the run; returns the steps it took ("key" or "key (stored)") and
/// the lines it logged.
pub fn end_run() -> (Vec<String>, Vec<crate::store::RunLogLine>) {
    BOUND.with(|b| b.borrow_mut().take());
    RUN.with(|r| {
        let Some(mut c) = r.borrow_mut().take() else { return Default::default() };
        if c.logs_dropped > 0 {
            let message = format!("… {} more lines not kept with the run (the host's log has them)", c.logs_dropped);
            c.logs.push(crate::store::RunLogLine { at: crate::store::now_ms(), level: "WARN", message });
        }
        (c.steps, c.logs)
    })
}

/// A line the current run logged (its script's `log::`/`print`, or a
/// plugin's log during one of its calls), kept with the run's record.
pub fn record_log(level: tracing::Level, message: &str) {
    RUN.with(|r| {
        if let Some(c) = r.borrow_mut().as_mut() {
            if c.logs.len() >= RUN_LOG_LINES {
                c.logs_dropped += 1;
                return;
            }
            let mut kept: String = message.chars().take(RUN_LOG_LINE_CHARS).collect();
            if kept.len() < message.len() {
                kept.push('…');
            }
            c.logs.push(crate::store::RunLogLine { at: crate::store::now_ms(), level: level.as_str(), message: kept });
        }
    });
}

pub fn run_identity() -> Option<(String, i64)> {
    RUN.with(|r| r.borrow().as_ref().map(|c| (c.script.clone(), c.run_id)))
}

pub fn script_name() -> String {
    SCRIPT.with(|s| s.borrow().clone())
}

pub fn record_step(key: &str, stored: bool) {
    RUN.with(|r| {
        if let Some(c) = r.borrow_mut().as_mut() {
            c.steps.push(if stored { format!("{key} (stored)") } else { key.to_string() });
        }
    });
}

/// A line in the run's record that is not a step: a rate wait, say.
pub fn record_note(note: &str) {
    RUN.with(|r| {
        if let Some(c) = r.borrow_mut().as_mut() {
            c.steps.push(note.to_string());
        }
    });
}

