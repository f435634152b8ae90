//! Simulator of the WICS Service Layer: the 32 documented endpoints over
//! in-memory state, Basic auth per API user, the `{code, message, success,
//! data}` envelope, filters with operators, pagination, the escalating rate
//! limit blocks, and webhook delivery with WICS' retry schedule.
//!
//! Control API (JSON, not rate limited, not counted as requests):
//! `POST /_control/advance {"ms"}`, `POST /_control/ship-order {"reference",
//! "trackAndTrace"?, "shipperCode"?, "shipperName"?, "serialNumbers"? {item: [..]}}`,
//! `POST /_control/receive-announcement {"identifier", "lines"? [{"itemCode",
//! "quantityReceived", "serialNumbers"?}]}`, `POST /_control/stock {"itemCode",
//! "quantity", "location"?}`, `POST /_control/rma {"orderReference", "lines"}`,
//! `POST /_control/limits {..Limits}`, `POST /_control/deliver`,
//! `POST /_control/reset`, `GET /_control/stats`, `GET /_control/deliveries`.
mod actions;
mod api;
mod documented;
mod control;
pub mod delivery;
pub mod ratelimit;
pub mod store;

use crate::clock::Clock;
use crate::serve::{self, Server};
use base64::Engine;
use delivery::Delivery;
pub use ratelimit::Limits;
use ratelimit::{Refusal, UserLimiter};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
pub use store::State;

/// The topics WICS publishes.
pub const TOPICS: [&str; 9] =
    ["SHIPMENT", "RECEIPT", "STOCK", "STOCKMUTATION", "ANNOUNCEMENTSTATUS", "ORDERSTATUS", "ORDERLINESTATUS", "PICKSLIPLINESTATUS", "RMA"];

#[derive(Debug, Clone)]
pub struct Options {
    /// API users as (apikey, apisecret); each has its own limits and webhooks.
    pub users: Vec<(String, String)>,
    /// Default: the documented 150/minute, 20,000/day, blocks of 1, 5, 15 minutes.
    pub limits: Limits,
    /// Start with the sample items and stock of [`store::State::seed`].
    pub seed: bool,
    /// 0 picks a free port.
    pub port: u16,
}

impl Default for Options {
    fn default() -> Self {
        Options { users: vec![("demo-apikey".into(), "demo-apisecret".into())], limits: Limits::default(), seed: true, port: 0 }
    }
}

/// Everything the handlers share.
pub struct Shared {
    pub users: Vec<(String, String)>,
    pub seed: bool,
    pub clock: Clock,
    pub limits: Mutex<Limits>,
    pub limiters: Mutex<HashMap<String, UserLimiter>>,
    pub state: Mutex<State>,
    pub deliveries: Mutex<Vec<Delivery>>,
    pub violations: AtomicU64,
    pub requests: AtomicU64,
    next_delivery: AtomicU64,
}

impl Shared {
    fn fresh_state(&self) -> State {
        let mut state = State::new();
        if self.seed {
            state.seed();
        }
        state
    }

    /// The API key of a valid `Authorization: Basic` header.
    pub fn authenticate(&self, authorization: Option<&str>) -> Option<String> {
        let encoded = authorization?.trim().strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (key, secret) = text.split_once(':')?;
        self.users.iter().find(|(k, s)| k == key && s == secret).map(|(k, _)| k.clone())
    }

    /// Count a request of `apikey` against its limits.
    pub fn rate_check(&self, apikey: &str) -> Result<(), Refusal> {
        let limits = self.limits.lock().unwrap().clone();
        let mut limiters = self.limiters.lock().unwrap();
        let limiter = limiters.entry(apikey.to_string()).or_insert_with(|| UserLimiter::new(&limits));
        let result = limiter.check(self.clock.now_ms(), &limits);
        if result.is_err() {
            self.violations.fetch_add(1, Ordering::SeqCst);
        }
        result
    }

    /// Turn the events the last change produced into deliveries to every
    /// subscription of their topic.
    pub fn flush_outbox(self: &Arc<Self>) {
        let (events, subscriptions) = {
            let mut state = self.state.lock().unwrap();
            (std::mem::take(&mut state.outbox), state.subscriptions.clone())
        };
        if events.is_empty() {
            return;
        }
        let now = self.clock.now_ms();
        let mut deliveries = self.deliveries.lock().unwrap();
        for (topic, body) in events {
            for sub in subscriptions.iter().filter(|s| s.topic == topic) {
                let secret = self.users.iter().find(|(k, _)| *k == sub.apikey).map(|(_, s)| s.clone()).unwrap_or_default();
                let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", sub.apikey, secret));
                deliveries.push(Delivery {
                    id: self.next_delivery.fetch_add(1, Ordering::SeqCst) + 1,
                    topic: topic.clone(),
                    url: sub.url.clone(),
                    authorization: format!("Basic {credentials}"),
                    body: body.clone(),
                    first_attempt_ms: now,
                    attempts: 0,
                    next_due_ms: Some(now),
                    delivered: false,
                    given_up: false,
                    last_status: None,
                    in_flight: false,
                });
            }
        }
        drop(deliveries);
        let shared = self.clone();
        tokio::spawn(async move { shared.deliver_due().await });
    }

    /// Send every delivery that is due on the simulated clock.
    pub async fn deliver_due(&self) {
        let now = self.clock.now_ms();
        let due: Vec<Delivery> = {
            let mut deliveries = self.deliveries.lock().unwrap();
            deliveries
                .iter_mut()
                .filter(|d| !d.in_flight && d.next_due_ms.is_some_and(|at| at <= now))
                .map(|d| {
                    d.in_flight = true;
                    d.clone()
                })
                .collect()
        };
        let sends = due.into_iter().map(|d| async move {
            let status = delivery::post(&d.url, &d.authorization, d.body.to_string().as_bytes()).await;
            (d.id, status)
        });
        for (id, status) in futures_join(sends).await {
            let mut deliveries = self.deliveries.lock().unwrap();
            if let Some(d) = deliveries.iter_mut().find(|d| d.id == id) {
                d.in_flight = false;
                d.attempts += 1;
                if status == Some(200) {
                    d.succeeded();
                } else {
                    d.failed(status);
                }
            }
        }
    }
}

/// Run futures concurrently and collect their outputs (no extra dependency).
async fn futures_join<F: std::future::Future + Send + 'static>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        if let Ok(value) = handle.await {
            out.push(value);
        }
    }
    out
}

/// A running WICS simulator. Dropping it stops the server and the deliverer.
pub struct Simulator {
    pub server: Server,
    pub state: Arc<Shared>,
    ticker: tokio::task::JoinHandle<()>,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.ticker.abort();
    }
}

impl Simulator {
    pub async fn start(opts: Options) -> anyhow::Result<Simulator> {
        let limits = opts.limits.clone();
        let shared = Arc::new(Shared {
            users: opts.users.clone(),
            seed: opts.seed,
            clock: Clock::new(),
            limits: Mutex::new(limits),
            limiters: Mutex::new(HashMap::new()),
            state: Mutex::new(State::new()),
            deliveries: Mutex::new(Vec::new()),
            violations: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            next_delivery: AtomicU64::new(0),
        });
        *shared.state.lock().unwrap() = shared.fresh_state();
        let router = axum::Router::new()
            .route("/api/{*rest}", axum::routing::any(api::api))
            .merge(control::router())
            .with_state(shared.clone());
        let server = serve::serve(router, opts.port).await?;
        // Retries fall due on the simulated clock; look for them often.
        let ticking = shared.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
                ticking.deliver_due().await;
            }
        });
        Ok(Simulator { server, state: shared, ticker })
    }

    pub fn url(&self) -> String {
        self.server.url()
    }
    /// Kill a process right after a chosen write is answered; see [`crate::faults`].
    pub fn faults(&self) -> &crate::Faults {
        self.server.faults()
    }

    /// Requests refused for rate reasons since the start (or last reset).
    pub fn violations(&self) -> u64 {
        self.state.violations.load(Ordering::SeqCst)
    }

    /// Requests that reached `/api` (whatever their outcome).
    pub fn request_count(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    pub fn advance_ms(&self, ms: i64) {
        self.state.clock.advance_ms(ms);
    }

    pub fn set_limits(&self, limits: Limits) {
        self.state.set_limits(limits);
    }

    /// Ship an open order (emits ORDERSTATUS, ORDERLINESTATUS,
    /// PICKSLIPLINESTATUS, SHIPMENT, STOCK, STOCKMUTATION). Returns the shipment.
    pub fn ship_order(&self, request: Value) -> Result<Value, String> {
        self.act(|state, now| actions::ship_order(state, now, &request))
    }

    /// Receive an announcement (emits ANNOUNCEMENTSTATUS, RECEIPT, STOCK,
    /// STOCKMUTATION). Returns the receipt.
    pub fn receive_announcement(&self, request: Value) -> Result<Value, String> {
        self.act(|state, now| actions::receive_announcement(state, now, &request))
    }

    /// Change an item's stock by `quantity` (emits STOCK and STOCKMUTATION).
    pub fn change_stock(&self, request: Value) -> Result<Value, String> {
        self.act(|state, now| actions::change_stock(state, now, &request))
    }

    /// Register a return (emits RMA).
    pub fn register_return(&self, request: Value) -> Result<Value, String> {
        self.act(|state, _| actions::register_return(state, &request))
    }

    fn act(&self, action: impl FnOnce(&mut State, i64) -> Result<Value, String>) -> Result<Value, String> {
        let now = self.state.clock.now_ms();
        let result = action(&mut self.state.state.lock().unwrap(), now);
        self.state.flush_outbox();
        result
    }

    /// Send what is due now and wait for the answers.
    pub async fn deliver_due(&self) {
        self.state.deliver_due().await;
    }

    /// Every delivery so far, with its attempts and outcome.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state.deliveries.lock().unwrap().clone()
    }

    /// Back to the initial data; counters, limits, blocks and deliveries cleared.
    pub fn reset(&self) {
        self.state.reset();
    }
}

impl Shared {
    pub fn set_limits(&self, limits: Limits) {
        *self.limits.lock().unwrap() = limits.clone();
        for limiter in self.limiters.lock().unwrap().values_mut() {
            limiter.apply(&limits);
        }
    }

    pub fn reset(&self) {
        *self.state.lock().unwrap() = self.fresh_state();
        self.limiters.lock().unwrap().clear();
        self.deliveries.lock().unwrap().clear();
        self.violations.store(0, Ordering::SeqCst);
        self.requests.store(0, Ordering::SeqCst);
    }
}

/// `yyyy-mm-dd` and an RFC 3339 time (UTC) for simulated milliseconds.
pub fn dates(ms: i64) -> (String, String) {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil::civil_from_days(days);
    let date = format!("{year:04}-{month:02}-{day:02}");
    let (h, m, s, milli) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    let time = format!("{date}T{h:02}:{m:02}:{s:02}.{milli:03}+00:00");
    (date, time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(dates(0).0, "1970-01-01");
        assert_eq!(dates(1_631_491_200_000), ("2021-09-13".into(), "2021-09-13T00:00:00.000+00:00".into()));
    }
}
