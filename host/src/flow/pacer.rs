//! Polls of many flows share a vendor's budget. Each (connector, operation)
//! has a calendar of poll slots spaced by its sustained rate times the
//! poll share; a flow's next poll takes the first free slot at or after
//! the time its own backoff asks for. With 1,000 leads open, CycleSoftware
//! (15,000 a day) is asked about one lead every ~11.5 s at the default
//! share of 0.5, never 1,000 at once; the rate ledger still guards every
//! request.
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct PollPacer {
    /// (connector, operation) → the next free slot (ms).
    next_free: Mutex<HashMap<(String, String), i64>>,
    /// (script, poll name) → the operations its fetch called last time.
    learned: Mutex<HashMap<(String, String), Vec<(String, String)>>>,
}

impl PollPacer {
    /// Remember which operations a poll's fetch calls, so its next first
    /// attempt (in another flow) is paced before it asks.
    pub fn learn(&self, script: &str, poll: &str, operations: Vec<(String, String)>) {
        self.learned.lock().unwrap_or_else(|p| p.into_inner()).insert((script.to_string(), poll.to_string()), operations);
    }

    pub fn learned(&self, script: &str, poll: &str) -> Option<Vec<(String, String)>> {
        self.learned.lock().unwrap_or_else(|p| p.into_inner()).get(&(script.to_string(), poll.to_string())).cloned()
    }

    /// Reserve the first slot at or after `wanted` (ms), with slots
    /// `spacing_ms` apart. Returns the slot's time.
    pub fn reserve(&self, connector: &str, operation: &str, wanted: i64, spacing_ms: i64) -> i64 {
        let mut next = self.next_free.lock().unwrap_or_else(|p| p.into_inner());
        let free = next.entry((connector.to_string(), operation.to_string())).or_insert(i64::MIN);
        let at = wanted.max(*free);
        *free = at + spacing_ms.max(1);
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_polls_wanted_at_once_are_spread_by_the_spacing() {
        let p = PollPacer::default();
        let slots: Vec<i64> = (0..5).map(|_| p.reserve("cs", "get_lead", 1000, 250)).collect();
        assert_eq!(slots, vec![1000, 1250, 1500, 1750, 2000]);
        // A later wish is granted as asked when the calendar is free by then.
        assert_eq!(p.reserve("cs", "get_lead", 10_000, 250), 10_000);
        // Another operation has its own calendar.
        assert_eq!(p.reserve("cs", "get_order", 1000, 250), 1000);
    }
}
