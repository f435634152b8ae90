//! Durable state: plugin key-value state, webhook deliveries, events, their
//! dedupe keys and dispatch state. [`Store`] is the contract; SQLite (WAL,
//! the embedded default) implements it in `sqlite*.rs`, PostgreSQL (several
//! hosts on one database) in `postgres*.rs`. Migrations are versioned files
//! in `host/migrations/<engine>/`, applied in order, each once. The
//! behaviour both must have is tested once, against both, in
//! `tests/store`.
mod postgres;
mod postgres_flows;
mod postgres_ledger;
mod sqlite;
mod sqlite_flows;
mod sqlite_ledger;
mod sqlite_writer;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use crate::manifest::Event;
use anyhow::Result;
use serde::Serialize;

/// How long dedupe keys are kept at least (WICS retries for 24 h; three
/// days leaves room for a long outage on our side).
pub const DEDUPE_RETENTION_MS: i64 = 3 * 24 * 3600 * 1000;

/// A webhook request as recorded: headers with secrets redacted.
#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    pub connector: String,
    pub received_at: i64,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// An accepted delivery and its events. Events are stored once and matched
/// to subscribers when they are dispatched ([`Store::route`]).
#[derive(Debug, Clone)]
pub struct Incoming {
    pub delivery: DeliveryRecord,
    pub events: Vec<Event>,
}

/// A refused webhook request as recorded: body already cut to the
/// retention's prefix.
#[derive(Debug, Clone)]
pub struct RefusedDelivery {
    pub delivery: DeliveryRecord,
    pub http_status: u16,
    pub reason: String,
}

/// An event not yet matched to its subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrouted {
    pub seq: i64,
    pub connector: String,
    pub topic: String,
    pub received_at: i64,
    pub subject: Option<String>,
}

/// Rows dropped by one [`Store::prune`], per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    pub dedupe: usize,
    pub deliveries: usize,
    pub refusals: usize,
    pub events: usize,
    pub runs: usize,
    pub steps: usize,
    /// Finished flows (with their calls and the events they took).
    pub flows: usize,
    /// Events no flow took, past the events' retention.
    pub flow_events: usize,
}

impl Pruned {
    pub fn total(&self) -> usize {
        self.dedupe + self.deliveries + self.refusals + self.events + self.runs + self.steps + self.flows + self.flow_events
    }
}

/// A connector's `kv` quota.
#[derive(Debug, Clone, Copy)]
pub struct KvQuota {
    pub max_keys: u64,
    pub max_bytes: u64,
}

/// A `kv_set` refused because the connector's quota is full; the store is
/// unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvQuotaExceeded(pub String);

impl std::fmt::Display for KvQuotaExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KvQuotaExceeded {}

/// What committing one [`Incoming`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Committed {
    pub delivery_id: i64,
    pub new_events: usize,
    pub duplicates: usize,
}

/// What is delivered in order: one subscriber's events of one topic about
/// one subject (`""` for events without a subject). Different lanes are
/// delivered in parallel, up to `dispatch.concurrency`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lane {
    pub subscriber: String,
    pub connector: String,
    pub topic: String,
    pub subject: String,
}

/// One dispatch that is due: the head of its [`Lane`], so lanes are
/// delivered in order.
#[derive(Debug, Clone)]
pub struct Due {
    pub seq: i64,
    pub subscriber: String,
    pub attempts: u32,
    pub event: Event,
    pub connector: String,
}

impl Due {
    pub fn lane(&self) -> Lane {
        Lane { subscriber: self.subscriber.clone(), connector: self.connector.clone(), topic: self.event.topic.clone(), subject: self.event.subject.clone().unwrap_or_default() }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EventSummary {
    pub seq: i64,
    pub connector: String,
    pub topic: String,
    pub dedupe_id: String,
    pub subject: Option<String>,
    pub received_at: i64,
    /// pending | delivered | dead | unrouted
    pub status: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DispatchState {
    pub subscriber: String,
    pub status: String,
    pub attempts: u32,
    pub next_at: i64,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub subscriber: String,
    pub at: i64,
    pub ok: bool,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventDetail {
    pub summary: EventSummary,
    pub occurred_at: Option<String>,
    pub payload: serde_json::Value,
    pub delivery_id: Option<i64>,
    pub dispatches: Vec<DispatchState>,
    pub attempts: Vec<Attempt>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    pub id: i64,
    pub connector: String,
    pub received_at: i64,
    pub http_status: u16,
    pub reason: String,
    pub headers: serde_json::Value,
    pub body: String,
}

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub connector: Option<String>,
    pub topic: Option<String>,
    pub status: Option<String>,
    pub limit: usize,
}

/// Which runs `Store::runs` returns, newest first.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub script: Option<String>,
    pub function: Option<String>,
    pub outcome: Option<RunOutcome>,
    /// 0: 50.
    pub limit: usize,
}

/// How a run ended, or that it has not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Ok,
    Failed,
    /// The process died during the run (marked at the next start).
    Interrupted,
    Running,
}

impl RunOutcome {
    const ALL: [RunOutcome; 4] = [RunOutcome::Ok, RunOutcome::Failed, RunOutcome::Interrupted, RunOutcome::Running];

    /// As `spoke runs list --outcome` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Ok => "ok",
            RunOutcome::Failed => "failed",
            RunOutcome::Interrupted => "interrupted",
            RunOutcome::Running => "running",
        }
    }

    /// [`RunRecord::outcome`] as stored: `None` while running.
    pub fn stored(self) -> Option<&'static str> {
        match self {
            RunOutcome::Ok => Some("ok"),
            RunOutcome::Failed => Some("error"),
            RunOutcome::Interrupted => Some("interrupted"),
            RunOutcome::Running => None,
        }
    }

    pub fn from_stored(outcome: Option<&str>) -> Option<RunOutcome> {
        RunOutcome::ALL.into_iter().find(|o| o.stored() == outcome)
    }
}

impl std::str::FromStr for RunOutcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        RunOutcome::ALL.into_iter().find(|o| o.as_str() == s).ok_or_else(|| format!("{s:?} is not an outcome: ok, failed, interrupted or running"))
    }
}

/// At most this many keys per `state_list` answer: a script's whole list
/// fits in one run's memory, and more says the prefix is too broad.
pub const STATE_LIST_MAX: usize = 10_000;

#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub script: String,
    pub version: i64,
    pub function: String,
    pub trigger: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub outcome: Option<String>,
    pub error: Option<String>,
    pub location: Option<String>,
    pub steps: serde_json::Value,
    /// The run's own log lines: `{at, level, message}`.
    pub logs: serde_json::Value,
    /// The flow this run was a wake of.
    pub flow_key: Option<String>,
}

/// One line of a run's own log.
#[derive(Debug, Clone, Serialize)]
pub struct RunLogLine {
    pub at: i64,
    pub level: &'static str,
    pub message: String,
}

/// What a run logged, kept with its record (bounded by the caller).
#[derive(Debug, Clone, Default)]
pub struct RunLogs {
    pub lines: Vec<RunLogLine>,
    pub flow_key: Option<String>,
}

/// Dispatches by status (pending, delivered, dead) and events not yet
/// routed (unrouted), with when the oldest one still waiting arrived.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Backlog {
    pub counts: Vec<(String, i64)>,
    pub oldest_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScriptStatus {
    pub name: String,
    pub version: i64,
    pub loaded_at: i64,
    pub triggers: serde_json::Value,
    pub error: Option<String>,
    pub error_at: Option<i64>,
    /// When its file was removed; the row stays so versions keep counting.
    pub removed_at: Option<i64>,
    /// The last change of triggers: `{version, at, added, removed}`.
    pub trigger_change: Option<serde_json::Value>,
    pub last_run: Option<RunRecord>,
}

/// What the host needs from durable storage. SQLite is the embedded
/// engine; a PostgreSQL engine implements the same for more than one node.
/// The rate ledger ([`crate::rate_limit::ledger`]) and flows
/// ([`crate::flow::store`]) are part of the contract: every engine keeps
/// budgets and flows where all its hosts see them.
pub trait Store: crate::rate_limit::LedgerStore + crate::flow::FlowStore + Send + Sync {
    fn kv_get(&self, connector: &str, key: &str) -> Result<Option<Vec<u8>>>;
    /// Set a key unless the connector's quota would be exceeded (then the
    /// error is a [`KvQuotaExceeded`] and nothing changed).
    fn kv_set(&self, connector: &str, key: &str, value: &[u8], quota: KvQuota) -> Result<()>;
    fn kv_delete(&self, connector: &str, key: &str) -> Result<()>;

    /// Commit many accepted deliveries in one transaction (one fsync).
    /// Events whose dedupe id was seen before are recorded as duplicates and
    /// get no dispatches.
    fn commit(&self, batch: &[Incoming]) -> Result<Vec<Committed>>;
    /// Record refused deliveries with their reasons, keeping the newest
    /// `keep` refusals.
    fn record_refusals(&self, batch: &[RefusedDelivery], keep: u64) -> Result<()>;

    /// Events not yet matched to subscribers, after `after_seq` in order.
    fn unrouted(&self, after_seq: i64, limit: usize) -> Result<Vec<Unrouted>>;
    /// Match events to subscribers: one pending dispatch per (event,
    /// subscriber); an event with none is settled as unrouted.
    fn route(&self, routes: &[(Unrouted, Vec<String>)], now: i64) -> Result<()>;

    /// Claim heads of lanes whose next attempt is due at `now`, at most
    /// `limit`, for `claim.owner` until `claim.until`. A head claimed by
    /// another owner whose lease has not ended is skipped (and so is its
    /// lane: only heads are due), so each dispatch is attempted by one host
    /// at a time and a dead host's claims come free when its lease ends.
    /// Lanes in `busy` (this host is delivering them) are passed over: at
    /// most `limit` heads of other lanes are claimed.
    fn due(&self, claim: &Claim, now: i64, limit: usize, busy: &std::collections::HashSet<Lane>) -> Result<Vec<Due>>;
    /// Claim the next pending dispatch of a lane after `after_seq`, if it
    /// is due and not claimed by another owner: a lane worker keeps going
    /// without searching every lane again.
    fn lane_next(&self, lane: &Lane, after_seq: i64, claim: &Claim, now: i64) -> Result<Option<Due>>;
    /// When the earliest pending dispatch is due, if any.
    fn next_due_at(&self) -> Result<Option<i64>>;
    /// Free the claims held by processes of `machine` that are gone
    /// (`alive(pid)` is false): a host restarted after a crash need not
    /// wait out its predecessor's leases. Returns how many.
    fn release_orphan_claims(&self, machine: &str, alive: &dyn Fn(i64) -> bool) -> Result<usize>;
    /// A delivered dispatch (its claim ends with it).
    fn mark_delivered(&self, seq: i64, subscriber: &str, now: i64) -> Result<()>;
    /// A failed attempt: retry at `retry_at`, or dead-letter when `None`;
    /// its claim ends.
    fn mark_failed(&self, seq: i64, subscriber: &str, now: i64, error: &str, retry_at: Option<i64>) -> Result<()>;
    /// Make an event's dispatches (all, or only dead ones) pending again.
    fn replay(&self, seq: i64, now: i64) -> Result<usize>;
    fn replay_dead(&self, now: i64) -> Result<usize>;

    fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventSummary>>;
    fn event(&self, seq: i64) -> Result<Option<EventDetail>>;
    fn refusals(&self, limit: usize) -> Result<Vec<Refusal>>;
    /// Drop dedupe keys older than the retention.
    fn prune_dedupe(&self, now: i64) -> Result<usize>;
    /// Drop what the retention no longer keeps (dedupe keys included).
    fn prune(&self, now: i64, retention: &crate::config::Retention) -> Result<Pruned>;

    /// A run begins; it records this [`machine`] and process id.
    fn run_start(&self, script: &str, version: i64, function: &str, trigger: &str, now: i64) -> Result<i64>;
    /// Mark runs left running on this [`machine`] by a process that is gone
    /// (`alive(pid)` is false) as interrupted. Returns how many. Runs of
    /// other machines are theirs to judge.
    fn interrupt_orphan_runs(&self, now: i64, alive: &dyn Fn(i64) -> bool) -> Result<usize>;
    fn run_finish(&self, id: i64, now: i64, error: Option<(&str, Option<&str>)>, steps: &[String], logs: &RunLogs) -> Result<()>;
    /// The delivery backlog now (`spoke_events`, the status page).
    fn backlog(&self) -> Result<Backlog>;
    fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>>;
    fn run(&self, id: i64) -> Result<Option<RunRecord>>;
    fn step_get(&self, script: &str, key: &str) -> Result<Option<String>>;
    fn step_put(&self, script: &str, key: &str, result: &str, run_id: i64, now: i64) -> Result<()>;
    fn state_get(&self, script: &str, key: &str) -> Result<Option<String>>;
    fn state_set(&self, script: &str, key: &str, value: &str, now: i64) -> Result<()>;
    fn state_delete(&self, script: &str, key: &str) -> Result<()>;
    /// Compare-and-swap: write `value` only if the key still holds
    /// `expected` (`None`: absent). Returns whether it was written. Atomic
    /// across processes sharing the store.
    fn state_swap(&self, script: &str, key: &str, expected: Option<&str>, value: &str, now: i64) -> Result<bool>;
    /// Add `by` to the integer at `key` (absent: 0) in one atomic write;
    /// the new value. An error if the key holds anything but an integer.
    fn state_incr(&self, script: &str, key: &str, by: i64, now: i64) -> Result<i64>;
    /// Keys starting with `prefix` and their values, sorted by key, at most
    /// `limit` of them.
    fn state_list(&self, script: &str, prefix: &str, limit: usize) -> Result<Vec<(String, String)>>;
    /// Record a (re)load: a new version, or an error that left the old one.
    /// `change` is set when the triggers differ from the previous version's;
    /// `hash` is the content hash of the version's file.
    fn script_loaded(&self, name: &str, version: i64, hash: &str, triggers: &serde_json::Value, change: Option<&serde_json::Value>, now: i64) -> Result<()>;
    /// The highest version a script ever had here (removed ones included),
    /// so a re-created file does not start again at 1.
    fn script_version(&self, name: &str) -> Result<i64>;
    /// The content hash of that highest version, if recorded.
    fn script_hash(&self, name: &str) -> Result<Option<String>>;
    fn script_error(&self, name: &str, error: &str, now: i64) -> Result<()>;
    fn script_removed(&self, name: &str, now: i64) -> Result<()>;
    fn scripts(&self) -> Result<Vec<ScriptStatus>>;
    /// Claim schedule tick `tick` (ms since 1970) of `script`'s `function`
    /// for `owner`: true for the one caller, of all hosts sharing the
    /// store, that fires it.
    fn schedule_claim(&self, script: &str, function: &str, tick: i64, owner: &str) -> Result<bool>;
}

/// Who claims work, until when (ms since 1970).
#[derive(Debug, Clone)]
pub struct Claim {
    /// `machine:pid:n`, unique per dispatcher.
    pub owner: String,
    pub until: i64,
}

/// This machine's name (`/proc/sys/kernel/hostname`, else `localhost`):
/// with a process id it says who holds a lease and whether it is alive.
pub fn machine() -> &'static str {
    static MACHINE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    MACHINE.get_or_init(|| std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "localhost".into()))
}

/// Whether `owner` (`machine:pid:n`) is a process of `machine` that is
/// gone. Owners on other machines are never judged gone: their leases end
/// on their own.
pub fn owner_gone(owner: &str, machine: &str, alive: &dyn Fn(i64) -> bool) -> bool {
    let mut parts = owner.rsplitn(3, ':');
    let (_n, pid, m) = (parts.next(), parts.next().and_then(|p| p.parse::<i64>().ok()), parts.next());
    m == Some(machine) && pid.is_some_and(|pid| !alive(pid))
}

/// A name for one claimant in this process: `machine:pid:n`.
pub fn new_owner() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    format!("{}:{}:{}", machine(), std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// Open the configured store: the SQLite file or the PostgreSQL database,
/// with its migrations applied.
pub fn open(location: &crate::config::StoreLocation) -> Result<std::sync::Arc<dyn Store>> {
    match location {
        crate::config::StoreLocation::Sqlite(path) => Ok(std::sync::Arc::new(SqliteStore::open(path)?)),
        crate::config::StoreLocation::Postgres(pg) => Ok(std::sync::Arc::new(PgStore::open(pg)?)),
    }
}

/// Headers as stored: a JSON list of `[name, value]` pairs.
fn headers_json(headers: &[(String, String)]) -> String {
    serde_json::to_string(&headers.iter().map(|(k, v)| serde_json::json!([k, v])).collect::<Vec<_>>()).unwrap_or_default()
}

/// Stored JSON text as a value; text that is not JSON stays a string.
fn json_text(text: String) -> serde_json::Value {
    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
}

/// An event's status, from `events e` and its dispatches (both engines).
const STATUS_SQL: &str = "CASE
    WHEN e.routed = 0 THEN 'waiting'
    WHEN EXISTS (SELECT 1 FROM dispatches d WHERE d.event_seq = e.seq AND d.status = 'dead') THEN 'dead'
    WHEN EXISTS (SELECT 1 FROM dispatches d WHERE d.event_seq = e.seq AND d.status = 'pending') THEN 'pending'
    WHEN EXISTS (SELECT 1 FROM dispatches d WHERE d.event_seq = e.seq) THEN 'delivered'
    ELSE 'unrouted' END";

const RUN_COLUMNS: &str = "id, script, version, function, trigger, started_at, ended_at, outcome, error, location, steps, logs, flow_key";

/// The least text greater than every text starting with `prefix` (keys
/// compare as UTF-8 bytes, which is code point order: SQLite's default,
/// `COLLATE "C"` on PostgreSQL): the prefix with its last character raised
/// by one. `None` when nothing is above.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        // The next scalar value, skipping the surrogate gap.
        let next = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// A connector's kv usage (keys, bytes) after writing `key` = `value` over
/// an entry of `old` bytes (if any), or the [`KvQuotaExceeded`] it would
/// cause. A key counts its name and value bytes.
fn kv_usage_after(connector: &str, key: &str, value: &[u8], old: Option<i64>, (keys, bytes): (i64, i64), quota: KvQuota) -> Result<(i64, i64)> {
    let entry = (key.len() + value.len()) as i64;
    let (new_keys, new_bytes) = match old {
        Some(old_len) => (keys, bytes - (key.len() as i64 + old_len) + entry),
        None => (keys + 1, bytes + entry),
    };
    if new_keys as u64 > quota.max_keys && old.is_none() {
        return Err(KvQuotaExceeded(format!("kv quota: connector {connector} holds {keys} keys, its limit (quotas.kv_max_keys = {}); delete keys first", quota.max_keys)).into());
    }
    if new_bytes as u64 > quota.max_bytes && new_bytes > bytes {
        return Err(KvQuotaExceeded(format!(
            "kv quota: connector {connector} holds {bytes} bytes; this write would make {new_bytes}, above its limit (quotas.kv_max_bytes = {})",
            quota.max_bytes
        ))
        .into());
    }
    Ok((new_keys, new_bytes))
}

/// Why `state_incr` changed nothing.
fn incr_refused(key: &str, held: Option<String>, by: i64) -> anyhow::Error {
    anyhow::anyhow!("{key} holds {}: not an integer, or adding {by} overflows", held.unwrap_or_default())
}

/// Why an interrupted run ended, as recorded.
const INTERRUPTED: &str = "the host stopped during this run (crash, kill or power loss); steps it stored are kept";

/// A tick is only asked about around its time: a day of them is plenty.
const SCHEDULE_TICKS_KEPT_MS: i64 = 86_400_000;

/// Rows deleted per statement while pruning, so a large backlog never
/// holds the store for long.
const PRUNE_BATCH: i64 = 5000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_first_text_after_the_prefix() {
        assert_eq!(prefix_end("lead:").as_deref(), Some("lead;"));
        assert_eq!(prefix_end("a\u{D7FF}"), Some("a\u{E000}".to_string()), "past the surrogates");
        assert_eq!(prefix_end("a\u{10FFFF}"), Some("b".to_string()));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
    }

    #[test]
    fn an_owner_is_gone_only_when_it_is_a_dead_process_of_this_machine() {
        let alive = |pid: i64| pid == 7;
        assert!(owner_gone("m1:8:1", "m1", &alive));
        assert!(!owner_gone("m1:7:3", "m1", &alive), "pid 7 is alive");
        assert!(!owner_gone("m2:8:1", "m1", &alive), "another machine's owner is judged by its lease");
        assert!(owner_gone("host.with:colons:8:2", "host.with:colons", &alive), "the machine part may hold colons");
        assert!(!owner_gone("m1:x:1", "m1", &alive));
        assert!(!owner_gone("garbage", "m1", &alive));
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
