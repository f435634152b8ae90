//! Client-side rate limiting: never send a request the vendor would refuse.
//!
//! Each (credential, policy) pair has one [`Bucket`], shared by every caller
//! that uses the same credential. A bucket holds one sliding log per window
//! of the policy. A request takes a slot in every applicable bucket before
//! it is sent; the slot is stamped with the time the *response* arrived,
//! because the vendor counted the request somewhere between send and
//! response and only the later bound is safe. A slot still in flight counts
//! as "now". So no window of `seconds` ever holds more than `limit` requests
//! as the vendor sees them, whatever the latency — without a guessed margin.
//!
//! The vendor's own word overrides our count: `Retry-After`, or a
//! `remaining: 0` header, blocks the bucket; a `remaining` lower than ours
//! (someone else uses the same credential) adds phantom slots.
use crate::manifest::{HeaderMeaning, RateHeader, Window};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// A policy with its effective windows (manifest, or config override).
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub windows: Vec<Window>,
    pub headers: Vec<RateHeader>,
}

/// Extra care for clocks that count in whole milliseconds or seconds.
const MARGIN: Duration = Duration::from_millis(5);

#[derive(Debug)]
struct Slot {
    id: u64,
    /// When the response arrived; `None` while in flight.
    done: Option<Instant>,
}

#[derive(Debug)]
struct Log {
    window: Window,
    slots: VecDeque<Slot>,
}

impl Log {
    fn period(&self) -> Duration {
        Duration::from_secs(self.window.seconds as u64) + MARGIN
    }
    fn expire(&mut self, now: Instant) {
        let period = self.period();
        // Expire from the front only; a later slot finishing early simply
        // waits behind an older one, which is conservative.
        while self.slots.front().is_some_and(|s| s.done.is_some_and(|d| d + period <= now)) {
            self.slots.pop_front();
        }
    }
    /// How long until one more request fits; `None` if it must wait for an
    /// in-flight request to finish first.
    fn wait(&mut self, now: Instant) -> Option<Duration> {
        self.expire(now);
        if (self.slots.len() as u32) < self.window.limit {
            return Some(Duration::ZERO);
        }
        let front = self.slots.front()?;
        front.done.map(|d| (d + self.period()).saturating_duration_since(now))
    }
}

#[derive(Debug)]
struct BucketState {
    logs: Vec<Log>,
    blocked_until: Option<Instant>,
    next_id: u64,
}

/// One policy's budget for one credential.
#[derive(Debug)]
pub struct Bucket {
    pub policy: Policy,
    state: Mutex<BucketState>,
}

/// A request's claim on its buckets; finish it when the response arrives.
#[must_use]
pub struct Permit {
    claims: Vec<(Arc<Bucket>, u64)>,
}

/// The wait needed was longer than the caller allows.
#[derive(Debug, Clone, PartialEq)]
pub struct WouldWait {
    pub bucket: String,
    pub retry_after: Duration,
}

impl Bucket {
    pub fn new(policy: Policy) -> Arc<Bucket> {
        let logs = policy.windows.iter().map(|w| Log { window: *w, slots: VecDeque::new() }).collect();
        Arc::new(Bucket { policy, state: Mutex::new(BucketState { logs, blocked_until: None, next_id: 0 }) })
    }

    /// Time until one more request fits; `None` = wait for an in-flight one.
    fn wait(&self, now: Instant) -> Option<Duration> {
        let mut st = self.state.lock().unwrap();
        let blocked = st.blocked_until.map(|b| b.saturating_duration_since(now)).unwrap_or_default();
        let mut wait = blocked;
        for log in &mut st.logs {
            wait = wait.max(log.wait(now)?);
        }
        Some(wait)
    }

    fn claim(&self, done: Option<Instant>) -> u64 {
        let mut st = self.state.lock().unwrap();
        st.next_id += 1;
        let id = st.next_id;
        for log in &mut st.logs {
            log.slots.push_back(Slot { id, done });
        }
        id
    }

    fn finish(&self, id: u64, at: Instant) {
        let mut st = self.state.lock().unwrap();
        for log in &mut st.logs {
            // Ids only grow, so each log is sorted by id.
            if let Ok(i) = log.slots.binary_search_by_key(&id, |s| s.id) {
                log.slots[i].done = Some(at);
            }
        }
    }

    /// Requests that fit now, over all windows.
    pub fn remaining(&self) -> u32 {
        let now = Instant::now();
        let mut st = self.state.lock().unwrap();
        if st.blocked_until.is_some_and(|b| b > now) {
            return 0;
        }
        st.logs
            .iter_mut()
            .map(|l| {
                l.expire(now);
                l.window.limit.saturating_sub(l.slots.len() as u32)
            })
            .min()
            .unwrap_or(u32::MAX)
    }

    /// Milliseconds until one more request fits (0 if it fits now).
    pub fn wait_ms(&self) -> u64 {
        self.wait(Instant::now()).map(|d| d.as_millis() as u64).unwrap_or(1)
    }

    /// Block the bucket for `d` (a Retry-After, or a vendor-reported reset).
    pub fn block_for(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut st = self.state.lock().unwrap();
        st.blocked_until = Some(st.blocked_until.map_or(until, |b| b.max(until)));
    }

    /// Follow what the vendor's rate headers say about this bucket.
    pub fn observe_headers(&self, headers: &[(String, String)]) {
        let value = |name: &str| {
            headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.trim().parse::<i64>().ok())
        };
        let now = Instant::now();
        for h in &self.policy.headers {
            let Some(v) = value(&h.name) else { continue };
            let mut st = self.state.lock().unwrap();
            let Some(log) = st.logs.iter_mut().find(|l| l.window.seconds == h.window_seconds) else { continue };
            match h.meaning {
                // Never raise a configured limit; a lower vendor limit wins.
                HeaderMeaning::Limit if v > 0 && (v as u32) < log.window.limit => log.window.limit = v as u32,
                HeaderMeaning::Remaining => {
                    log.expire(now);
                    let ours = log.window.limit.saturating_sub(log.slots.len() as u32) as i64;
                    let theirs = v.max(0);
                    // Someone else spends this credential: count their
                    // requests as ours, done now.
                    for _ in 0..(ours - theirs).max(0) {
                        st.next_id += 1;
                        let id = st.next_id;
                        if let Some(log) = st.logs.iter_mut().find(|l| l.window.seconds == h.window_seconds) {
                            log.slots.push_back(Slot { id, done: Some(now) });
                        }
                    }
                }
                _ => {}
            }
        }
        // A reset header with remaining 0 tells exactly how long to wait.
        for h in self.policy.headers.iter().filter(|h| matches!(h.meaning, HeaderMeaning::ResetSeconds | HeaderMeaning::ResetAt)) {
            let exhausted = self.policy.headers.iter().any(|r| {
                r.meaning == HeaderMeaning::Remaining && r.window_seconds == h.window_seconds && value(&r.name) == Some(0)
            });
            let Some(v) = value(&h.name).filter(|_| exhausted) else { continue };
            let secs = match h.meaning {
                HeaderMeaning::ResetAt => v - std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0),
                _ => v,
            };
            if secs > 0 {
                self.block_for(Duration::from_secs(secs as u64));
            }
        }
    }
}

impl Permit {
    /// Stamp the request's slots with the time its response arrived.
    pub fn finish(self) {
        let now = Instant::now();
        for (bucket, id) in &self.claims {
            bucket.finish(*id, now);
        }
    }
}

/// Wait until every bucket has room, then claim a slot in each, atomically
/// with respect to other callers. Fails fast when the wait would exceed
/// `max_wait`.
pub async fn acquire(buckets: &[Arc<Bucket>], max_wait: Duration) -> Result<Permit, WouldWait> {
    let started = Instant::now();
    // One lock for the whole check-and-claim so two callers cannot both see
    // the last free slot.
    static CLAIM: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    loop {
        let guard = CLAIM.lock().await;
        let now = Instant::now();
        let mut wait = Duration::ZERO;
        let mut worst = None;
        for b in buckets {
            let w = b.wait(now).unwrap_or(Duration::from_millis(2));
            if w > wait {
                wait = w;
                worst = Some(b);
            }
        }
        if wait.is_zero() {
            let claims = buckets.iter().map(|b| (b.clone(), b.claim(None))).collect();
            return Ok(Permit { claims });
        }
        drop(guard);
        if started.elapsed() + wait > max_wait {
            return Err(WouldWait { bucket: worst.map(|b| b.policy.name.clone()).unwrap_or_default(), retry_after: wait });
        }
        tokio::time::sleep(wait).await;
    }
}

/// Claim `cost` slots now (for `rate-limit.acquire`), stamped as done.
pub async fn reserve(bucket: &Arc<Bucket>, cost: u32, max_wait: Duration) -> Result<(), WouldWait> {
    for _ in 0..cost {
        acquire(std::slice::from_ref(bucket), max_wait).await?.finish();
    }
    Ok(())
}

/// Every bucket of the host, keyed by (credential identity, policy name).
#[derive(Default)]
pub struct Registry {
    buckets: Mutex<BTreeMap<(String, String), Arc<Bucket>>>,
}

impl Registry {
    /// The bucket for `credential` and `policy`, created on first use. The
    /// first caller's windows win, so two connectors sharing a credential
    /// share one count.
    pub fn bucket(&self, credential: &str, policy: &Policy) -> Arc<Bucket> {
        let mut map = self.buckets.lock().unwrap();
        map.entry((credential.to_string(), policy.name.clone())).or_insert_with(|| Bucket::new(policy.clone())).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(limit: u32, seconds: u32) -> Policy {
        Policy { name: "p".into(), windows: vec![Window { limit, seconds }], headers: vec![] }
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_than_limit_in_any_window() {
        let b = Bucket::new(policy(5, 1));
        let mut sent = Vec::new();
        for _ in 0..23 {
            acquire(&[b.clone()], Duration::from_secs(60)).await.unwrap().finish();
            sent.push(Instant::now());
        }
        for (i, t) in sent.iter().enumerate() {
            let in_window = sent[i..].iter().filter(|u| **u < *t + Duration::from_secs(1)).count();
            assert!(in_window <= 5, "{in_window} requests within one second starting at #{i}");
        }
        // It waited only as long as needed: 23 requests at 5/s take ~4 s.
        let span = *sent.last().unwrap() - sent[0];
        assert!(span < Duration::from_millis(4100) && span >= Duration::from_secs(4), "{span:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_requests_count_until_they_finish() {
        let b = Bucket::new(policy(1, 1));
        let permit = acquire(&[b.clone()], Duration::from_secs(60)).await.unwrap();
        tokio::time::advance(Duration::from_secs(5)).await;
        // Still in flight: the vendor may count it any moment now.
        assert_eq!(b.remaining(), 0);
        permit.finish();
        tokio::time::advance(Duration::from_millis(999)).await;
        assert_eq!(b.remaining(), 0);
        tokio::time::advance(Duration::from_millis(10)).await;
        assert_eq!(b.remaining(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn refuses_to_wait_past_the_bound() {
        let b = Bucket::new(policy(1, 60));
        acquire(&[b.clone()], Duration::from_secs(1)).await.unwrap().finish();
        let err = acquire(&[b.clone()], Duration::from_secs(1)).await.err().unwrap();
        assert_eq!(err.bucket, "p");
        assert!(err.retry_after > Duration::from_secs(59));
    }

    #[tokio::test(start_paused = true)]
    async fn vendor_headers_block_and_shrink_the_budget() {
        let mut p = policy(10, 60);
        p.headers = vec![
            RateHeader { name: "x-remaining".into(), meaning: HeaderMeaning::Remaining, window_seconds: 60 },
            RateHeader { name: "x-reset".into(), meaning: HeaderMeaning::ResetSeconds, window_seconds: 60 },
        ];
        let b = Bucket::new(p);
        b.observe_headers(&[("X-Remaining".into(), "3".into())]);
        assert_eq!(b.remaining(), 3);
        b.observe_headers(&[("x-remaining".into(), "0".into()), ("x-reset".into(), "30".into())]);
        assert_eq!(b.remaining(), 0);
        assert!(b.wait_ms() >= 29_000);
        b.block_for(Duration::from_secs(90));
        assert!(b.wait_ms() >= 89_000);
    }

    #[tokio::test(start_paused = true)]
    async fn shared_credential_shares_the_bucket() {
        let r = Registry::default();
        let a = r.bucket("cred-1", &policy(2, 60));
        let b = r.bucket("cred-1", &policy(2, 60));
        let c = r.bucket("cred-2", &policy(2, 60));
        acquire(&[a.clone()], Duration::ZERO).await.unwrap().finish();
        acquire(&[a.clone()], Duration::ZERO).await.unwrap().finish();
        assert!(acquire(&[b], Duration::ZERO).await.is_err());
        assert!(acquire(&[c], Duration::ZERO).await.is_ok());
    }
}
