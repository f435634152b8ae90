//! The rate ledger: what every process that shares a store has spent of
//! each vendor budget, and which pauses are in force. It lives in the store
//! so `spoke run`, every `spoke call` and every embedder on the same store
//! draw from one budget, and a restarted host knows the minute it just
//! spent.
//!
//! The algorithm is written once, here, over [`LedgerRows`]: the handful of
//! row operations an engine offers inside one transaction. SQLite (and later
//! PostgreSQL) implement the rows; [`MemoryLedger`] implements them in
//! process, for unit tests and as the benchmark's baseline.
//!
//! **Counting.** A window of `W` seconds is cut into granules of
//! `W/256` (at least 50 ms). A request counts in the granule in which its
//! *response* arrived, and a granule stays in the window until its end plus
//! `W`: a request is never forgotten earlier than the vendor forgets it,
//! and at most one granule (0.4 % of the window) later. While a request is
//! in flight it counts as "now"; it holds a lease, so a process killed
//! mid-request leaves a slot that expires (counted as done at the lease's
//! end) instead of one that blocks forever.
//!
//! **Pauses.** A vendor refusal pauses a scope (a whole credential, or one
//! bucket for a header-reported reset) until a time; nothing is taken from
//! a paused scope. When the pause ends, one request goes first (the probe)
//! and the rest wait for its answer, so a vendor that still refuses sees
//! one request per pause, not a burst. A refusal without a stated wait
//! climbs the plugin's penalty ladder: a refusal while the previous pause
//! was never followed by a success escalates one rung, exactly as WICS
//! escalates a request sent during its block.
use crate::manifest::Window;
use anyhow::Result;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Clock rounding between the vendor and us.
pub const MARGIN_MS: i64 = 5;
/// How often a caller waiting only on in-flight requests looks again.
pub const IN_FLIGHT_POLL_MS: i64 = 20;
/// How long a process's leased slots may be handed out before the unused
/// ones go back (see `rate_limit::Lease`); a caller waiting for a window
/// while slots are in flight looks again after this long at most.
pub const LEASE_USE_MS: i64 = 100;

/// Granule length for a window: fine enough to waste at most 0.4 % of it.
pub fn granule_ms(window_seconds: u32) -> i64 {
    (i64::from(window_seconds) * 1000 / 256).max(50)
}

/// The first granule still inside a window at `now`: granule `g` counts
/// while `(g + 1) * G + W + margin > now`.
fn first_live(window: &Window, now: i64) -> i64 {
    (now - i64::from(window.seconds) * 1000 - MARGIN_MS).div_euclid(granule_ms(window.seconds))
}

/// One bucket as a request sees it: a key shared by every process using the
/// same credential and policy, and its effective windows.
#[derive(Debug, Clone)]
pub struct BucketSpec {
    pub key: String,
    pub windows: Vec<Window>,
}

/// A pause in force or remembered.
#[derive(Debug, Clone, PartialEq)]
pub struct Pause {
    pub until_ms: i64,
    /// Rung of the penalty ladder (0 = first).
    pub level: u32,
    /// A request succeeded after the pause: the next refusal starts at rung 0.
    pub cleared: bool,
    pub reason: String,
    /// After a pause ends, one request (this ticket) finds out whether the
    /// vendor accepts again; every other waits until it is answered.
    pub probe: Option<i64>,
}

/// The row operations an engine offers inside one transaction.
pub trait LedgerRows {
    /// Sum of requests counted in granules `>= from`.
    fn spent(&mut self, bucket: &str, window_s: u32, from: i64) -> Result<u64>;
    /// Granules `>= from`, oldest first, with their counts.
    fn spent_granules(&mut self, bucket: &str, window_s: u32, from: i64) -> Result<Vec<(i64, u64)>>;
    fn add_spent(&mut self, bucket: &str, window_s: u32, granule: i64, n: u64) -> Result<()>;
    /// Forget granules `< before`.
    fn prune_spent(&mut self, bucket: &str, window_s: u32, before: i64) -> Result<()>;
    fn in_flight(&mut self, bucket: &str) -> Result<u64>;
    /// In-flight claims of `bucket` whose lease ended by `now`: (ticket, n, lease end).
    fn expired_in_flight(&mut self, bucket: &str, now: i64) -> Result<Vec<(i64, u64, i64)>>;
    fn add_in_flight(&mut self, ticket: i64, bucket: &str, n: u64, lease_until: i64) -> Result<()>;
    /// Remove a ticket's claim on `bucket`; how many it held (0 if reaped).
    fn remove_in_flight(&mut self, ticket: i64, bucket: &str) -> Result<u64>;
    fn next_ticket(&mut self) -> Result<i64>;
    fn pause(&mut self, scope: &str) -> Result<Option<Pause>>;
    fn put_pause(&mut self, scope: &str, pause: &Pause) -> Result<()>;
}

/// A store that keeps a ledger: runs `f` in one transaction that no other
/// process can interleave with.
pub trait LedgerStore: Send + Sync {
    fn ledger_tx(&self, f: &mut dyn FnMut(&mut dyn LedgerRows) -> Result<()>) -> Result<()>;
}

/// Why a take must wait.
#[derive(Debug, Clone, PartialEq)]
pub enum Blocked {
    /// The vendor refused and we pause `scope` until the time given.
    Paused { scope: String, reason: String },
    /// A window of `bucket` is full.
    Window { bucket: String, window: Window },
    /// The window is full of requests still in flight.
    InFlight { bucket: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Taken {
    Granted { ticket: i64 },
    Wait { ms: i64, why: Blocked },
}

/// Remove expired leases of `b`, counting each as done when its lease ended.
fn reap(rows: &mut dyn LedgerRows, b: &BucketSpec, now: i64) -> Result<()> {
    for (ticket, _, lease_end) in rows.expired_in_flight(&b.key, now)? {
        let n = rows.remove_in_flight(ticket, &b.key)?;
        for w in &b.windows {
            rows.add_spent(&b.key, w.seconds, lease_end.div_euclid(granule_ms(w.seconds)), n)?;
        }
    }
    Ok(())
}

/// How long until `count` more requests fit in `b` (0 = now).
fn wait_for(rows: &mut dyn LedgerRows, b: &BucketSpec, count: u64, now: i64) -> Result<(i64, Option<Blocked>)> {
    reap(rows, b, now)?;
    let in_flight = rows.in_flight(&b.key)?;
    let mut worst = (0, None);
    for w in &b.windows {
        let from = first_live(w, now);
        rows.prune_spent(&b.key, w.seconds, from)?;
        let spent = rows.spent(&b.key, w.seconds, from)?;
        let limit = u64::from(w.limit);
        if spent + in_flight + count <= limit {
            continue;
        }
        let excess = spent + in_flight + count - limit;
        let (ms, why) = if excess > spent {
            (IN_FLIGHT_POLL_MS, Blocked::InFlight { bucket: b.key.clone() })
        } else {
            let g = granule_ms(w.seconds);
            let mut freed = 0;
            let mut at = now + IN_FLIGHT_POLL_MS;
            for (granule, n) in rows.spent_granules(&b.key, w.seconds, from)? {
                freed += n;
                if freed >= excess {
                    at = (granule + 1) * g + i64::from(w.seconds) * 1000 + MARGIN_MS;
                    break;
                }
            }
            // Slots in flight may come back sooner than the window frees
            // (a process's leased slots it did not use go back within
            // 100 ms): look again by then instead of sleeping through the
            // window and leaving its budget unused.
            if in_flight > 0 {
                at = at.min(now + LEASE_USE_MS);
            }
            ((at - now).max(1), Blocked::Window { bucket: b.key.clone(), window: *w })
        };
        if ms > worst.0 {
            worst = (ms, Some(why));
        }
    }
    Ok(worst)
}

/// A pause in force on `scope` at `now`.
fn active_pause(rows: &mut dyn LedgerRows, scope: &str, now: i64) -> Result<Option<(i64, Blocked)>> {
    Ok(rows.pause(scope)?.filter(|p| p.until_ms > now).map(|p| (p.until_ms - now, Blocked::Paused { scope: scope.to_string(), reason: p.reason })))
}

/// Take `count` slots in every bucket, unless `scopes` are paused or a
/// window is full. In flight (counted as now) until [`finish`], or until
/// `lease_until`; with `done_now` they count as done at once.
pub fn take(rows: &mut dyn LedgerRows, scopes: &[&str], buckets: &[BucketSpec], count: u64, now: i64, lease_until: i64, done_now: bool) -> Result<Taken> {
    let mut probing = Vec::new();
    for scope in scopes.iter().copied().chain(buckets.iter().map(|b| b.key.as_str())) {
        match rows.pause(scope)? {
            Some(p) if p.until_ms > now => {
                let why = Blocked::Paused { scope: scope.to_string(), reason: p.reason };
                let ms = if p.probe.is_some() { IN_FLIGHT_POLL_MS.min(p.until_ms - now) } else { p.until_ms - now };
                return Ok(Taken::Wait { ms, why });
            }
            Some(p) if !p.cleared => probing.push((scope.to_string(), p)),
            _ => {}
        }
    }
    let mut worst: (i64, Option<Blocked>) = (0, None);
    for b in buckets {
        let (ms, why) = wait_for(rows, b, count, now)?;
        if ms > worst.0 {
            worst = (ms, why);
        }
    }
    if let (ms, Some(why)) = worst {
        return Ok(Taken::Wait { ms, why });
    }
    let ticket = rows.next_ticket()?;
    // The first request after a refusal's pause is the probe: the pause
    // holds everyone else until it is answered (or its lease ends).
    for (scope, mut p) in probing {
        p.probe = Some(ticket);
        p.until_ms = lease_until.max(now + 1);
        rows.put_pause(&scope, &p)?;
    }
    for b in buckets {
        if done_now {
            for w in &b.windows {
                rows.add_spent(&b.key, w.seconds, now.div_euclid(granule_ms(w.seconds)), count)?;
            }
        } else {
            rows.add_in_flight(ticket, &b.key, count, lease_until)?;
        }
    }
    Ok(Taken::Granted { ticket })
}

/// How the vendor answered a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Not refused for rate reasons: the credential's penalty ladder resets.
    Accepted,
    /// Refused (429): pause the credential, in the same transaction, so no
    /// other process can slip a request in between.
    Refused { stated_ms: Option<i64>, ladder_ms: Vec<i64>, reason: String },
    /// No answer (transport error): it may have been counted; nothing learned.
    Unknown,
}

/// The response to `ticket` arrived at `now`: its slots count from here,
/// and the credential's pause follows the outcome. Returns the pause a
/// refusal set.
pub fn finish(rows: &mut dyn LedgerRows, ticket: i64, buckets: &[BucketSpec], now: i64, credential: &str, outcome: &Outcome) -> Result<Option<Pause>> {
    for b in buckets {
        let n = rows.remove_in_flight(ticket, &b.key)?;
        if n == 0 {
            continue; // reaped already: it was counted at its lease's end
        }
        for w in &b.windows {
            rows.add_spent(&b.key, w.seconds, now.div_euclid(granule_ms(w.seconds)), n)?;
        }
    }
    follow_outcome(rows, ticket, now, credential, outcome)
}

/// The credential's pause after the response to `ticket` arrived at `now`.
fn follow_outcome(rows: &mut dyn LedgerRows, ticket: i64, now: i64, credential: &str, outcome: &Outcome) -> Result<Option<Pause>> {
    if let Some(mut p) = rows.pause(credential)? {
        let was_probe = p.probe == Some(ticket);
        if was_probe {
            p.probe = None;
            p.until_ms = now;
        }
        match outcome {
            Outcome::Accepted if !p.cleared && p.until_ms <= now => {
                p.cleared = true;
                rows.put_pause(credential, &p)?;
            }
            _ if was_probe => rows.put_pause(credential, &p)?,
            _ => {}
        }
    }
    match outcome {
        Outcome::Refused { stated_ms, ladder_ms, reason } => Ok(Some(refuse(rows, credential, now, *stated_ms, ladder_ms, reason)?)),
        _ => Ok(None),
    }
}

/// Whether nothing is paused or being probed on `scopes` and `buckets`:
/// only then may several slots be leased at once (after a pause, one
/// request goes first and alone).
fn calm(rows: &mut dyn LedgerRows, scopes: &[&str], buckets: &[BucketSpec], now: i64) -> Result<bool> {
    for scope in scopes.iter().copied().chain(buckets.iter().map(|b| b.key.as_str())) {
        if rows.pause(scope)?.is_some_and(|p| p.until_ms > now || !p.cleared || p.probe.is_some()) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether every window of `buckets` would stay at most half used with
/// `want` more. Slots leased but not yet used count as in flight for
/// everyone else, and a caller that finds a window full waits for it to
/// roll over; leasing only in the lower half keeps leases out of the way
/// when a budget is nearly spent.
fn roomy(rows: &mut dyn LedgerRows, buckets: &[BucketSpec], want: u64, now: i64) -> Result<bool> {
    for b in buckets {
        reap(rows, b, now)?;
        let in_flight = rows.in_flight(&b.key)?;
        for w in &b.windows {
            let spent = rows.spent(&b.key, w.seconds, first_live(w, now))?;
            if (spent + in_flight + want) * 2 > u64::from(w.limit) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Take up to `want` slots in every bucket as one in-flight ticket: all of
/// them when nothing is paused and the windows stay at most half used,
/// else one (as [`take`]). Returns the outcome and how many slots the
/// ticket holds.
pub fn take_lease(rows: &mut dyn LedgerRows, scopes: &[&str], buckets: &[BucketSpec], want: u64, now: i64, lease_until: i64) -> Result<(Taken, u64)> {
    if want > 1 && calm(rows, scopes, buckets, now)? && roomy(rows, buckets, want, now)? {
        if let t @ Taken::Granted { .. } = take(rows, scopes, buckets, want, now, lease_until, false)? {
            return Ok((t, want));
        }
    }
    Ok((take(rows, scopes, buckets, 1, now, lease_until, false)?, 1))
}

/// Settle part of a leased ticket: each of `stamps` (a response's arrival
/// time, and whether the vendor accepted it) counts as done in its granule,
/// `give_back` unused slots are released, the rest stay in flight until
/// `lease_until`. Accepted responses clear a pause as [`finish`] does.
pub fn settle(rows: &mut dyn LedgerRows, ticket: i64, buckets: &[BucketSpec], stamps: &[(i64, bool)], give_back: u64, lease_until: i64, credential: &str) -> Result<()> {
    for b in buckets {
        let n = rows.remove_in_flight(ticket, &b.key)?;
        if n == 0 {
            continue; // reaped already: counted at its lease's end
        }
        let stamped = (stamps.len() as u64).min(n);
        for w in &b.windows {
            let mut granules: BTreeMap<i64, u64> = BTreeMap::new();
            for (at, _) in &stamps[..stamped as usize] {
                *granules.entry(at.div_euclid(granule_ms(w.seconds))).or_default() += 1;
            }
            for (g, k) in granules {
                rows.add_spent(&b.key, w.seconds, g, k)?;
            }
        }
        let left = (n - stamped).saturating_sub(give_back);
        if left > 0 {
            rows.add_in_flight(ticket, &b.key, left, lease_until)?;
        }
    }
    if let Some(last) = stamps.iter().filter(|(_, accepted)| *accepted).map(|(at, _)| *at).max() {
        follow_outcome(rows, ticket, last, credential, &Outcome::Accepted)?;
    }
    Ok(())
}

/// [`finish`] for a slot of a leased ticket: only this response's slot is
/// stamped; the ticket's other slots stay as they are.
pub fn finish_leased(rows: &mut dyn LedgerRows, ticket: i64, buckets: &[BucketSpec], now: i64, lease_until: i64, credential: &str, outcome: &Outcome) -> Result<Option<Pause>> {
    settle(rows, ticket, buckets, &[(now, false)], 0, lease_until, credential)?;
    follow_outcome(rows, ticket, now, credential, outcome)
}

/// The vendor refused a request on `scope`. With `stated_ms` (Retry-After or
/// a reset header) pause that long; otherwise climb `ladder_ms`. A pause is
/// only ever extended. Returns the pause now in force.
pub fn refuse(rows: &mut dyn LedgerRows, scope: &str, now: i64, stated_ms: Option<i64>, ladder_ms: &[i64], reason: &str) -> Result<Pause> {
    let prev = rows.pause(scope)?;
    let climbing = prev.as_ref().is_some_and(|p| !p.cleared);
    let (level, length) = match stated_ms {
        Some(ms) => (prev.as_ref().filter(|_| climbing).map_or(0, |p| p.level), ms),
        None => {
            let level = prev.as_ref().filter(|_| climbing).map_or(0, |p| p.level + 1);
            let top = ladder_ms.len().saturating_sub(1);
            (level.min(top as u32), ladder_ms.get((level as usize).min(top)).copied().unwrap_or(1000))
        }
    };
    let until = prev.as_ref().filter(|p| p.until_ms > now).map_or(0, |p| p.until_ms).max(now + length.max(1));
    let pause = Pause { until_ms: until, level, cleared: false, reason: reason.to_string(), probe: None };
    rows.put_pause(scope, &pause)?;
    Ok(pause)
}

/// Someone else spent `n` requests of `bucket`'s `window` (the vendor's
/// remaining count is lower than ours): count them as done now.
pub fn add_external(rows: &mut dyn LedgerRows, bucket: &str, window: &Window, n: u64, now: i64) -> Result<()> {
    rows.add_spent(bucket, window.seconds, now.div_euclid(granule_ms(window.seconds)), n)
}

/// What is left of a bucket now: (requests that fit, ms until one more fits).
pub fn status(rows: &mut dyn LedgerRows, scopes: &[&str], b: &BucketSpec, now: i64) -> Result<(u32, i64)> {
    for scope in scopes.iter().copied().chain([b.key.as_str()]) {
        if let Some((ms, _)) = active_pause(rows, scope, now)? {
            return Ok((0, ms));
        }
    }
    reap(rows, b, now)?;
    let in_flight = rows.in_flight(&b.key)?;
    let mut remaining = u64::from(u32::MAX);
    for w in &b.windows {
        let spent = rows.spent(&b.key, w.seconds, first_live(w, now))?;
        remaining = remaining.min(u64::from(w.limit).saturating_sub(spent + in_flight));
    }
    let (wait, _) = wait_for(rows, b, 1, now)?;
    Ok((remaining as u32, wait))
}

/// The ledger in process memory: the same algorithm, no store. Budgets in
/// it are not shared with other processes.
#[derive(Default)]
pub struct MemoryLedger {
    rows: Mutex<MemoryRows>,
}

#[derive(Default)]
struct MemoryRows {
    spent: HashMap<(String, u32), BTreeMap<i64, u64>>,
    in_flight: HashMap<String, BTreeMap<i64, (u64, i64)>>,
    pauses: HashMap<String, Pause>,
    next_ticket: i64,
}

impl LedgerStore for MemoryLedger {
    fn ledger_tx(&self, f: &mut dyn FnMut(&mut dyn LedgerRows) -> Result<()>) -> Result<()> {
        let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut *rows)
    }
}

impl LedgerRows for MemoryRows {
    fn spent(&mut self, bucket: &str, window_s: u32, from: i64) -> Result<u64> {
        Ok(self.spent.get(&(bucket.to_string(), window_s)).map_or(0, |m| m.range(from..).map(|(_, n)| n).sum()))
    }
    fn spent_granules(&mut self, bucket: &str, window_s: u32, from: i64) -> Result<Vec<(i64, u64)>> {
        Ok(self.spent.get(&(bucket.to_string(), window_s)).map_or(vec![], |m| m.range(from..).map(|(g, n)| (*g, *n)).collect()))
    }
    fn add_spent(&mut self, bucket: &str, window_s: u32, granule: i64, n: u64) -> Result<()> {
        *self.spent.entry((bucket.to_string(), window_s)).or_default().entry(granule).or_default() += n;
        Ok(())
    }
    fn prune_spent(&mut self, bucket: &str, window_s: u32, before: i64) -> Result<()> {
        if let Some(m) = self.spent.get_mut(&(bucket.to_string(), window_s)) {
            *m = m.split_off(&before);
        }
        Ok(())
    }
    fn in_flight(&mut self, bucket: &str) -> Result<u64> {
        Ok(self.in_flight.get(bucket).map_or(0, |m| m.values().map(|(n, _)| n).sum()))
    }
    fn expired_in_flight(&mut self, bucket: &str, now: i64) -> Result<Vec<(i64, u64, i64)>> {
        Ok(self.in_flight.get(bucket).map_or(vec![], |m| m.iter().filter(|(_, (_, l))| *l <= now).map(|(t, (n, l))| (*t, *n, *l)).collect()))
    }
    fn add_in_flight(&mut self, ticket: i64, bucket: &str, n: u64, lease_until: i64) -> Result<()> {
        self.in_flight.entry(bucket.to_string()).or_default().insert(ticket, (n, lease_until));
        Ok(())
    }
    fn remove_in_flight(&mut self, ticket: i64, bucket: &str) -> Result<u64> {
        Ok(self.in_flight.get_mut(bucket).and_then(|m| m.remove(&ticket)).map_or(0, |(n, _)| n))
    }
    fn next_ticket(&mut self) -> Result<i64> {
        self.next_ticket += 1;
        Ok(self.next_ticket)
    }
    fn pause(&mut self, scope: &str) -> Result<Option<Pause>> {
        Ok(self.pauses.get(scope).cloned())
    }
    fn put_pause(&mut self, scope: &str, pause: &Pause) -> Result<()> {
        self.pauses.insert(scope.to_string(), pause.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(limit: u32, seconds: u32) -> BucketSpec {
        BucketSpec { key: "cred/p".into(), windows: vec![Window { limit, seconds }] }
    }

    fn tx<T>(l: &MemoryLedger, mut f: impl FnMut(&mut dyn LedgerRows) -> Result<T>) -> T {
        let mut out = None;
        l.ledger_tx(&mut |rows| {
            out = Some(f(rows)?);
            Ok(())
        })
        .unwrap();
        out.unwrap()
    }

    /// Send as fast as the ledger allows for `span` ms (each response 3 ms
    /// after its send); every sliding window of the vendor's holds at most
    /// `limit`, and the budget is used almost fully.
    #[test]
    fn never_more_than_the_limit_in_any_window_and_nearly_all_of_it_used() {
        let l = MemoryLedger::default();
        let b = spec(150, 60);
        let (mut now, mut sent) = (0i64, Vec::new());
        while now < 600_000 {
            match tx(&l, |r| take(r, &["cred"], std::slice::from_ref(&b), 1, now, now + 30_000, false)) {
                Taken::Granted { ticket } => {
                    sent.push(now + 1); // the vendor counts it somewhere in flight
                    tx(&l, |r| finish(r, ticket, std::slice::from_ref(&b), now + 3, "cred", &Outcome::Accepted));
                    now += 3;
                }
                Taken::Wait { ms, .. } => now += ms,
            }
        }
        for (i, t) in sent.iter().enumerate() {
            let in_window = sent[i..].iter().take_while(|u| **u < t + 60_000).count();
            assert!(in_window <= 150, "{in_window} requests in the minute from #{i}");
        }
        // 10 minutes of 150/min is 1,500; a granule of slack per window at most.
        assert!(sent.len() >= 1_480, "only {} of 1,500 used", sent.len());
    }

    #[test]
    fn a_dead_processes_in_flight_slot_expires_with_its_lease() {
        let l = MemoryLedger::default();
        let b = spec(1, 1);
        assert!(matches!(tx(&l, |r| take(r, &["c"], std::slice::from_ref(&b), 1, 0, 5_000, false)), Taken::Granted { .. }));
        // Never finished: the slot counts as in flight until the lease ends...
        assert!(matches!(tx(&l, |r| take(r, &["c"], std::slice::from_ref(&b), 1, 4_000, 9_000, false)), Taken::Wait { why: Blocked::InFlight { .. }, .. }));
        // ...then as done at the lease's end, for one more window.
        assert!(matches!(tx(&l, |r| take(r, &["c"], std::slice::from_ref(&b), 1, 5_500, 9_000, false)), Taken::Wait { why: Blocked::Window { .. }, .. }));
        assert!(matches!(tx(&l, |r| take(r, &["c"], std::slice::from_ref(&b), 1, 6_100, 9_000, false)), Taken::Granted { .. }));
    }

    #[test]
    fn refusals_climb_the_ladder_until_a_request_is_accepted() {
        let l = MemoryLedger::default();
        let ladder = [60_000, 300_000, 900_000];
        let p = tx(&l, |r| refuse(r, "c", 0, None, &ladder, "429"));
        assert_eq!((p.level, p.until_ms), (0, 60_000));
        // A refusal of a request that was already in flight escalates, as the vendor does.
        let p = tx(&l, |r| refuse(r, "c", 10, None, &ladder, "429"));
        assert_eq!((p.level, p.until_ms), (1, 300_010));
        assert!(matches!(tx(&l, |r| take(r, &["c"], &[], 1, 200_000, 0, true)), Taken::Wait { ms: 100_010, why: Blocked::Paused { .. } }));
        // After the pause, refused again: the block was longer than we knew.
        let p = tx(&l, |r| refuse(r, "c", 300_020, None, &ladder, "429"));
        assert_eq!((p.level, p.until_ms), (2, 1_200_020));
        let p = tx(&l, |r| refuse(r, "c", 1_200_030, None, &ladder, "429"));
        assert_eq!(p.level, 2, "the top rung repeats");
        // An accepted request after the pause resets the ladder.
        let t = match tx(&l, |r| take(r, &["c"], &[], 1, 2_200_000, 2_300_000, false)) {
            Taken::Granted { ticket } => ticket,
            other => panic!("{other:?}"),
        };
        tx(&l, |r| finish(r, t, &[], 2_200_010, "c", &Outcome::Accepted));
        assert_eq!(tx(&l, |r| refuse(r, "c", 2_300_000, None, &ladder, "429")).level, 0);
        // A stated wait is taken as stated, and never shortens a pause.
        assert_eq!(tx(&l, |r| refuse(r, "c", 2_300_001, Some(1_000), &ladder, "429")).until_ms, 2_360_000);
    }

    #[test]
    fn after_a_pause_one_probe_goes_and_the_rest_wait_for_its_answer() {
        let l = MemoryLedger::default();
        let ladder = [1_000, 2_000];
        tx(&l, |r| refuse(r, "c", 0, None, &ladder, "429"));
        let probe = match tx(&l, |r| take(r, &["c"], &[], 1, 1_000, 31_000, false)) {
            Taken::Granted { ticket } => ticket,
            other => panic!("{other:?}"),
        };
        // Everyone else waits while the probe is out.
        assert!(matches!(tx(&l, |r| take(r, &["c"], &[], 1, 1_001, 31_001, false)), Taken::Wait { why: Blocked::Paused { .. }, .. }));
        // Refused again: the next rung, atomically with the finish.
        let refused = Outcome::Refused { stated_ms: None, ladder_ms: ladder.to_vec(), reason: "429".into() };
        let p = tx(&l, |r| finish(r, probe, &[], 1_010, "c", &refused)).unwrap();
        assert_eq!((p.level, p.until_ms), (1, 3_010));
        assert!(matches!(tx(&l, |r| take(r, &["c"], &[], 1, 2_000, 32_000, false)), Taken::Wait { .. }));
        // The next probe is accepted: everyone may go, the ladder resets.
        let probe = match tx(&l, |r| take(r, &["c"], &[], 1, 3_010, 33_010, false)) {
            Taken::Granted { ticket } => ticket,
            other => panic!("{other:?}"),
        };
        tx(&l, |r| finish(r, probe, &[], 3_020, "c", &Outcome::Accepted));
        assert!(matches!(tx(&l, |r| take(r, &["c"], &[], 1, 3_021, 33_021, false)), Taken::Granted { .. }));
        assert!(matches!(tx(&l, |r| take(r, &["c"], &[], 1, 3_022, 33_022, false)), Taken::Granted { .. }));
        assert_eq!(tx(&l, |r| refuse(r, "c", 4_000, None, &ladder, "429")).level, 0);
    }

    #[test]
    fn status_counts_in_flight_and_spent() {
        let l = MemoryLedger::default();
        let b = spec(3, 60);
        tx(&l, |r| take(r, &["c"], std::slice::from_ref(&b), 1, 0, 1_000, true));
        tx(&l, |r| take(r, &["c"], std::slice::from_ref(&b), 1, 0, 1_000, false));
        assert_eq!(tx(&l, |r| status(r, &["c"], &b, 10)), (1, 0));
        tx(&l, |r| add_external(r, &b.key, &b.windows[0], 1, 10));
        let (left, wait) = tx(&l, |r| status(r, &["c"], &b, 20));
        assert_eq!(left, 0);
        assert!(wait > 0);
    }
}
