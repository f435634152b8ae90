//! The whole engine in one handle, for services that embed Spoke: a host,
//! its scripts with hot reload, the dispatcher and (if asked) the HTTP
//! listener, started by one call and stopped by one call.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let config = spoke::Config::builder("/srv/app").plugins_dir("plugins").scripts_dir("scripts").build()?;
//! let engine = spoke::Engine::builder(config)
//!     .script_fn(|e| { e.register_fn("vat", |net: f64| net * 1.21); })
//!     .event_source("shop", &["order.created"])
//!     .start()
//!     .await?;
//! let mut outcomes = engine.outcomes();
//! engine.publish("shop", vec![spoke::Event {
//!     id: "order-1".into(), topic: "order.created".into(), occurred_at: None,
//!     subject: Some("order-1".into()), payload: serde_json::json!({"total": 10}),
//! }]).await?;
//! let ran = outcomes.recv().await?;
//! engine.shutdown().await?;
//! # Ok(()) }
//! ```
use crate::dispatch::Subscriber;
use crate::extend::{RunOutcome, ScriptSetup};
use crate::script::Scripts;
use crate::store::{now_ms, Committed, DeliveryRecord, Incoming};
use crate::webhook::Committer;
use crate::{Config, Event, Host};
use anyhow::Result;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

/// How long [`Engine::shutdown`] lets each part finish what it is doing.
pub const SHUTDOWN_BOUND: Duration = Duration::from_secs(10);

/// Where the engine's host comes from.
enum Source {
    Config(Config),
    Host(Arc<Host>),
}

pub struct EngineBuilder {
    source: Source,
    setups: Vec<ScriptSetup>,
    sources: Vec<(String, Vec<String>)>,
    subscribers: Vec<Arc<dyn Subscriber>>,
    listener: Option<tokio::net::TcpListener>,
    admin: Option<tokio::net::TcpListener>,
    watch: bool,
}

impl EngineBuilder {
    fn new(source: Source) -> EngineBuilder {
        EngineBuilder { source, setups: Vec::new(), sources: Vec::new(), subscribers: Vec::new(), listener: None, admin: None, watch: true }
    }

    /// Register native functions, modules or types for scripts:
    /// `|e| { e.register_fn("vat", |x: f64| x * 1.21); }`. Applied to every
    /// script engine Spoke builds, including after plugin swaps.
    pub fn script_fn(mut self, setup: impl Fn(&mut rhai::Engine) + Send + Sync + 'static) -> Self {
        self.setups.push(Arc::new(setup));
        self
    }

    /// A module scripts call as `name::function(...)`.
    pub fn script_module(self, name: &str, module: rhai::Module) -> Self {
        let (name, module) = (name.to_string(), Arc::new(module));
        self.script_fn(move |e| {
            e.register_static_module(name.as_str(), module.clone());
        })
    }

    /// An event source of the service's own, published with
    /// [`Engine::publish`]; scripts subscribe with `on(name, topic, fn)`.
    /// No topics means any topic.
    pub fn event_source(mut self, name: &str, topics: &[&str]) -> Self {
        self.sources.push((name.to_string(), topics.iter().map(|t| t.to_string()).collect()));
        self
    }

    /// Receive events in Rust: at least once, in order per lane, retried
    /// and dead-lettered like script subscribers.
    pub fn subscriber(mut self, s: Arc<dyn Subscriber>) -> Self {
        self.subscribers.push(s);
        self
    }

    /// Serve the public surface (webhook ingress, bare liveness) on this
    /// listener, with the server limits of the config.
    pub fn serve_on(mut self, listener: tokio::net::TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Serve the admin surface (script triggers, detailed health) on this
    /// listener; the config must name an admin token (docs/security.md).
    pub fn admin_on(mut self, listener: tokio::net::TcpListener) -> Self {
        self.admin = Some(listener);
        self
    }

    /// Do not watch the scripts and plugins folders (scripts load once).
    pub fn without_hot_reload(mut self) -> Self {
        self.watch = false;
        self
    }

    pub async fn start(self) -> Result<Engine> {
        let host = match self.source {
            Source::Config(config) => Arc::new(Host::start(config).await?),
            Source::Host(host) => host,
        };
        for s in self.setups {
            host.extensions().add_script_setup(s);
        }
        for (name, topics) in &self.sources {
            anyhow::ensure!(host.connector(name).is_err(), "event source {name:?} has the name of a configured connector");
            host.extensions().add_source(name, &topics.iter().map(String::as_str).collect::<Vec<_>>());
        }
        for s in self.subscribers {
            host.dispatcher().subscribe(s);
        }
        let gate = match &self.admin {
            Some(l) => {
                let token = host.config().admin.token.clone().ok_or_else(|| anyhow::anyhow!("an admin listener needs admin.token in the config"))?;
                Some(crate::server::admin::Gate::new(token, l.local_addr()?, &host.config().admin.allowed_hosts))
            }
            None => None,
        };
        let scripts = Scripts::start(host.clone()).await;
        let watcher = if self.watch {
            let w = scripts.watch()?;
            tracing::info!("watching {} for scripts and {} for plugins", scripts.dir().display(), host.config().plugins_dir.display());
            Some(w)
        } else {
            None
        };
        let (stop, stopping) = watch::channel(false);
        let dispatch = tokio::spawn(host.dispatcher().clone().run(wait_true(stopping.clone())));
        let server_limits = host.config().server.clone();
        let mut surfaces = Vec::new();
        let mut local_addr = None;
        if let Some(listener) = self.listener {
            let addr = listener.local_addr()?;
            // Tools read the rest of this line as the URL: keep it exactly so.
            tracing::info!("spoke listening on http://{addr}");
            local_addr = Some(addr);
            surfaces.push(("the public listener", tokio::spawn(crate::server::limits::serve(listener, crate::server::router(host.clone()), server_limits.clone(), stopping.clone()))));
        }
        if let (Some(listener), Some(gate)) = (self.admin, gate) {
            tracing::info!("admin surface on http://{} (bearer token required)", listener.local_addr()?);
            let router = crate::server::admin::router(host.clone(), scripts.clone(), gate);
            surfaces.push(("the admin listener", tokio::spawn(crate::server::limits::serve(listener, router, server_limits, stopping.clone()))));
        }
        let committer = Committer::start(host.store().clone());
        Ok(Engine { host, scripts, committer, stop, dispatch, surfaces, local_addr, _watcher: watcher })
    }
}

/// A running engine. Dropping it without [`Engine::shutdown`] leaves its
/// tasks running until the runtime ends.
pub struct Engine {
    host: Arc<Host>,
    scripts: Arc<Scripts>,
    committer: Committer,
    stop: watch::Sender<bool>,
    dispatch: JoinHandle<()>,
    /// Listeners being served, by what they are (for the shutdown error).
    surfaces: Vec<(&'static str, JoinHandle<()>)>,
    local_addr: Option<std::net::SocketAddr>,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Engine {
    pub fn builder(config: Config) -> EngineBuilder {
        EngineBuilder::new(Source::Config(config))
    }

    /// An engine around a host already started (what `spoke run` does).
    pub fn around(host: Arc<Host>) -> EngineBuilder {
        EngineBuilder::new(Source::Host(host))
    }

    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }

    pub fn scripts(&self) -> &Arc<Scripts> {
        &self.scripts
    }

    /// Where the listener given to [`EngineBuilder::serve_on`] is bound.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.local_addr
    }

    /// Every script run's outcome from now on.
    pub fn outcomes(&self) -> broadcast::Receiver<RunOutcome> {
        self.host.extensions().outcomes()
    }

    /// Publish events of `source` (a declared event source or a configured
    /// connector) as if a webhook had brought them: stored durably, deduped
    /// by event id, dispatched to every subscriber at least once. Resolves
    /// once they are committed.
    pub async fn publish(&self, source: &str, events: Vec<Event>) -> Result<Committed> {
        anyhow::ensure!(
            self.host.extensions().is_source(source) || self.host.connector(source).is_ok(),
            "cannot publish to {source:?}: it is neither a declared event source nor a configured connector"
        );
        let body = serde_json::to_vec(&events)?;
        let delivery = DeliveryRecord { connector: source.to_string(), received_at: now_ms(), headers: vec![("x-spoke-source".into(), "publish".into())], body };
        // Routed when dispatched, like webhook events: a subscriber that
        // is reloading still gets them.
        let committed = self.committer.commit(Incoming { delivery, events }).await.map_err(|e| anyhow::anyhow!("publishing to {source}: {e}"))?;
        if committed.new_events > 0 {
            self.host.dispatcher().notify();
        }
        Ok(committed)
    }

    /// Stop taking work, let what runs finish (each part within
    /// [`SHUTDOWN_BOUND`]), stop watching. An error names the part that
    /// did not stop in time; it has been aborted.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(true);
        let mut late = Vec::new();
        // The listeners drain within their own grace period (server limits);
        // the bound here is the backstop.
        for (what, task) in self.surfaces {
            let abort = task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_BOUND, task).await.is_err() {
                abort.abort();
                late.push(what);
            }
        }
        let abort = self.dispatch.abort_handle();
        if tokio::time::timeout(SHUTDOWN_BOUND, self.dispatch).await.is_err() {
            abort.abort();
            late.push("the dispatcher");
        }
        anyhow::ensure!(late.is_empty(), "{} did not stop within {:?}", late.join(" and "), SHUTDOWN_BOUND);
        tracing::info!("spoke stopped");
        Ok(())
    }
}

async fn wait_true(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}
