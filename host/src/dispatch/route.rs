//! Routing at dispatch time: an event is stored once, unrouted, and matched
//! to the subscribers present when the dispatcher gets to it. A
//! subscription that vanished (its script file deleted, emptied, or saved
//! without that trigger) is remembered for the hold window; events it
//! would have taken wait for it to come back, and only after the window
//! are they routed to whoever is there.
use super::{Dispatcher, Subscriber};
use crate::store::{now_ms, Unrouted};
use std::sync::Arc;
use std::time::Instant;

/// Events read per routing query.
const BATCH: usize = 1000;

/// A subscription that went away, as it was.
pub(super) struct Absent {
    pub(super) was: Arc<dyn Subscriber>,
    pub(super) since: Instant,
}

impl Dispatcher {
    /// Remember a subscription that was removed or replaced.
    pub(super) fn note_absent(&self, was: Arc<dyn Subscriber>) {
        if self.hold.is_zero() {
            return;
        }
        let mut absent = self.absent.lock().unwrap();
        absent.retain(|a| a.was.name() != was.name());
        absent.push(Absent { was, since: Instant::now() });
    }

    /// Match every waiting event to the current subscribers, except those
    /// a vanished subscription would have taken (they wait for it).
    pub(super) fn route_waiting(&self) -> anyhow::Result<usize> {
        let subscribers = self.subscribers.read().unwrap().clone();
        let absent: Vec<Arc<dyn Subscriber>> = {
            let mut absent = self.absent.lock().unwrap();
            absent.retain(|a| a.since.elapsed() < self.hold);
            absent.iter().map(|a| a.was.clone()).collect()
        };
        let mut routed = 0;
        let mut after = 0;
        loop {
            let batch = self.store.unrouted(after, BATCH)?;
            let Some(last) = batch.last() else { break };
            after = last.seq;
            let full = batch.len() == BATCH;
            let routes: Vec<(Unrouted, Vec<String>)> = batch
                .into_iter()
                .filter(|e| !waits_for_absent(&absent, &subscribers, e))
                .map(|e| {
                    let names = subscribers.iter().filter(|s| s.wants(&e.connector, &e.topic)).map(|s| s.name().to_string()).collect();
                    (e, names)
                })
                .collect();
            routed += routes.len();
            self.store.route(&routes, now_ms())?;
            if !full {
                break;
            }
        }
        Ok(routed)
    }
}

/// Whether a vanished subscription wanted this event and nothing of that
/// name wants it now.
fn waits_for_absent(absent: &[Arc<dyn Subscriber>], present: &[Arc<dyn Subscriber>], e: &Unrouted) -> bool {
    absent.iter().any(|a| a.wants(&e.connector, &e.topic) && !present.iter().any(|s| s.name() == a.name() && s.wants(&e.connector, &e.topic)))
}
