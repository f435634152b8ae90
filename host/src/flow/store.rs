//! What flows need from durable storage: instances, their durable calls by
//! ordinal, and the inbox of events routed to them. Part of the
//! [`crate::store::Store`] contract, so every engine runs flows.
use anyhow::Result;
use serde::Serialize;

/// One flow instance.
#[derive(Debug, Clone, Serialize)]
pub struct FlowRecord {
    pub id: i64,
    pub script: String,
    pub function: String,
    pub key: String,
    pub input: serde_json::Value,
    /// ready | waiting | in_doubt | done | failed
    pub status: String,
    pub wake_at: Option<i64>,
    pub waiting_for: Option<serde_json::Value>,
    pub waiting_since: Option<i64>,
    pub current_step: Option<String>,
    pub result: Option<serde_json::Value>,
    pub last_error: Option<String>,
    pub attempts: u32,
    pub wakes: u32,
    pub version: i64,
    /// Set while a host runs it.
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One durable call of a flow, by its ordinal (the n-th durable call the
/// function makes when it runs from the top).
#[derive(Debug, Clone, Serialize)]
pub struct FlowStep {
    pub ordinal: u32,
    /// step | sleep | wait | poll
    pub kind: String,
    pub name: String,
    /// started | waiting | done | rerun
    pub status: String,
    pub result: Option<serde_json::Value>,
    pub detail: Option<serde_json::Value>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
}

/// How one wake of a flow ended.
#[derive(Debug, Clone)]
pub enum Settle {
    /// The function returned: the flow is done.
    Done(serde_json::Value),
    /// A permanent error: the flow stops until an operator retries it.
    Failed(String),
    /// A transient error: wake again at `at`.
    Retry { at: i64, error: String },
    /// A durable wait: wake at `at` (a sleep's end, a poll's next attempt, a
    /// wait's deadline), or when an event is routed to it.
    Wait { at: Option<i64>, step: String, waiting_for: serde_json::Value },
    /// A step was interrupted between its intent and its result and cannot
    /// be checked: wait for an operator (`spoke flows resolve`).
    InDoubt { step: String, waiting_for: serde_json::Value },
    /// Not run (its script is not loaded): try again at `at`.
    Later { at: i64, why: String },
}

/// A waiting flow's `wait_event` pattern.
#[derive(Debug, Clone)]
pub struct EventWait {
    pub flow_id: i64,
    pub ordinal: u32,
    pub pattern: serde_json::Value,
}

/// What an operator decides for an in-doubt step.
#[derive(Debug, Clone)]
pub enum Resolution {
    /// The step happened: take this as its result.
    Value(serde_json::Value),
    /// The step did not happen: run it again.
    Rerun,
}

#[derive(Debug, Clone, Default)]
pub struct FlowFilter {
    pub script: Option<String>,
    pub status: Option<String>,
    pub key: Option<String>,
    pub limit: usize,
}

pub trait FlowStore {
    /// Start a flow unless (script, function, key) has one; returns its id
    /// and whether it is new.
    fn flow_start(&self, script: &str, function: &str, key: &str, input: &serde_json::Value, version: i64, now: i64) -> Result<(i64, bool)>;
    /// Lease up to `limit` flows that are due at `now` to `owner` until
    /// `lease_until`. A lease that expired (its host died) is taken over.
    fn flow_claim(&self, owner: &str, now: i64, lease_until: i64, limit: usize) -> Result<Vec<FlowRecord>>;
    /// When the next flow is due (or its lease ends), if any.
    fn flow_next_wake(&self) -> Result<Option<i64>>;
    /// Drop the leases held by processes of this machine that are gone
    /// (`owner` is `machine:pid`), so a restarted host resumes their flows at
    /// once instead of when the leases run out. Returns how many.
    fn flow_release_orphans(&self, machine: &str, alive: &dyn Fn(i64) -> bool) -> Result<usize>;
    /// End a wake and release the lease; ignored if `owner` lost the lease.
    fn flow_settle(&self, id: i64, owner: &str, settle: &Settle, now: i64) -> Result<()>;
    fn flow(&self, id: i64) -> Result<Option<FlowRecord>>;
    fn flows(&self, filter: &FlowFilter) -> Result<Vec<FlowRecord>>;
    /// How many flows are in each status.
    fn flow_counts(&self) -> Result<Vec<(String, i64)>>;

    fn flow_step(&self, flow_id: i64, ordinal: u32) -> Result<Option<FlowStep>>;
    fn flow_steps(&self, flow_id: i64) -> Result<Vec<FlowStep>>;
    /// Record a durable call (its intent, for a step) before it happens;
    /// replaces a `rerun` record at the same ordinal.
    fn flow_step_begin(&self, flow_id: i64, ordinal: u32, kind: &str, name: &str, status: &str, detail: Option<&serde_json::Value>, now: i64) -> Result<()>;
    fn flow_step_update(&self, flow_id: i64, ordinal: u32, status: &str, result: Option<&serde_json::Value>, detail: Option<&serde_json::Value>, now: i64) -> Result<()>;
    /// Withdraw an intent: the call certainly did not happen.
    fn flow_step_forget(&self, flow_id: i64, ordinal: u32) -> Result<()>;
    /// An operator's word on an in-doubt flow's step; the flow becomes ready.
    /// Returns the step's name.
    fn flow_resolve(&self, id: i64, resolution: &Resolution, now: i64) -> Result<String>;
    /// Make a failed or in-doubt flow ready again.
    fn flow_retry(&self, id: i64, now: i64) -> Result<()>;

    /// Keep an event for a script's flows (once per event id); its inbox id
    /// while no flow has claimed it, `None` once one has.
    fn flow_inbox_put(&self, script: &str, connector: &str, topic: &str, event_id: &str, event: &serde_json::Value, now: i64) -> Result<Option<i64>>;
    /// Waiting `wait_event` calls of a script's flows on (connector, topic).
    fn flow_event_waits(&self, script: &str, connector: &str, topic: &str) -> Result<Vec<EventWait>>;
    /// Events on (connector, topic) no flow has claimed yet, oldest first.
    fn flow_inbox_open(&self, script: &str, connector: &str, topic: &str, limit: usize) -> Result<Vec<(i64, serde_json::Value)>>;
    /// Give an inbox event to a flow's wait (if still unclaimed) and wake the
    /// flow. Returns whether this call claimed it.
    fn flow_inbox_claim(&self, inbox_id: i64, flow_id: i64, ordinal: u32, now: i64) -> Result<bool>;
    /// The event claimed by a flow's wait, if any.
    fn flow_inbox_claimed(&self, flow_id: i64, ordinal: u32) -> Result<Option<serde_json::Value>>;
}
