//! What an operator measures: Prometheus metrics of one host, kept in a
//! registry the host owns (no process-global recorder, so an embedder's own
//! metrics and two hosts in one process stay apart). Counters move where
//! the thing happens; what the store knows (event backlog, flows by state,
//! budgets left) is read when `/metrics` is scraped, so it is never stale.
//!
//! Label values are bounded: connectors, operations, scripts and functions
//! come from the configuration and the loaded code, never from a request
//! (a webhook for an unknown connector counts as `connector="(unknown)"`).
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

/// Errors kept per connector for the status page.
const RECENT_ERRORS: usize = 20;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    connector: String,
    operation: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    connector: String,
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectorLabels {
    connector: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BucketLabels {
    connector: String,
    bucket: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    connector: String,
    /// requests: accepted | refused; events: new | duplicate
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DispatchLabels {
    /// delivered | retry | dead
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    script: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    /// script | plugin
    kind: String,
    /// ok | error
    result: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// A plugin call that failed, as the status page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RecentError {
    pub at: i64,
    pub operation: String,
    pub kind: String,
    pub message: String,
}

/// The host's metrics. Cheap to update from any thread.
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    call_seconds: Family<OperationLabels, Histogram, fn() -> Histogram>,
    rate_remaining: Family<BucketLabels, Gauge>,
    rate_pause_seconds: Family<BucketLabels, FloatGauge>,
    rate_waiting: Family<ConnectorLabels, Gauge>,
    rate_waits: Family<BucketLabels, Counter>,
    rate_wait_seconds: Family<BucketLabels, Counter<f64, AtomicU64>>,
    vendor_429: Family<BucketLabels, Counter>,
    webhooks: Family<WebhookLabels, Counter>,
    webhook_events: Family<WebhookLabels, Counter>,
    dispatches: Family<DispatchLabels, Counter>,
    events: Family<StatusLabels, Gauge>,
    backlog_age: FloatGauge,
    runs: Family<RunLabels, Counter>,
    flows: Family<StatusLabels, Gauge>,
    reloads: Family<ReloadLabels, Counter>,
    pool_in_use: Family<ConnectorLabels, Gauge>,
    pool_capacity: Gauge,
    recent: Mutex<BTreeMap<String, VecDeque<RecentError>>>,
}

fn call_histogram() -> Histogram {
    // 100 µs .. ~26 s: a warm plugin call up to a rate wait.
    Histogram::new(exponential_buckets(0.0001, 2.5, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("spoke");
        let m = Metrics {
            calls: Family::default(),
            call_seconds: Family::new_with_constructor(call_histogram),
            rate_remaining: Family::default(),
            rate_pause_seconds: Family::default(),
            rate_waiting: Family::default(),
            rate_waits: Family::default(),
            rate_wait_seconds: Family::default(),
            vendor_429: Family::default(),
            webhooks: Family::default(),
            webhook_events: Family::default(),
            dispatches: Family::default(),
            events: Family::default(),
            backlog_age: FloatGauge::default(),
            runs: Family::default(),
            flows: Family::default(),
            reloads: Family::default(),
            pool_in_use: Family::default(),
            pool_capacity: Gauge::default(),
            recent: Mutex::default(),
            registry: Registry::default(),
        };
        registry.register("plugin_calls", "Plugin operation calls by connector, operation and outcome (ok or the error kind)", m.calls.clone());
        registry.register("plugin_call_duration_seconds", "Plugin operation call latency, rate waits included", m.call_seconds.clone());
        registry.register("rate_budget_remaining", "Requests a bucket admits now (every process on the store counted)", m.rate_remaining.clone());
        registry.register("rate_pause_seconds", "Seconds until a bucket admits the next request (a vendor pause or a spent window)", m.rate_pause_seconds.clone());
        registry.register("rate_waiting_calls", "Calls waiting for rate budget right now", m.rate_waiting.clone());
        registry.register("rate_waits", "Calls that had to wait for rate budget, by the bucket that held them (\"(paused)\": a vendor pause)", m.rate_waits.clone());
        registry.register("rate_wait_seconds", "Time calls spent waiting for rate budget", m.rate_wait_seconds.clone());
        registry.register("vendor_429", "429 answers from a vendor, counted against every bucket the refused request drew from", m.vendor_429.clone());
        registry.register("webhooks", "Webhook requests by connector and result (accepted, refused)", m.webhooks.clone());
        registry.register("webhook_events", "Events in accepted webhooks by result (new, duplicate: seen before and dropped)", m.webhook_events.clone());
        registry.register("dispatches", "Event deliveries to subscribers by outcome (delivered, retry, dead)", m.dispatches.clone());
        registry.register("events", "Stored event dispatches by status (pending, delivered, dead) and events not yet routed (unrouted)", m.events.clone());
        registry.register("events_backlog_age_seconds", "Age of the oldest event still waiting for delivery or routing (0: none)", m.backlog_age.clone());
        registry.register("runs", "Script runs by script and outcome", m.runs.clone());
        registry.register("flows", "Durable flows by state", m.flows.clone());
        registry.register("reloads", "Hot reloads of scripts and plugins by result", m.reloads.clone());
        registry.register("instance_pool_in_use", "Plugin call slots in use per connector", m.pool_in_use.clone());
        registry.register("instance_pool_slots", "Plugin instance slots of the pooling allocator", m.pool_capacity.clone());
        Metrics { registry, ..m }
    }

    /// A finished plugin call: `Err(kind, message)` when it failed.
    pub fn call(&self, connector: &str, operation: &str, took: Duration, failed: Option<(&str, &str)>) {
        let outcome = failed.map(|(kind, _)| kind).unwrap_or("ok").to_string();
        self.calls.get_or_create(&CallLabels { connector: connector.into(), operation: operation.into(), outcome }).inc();
        self.call_seconds.get_or_create(&OperationLabels { connector: connector.into(), operation: operation.into() }).observe(took.as_secs_f64());
        if let Some((kind, message)) = failed {
            let mut recent = self.recent.lock().unwrap();
            let list = recent.entry(connector.to_string()).or_default();
            if list.len() == RECENT_ERRORS {
                list.pop_front();
            }
            list.push_back(RecentError { at: crate::store::now_ms(), operation: operation.into(), kind: kind.into(), message: message.chars().take(500).collect() });
        }
    }

    /// A connector's last failed calls, newest first.
    pub fn recent_errors(&self, connector: &str) -> Vec<RecentError> {
        self.recent.lock().unwrap().get(connector).map(|l| l.iter().rev().cloned().collect()).unwrap_or_default()
    }

    /// A call starts (`true`) or stops (`false`) waiting for rate budget.
    pub fn rate_waiting(&self, connector: &str, waiting: bool) {
        let g = self.rate_waiting.get_or_create(&ConnectorLabels { connector: connector.into() });
        if waiting {
            g.inc();
        } else {
            g.dec();
        }
    }

    /// Calls of `connector` waiting for rate budget right now.
    pub fn rate_waiting_now(&self, connector: &str) -> i64 {
        self.rate_waiting.get_or_create(&ConnectorLabels { connector: connector.into() }).get()
    }

    /// A wait for rate budget that ended in a grant; `bucket` is the policy
    /// that held it first, or `(paused)` for a vendor's pause of the whole
    /// credential.
    pub fn rate_waited(&self, connector: &str, bucket: &str, ms: u64) {
        let labels = BucketLabels { connector: connector.into(), bucket: bucket.into() };
        self.rate_waits.get_or_create(&labels).inc();
        self.rate_wait_seconds.get_or_create(&labels).inc_by(ms as f64 / 1000.0);
    }

    pub fn vendor_429(&self, connector: &str, buckets: &[String]) {
        for bucket in buckets {
            self.vendor_429.get_or_create(&BucketLabels { connector: connector.into(), bucket: bucket.clone() }).inc();
        }
    }

    /// A webhook request answered: accepted with its new and duplicate
    /// events, or refused.
    pub fn webhook(&self, connector: &str, result: WebhookResult) {
        let request = |result: &str| WebhookLabels { connector: connector.into(), result: result.into() };
        match result {
            WebhookResult::Accepted { new, duplicates } => {
                self.webhooks.get_or_create(&request("accepted")).inc();
                self.webhook_events.get_or_create(&request("new")).inc_by(new as u64);
                self.webhook_events.get_or_create(&request("duplicate")).inc_by(duplicates as u64);
            }
            WebhookResult::Refused => {
                self.webhooks.get_or_create(&request("refused")).inc();
            }
        }
    }

    /// A delivery attempt's outcome: delivered, retry or dead.
    pub fn dispatch(&self, outcome: &'static str) {
        self.dispatches.get_or_create(&DispatchLabels { outcome: outcome.into() }).inc();
    }

    pub fn run(&self, script: &str, outcome: &str) {
        self.runs.get_or_create(&RunLabels { script: script.into(), outcome: outcome.into() }).inc();
    }

    pub fn reload(&self, kind: &'static str, ok: bool) {
        self.reloads.get_or_create(&ReloadLabels { kind: kind.into(), result: if ok { "ok" } else { "error" }.into() }).inc();
    }

    /// The scrape-time readings, set just before encoding.
    pub fn set_snapshot(&self, snapshot: &Snapshot) {
        for (status, n) in &snapshot.backlog.counts {
            self.events.get_or_create(&StatusLabels { status: status.clone() }).set(*n);
        }
        let age_ms = snapshot.backlog.oldest_ms.map(|t| (crate::store::now_ms() - t).max(0)).unwrap_or(0);
        self.backlog_age.set(age_ms as f64 / 1000.0);
        // Every state, zero included: a dashboard sees "none in doubt".
        for status in crate::flow::STATES {
            let n = snapshot.flows.iter().find(|(s, _)| s == status).map(|(_, n)| *n).unwrap_or(0);
            self.flows.get_or_create(&StatusLabels { status: status.to_string() }).set(n);
        }
        for b in &snapshot.buckets {
            let labels = BucketLabels { connector: b.connector.clone(), bucket: b.bucket.clone() };
            self.rate_remaining.get_or_create(&labels).set(i64::from(b.remaining));
            self.rate_pause_seconds.get_or_create(&labels).set(b.wait_ms as f64 / 1000.0);
        }
        for (connector, n) in &snapshot.pool_in_use {
            self.pool_in_use.get_or_create(&ConnectorLabels { connector: connector.clone() }).set(*n);
        }
        self.pool_capacity.set(snapshot.pool_slots);
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

pub enum WebhookResult {
    Accepted { new: usize, duplicates: usize },
    Refused,
}

/// One bucket's budget as the ledger sees it now.
#[derive(Debug, Clone, Serialize)]
pub struct BucketReading {
    pub connector: String,
    pub bucket: String,
    pub remaining: u32,
    pub wait_ms: u64,
    /// Its windows, e.g. "60/60s, 1000/3600s".
    pub windows: String,
}

/// What `/metrics` reads from the store and the ledger at scrape time.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub backlog: crate::store::Backlog,
    pub flows: Vec<(String, i64)>,
    pub buckets: Vec<BucketReading>,
    pub pool_in_use: Vec<(String, i64)>,
    pub pool_slots: i64,
}
