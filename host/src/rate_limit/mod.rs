//! Client-side rate limiting: never send a request the vendor would refuse,
//! and never send one while the vendor is refusing.
//!
//! Budgets belong to a vendor credential, not to a process: each (credential,
//! policy) pair is one bucket in the store's rate [`ledger`], shared by every
//! host, `spoke call` and embedder on that store and kept across restarts.
//! A request takes a slot in every bucket of its operation before it is
//! sent and stamps it when the response arrives (the vendor counted it
//! somewhere in between; only the later bound is safe), so no window ever
//! holds more than its limit as the vendor sees it, whatever the latency.
//!
//! The vendor's word overrides our count: a 429 pauses the whole credential
//! — for `Retry-After`, else what the rate headers say, else the plugin's
//! penalty ladder — and `remaining` headers lower than ours count someone
//! else's requests as ours.
//!
//! The ledger's transactions run on one thread of their own
//! ([`worker`]), batched. Requests in quick succession take their slots in
//! small leases (one transaction for up to [`LEASE_MAX`] slots, all counted
//! as in flight until used and stamped), and stamps are settled off the
//! request path; see [`Lease`] for why the budget stays exact.
pub mod ledger;
pub mod policy;
mod worker;

pub use ledger::{Blocked, BucketSpec, LedgerStore, MemoryLedger, Outcome, Pause};
pub use policy::Policy;

use crate::manifest::{HeaderMeaning, Window};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// One policy's budget for one credential. The windows may be lowered by a
/// vendor's limit header; the counts live in the ledger.
#[derive(Debug)]
pub struct Bucket {
    /// `<credential>/<policy>`: the ledger's key.
    pub key: String,
    pub policy: Policy,
    windows: Mutex<Vec<Window>>,
}

impl Bucket {
    fn spec(&self) -> BucketSpec {
        BucketSpec { key: self.key.clone(), windows: self.windows.lock().unwrap().clone() }
    }
}

/// A request's claim on its buckets; [`Limiter::finish`] it when the
/// response arrives (or the send failed: the vendor may have counted it).
#[must_use]
pub struct Permit {
    ticket: i64,
    credential: String,
    specs: Vec<BucketSpec>,
    /// The wait before the slot was granted, if there was one.
    pub waited: Option<Waited>,
    /// The lease the slot came from, if it was leased ahead.
    lease: Option<Arc<Mutex<Lease>>>,
}

/// Slots one transaction may lease ahead for a bucket set, at most (and at
/// most a quarter of any of its windows, so one process never sits on much
/// of a budget others share).
const LEASE_MAX: u64 = 32;
/// How long leased slots may be handed out; then the unused ones go back to
/// the ledger. Short: until then other processes see them as in flight, and
/// a pause another process learns of reaches this one's leased slots only
/// when they end. (The ledger's window waits look again this often.)
use ledger::LEASE_USE_MS;

/// Slots taken from the ledger in one transaction as one in-flight ticket,
/// handed out to requests without a transaction each. The ledger counts all
/// of them as in flight ("now") until they are settled, so the budget stays
/// exact across processes: a leased slot is one nobody else can take.
/// Responses are stamped in memory and settled in one transaction when the
/// lease ends (after [`LEASE_USE_MS`]), with the unused slots given back.
/// If the process dies first, the whole ticket counts as done when its
/// ledger lease ends (the same as one in-flight request today).
struct Lease {
    ticket: i64,
    credential: String,
    specs: Vec<BucketSpec>,
    lease_until: i64,
    use_until: i64,
    unused: u64,
    /// Responses that arrived: (time, accepted by the vendor).
    stamps: Vec<(i64, bool)>,
    /// Settled: later responses are stamped one by one.
    retired: bool,
}

impl Lease {
    /// End the lease: its settlement (stamps in, unused slots back).
    fn retire(&mut self) -> Option<worker::RowsFn> {
        if self.retired {
            return None;
        }
        self.retired = true;
        let (stamps, give_back) = (std::mem::take(&mut self.stamps), std::mem::take(&mut self.unused));
        let (ticket, specs, lease_until, credential) = (self.ticket, self.specs.clone(), self.lease_until, self.credential.clone());
        Some(Box::new(move |rows: &mut dyn ledger::LedgerRows| ledger::settle(rows, ticket, &specs, &stamps, give_back, lease_until, &credential)))
    }
}

/// How much a bucket set is asked for: leases double while requests keep
/// coming within [`LEASE_USE_MS`] of the last take, and start at one again
/// after a lull.
#[derive(Default)]
struct Demand {
    last_take_ms: i64,
    want: u64,
    current: Option<Arc<Mutex<Lease>>>,
}

#[derive(Default)]
struct Leases {
    by_key: Mutex<std::collections::HashMap<String, Demand>>,
    /// Leases not yet retired, for the ledger thread to end on time.
    live: Mutex<Vec<Arc<Mutex<Lease>>>>,
}

impl Leases {
    /// End now every live lease `which` selects; their settlements.
    fn retire_where(&self, mut which: impl FnMut(&Lease) -> bool) -> Vec<worker::RowsFn> {
        let mut out = Vec::new();
        self.live.lock().unwrap().retain(|l| {
            let mut l = l.lock().unwrap();
            if !which(&l) {
                return true;
            }
            out.extend(l.retire());
            false
        });
        out
    }
}

impl worker::Housekeeping for Leases {
    fn due(&self, now_ms: i64, closing: bool) -> (Vec<worker::RowsFn>, Option<i64>) {
        let mut next: Option<i64> = None;
        let jobs = self.retire_where(|l| {
            let due = closing || now_ms >= l.use_until;
            if !due {
                next = Some(next.map_or(l.use_until, |n: i64| n.min(l.use_until)));
            }
            due
        });
        (jobs, next)
    }
}

/// Leases are per credential and bucket set, with the windows in force.
fn lease_key(credential: &str, specs: &[BucketSpec]) -> String {
    let mut key = credential.to_string();
    for s in specs {
        key.push('\n');
        key.push_str(&s.key);
        for w in &s.windows {
            key.push_str(&format!(" {}/{}", w.limit, w.seconds));
        }
    }
    key
}

/// A wait a request sat through, for logs and run records.
#[derive(Debug, Clone, PartialEq)]
pub struct Waited {
    pub ms: u64,
    pub why: Blocked,
}

/// Why a request cannot be sent within the caller's bound.
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// The wait needed was longer than the caller allows.
    WouldWait { why: Blocked, retry_after: Duration },
    /// The ledger could not be read or written (the store is unavailable).
    Ledger(String),
    /// More slots asked for at once than a window holds.
    TooMany { bucket: String, count: u32, limit: u32 },
}

/// Names for people: a policy, not `<credential hash>/<policy>`.
pub fn describe(why: &Blocked) -> String {
    let policy = |key: &str| key.rsplit('/').next().unwrap_or(key).to_string();
    match why {
        Blocked::Paused { reason, .. } => format!("the vendor is refusing this credential ({reason})"),
        Blocked::Window { bucket, window } => format!("rate policy `{}` has spent its {} requests per {} s", policy(bucket), window.limit, window.seconds),
        Blocked::InFlight { bucket } => format!("rate policy `{}` is full of requests still in flight", policy(bucket)),
    }
}

/// The policy a wait was for, as a metrics label.
fn holding_bucket(why: &Blocked) -> String {
    match why {
        Blocked::Paused { .. } => "(paused)".into(),
        Blocked::Window { bucket, .. } | Blocked::InFlight { bucket } => bucket.rsplit('/').next().unwrap_or(bucket).to_string(),
    }
}

/// Every bucket of a host over one ledger.
pub struct Limiter {
    /// The ledger's own thread: every transaction runs there. First field:
    /// dropped first, it settles every lease before the rest goes.
    ledger: worker::Worker,
    leases: Arc<Leases>,
    buckets: Mutex<BTreeMap<String, Arc<Bucket>>>,
    /// How long an in-flight slot stays claimed if its process dies.
    lease: Duration,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Limiter {
    pub fn new(ledger: Arc<dyn LedgerStore>, lease: Duration, metrics: Arc<crate::metrics::Metrics>) -> Limiter {
        let leases = Arc::new(Leases::default());
        Limiter { ledger: worker::Worker::start(ledger, leases.clone()), leases, buckets: Mutex::default(), lease, metrics }
    }

    /// The bucket for `credential` and `policy`. The first caller's windows
    /// win, so two connectors sharing a credential share one count.
    pub fn bucket(&self, credential: &str, policy: &Policy) -> Arc<Bucket> {
        let key = format!("{credential}/{}", policy.name);
        let mut map = self.buckets.lock().unwrap();
        map.entry(key.clone()).or_insert_with(|| Arc::new(Bucket { key, policy: policy.clone(), windows: Mutex::new(policy.windows.clone()) })).clone()
    }

    /// Run `f` in one ledger transaction on the ledger thread (a busy
    /// store may make it wait), batched with whatever else is queued.
    async fn tx<T: Send + 'static>(&self, f: impl FnMut(&mut dyn ledger::LedgerRows) -> anyhow::Result<T> + Send + 'static) -> anyhow::Result<T> {
        self.ledger.tx(f).await
    }

    /// Wait until `credential` is not paused and every bucket has room for
    /// `count` more, then claim them. Gives up early, with the true remaining
    /// time, when the wait would pass `max_wait`. `done_now` counts the
    /// slots as spent at once (a plugin reserving budget ahead).
    /// `connector` names the caller in the one log line a wait writes.
    pub async fn acquire(&self, connector: &str, credential: &str, buckets: &[Arc<Bucket>], count: u32, max_wait: Duration, done_now: bool) -> Result<Permit, Refused> {
        let started = Instant::now();
        let specs: Vec<BucketSpec> = buckets.iter().map(|b| b.spec()).collect();
        for s in &specs {
            if let Some(w) = s.windows.iter().find(|w| w.limit < count) {
                return Err(Refused::TooMany { bucket: s.key.rsplit('/').next().unwrap_or_default().to_string(), count, limit: w.limit });
            }
        }
        // One request's slot may come from a lease (no transaction).
        let leasable = count == 1 && !done_now && !specs.is_empty();
        let key = if leasable { lease_key(credential, &specs) } else { String::new() };
        let mut waited: Option<Waited> = None;
        loop {
            if leasable {
                if let Some(mut permit) = self.leased(&key, credential) {
                    if let Some(w) = waited.as_mut() {
                        w.ms = started.elapsed().as_millis() as u64;
                        self.metrics.rate_waited(connector, &holding_bucket(&w.why), w.ms);
                    }
                    permit.waited = waited;
                    return Ok(permit);
                }
            }
            let now = crate::store::now_ms();
            let lease_until = now + self.lease.as_millis() as i64;
            let (cred, sp) = (credential.to_string(), specs.clone());
            let want = if leasable { self.want(&key, &specs, now) } else { 1 };
            let taken = self
                .tx(move |rows| {
                    if want > 1 {
                        ledger::take_lease(rows, &[cred.as_str()], &sp, want, now, lease_until)
                    } else {
                        Ok((ledger::take(rows, &[cred.as_str()], &sp, u64::from(count), now, lease_until, done_now)?, 1))
                    }
                })
                .await
                .map_err(|e| Refused::Ledger(format!("{e:#}")))?;
            match taken {
                (ledger::Taken::Granted { ticket }, n) => {
                    if let Some(w) = waited.as_mut() {
                        w.ms = started.elapsed().as_millis() as u64;
                        self.metrics.rate_waited(connector, &holding_bucket(&w.why), w.ms);
                    }
                    let lease = (n > 1).then(|| self.start_lease(&key, ticket, credential, &specs, n, now, lease_until));
                    return Ok(Permit { ticket, credential: credential.to_string(), specs, waited, lease });
                }
                (ledger::Taken::Wait { ms, why }, _) => {
                    let wait = Duration::from_millis(ms.max(1) as u64);
                    if started.elapsed() + wait > max_wait {
                        return Err(Refused::WouldWait { why, retry_after: wait });
                    }
                    if waited.is_none() {
                        tracing::info!(connector, wait_ms = wait.as_millis() as u64, why = %describe(&why), "waiting for rate budget");
                        waited = Some(Waited { ms: 0, why });
                    }
                    // Counted while asleep, also when the caller gives up
                    // and drops this future mid-wait.
                    let _waiting = WaitingNow::new(&self.metrics, connector);
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// A slot from the live lease of `key`, if it has one left.
    fn leased(&self, key: &str, credential: &str) -> Option<Permit> {
        let by_key = self.leases.by_key.lock().unwrap();
        let lease = by_key.get(key)?.current.as_ref()?;
        let mut l = lease.lock().unwrap();
        if l.retired || l.unused == 0 || crate::store::now_ms() >= l.use_until {
            return None;
        }
        l.unused -= 1;
        Some(Permit { ticket: l.ticket, credential: credential.to_string(), specs: l.specs.clone(), waited: None, lease: Some(lease.clone()) })
    }

    /// How many slots to lease for `key` now (1: no lease).
    fn want(&self, key: &str, specs: &[BucketSpec], now: i64) -> u64 {
        let cap = specs.iter().flat_map(|s| &s.windows).map(|w| u64::from(w.limit) / 4).min().unwrap_or(1).clamp(1, LEASE_MAX);
        let mut by_key = self.leases.by_key.lock().unwrap();
        let d = by_key.entry(key.to_string()).or_default();
        d.want = if now - d.last_take_ms < LEASE_USE_MS { (d.want * 2).clamp(1, cap) } else { 1 };
        d.last_take_ms = now;
        d.want
    }

    /// Keep the `n - 1` slots a take leased beyond its own request.
    #[allow(clippy::too_many_arguments)]
    fn start_lease(&self, key: &str, ticket: i64, credential: &str, specs: &[BucketSpec], n: u64, now: i64, lease_until: i64) -> Arc<Mutex<Lease>> {
        let lease = Arc::new(Mutex::new(Lease {
            ticket,
            credential: credential.to_string(),
            specs: specs.to_vec(),
            lease_until,
            use_until: now + LEASE_USE_MS,
            unused: n - 1,
            stamps: Vec::new(),
            retired: false,
        }));
        self.leases.live.lock().unwrap().push(lease.clone());
        self.leases.by_key.lock().unwrap().entry(key.to_string()).or_default().current = Some(lease.clone());
        // The ledger thread ends it on time.
        self.ledger.wake();
        lease
    }

    /// End the leases `which` selects now (before the ledger is read or
    /// paused through them): queued ahead of whatever is queued next.
    fn retire_leases(&self, which: impl Fn(&Lease) -> bool) {
        for settle in self.leases.retire_where(which) {
            self.ledger.queue("settling leased slots", settle);
        }
    }

    /// Stamp a request's slots with the time its response arrived, and
    /// follow its outcome; returns the pause a refusal set.
    pub async fn finish(&self, permit: Permit, outcome: Outcome) -> anyhow::Result<Option<Pause>> {
        let now = crate::store::now_ms();
        let Permit { ticket, credential, specs, lease, .. } = permit;
        if let Some(lease) = lease {
            let lease_until = lease.lock().unwrap().lease_until;
            if matches!(outcome, Outcome::Refused { .. }) {
                // The vendor refuses this credential: no more leased slots
                // go out on it; the pause is set with this response's stamp.
                self.retire_leases(|l| l.credential == credential);
                return self.tx(move |rows| ledger::finish_leased(rows, ticket, &specs, now, lease_until, &credential, &outcome)).await;
            }
            let stamp = (now, outcome == Outcome::Accepted);
            let mut l = lease.lock().unwrap();
            if !l.retired {
                l.stamps.push(stamp);
                return Ok(None);
            }
            drop(l);
            self.ledger.queue("stamping a response", move |rows| ledger::settle(rows, ticket, &specs, &[stamp], 0, lease_until, &credential));
            return Ok(None);
        }
        if matches!(outcome, Outcome::Refused { .. }) {
            // The caller needs the pause it set before deciding to retry.
            return self.tx(move |rows| ledger::finish(rows, ticket, &specs, now, &credential, &outcome)).await;
        }
        // Nobody waits for a stamp: until it lands the slot counts as in
        // flight ("now"), which is the conservative side, and it lands
        // before any later take of this process reads the ledger (one
        // queue, in order). Stamped at `now`, the response's arrival.
        self.ledger.queue("stamping a response", move |rows| ledger::finish(rows, ticket, &specs, now, &credential, &outcome));
        Ok(None)
    }

    /// The outcome of a 429: pause for as long as the vendor says
    /// (`Retry-After`, else a reset header of a bucket whose remaining is
    /// 0), else climb the longest penalty ladder of the request's buckets,
    /// else [`policy::DEFAULT_LADDER_MS`].
    pub fn refusal(buckets: &[Arc<Bucket>], headers: &[(String, String)], reason: &str) -> Outcome {
        let now = crate::store::now_ms();
        let stated_ms = retry_after_ms(headers).or_else(|| buckets.iter().filter_map(|b| reset_ms(&b.policy, headers, now)).max());
        let mut ladder_ms: Vec<i64> = buckets.iter().map(|b| b.policy.penalty_ms.clone()).max_by_key(|l| l.last().copied().unwrap_or(0)).unwrap_or_default();
        if ladder_ms.is_empty() {
            ladder_ms = policy::DEFAULT_LADDER_MS.to_vec();
        }
        Outcome::Refused { stated_ms, ladder_ms, reason: reason.to_string() }
    }

    /// Follow what the vendor's rate headers say on an answered request: a
    /// lower limit wins, a lower remaining count adds someone else's
    /// requests, and `remaining: 0` with a reset pauses that bucket.
    pub async fn observe(&self, buckets: &[Arc<Bucket>], headers: &[(String, String)]) -> anyhow::Result<()> {
        let now = crate::store::now_ms();
        for b in buckets {
            let mut external = Vec::new();
            for h in &b.policy.headers {
                let Some(v) = header_i64(headers, &h.name) else { continue };
                let mut windows = b.windows.lock().unwrap();
                let Some(w) = windows.iter_mut().find(|w| w.seconds == h.window_seconds) else { continue };
                match h.meaning {
                    HeaderMeaning::Limit if v > 0 && (v as u32) < w.limit => w.limit = v as u32,
                    HeaderMeaning::Remaining => external.push((*w, v.max(0) as u64)),
                    _ => {}
                }
            }
            let reset = reset_ms(&b.policy, headers, now);
            if external.is_empty() && reset.is_none() {
                continue;
            }
            // The vendor's count is compared with ours, leased slots settled.
            self.retire_leases(|l| l.specs.iter().any(|s| s.key == b.key));
            let spec = b.spec();
            self.tx(move |rows| {
                for (w, theirs) in &external {
                    let (ours, _) = ledger::status(rows, &[], &BucketSpec { key: spec.key.clone(), windows: vec![*w] }, now)?;
                    if u64::from(ours) > *theirs {
                        ledger::add_external(rows, &spec.key, w, u64::from(ours) - theirs, now)?;
                    }
                }
                if let Some(ms) = reset {
                    ledger::refuse(rows, &spec.key, now, Some(ms), &[], "the vendor reports the budget spent until its reset")?;
                }
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// Requests that fit now, and ms until one more fits.
    pub async fn status(&self, credential: &str, bucket: &Arc<Bucket>) -> anyhow::Result<(u32, u64)> {
        let now = crate::store::now_ms();
        let (cred, spec) = (credential.to_string(), bucket.spec());
        // What is left is what nobody holds: leased slots go back first.
        self.retire_leases(|l| l.specs.iter().any(|s| s.key == spec.key));
        let (left, wait) = self.tx(move |rows| ledger::status(rows, &[cred.as_str()], &spec, now)).await?;
        Ok((left, wait.max(0) as u64))
    }
}

/// One call counted in `spoke_rate_waiting_calls` while it lives.
struct WaitingNow<'a> {
    metrics: &'a crate::metrics::Metrics,
    connector: &'a str,
}

impl<'a> WaitingNow<'a> {
    fn new(metrics: &'a crate::metrics::Metrics, connector: &'a str) -> Self {
        metrics.rate_waiting(connector, true);
        WaitingNow { metrics, connector }
    }
}

impl Drop for WaitingNow<'_> {
    fn drop(&mut self) {
        self.metrics.rate_waiting(self.connector, false);
    }
}

tokio::task_local! {
    /// Waits of the calls made inside [`recording_waits`], for run records.
    static WAITS: std::cell::RefCell<Vec<String>>;
}

/// Run `f`, returning what it waited for rate budget, one line per wait
/// ("wics: waited 12.3 s: rate policy `api-user` has spent ...").
pub async fn recording_waits<T>(f: impl std::future::Future<Output = T>) -> (T, Vec<String>) {
    WAITS
        .scope(Default::default(), async move {
            let out = f.await;
            (out, WAITS.with(|w| w.take()))
        })
        .await
}

/// Note a wait in the enclosing [`recording_waits`], if any.
pub fn record_wait(connector: &str, w: &Waited) {
    let _ = WAITS.try_with(|waits| waits.borrow_mut().push(format!("{connector}: waited {:.1} s: {}", w.ms as f64 / 1000.0, describe(&w.why))));
}

fn header_i64(headers: &[(String, String)], name: &str) -> Option<i64> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.trim().parse::<i64>().ok())
}

/// `Retry-After` in seconds (fractions allowed), as milliseconds.
pub fn retry_after_ms(headers: &[(String, String)]) -> Option<i64> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("retry-after"))
        .and_then(|(_, v)| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| (s * 1000.0).ceil() as i64)
}

/// A reset header whose window's remaining header says 0: ms until reset.
fn reset_ms(policy: &Policy, headers: &[(String, String)], now_ms: i64) -> Option<i64> {
    policy
        .headers
        .iter()
        .filter(|h| matches!(h.meaning, HeaderMeaning::ResetSeconds | HeaderMeaning::ResetAt))
        .filter(|h| policy.headers.iter().any(|r| r.meaning == HeaderMeaning::Remaining && r.window_seconds == h.window_seconds && header_i64(headers, &r.name) == Some(0)))
        .filter_map(|h| {
            let v = header_i64(headers, &h.name)?;
            let ms = match h.meaning {
                HeaderMeaning::ResetAt => v * 1000 - now_ms,
                _ => v * 1000,
            };
            (ms > 0).then_some(ms)
        })
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::RateHeader;

    fn limiter() -> Limiter {
        Limiter::new(Arc::new(MemoryLedger::default()), Duration::from_secs(30), Default::default())
    }

    fn policy(limit: u32, seconds: u32) -> Policy {
        Policy { name: "p".into(), windows: vec![Window { limit, seconds }], headers: vec![], penalty_ms: vec![] }
    }

    #[tokio::test]
    async fn refuses_to_wait_past_the_bound_and_says_how_long() {
        let l = limiter();
        let b = l.bucket("c", &policy(1, 60));
        l.finish(l.acquire("t", "c", &[b.clone()], 1, Duration::from_secs(1), false).await.unwrap(), Outcome::Accepted).await.unwrap();
        match l.acquire("t", "c", &[b.clone()], 1, Duration::from_secs(1), false).await {
            Err(Refused::WouldWait { why: Blocked::Window { .. }, retry_after }) => assert!(retry_after > Duration::from_secs(59)),
            other => panic!("{:?}", other.err()),
        }
    }

    #[tokio::test]
    async fn a_429_pauses_the_whole_credential_for_retry_after() {
        let l = limiter();
        let a = l.bucket("c", &policy(100, 60));
        let mut other = policy(100, 60);
        other.name = "other".into();
        let o = l.bucket("c", &other);
        let permit = l.acquire("t", "c", &[a.clone()], 1, Duration::ZERO, false).await.unwrap();
        let outcome = Limiter::refusal(&[a.clone()], &[("Retry-After".into(), "30".into())], "429");
        let pause = l.finish(permit, outcome).await.unwrap().unwrap();
        assert!(pause.until_ms - crate::store::now_ms() > 29_000);
        // Another bucket of the same credential waits too, and is told the real remaining time.
        match l.acquire("t", "c", &[o], 1, Duration::from_secs(1), false).await {
            Err(Refused::WouldWait { why: Blocked::Paused { .. }, retry_after }) => assert!(retry_after > Duration::from_secs(29)),
            other => panic!("{:?}", other.err()),
        }
        // Another credential does not.
        let x = l.bucket("x", &policy(100, 60));
        assert!(l.acquire("t", "x", &[x], 1, Duration::ZERO, false).await.is_ok());
    }

    #[tokio::test]
    async fn vendor_headers_shrink_the_budget_and_block_until_reset() {
        let l = limiter();
        let mut p = policy(10, 60);
        p.headers = vec![
            RateHeader { name: "x-remaining".into(), meaning: HeaderMeaning::Remaining, window_seconds: 60 },
            RateHeader { name: "x-reset".into(), meaning: HeaderMeaning::ResetSeconds, window_seconds: 60 },
            RateHeader { name: "x-limit".into(), meaning: HeaderMeaning::Limit, window_seconds: 60 },
        ];
        let b = l.bucket("c", &p);
        l.observe(&[b.clone()], &[("X-Remaining".into(), "3".into())]).await.unwrap();
        assert_eq!(l.status("c", &b).await.unwrap().0, 3);
        l.observe(&[b.clone()], &[("x-limit".into(), "2".into())]).await.unwrap();
        assert_eq!(l.status("c", &b).await.unwrap().0, 0, "7 counted of a limit now 2");
        l.observe(&[b.clone()], &[("x-remaining".into(), "0".into()), ("x-reset".into(), "30".into())]).await.unwrap();
        assert!(l.status("c", &b).await.unwrap().1 >= 29_000);
    }

    /// Two limiters on two handles of one store file, as two processes
    /// have: concurrent takes share transactions on each ledger thread and
    /// stamps are queued, yet exactly the window's limit is granted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn batched_ledger_work_keeps_a_budget_exact_across_two_store_handles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spoke.db");
        let open = || -> Arc<Limiter> {
            let store: Arc<dyn LedgerStore> = Arc::new(crate::store::SqliteStore::open(&path).unwrap());
            Arc::new(Limiter::new(store, Duration::from_secs(30), Default::default()))
        };
        let (a, b) = (open(), open());
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let l = if i % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move {
                    let bucket = l.bucket("c", &policy(37, 60));
                    // Waits for slots in flight (or leased) elsewhere; a
                    // full window (a minute's wait) is refused at once.
                    match l.acquire("t", "c", &[bucket], 1, Duration::from_secs(10), false).await {
                        Ok(permit) => {
                            l.finish(permit, Outcome::Accepted).await.unwrap();
                            1
                        }
                        Err(Refused::WouldWait { .. }) => 0,
                        Err(e) => panic!("{e:?}"),
                    }
                })
            })
            .collect();
        let mut granted: u32 = 0;
        for t in tasks {
            granted += t.await.unwrap();
        }
        // Never more than the limit. Fewer is possible: a caller told to
        // wait a minute for the window gives up even if the other handle's
        // leased slots (at most 37/4 - 1 = 8 unused each) come back a
        // moment later.
        assert!((37 - 2 * 8..=37).contains(&granted), "{granted} granted of 37");
        // Dropping a limiter lands its queued stamps: all 37 count as spent.
        drop(a);
        drop(b);
        let c = open();
        let bucket = c.bucket("c", &policy(37, 60));
        assert_eq!(c.status("c", &bucket).await.unwrap().0, 37 - granted);
        let ledger = crate::store::SqliteStore::open(&path).unwrap();
        let mut spent = 0;
        ledger.ledger_tx(&mut |rows| {
            spent = rows.spent("c/p", 60, 0)?;
            assert_eq!(rows.in_flight("c/p")?, 0, "every stamp landed");
            Ok(())
        })
        .unwrap();
        assert_eq!(spent, u64::from(granted), "every request sent is counted once");
    }

    #[tokio::test]
    async fn requests_in_quick_succession_share_leases_and_the_count_stays_exact() {
        let l = limiter();
        let b = l.bucket("c", &policy(1000, 60));
        let mut tickets = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let p = l.acquire("t", "c", &[b.clone()], 1, Duration::ZERO, false).await.unwrap();
            tickets.insert(p.ticket);
            l.finish(p, Outcome::Accepted).await.unwrap();
        }
        assert!(tickets.len() < 20, "50 requests took {} ledger tickets", tickets.len());
        // Asking what is left settles the leases: the 50 sent, no more.
        assert_eq!(l.status("c", &b).await.unwrap().0, 950);
    }

    #[tokio::test]
    async fn a_429_on_a_leased_slot_stops_the_leases_of_the_credential() {
        let l = limiter();
        let b = l.bucket("c", &policy(1000, 60));
        let mut permits = Vec::new();
        for _ in 0..4 {
            let p = l.acquire("t", "c", &[b.clone()], 1, Duration::ZERO, false).await.unwrap();
            l.finish(p, Outcome::Accepted).await.unwrap();
        }
        for _ in 0..2 {
            permits.push(l.acquire("t", "c", &[b.clone()], 1, Duration::ZERO, false).await.unwrap());
        }
        assert!(permits[1].lease.as_ref().is_some_and(|l| l.lock().unwrap().unused > 0), "a lease with slots left");
        let refused = Limiter::refusal(&[b.clone()], &[("retry-after".into(), "30".into())], "429");
        let pause = l.finish(permits.pop().unwrap(), refused).await.unwrap().expect("a pause");
        assert!(pause.until_ms > crate::store::now_ms());
        match l.acquire("t", "c", &[b.clone()], 1, Duration::ZERO, false).await {
            Err(Refused::WouldWait { why: Blocked::Paused { .. }, .. }) => {}
            other => panic!("a leased slot went out during the pause: {:?}", other.map(|p| p.ticket)),
        }
        // The other request still in flight is stamped when it answers.
        l.finish(permits.pop().unwrap(), Outcome::Accepted).await.unwrap();
        let (spent, in_flight) = l.tx(|rows| Ok((rows.spent("c/p", 60, 0)?, rows.in_flight("c/p")?))).await.unwrap();
        assert_eq!((spent, in_flight), (6, 0), "six sent, six counted, nothing left claimed");
    }

    #[tokio::test]
    async fn asking_for_more_than_a_window_holds_is_refused_at_once() {
        let l = limiter();
        let b = l.bucket("c", &policy(2, 1));
        assert!(matches!(l.acquire("t", "c", &[b], 3, Duration::from_secs(60), true).await, Err(Refused::TooMany { count: 3, limit: 2, .. })));
    }
}
