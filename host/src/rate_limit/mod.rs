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
pub mod ledger;
pub mod policy;

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
    ledger: Arc<dyn LedgerStore>,
    buckets: Mutex<BTreeMap<String, Arc<Bucket>>>,
    /// How long an in-flight slot stays claimed if its process dies.
    lease: Duration,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Limiter {
    pub fn new(ledger: Arc<dyn LedgerStore>, lease: Duration, metrics: Arc<crate::metrics::Metrics>) -> Limiter {
        Limiter { ledger, buckets: Mutex::default(), lease, metrics }
    }

    /// The bucket for `credential` and `policy`. The first caller's windows
    /// win, so two connectors sharing a credential share one count.
    pub fn bucket(&self, credential: &str, policy: &Policy) -> Arc<Bucket> {
        let key = format!("{credential}/{}", policy.name);
        let mut map = self.buckets.lock().unwrap();
        map.entry(key.clone()).or_insert_with(|| Arc::new(Bucket { key, policy: policy.clone(), windows: Mutex::new(policy.windows.clone()) })).clone()
    }

    /// Run `f` in one ledger transaction, off the async runtime (a busy
    /// store may make it wait).
    async fn tx<T: Send + 'static>(&self, f: impl FnMut(&mut dyn ledger::LedgerRows) -> anyhow::Result<T> + Send + 'static) -> anyhow::Result<T> {
        let ledger = self.ledger.clone();
        tokio::task::spawn_blocking(move || {
            let mut f = f;
            let mut out = None;
            ledger.ledger_tx(&mut |rows| {
                out = Some(f(rows)?);
                Ok(())
            })?;
            out.ok_or_else(|| anyhow::anyhow!("ledger transaction produced nothing"))
        })
        .await?
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
        let mut waited: Option<Waited> = None;
        loop {
            let now = crate::store::now_ms();
            let lease_until = now + self.lease.as_millis() as i64;
            let (cred, sp) = (credential.to_string(), specs.clone());
            let taken = self
                .tx(move |rows| ledger::take(rows, &[cred.as_str()], &sp, u64::from(count), now, lease_until, done_now))
                .await
                .map_err(|e| Refused::Ledger(format!("{e:#}")))?;
            match taken {
                ledger::Taken::Granted { ticket } => {
                    if let Some(w) = waited.as_mut() {
                        w.ms = started.elapsed().as_millis() as u64;
                        self.metrics.rate_waited(connector, &holding_bucket(&w.why), w.ms);
                    }
                    return Ok(Permit { ticket, credential: credential.to_string(), specs, waited });
                }
                ledger::Taken::Wait { ms, why } => {
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

    /// Stamp a request's slots with the time its response arrived, and
    /// follow its outcome; returns the pause a refusal set.
    pub async fn finish(&self, permit: Permit, outcome: Outcome) -> anyhow::Result<Option<Pause>> {
        let now = crate::store::now_ms();
        let Permit { ticket, credential, specs, .. } = permit;
        self.tx(move |rows| ledger::finish(rows, ticket, &specs, now, &credential, &outcome)).await
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

    #[tokio::test]
    async fn asking_for_more_than_a_window_holds_is_refused_at_once() {
        let l = limiter();
        let b = l.bucket("c", &policy(2, 1));
        assert!(matches!(l.acquire("t", "c", &[b], 3, Duration::from_secs(60), true).await, Err(Refused::TooMany { count: 3, limit: 2, .. })));
    }
}
