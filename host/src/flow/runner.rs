//! Runs flows that are due: leases them from the store (so hosts sharing
//! it never run one flow twice at once), wakes each on a blocking thread
//! through the script engine, and settles the wake. Bounded by
//! `[flows] max_concurrent`.
use super::pacer::PollPacer;
use super::store::{FlowRecord, Settle};
use super::FlowSettings;
use crate::script::Scripts;
use crate::store::{now_ms, Store};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

pub struct FlowRunner {
    store: Arc<dyn Store>,
    pub settings: FlowSettings,
    /// `machine:pid:n`: who holds a lease.
    owner: String,
    machine: String,
    lease_ms: i64,
    pub pacer: Arc<PollPacer>,
    nudge: Notify,
}

impl FlowRunner {
    pub fn new(store: Arc<dyn Store>, settings: FlowSettings, max_run_secs: f64) -> Arc<FlowRunner> {
        let machine = crate::store::machine().to_string();
        let owner = crate::store::new_owner();
        let lease_ms = ((max_run_secs + settings.lease_grace_secs) * 1000.0) as i64;
        Arc::new(FlowRunner { store, settings, owner, machine, lease_ms, pacer: Default::default(), nudge: Notify::new() })
    }

    /// Look for due flows now (a flow was started or an event woke one).
    pub fn nudge(&self) {
        self.nudge.notify_one();
    }

    /// Claim and run due flows until `scripts` is gone.
    pub async fn run(self: Arc<Self>, scripts: Weak<Scripts>) {
        match self.store.flow_release_orphans(&self.machine, &crate::script::process_alive) {
            Ok(n) if n > 0 => tracing::warn!("{n} flow(s) leased by a stopped process on this machine released"),
            Ok(_) => {}
            Err(e) => tracing::warn!("releasing flows of stopped processes failed: {e:#}"),
        }
        let slots = Arc::new(Semaphore::new(self.settings.max_concurrent));
        loop {
            if scripts.strong_count() == 0 {
                return;
            }
            let free = slots.available_permits();
            let mut claimed = Vec::new();
            if free > 0 {
                let now = now_ms();
                match self.store.flow_claim(&self.owner, now, now + self.lease_ms, free) {
                    Ok(c) => claimed = c,
                    Err(e) => tracing::warn!("claiming flows failed: {e:#}"),
                }
            }
            let busy = !claimed.is_empty();
            for flow in claimed {
                let Ok(permit) = slots.clone().acquire_owned().await else { return };
                let (me, scripts) = (self.clone(), scripts.clone());
                tokio::spawn(async move {
                    let settle = match scripts.upgrade() {
                        Some(s) => s.wake_flow(flow.clone(), &me).await,
                        None => Settle::Later { at: now_ms(), why: "the host is stopping".into() },
                    };
                    me.settle(&flow, &settle);
                    drop(permit);
                    me.nudge();
                });
            }
            if busy {
                continue;
            }
            let now = now_ms();
            let next = self.store.flow_next_wake().ok().flatten().unwrap_or(now + 1000);
            let wait = Duration::from_millis((next - now).clamp(5, 1000) as u64);
            tokio::select! {
                _ = self.nudge.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn settle(&self, flow: &FlowRecord, settle: &Settle) {
        match settle {
            Settle::Failed(e) => tracing::warn!(flow = flow.id, script = %flow.script, key = %flow.key, "flow failed: {e}"),
            Settle::InDoubt { step, .. } => tracing::warn!(flow = flow.id, script = %flow.script, key = %flow.key, step = %step, "flow in doubt: a step was interrupted and cannot be checked; waiting for `spoke flows resolve {}`", flow.id),
            Settle::Retry { error, at } => tracing::info!(flow = flow.id, key = %flow.key, retry_in_ms = at - now_ms(), "flow will retry: {error}"),
            Settle::Done(_) => tracing::info!(flow = flow.id, script = %flow.script, key = %flow.key, "flow done"),
            _ => {}
        }
        if let Err(e) = self.store.flow_settle(flow.id, &self.owner, settle, now_ms()) {
            // The lease runs out and another wake settles it.
            tracing::warn!(flow = flow.id, "settling the flow failed: {e:#}");
        }
    }

    /// When a flow that failed `attempts` times in a row retries.
    pub fn retry_at(&self, attempts: u32) -> i64 {
        let secs = (2f64.powi(attempts.min(20) as i32)).min(self.settings.max_retry_secs);
        now_ms() + (secs * 1000.0) as i64
    }
}
