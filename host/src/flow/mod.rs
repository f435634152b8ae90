//! Durable flows: a long-running chain written as one straight-line script
//! function.
//!
//! A flow is an instance of a script function for one business key (a
//! lead, an order), started with `start_flow`. Whenever it wakes it runs
//! from the top; its durable calls — `step`, `sleep`, `wait_event`, `poll`
//! — are numbered in the order the function makes them and replayed from
//! the store, so the function reads as if it never stopped. A durable wait
//! that is not over ends the wake (the function is stopped, uncatchably);
//! the runner wakes the flow again when the time comes or an event for it
//! arrives, in this process or another sharing the store.
//!
//! - [`store`]: the rows, behind the [`crate::store::Store`] contract.
//! - [`replay`]: the per-wake context and the replay of durable calls.
//! - [`matching`]: which event a `wait_event` pattern takes.
//! - [`pacer`]: how polls of many flows share a vendor's budget.
//! - [`runner`]: claiming due flows (leases) and settling each wake.
pub mod matching;
pub mod pacer;
pub mod replay;
pub mod runner;
pub mod store;

pub use runner::FlowRunner;
pub use store::{FlowFilter, FlowRecord, FlowStep, FlowStore, Resolution, Settle};

/// Every state a flow can be in, as stored.
pub const STATES: [&str; 5] = ["ready", "waiting", "in_doubt", "done", "failed"];

/// `[flows]` in spoke.toml.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowSettings {
    /// Flows this host runs at once.
    pub max_concurrent: usize,
    /// The share of a connector's sustained rate that polls of all flows
    /// together may use; the rest is left to everything else.
    pub poll_share: f64,
    /// A poll's first interval; it doubles on every miss up to the maximum.
    pub poll_every_secs: f64,
    pub poll_max_every_secs: f64,
    /// The longest wait before a flow retries after a transient error.
    pub max_retry_secs: f64,
    /// Added to the run bound for a lease: a host that died is replaced
    /// after its lease ends (at once if it ran on this machine).
    pub lease_grace_secs: f64,
}

impl Default for FlowSettings {
    fn default() -> Self {
        FlowSettings { max_concurrent: 16, poll_share: 0.5, poll_every_secs: 30.0, poll_max_every_secs: 900.0, max_retry_secs: 600.0, lease_grace_secs: 30.0 }
    }
}

impl FlowSettings {
    /// Impossible settings, named.
    pub fn check(&self) -> Result<(), String> {
        if self.max_concurrent == 0 {
            return Err("flows.max_concurrent must be at least 1".into());
        }
        if !(self.poll_share > 0.0 && self.poll_share <= 1.0) {
            return Err(format!("flows.poll_share must be in (0, 1], got {}", self.poll_share));
        }
        if !(self.poll_every_secs > 0.0 && self.poll_max_every_secs >= self.poll_every_secs) {
            return Err("flows.poll_every_secs must be > 0 and at most flows.poll_max_every_secs".into());
        }
        if !(self.max_retry_secs > 0.0 && self.lease_grace_secs >= 0.0) {
            return Err("flows.max_retry_secs must be > 0 and flows.lease_grace_secs >= 0".into());
        }
        Ok(())
    }
}

/// A flow function a script declares at its top level:
/// `flow("lead_flow", ["wics/SHIPMENT"])`.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowDecl {
    pub function: String,
    /// (connector, topic) pairs its `wait_event` calls may wait on: events
    /// on them are routed to this script's flows.
    pub events: Vec<(String, String)>,
}
