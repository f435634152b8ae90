//! Polls of many flows share a vendor's budget. Each (connector, operation)
//! has a calendar of poll slots (GCRA, a token bucket kept as one time):
//! slots are spaced by the operation's sustained rate times the poll share,
//! and up to a burst (the smallest window's limit times the share) may be
//! taken at once after a quiet spell. A flow's next poll takes the first
//! slot at or after the time its own backoff asks for. A few open leads are
//! asked about at once; with 1,000 open, CycleSoftware (360 a minute,
//! 15,000 a day) gets a burst of 180 and then one every ~11.5 s at the
//! default share of 0.5 — within its daily budget, never 1,000 at once.
//! The rate ledger still guards every request, across processes.
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct PollPacer {
    /// (connector, operation) → the theoretical time of the next slot if no
    /// burst were allowed (ms).
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
    /// `spacing_ms` apart and up to `burst` of them at once. Returns the
    /// slot's time.
    pub fn reserve(&self, connector: &str, operation: &str, wanted: i64, spacing_ms: i64, burst: u32) -> i64 {
        let spacing = spacing_ms.max(1);
        let tolerance = spacing * i64::from(burst.max(1) - 1);
        let mut next = self.next_free.lock().unwrap_or_else(|p| p.into_inner());
        let tat = next.entry((connector.to_string(), operation.to_string())).or_insert(i64::MIN);
        let at = wanted.max(tat.saturating_sub(tolerance));
        *tat = (*tat).max(at) + spacing;
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_polls_wanted_at_once_are_spread_by_the_spacing() {
        let p = PollPacer::default();
        let slots: Vec<i64> = (0..5).map(|_| p.reserve("cs", "get_lead", 1000, 250, 1)).collect();
        assert_eq!(slots, vec![1000, 1250, 1500, 1750, 2000]);
        // A later wish is granted as asked when the calendar is free by then.
        assert_eq!(p.reserve("cs", "get_lead", 10_000, 250, 1), 10_000);
        // Another operation has its own calendar.
        assert_eq!(p.reserve("cs", "get_order", 1000, 250, 1), 1000);
    }

    #[test]
    fn a_burst_goes_at_once_then_the_sustained_spacing_holds() {
        let p = PollPacer::default();
        let slots: Vec<i64> = (0..6).map(|_| p.reserve("cs", "get_lead", 0, 1000, 3)).collect();
        assert_eq!(slots, vec![0, 0, 0, 1000, 2000, 3000]);
        // After a quiet spell the burst is back, but never more than it.
        let later: Vec<i64> = (0..4).map(|_| p.reserve("cs", "get_lead", 100_000, 1000, 3)).collect();
        assert_eq!(later, vec![100_000, 100_000, 100_000, 101_000]);
        // Over any long stretch: at most burst + elapsed / spacing slots.
        let all: Vec<i64> = (0..1000).map(|i| p.reserve("wics", "get_order", i * 10, 1000, 3)).collect();
        let within_first_100s = all.iter().filter(|t| **t < 100_000).count();
        assert!(within_first_100s <= 3 + 100, "{within_first_100s}");
    }
}
