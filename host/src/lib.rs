//! Spoke: a connector runtime. Vendor connectors run as WebAssembly
//! components; the host owns everything trusted — credentials, rate limits,
//! network access, durability.
//!
//! Embedding:
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let config = spoke::Config::load(std::path::Path::new("spoke.toml"))?;
//! let host = spoke::Host::start(config).await?;
//! let order = host.call("wics", "get_order", serde_json::json!({"reference": "SO-1"})).await?;
//! # Ok(()) }
//! ```
pub mod config;
pub mod config_builder;
pub mod connector;
pub mod dispatch;
pub mod engine;
pub mod error;
pub mod extend;
pub mod flow;
pub mod imports;
pub mod log_budget;
pub mod manifest;
pub mod metrics;
pub mod plugin;
pub mod rate_limit;
pub mod script;
pub mod server;
pub mod store;
pub mod time;
pub mod webhook;

pub use config::{Config, ConfigError, Secret};
pub use config_builder::ConfigBuilder;
pub use engine::{Engine, EngineBuilder};
pub use extend::RunOutcome;
pub use error::{CallError, ErrorKind};
pub use manifest::{Event, Manifest, Received};

use anyhow::{Context, Result};
use connector::{Binding, Shared};
use plugin::{EngineLimits, Plugin, Runtime};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// reqwest is built without a default TLS provider (to avoid a C build);
/// install ring's once per process. Embedders that build their own reqwest
/// clients before starting a host call this first.
pub fn install_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A running Spoke host: loaded plugins bound to configured connectors.
pub struct Host {
    config: Config,
    runtime: Runtime,
    shared: Arc<Shared>,
    plugins: RwLock<BTreeMap<String, Arc<Plugin>>>,
    /// Plugin files that did not load at start, with why.
    failed: Vec<(std::path::PathBuf, String)>,
    bindings: RwLock<BTreeMap<String, Arc<Binding>>>,
    dispatcher: Arc<dispatch::Dispatcher>,
    extensions: extend::Extensions,
    refusals: webhook::RefusalLog,
}

impl Host {
    /// Load every plugin in the configured folder and bind the configured
    /// connectors to them. A connector whose plugin is missing or cannot
    /// serve it is a config error naming the key.
    pub async fn start(config: Config) -> Result<Host> {
        install_tls();
        let runtime = Runtime::new(&config.cache_dir, EngineLimits::from_config(&config))?;
        let store = store::open(&config.store)?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("spoke/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        // A dead process's in-flight slot is released once its request has
        // certainly ended: the HTTP timeout plus reading the body.
        let lease = config.limits.http_timeout() * 2 + std::time::Duration::from_secs(5);
        let metrics = Arc::new(metrics::Metrics::new());
        let limiter = rate_limit::Limiter::new(store.clone(), lease, metrics.clone());
        let logs = Arc::new(log_budget::LogBudget::new(&config.quotas));
        let shared = Arc::new(Shared { http, store, limits: config.limits.clone(), limiter, config_source: config.source.clone(), quotas: config.quotas.clone(), logs, metrics });
        let refusals = webhook::RefusalLog::start(shared.store.clone(), &config.retention);

        let (loaded, failed) = runtime.load_dir(&config.plugins_dir).await?;
        let failed = failed.into_iter().map(|(path, e)| (path, format!("{e:#}"))).collect();
        let mut plugins: BTreeMap<String, Arc<Plugin>> = BTreeMap::new();
        for p in loaded {
            let name = p.manifest.name.clone();
            if let Some(other) = plugins.get(&name) {
                anyhow::bail!("two plugins are named {name}: {} and {}; remove or rename one", other.path.display(), p.path.display());
            }
            plugins.insert(name, Arc::new(p));
        }
        if config.cache_prune {
            runtime.prune_cache(plugins.values().map(|p| p.as_ref()));
        }
        let mut bindings = BTreeMap::new();
        for (name, c) in &config.connectors {
            let plugin = plugins.get(&c.plugin).cloned().ok_or_else(|| {
                let known: Vec<_> = plugins.keys().map(String::as_str).collect();
                config.error(format!("connectors.{name}.plugin"), format!("no plugin named {:?} in {} (loaded: {})", c.plugin, config.plugins_dir.display(), if known.is_empty() { "none".into() } else { known.join(", ") }))
            })?;
            bindings.insert(name.clone(), Arc::new(Binding::new(c, plugin, shared.clone())?));
        }
        let d = &config.dispatch;
        let dispatcher = dispatch::Dispatcher::new(
            shared.store.clone(),
            dispatch::RetryPolicy {
                max_attempts: d.max_attempts,
                first_backoff: std::time::Duration::from_secs_f64(d.first_backoff_secs),
                max_backoff: std::time::Duration::from_secs_f64(d.max_backoff_secs),
            },
            std::time::Duration::from_secs_f64(d.absent_hold_secs),
            config.retention.clone(),
            d.concurrency as usize,
            // A delivery is a script run or a forward: bounded by the longer
            // of the two, plus the grace flows allow.
            std::time::Duration::from_secs_f64(config.scripts.max_run_secs.max(config.limits.http_timeout_secs) + config.flows.lease_grace_secs),
            shared.metrics.clone(),
        );
        for (name, sub) in &config.subscribers {
            dispatcher.subscribe(Arc::new(dispatch::Forwarder { name: format!("forward:{name}"), url: sub.url.clone(), topics: sub.topics.clone(), http: shared.http.clone() }));
        }
        Ok(Host { config, runtime, shared, plugins: RwLock::new(plugins), failed, bindings: RwLock::new(bindings), dispatcher, extensions: Default::default(), refusals })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &Arc<dyn store::Store> {
        &self.shared.store
    }

    /// Where refused webhooks are recorded, off the request path.
    pub fn refusals(&self) -> &webhook::RefusalLog {
        &self.refusals
    }

    /// Log quotas of plugins and scripts, and what they dropped.
    pub fn log_budget(&self) -> &Arc<log_budget::LogBudget> {
        &self.shared.logs
    }

    /// Loaded plugins, by manifest name.
    pub fn plugins(&self) -> Vec<Arc<Plugin>> {
        self.plugins.read().unwrap().values().cloned().collect()
    }

    /// Plugin files that failed to load at start, with the error (every
    /// problem `check` found, or why the file could not be read).
    pub fn failed_plugins(&self) -> &[(std::path::PathBuf, String)] {
        &self.failed
    }

    /// Configured connectors, by name.
    pub fn connectors(&self) -> Vec<Arc<Binding>> {
        self.bindings.read().unwrap().values().cloned().collect()
    }

    pub fn connector(&self, name: &str) -> Result<Arc<Binding>, CallError> {
        self.bindings.read().unwrap().get(name).cloned().ok_or_else(|| {
            let known: Vec<_> = self.bindings.read().unwrap().keys().cloned().collect();
            CallError::new(ErrorKind::Unsupported, format!("no connector named {name:?}; configured: {}", if known.is_empty() { "none".into() } else { known.join(", ") }))
        })
    }

    /// The manifest of a connector, or of a loaded plugin by that name.
    pub fn manifest(&self, name: &str) -> Option<Manifest> {
        if let Ok(b) = self.connector(name) {
            return Some(b.manifest().clone());
        }
        self.plugins.read().unwrap().get(name).map(|p| p.manifest.clone())
    }

    /// Run `operation` of `connector` with `input`.
    pub async fn call(&self, connector: &str, operation: &str, input: serde_json::Value) -> Result<serde_json::Value, CallError> {
        let binding = self.connector(connector)?;
        if binding.manifest().operation(operation).is_none() {
            let mut names: Vec<_> = binding.manifest().operations.iter().map(|o| o.name.as_str()).collect();
            names.sort_unstable();
            return Err(CallError::new(ErrorKind::Unsupported, format!("connector {connector} has no operation {operation:?}; it has: {}", names.join(", "))));
        }
        let plugin = binding.plugin.clone();
        let started = std::time::Instant::now();
        let result = plugin
            .invoke(binding, operation, &input.to_string())
            .await
            .and_then(|output| serde_json::from_str(&output).map_err(|e| CallError::new(ErrorKind::Internal, format!("{connector}.{operation} returned output that is not JSON: {e}"))));
        let failed = result.as_ref().err().map(|e| (e.kind.as_str(), e.message.as_str()));
        self.shared.metrics.call(connector, operation, started.elapsed(), failed);
        result
    }

    /// The host's metrics (`GET /metrics` on the admin surface).
    pub fn metrics(&self) -> &Arc<metrics::Metrics> {
        &self.shared.metrics
    }

    /// What `/metrics` and the status page read at this moment: the event
    /// backlog and flows from the store, every bucket from the ledger, the
    /// call slots in use.
    pub async fn snapshot(&self) -> Result<metrics::Snapshot> {
        let store = self.shared.store.clone();
        let (backlog, flows) = tokio::task::spawn_blocking(move || -> Result<_> { Ok((store.backlog()?, store.flow_counts()?)) }).await??;
        let mut buckets = Vec::new();
        for b in self.connectors() {
            for (policy, bucket) in &b.policies {
                let (remaining, wait_ms) = self.shared.limiter.status(&b.credential, bucket).await?;
                let windows = policy.windows.iter().map(|w| format!("{}/{}s", w.limit, w.seconds)).collect::<Vec<_>>().join(", ");
                buckets.push(metrics::BucketReading { connector: b.name().to_string(), bucket: policy.name.clone(), remaining, wait_ms, windows });
            }
        }
        let pool_in_use = self.runtime.guards().in_use().into_iter().map(|(c, n)| (c, n as i64)).collect();
        Ok(metrics::Snapshot { backlog, flows, buckets, pool_in_use, pool_slots: i64::from(self.runtime.pool_slots()) })
    }

    /// Hand a received webhook to the connector's plugin: verified and
    /// normalized events, or why it was refused.
    pub async fn webhook(&self, connector: &str, received: &Received) -> Result<Vec<Event>, CallError> {
        let binding = self.connector(connector)?;
        let plugin = binding.plugin.clone();
        plugin.handle_webhook(binding, received).await
    }

    /// Load the plugin at `path` and, if its manifest still satisfies every
    /// connector bound to a plugin of that name, swap it in. Calls in flight
    /// finish on the old version. Returns the connectors swapped.
    pub async fn reload_plugin(&self, path: &std::path::Path) -> Result<Vec<String>> {
        let plugin = Arc::new(self.runtime.load(path).await?);
        let name = plugin.manifest.name.clone();
        if self.plugins.read().unwrap().get(&name).is_some_and(|p| p.hash == plugin.hash) {
            return Ok(Vec::new());
        }
        // Check every binding before swapping any.
        let mut rebound = Vec::new();
        for (cname, c) in &self.config.connectors {
            if c.plugin == name {
                let binding = Arc::new(Binding::new(c, plugin.clone(), self.shared.clone())?);
                if let Some(old) = self.bindings.read().unwrap().get(cname) {
                    if let Some(why) = plugin::swap::refusal(old, &binding) {
                        anyhow::bail!("{why}");
                    }
                }
                rebound.push((cname.clone(), binding));
            }
        }
        let mut bindings = self.bindings.write().unwrap();
        for (cname, b) in &rebound {
            bindings.insert(cname.clone(), b.clone());
        }
        drop(bindings);
        self.plugins.write().unwrap().insert(name, plugin);
        if self.config.cache_prune {
            let loaded = self.plugins();
            self.runtime.prune_cache(loaded.iter().map(|p| p.as_ref()));
        }
        Ok(rebound.into_iter().map(|(n, _)| n).collect())
    }

    /// Where events go: subscribe script functions or other sinks here.
    pub fn dispatcher(&self) -> &Arc<dispatch::Dispatcher> {
        &self.dispatcher
    }

    /// What an embedder added: script functions, event sources, the run
    /// outcome feed.
    pub fn extensions(&self) -> &extend::Extensions {
        &self.extensions
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }
}
