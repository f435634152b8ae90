//! What an embedding service adds to a host: native functions and modules
//! for scripts, event sources of its own that scripts can subscribe to, and
//! a feed of run outcomes. Registered before the scripts start (see
//! [`crate::engine::EngineBuilder`]); the script engine applies them every
//! time it is (re)built, so they survive plugin swaps.
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use tokio::sync::broadcast;

/// Registers functions, modules or types on a Rhai engine.
pub type ScriptSetup = Arc<dyn Fn(&mut rhai::Engine) + Send + Sync>;

/// How a script run ended, as subscribers of [`Extensions::outcomes`] see it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunOutcome {
    pub script: String,
    pub function: String,
    /// `manual`, `http`, `every:…`, `event:connector/topic:id`.
    pub trigger: String,
    /// The run's id in the store (`spoke runs show`), when one was recorded.
    pub run_id: Option<i64>,
    /// The function's value, or the error with its `file:line`.
    pub result: Result<serde_json::Value, String>,
}

/// Runs outcomes are kept for slow subscribers up to this many; a receiver
/// further behind is told how many it missed (`RecvError::Lagged`).
const OUTCOME_BUFFER: usize = 1024;

pub struct Extensions {
    setups: RwLock<Vec<ScriptSetup>>,
    sources: RwLock<BTreeMap<String, Vec<String>>>,
    outcomes: broadcast::Sender<RunOutcome>,
}

impl Default for Extensions {
    fn default() -> Self {
        Extensions { setups: Default::default(), sources: Default::default(), outcomes: broadcast::channel(OUTCOME_BUFFER).0 }
    }
}

impl Extensions {
    /// Add something to every script engine built from now on.
    pub fn add_script_setup(&self, setup: ScriptSetup) {
        self.setups.write().unwrap().push(setup);
    }

    /// Apply every registered setup to `engine`.
    pub fn apply(&self, engine: &mut rhai::Engine) {
        for setup in self.setups.read().unwrap().iter() {
            setup(engine);
        }
    }

    /// Declare an event source that is not a plugin connector (the
    /// embedding service's own events), with the topics it publishes; an
    /// empty list allows any topic. Scripts subscribe with `on(source, …)`.
    pub fn add_source(&self, name: &str, topics: &[&str]) {
        self.sources.write().unwrap().insert(name.to_string(), topics.iter().map(|t| t.to_string()).collect());
    }

    pub fn sources(&self) -> Vec<(String, Vec<String>)> {
        self.sources.read().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub fn is_source(&self, name: &str) -> bool {
        self.sources.read().unwrap().contains_key(name)
    }

    /// A feed of every script run's outcome from now on.
    pub fn outcomes(&self) -> broadcast::Receiver<RunOutcome> {
        self.outcomes.subscribe()
    }

    pub(crate) fn run_finished(&self, outcome: RunOutcome) {
        // No receiver is not an error: nobody asked.
        let _ = self.outcomes.send(outcome);
    }
}
