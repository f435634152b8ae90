//! At-least-once delivery of stored events to their subscribers.
//!
//! Events are matched to subscribers when dispatched, not when received
//! (`route.rs`), so a subscriber that is reloading, briefly missing or
//! added later still gets what it subscribes to.
//! Each (subscriber, connector, topic, subject) is a lane delivered in event
//! order ([`crate::store::Lane`]); lanes run in parallel, at most
//! `dispatch.concurrency` at once. A failed attempt is retried with
//! exponential backoff and holds its lane (only events about the same
//! subject wait behind it) until it succeeds or is dead-lettered after
//! `max_attempts`. All state is
//! in the store, so a restart resumes where it stopped, and `spoke events
//! replay` (another process) is picked up by polling.
mod forward;
mod route;

pub use forward::{topic_matches, Forwarder};

use crate::manifest::Event;
use crate::store::{now_ms, Store};
use futures::future::BoxFuture;
use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Notify;

/// Why a delivery failed, and whether trying again can help.
#[derive(Debug, Clone)]
pub struct Failure {
    pub message: String,
    /// Retrying cannot help (a script bug, an unmappable input): dead-letter
    /// now instead of after every backoff.
    pub permanent: bool,
}

impl Failure {
    pub fn transient(message: impl Into<String>) -> Self {
        Failure { message: message.into(), permanent: false }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        Failure { message: message.into(), permanent: true }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::transient(message)
    }
}

/// Something that events are delivered to: a script function, a forwarder.
pub trait Subscriber: Send + Sync {
    /// Stable name; dispatch state is keyed by it across restarts.
    fn name(&self) -> &str;
    /// Whether this subscriber wants events of `topic` from `connector`.
    fn wants(&self, connector: &str, topic: &str) -> bool;
    /// Deliver one event; `Err` is retried later.
    fn deliver<'a>(&'a self, connector: &'a str, event: &'a Event) -> BoxFuture<'a, Result<(), Failure>>;
}

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 8, first_backoff: Duration::from_secs(1), max_backoff: Duration::from_secs(300) }
    }
}

impl RetryPolicy {
    /// Delay before attempt number `attempts + 1`, after `attempts` failures.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
        (self.first_backoff * factor).min(self.max_backoff)
    }
}

pub struct Dispatcher {
    store: Arc<dyn Store>,
    subscribers: RwLock<Vec<Arc<dyn Subscriber>>>,
    /// Subscriptions removed or replaced within the hold window.
    absent: std::sync::Mutex<Vec<route::Absent>>,
    /// How long events wait for an absent subscription to come back.
    hold: Duration,
    retention: crate::config::Retention,
    wake: Notify,
    pub policy: RetryPolicy,
    /// Lanes delivered at once.
    concurrency: usize,
    metrics: Arc<crate::metrics::Metrics>,
    /// Who this dispatcher's claims belong to, among all hosts on the store.
    owner: String,
    /// How long a claim lasts: longer than any one delivery may take, so a
    /// live host's delivery is never taken over, and a dead host's work
    /// comes free after it.
    lease: Duration,
}

/// How often the store is polled for work written by other processes.
const POLL: Duration = Duration::from_millis(250);
/// How often the store is pruned to its retention.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

impl Dispatcher {
    /// `hold`: how long events wait for a subscription that vanished;
    /// `retention`: what the periodic prune keeps.
    /// `lease`: how long a claimed dispatch is this host's (longer than a
    /// delivery may take).
    #[allow(clippy::too_many_arguments)]
    pub fn new(store: Arc<dyn Store>, policy: RetryPolicy, hold: Duration, retention: crate::config::Retention, concurrency: usize, lease: Duration, metrics: Arc<crate::metrics::Metrics>) -> Arc<Dispatcher> {
        let concurrency = concurrency.max(1);
        let owner = crate::store::new_owner();
        Arc::new(Dispatcher { store, subscribers: RwLock::new(Vec::new()), absent: Default::default(), hold, retention, wake: Notify::new(), policy, concurrency, metrics, owner, lease })
    }

    fn claim(&self, now: i64) -> crate::store::Claim {
        crate::store::Claim { owner: self.owner.clone(), until: now + self.lease.as_millis() as i64 }
    }

    /// Add (or replace, by name) a subscriber.
    pub fn subscribe(&self, s: Arc<dyn Subscriber>) {
        let mut subs = self.subscribers.write().unwrap();
        let replaced: Vec<_> = subs.iter().filter(|o| o.name() == s.name()).cloned().collect();
        subs.retain(|o| o.name() != s.name());
        subs.push(s);
        drop(subs);
        // What the old one took and the new one does not waits the hold.
        replaced.into_iter().for_each(|old| self.note_absent(old));
        self.wake.notify_one();
    }

    pub fn unsubscribe(&self, name: &str) {
        let mut subs = self.subscribers.write().unwrap();
        let removed: Vec<_> = subs.iter().filter(|o| o.name() == name).cloned().collect();
        subs.retain(|o| o.name() != name);
        drop(subs);
        removed.into_iter().for_each(|old| self.note_absent(old));
    }

    /// Names of the subscribers that want this event now.
    pub fn subscribers_for(&self, connector: &str, topic: &str) -> Vec<String> {
        self.subscribers.read().unwrap().iter().filter(|s| s.wants(connector, topic)).map(|s| s.name().to_string()).collect()
    }

    /// Drop what the retention no longer keeps, off the async runtime.
    async fn prune(&self) {
        let (store, retention) = (self.store.clone(), self.retention.clone());
        match tokio::task::spawn_blocking(move || store.prune(now_ms(), &retention)).await {
            Ok(Ok(p)) if p.total() > 0 => tracing::info!(
                dedupe = p.dedupe, deliveries = p.deliveries, refusals = p.refusals, events = p.events, runs = p.runs, steps = p.steps, flows = p.flows, flow_events = p.flow_events,
                "pruned {} row(s) past the retention", p.total()
            ),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("pruning the store failed: {e:#}"),
            Err(e) => tracing::warn!("pruning the store panicked: {e}"),
        }
    }

    fn subscriber(&self, name: &str) -> Option<Arc<dyn Subscriber>> {
        self.subscribers.read().unwrap().iter().find(|s| s.name() == name).cloned()
    }

    /// New work was committed: look now rather than at the next poll.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Deliver until `stop` resolves.
    pub async fn run(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let in_flight: Arc<std::sync::Mutex<HashSet<crate::store::Lane>>> = Default::default();
        let mut pruned_at: Option<std::time::Instant> = None;
        match self.store.release_orphan_claims(crate::store::machine(), &crate::script::process_alive) {
            Ok(n) if n > 0 => tracing::warn!("{n} dispatch claim(s) of a stopped process on this machine released"),
            Ok(_) => {}
            Err(e) => tracing::warn!("releasing dispatch claims of stopped processes failed: {e:#}"),
        }
        loop {
            if pruned_at.is_none_or(|t| t.elapsed() > PRUNE_EVERY) {
                self.prune().await;
                pruned_at = Some(std::time::Instant::now());
            }
            if let Err(e) = self.route_waiting() {
                tracing::error!("dispatch: routing new events failed: {e:#}");
            }
            // Read due work and claim lanes under one lock that finishing
            // tasks also take: a lane's head read here cannot be one a task
            // just delivered (a stale read would deliver it twice).
            {
            let mut lanes = in_flight.lock().unwrap();
            let now = now_ms();
            let free = self.concurrency.saturating_sub(lanes.len());
            let due = match self.store.due(&self.claim(now), now, free, &lanes) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!("dispatch: reading due work failed: {e:#}");
                    Vec::new()
                }
            };
            for item in due {
                // Oldest heads first; the rest wait for a lane to finish.
                if lanes.len() >= self.concurrency {
                    break;
                }
                let lane = item.lane();
                if !lanes.insert(lane.clone()) {
                    continue;
                }
                let this = self.clone();
                let in_flight = in_flight.clone();
                tokio::spawn(async move {
                    // Work the lane while it has due events, in order; stop
                    // at the first failure (it holds the lane while it backs off).
                    let mut item = item;
                    while let Some(next) = this.attempt(item, &lane).await {
                        item = next;
                    }
                    in_flight.lock().unwrap().remove(&lane);
                    this.wake.notify_one();
                });
            }
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Deliver one event and record how it went; when it was delivered,
    /// claim its lane's next event (if due) and return it.
    async fn attempt(self: &Arc<Self>, item: crate::store::Due, lane: &crate::store::Lane) -> Option<crate::store::Due> {
        let result = match self.subscriber(&item.subscriber) {
            Some(s) => s.deliver(&item.connector, &item.event).await,
            None => Err(Failure::transient(format!("subscriber {} is not registered (script removed or not loaded yet)", item.subscriber))),
        };
        let delivered = result.is_ok();
        let attempts = item.attempts + 1;
        let retry = matches!(&result, Err(f) if !f.permanent && attempts < self.policy.max_attempts);
        let outcome = if delivered { "delivered" } else if retry { "retry" } else { "dead" };
        if let Err(Failure { message: error, .. }) = &result {
            if retry {
                tracing::warn!(seq = item.seq, subscriber = %item.subscriber, attempts, "delivery failed, will retry: {error}");
            } else {
                tracing::error!(seq = item.seq, subscriber = %item.subscriber, attempts, "event dead-lettered: {error}");
            }
        }
        // The store calls block (on the writer, or a database round trip):
        // off the runtime's workers, which serve webhooks and the plugins'
        // HTTP calls meanwhile. The mark and the next claim share one trip.
        let (this, lane, seq, subscriber) = (self.clone(), lane.clone(), item.seq, item.subscriber);
        let recorded = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            let stored = match result {
                Ok(()) => this.store.mark_delivered(seq, &subscriber, now),
                Err(Failure { message: error, .. }) => {
                    let retry_at = retry.then(|| now + this.policy.backoff(attempts).as_millis() as i64);
                    this.store.mark_failed(seq, &subscriber, now, &error, retry_at)
                }
            };
            if let Err(e) = stored {
                // The attempt stays pending in the store and is retried: at
                // least once, never lost.
                tracing::error!(seq, "dispatch: recording the outcome failed: {e:#}");
                return (false, None);
            }
            if !delivered {
                return (true, None);
            }
            let now = now_ms();
            (true, this.store.lane_next(&lane, seq, &this.claim(now), now).ok().flatten())
        })
        .await;
        match recorded {
            Ok((true, next)) => {
                self.metrics.dispatch(outcome);
                next
            }
            Ok((false, _)) => None,
            Err(e) => {
                tracing::error!(seq, "dispatch: recording the outcome panicked: {e}");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy { max_attempts: 5, first_backoff: Duration::from_millis(100), max_backoff: Duration::from_millis(500) };
        let got: Vec<_> = (1..=5).map(|a| p.backoff(a).as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 500, 500]);
    }
}
