//! Running plugins: one wasmtime engine, compiled components cached on disk,
//! `InstancePre` per plugin, instances kept warm per connector binding (see
//! [`Warm`]), and per-call limits — guest execution time (epochs), memory
//! (a store limiter) — so a plugin that loops, bloats or traps fails its own
//! call and nothing else.
pub mod cache;
pub mod check;
mod compile;
pub mod guard;
pub mod input;
pub mod swap;
pub mod v0_1_0;

use crate::connector::Binding;
use crate::error::{CallError, ErrorKind};
use crate::imports::CallState;
use crate::manifest::{Event, Manifest, Received};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Engine, Store, UpdateDeadline};

pub use cache::Source;
pub use check::Checked;

/// Linear memory per pooled slot kept mapped between instances.
const KEEP_RESIDENT: usize = 2 << 20;

/// Idle instances kept per connector binding, at most (and never more than
/// its `max_concurrent_calls`). Two cores run two guests at once; calls
/// beyond that wait on I/O, where a fresh instance's ~40 µs does not show.
const WARM_PER_BINDING: usize = 8;

/// An instance whose linear memory grew past this is not kept idle: idle
/// memory stays bounded (8 × 4 MiB per binding) whatever a call allocated.
const WARM_MAX_MEMORY: usize = 4 << 20;

/// `describe()` runs at load time, where a slow plugin would hold up every
/// other load: it gets at most this long.
const DESCRIBE_DEADLINE: Duration = Duration::from_secs(10);

/// One epoch tick. Deadlines are checked at this granularity.
const TICK: Duration = Duration::from_millis(10);

/// Settings the engine is built with.
#[derive(Debug, Clone)]
pub struct EngineLimits {
    pub memory_bytes: usize,
    pub call_timeout: Duration,
    /// Wall-clock bound of a whole call, time in imports and sleeps included.
    pub call_deadline: Duration,
    /// Instances that may exist at once (pooling slots).
    pub max_instances: u32,
    /// Calls one connector may run at once, and how long one waits in line.
    pub per_connector_calls: u32,
    pub call_queue: Duration,
}

impl EngineLimits {
    /// The limits `config` asks for (`[limits]`), pool sized for its connectors.
    pub fn from_config(config: &crate::Config) -> EngineLimits {
        let l = &config.limits;
        EngineLimits {
            memory_bytes: (l.memory_mib as usize) << 20,
            call_timeout: l.call_timeout(),
            call_deadline: l.call_deadline(),
            max_instances: EngineLimits::pool_size(l.max_concurrent_calls, config.connectors.len()),
            per_connector_calls: l.max_concurrent_calls,
            call_queue: l.call_queue(),
        }
    }

    /// Pool slots for `connectors` connectors: each may fill its share, and
    /// describes and the warm path have room besides.
    pub fn pool_size(per_connector_calls: u32, connectors: usize) -> u32 {
        (per_connector_calls.saturating_mul(connectors as u32 + 1) + 32).max(256)
    }
}

/// The engine, the linker with every import, and the compile cache.
pub struct Runtime {
    engine: Engine,
    linker: Linker<CallState>,
    cache: Arc<cache::Cache>,
    limits: EngineLimits,
    guards: Arc<guard::Guards>,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// The linker with every import Spoke provides: WASI p2 (no files, no
/// sockets, no environment granted) and `spoke:connector@0.1.0`.
fn spoke_linker(engine: &Engine) -> Result<Linker<CallState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    v0_1_0::Connector::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// A loaded plugin, ready to instantiate.
pub struct Plugin {
    pub manifest: Manifest,
    pub path: PathBuf,
    /// SHA-256 of the component file, hex.
    pub hash: String,
    pub source: Source,
    pre: v0_1_0::ConnectorPre<CallState>,
    /// Each operation's input validator, compiled at load.
    inputs: Arc<input::Inputs>,
    runtime: Arc<RuntimeRef>,
    /// Instances that finished a call cleanly, kept for the next call of
    /// the same connector binding. They live and die with this `Plugin`, so
    /// a hot swap (a new `Plugin`) never serves a call from the old code.
    warm: std::sync::Mutex<Vec<Warm>>,
}

/// An idle instance of one connector binding. Instantiating per call cost
/// most of a call (docs/performance.md); reusing one keeps the isolation
/// that matters: an instance only ever serves the binding it was made for
/// (no state crosses connectors), one that trapped, ran out of time or hit
/// its memory cap is dropped (a trap never poisons the next call), and each
/// call gets its own epoch budget, wall-clock deadline and fresh per-call
/// host state ([`CallState::reset_for_call`]). Guest memory does persist
/// between calls of the same binding (docs/security.md).
///
/// At most [`WARM_PER_BINDING`] (8), and never more than
/// `limits.max_concurrent_calls`, are kept per binding: an idle instance
/// is one a finished call of that binding gave back, so warm and running
/// instances of a connector together stay within its running-call bound
/// (guard.rs) and the pool slots sized for it ([`EngineLimits::pool_size`]);
/// they cannot take slots another connector needs. Instances that grew
/// past [`WARM_MAX_MEMORY`] are not kept, which bounds idle memory.
struct Warm {
    store: Store<CallState>,
    instance: v0_1_0::Connector,
    /// Weak: the binding owns this `Plugin`, which owns the warm list.
    binding: std::sync::Weak<Binding>,
}

/// What a plugin needs of the runtime at call time.
struct RuntimeRef {
    engine: Engine,
    limits: EngineLimits,
    guards: Arc<guard::Guards>,
}

/// Caps each store's linear memory and remembers that it did, so the error
/// can say "memory cap" instead of a bare trap.
pub(crate) struct MemoryLimiter {
    max: usize,
    pub(crate) hit: bool,
    /// The largest linear memory this store's instance has grown to.
    peak: usize,
}

impl MemoryLimiter {
    pub(crate) fn new(max: usize) -> Self {
        MemoryLimiter { max, hit: false, peak: 0 }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let ok = desired <= self.max;
        self.hit |= !ok;
        if ok {
            self.peak = self.peak.max(desired);
        }
        Ok(ok)
    }
    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

impl Runtime {
    pub fn new(cache_dir: &Path, limits: EngineLimits) -> Result<Runtime> {
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        // Explicit counts: the defaults reserve terabytes of address space.
        let n = limits.max_instances;
        pool.total_component_instances(n)
            .total_core_instances(n * 4)
            .total_memories(n * 2)
            .total_tables(n * 4)
            .total_stacks(n)
            .max_memory_size(limits.memory_bytes)
            // Reset a freed slot's first pages with memset instead of handing
            // them back to the kernel: a fresh instance per call otherwise
            // pays madvise, TLB shootdowns and page faults every time
            // (measured: docs/performance.md). Still zeroed, still fresh.
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(64 << 10)
            .async_stack_keep_resident(64 << 10);
        let mut config = wasmtime::Config::new();
        config
            .epoch_interruption(true)
            .wasm_component_model(true)
            .allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool))
            .memory_reservation(limits.memory_bytes as u64)
            .memory_guard_size(64 << 10)
            .memory_reservation_for_growth(0);
        let engine = Engine::new(&config)?;

        let linker = spoke_linker(&engine)?;

        let stop_ticker = Arc::new(AtomicBool::new(false));
        let (e, stop) = (engine.clone(), stop_ticker.clone());
        std::thread::Builder::new().name("spoke-epoch".into()).spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
                e.increment_epoch();
            }
        })?;
        let guards = Arc::new(guard::Guards::new(limits.per_connector_calls as usize, limits.call_queue));
        Ok(Runtime { engine, linker, cache: Arc::new(cache::Cache::new(cache_dir)), limits, guards, stop_ticker })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Per-connector call slots (what `spoke_instance_pool_in_use` reads).
    pub fn guards(&self) -> &guard::Guards {
        &self.guards
    }

    /// Instance slots of the pooling allocator.
    pub fn pool_slots(&self) -> u32 {
        self.limits.max_instances
    }

    /// Load one component: compile (or map from cache), link, describe, and
    /// refuse it, naming every problem, if `check` finds any.
    pub async fn load(&self, path: &Path) -> Result<Plugin> {
        let started = Instant::now();
        let Checked { plugin, problems } = self.check(path).await?;
        let plugin = match plugin {
            Some(p) if problems.is_empty() => p,
            _ => anyhow::bail!("{} is refused:\n  - {}", path.display(), problems.join("\n  - ")),
        };
        tracing::info!(
            plugin = %plugin.manifest.name,
            version = %plugin.manifest.version,
            operations = plugin.manifest.operations.len(),
            from = if plugin.source == Source::Cache { "compile cache" } else { "fresh compile" },
            ms = format!("{:.2}", started.elapsed().as_secs_f64() * 1000.0),
            "loaded plugin {}",
            path.display()
        );
        Ok(plugin)
    }

    /// Delete compiled artifacts of every component not in `loaded`.
    pub fn prune_cache<'a>(&self, loaded: impl IntoIterator<Item = &'a Plugin>) -> Vec<PathBuf> {
        self.cache.prune(&self.engine, loaded.into_iter().map(|p| p.hash.as_str()))
    }

    /// Load every `*.wasm` in `dir`, in name order. A plugin that fails to
    /// load is reported and skipped; the others still load.
    pub async fn load_dir(&self, dir: &Path) -> Result<(Vec<Plugin>, Vec<(PathBuf, anyhow::Error)>)> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading plugin folder {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        paths.sort();
        let mut plugins = Vec::new();
        let mut failed = Vec::new();
        for path in paths {
            match self.load(&path).await {
                Ok(p) => plugins.push(p),
                Err(e) => {
                    tracing::error!("plugin {} not loaded: {e:#}", path.display());
                    failed.push((path, e));
                }
            }
        }
        Ok((plugins, failed))
    }
}

impl Plugin {
    /// Run `f` against a fresh instance with the per-call limits, turning
    /// traps into errors that say what happened.
    async fn with_instance<R>(
        &self,
        binding: Option<Arc<Binding>>,
        operation: &str,
        f: impl for<'a> FnOnce(&'a v0_1_0::Connector, &'a mut Store<CallState>) -> std::pin::Pin<Box<dyn std::future::Future<Output = wasmtime::Result<R>> + Send + 'a>>,
    ) -> Result<R, CallError> {
        let limits = &self.runtime.limits;
        let describing = binding.is_none();
        // Held for the whole call: the connector's share of the pool.
        let _slot = match &binding {
            Some(b) => Some(self.runtime.guards.enter(b.name()).await?),
            None => None,
        };
        let budget = limits.call_timeout;
        let warm = binding.as_ref().and_then(|b| self.take_warm(b));
        let (mut store, instance) = match warm {
            Some(w) => (w.store, Some(w.instance)),
            None => {
                let mut store = Store::new(&self.runtime.engine, CallState::new(None, "", limits.memory_bytes));
                store.limiter(|s| &mut s.memory);
                arm_deadline(&mut store, budget);
                (store, None)
            }
        };
        store.data_mut().reset_for_call(binding.clone(), operation);
        // Each call gets the whole execution budget again.
        store.set_epoch_deadline(1);
        // The outer deadline: the epoch budget only sees guest time, so a
        // plugin looping on a host import or sleeping in WASI is stopped
        // here. Dropping the call future cancels it; the store goes with it.
        let deadline = if describing { limits.call_deadline.min(DESCRIBE_DEADLINE) } else { limits.call_deadline };
        let outcome = tokio::time::timeout(deadline, async {
            let instance = match instance {
                Some(i) => i,
                None => self.pre.instantiate_async(&mut store).await?,
            };
            let out = f(&instance, &mut store).await?;
            Ok((out, instance))
        })
        .await;
        match outcome {
            Ok(Ok((out, instance))) => {
                if let Some(b) = &binding {
                    self.put_warm(b, store, instance);
                }
                Ok(out)
            }
            // A trap (or a failed instantiation): the store is dropped here.
            Ok(Err(e)) => Err(self.trap_error(e, store.data(), budget)),
            Err(_) => Err(CallError::new(
                ErrorKind::Timeout,
                format!(
                    "plugin {} call {operation:?} ran past its wall-clock deadline of {:.1} s (limits.call_deadline_secs; time in host calls and sleeps counts) and was stopped",
                    if describing { self.path.display().to_string() } else { self.manifest.name.clone() },
                    deadline.as_secs_f64()
                ),
            )),
        }
    }

    /// An idle instance made for `binding`, if one is kept.
    fn take_warm(&self, binding: &Arc<Binding>) -> Option<Warm> {
        let mut warm = self.warm.lock().unwrap();
        let i = warm.iter().rposition(|w| std::ptr::eq(w.binding.as_ptr(), Arc::as_ptr(binding)))?;
        Some(warm.swap_remove(i))
    }

    /// Keep an instance that finished a call cleanly for `binding`'s next call.
    fn put_warm(&self, binding: &Arc<Binding>, mut store: Store<CallState>, instance: v0_1_0::Connector) {
        // No strong reference from the kept store back to its binding.
        store.data_mut().reset_for_call(None, "");
        if store.data().memory.peak > WARM_MAX_MEMORY {
            return;
        }
        let mut warm = self.warm.lock().unwrap();
        // Bindings replaced since (config reload) leave their instances behind.
        warm.retain(|w| w.binding.strong_count() > 0);
        let mine = warm.iter().filter(|w| std::ptr::eq(w.binding.as_ptr(), Arc::as_ptr(binding))).count();
        if mine < WARM_PER_BINDING.min(self.runtime.limits.per_connector_calls as usize) {
            warm.push(Warm { store, instance, binding: Arc::downgrade(binding) });
        }
    }

    /// Instances kept warm for `binding` (tests, metrics).
    pub fn warm_instances(&self, binding: &Arc<Binding>) -> usize {
        self.warm.lock().unwrap().iter().filter(|w| std::ptr::eq(w.binding.as_ptr(), Arc::as_ptr(binding))).count()
    }

    fn trap_error(&self, e: wasmtime::Error, state: &CallState, budget: Duration) -> CallError {
        // While describing, the plugin has no name yet: its file stands in.
        let name = &if self.manifest.name.is_empty() { self.path.display().to_string() } else { self.manifest.name.clone() };
        if e.downcast_ref::<DeadlineExceeded>().is_some() {
            return CallError::new(ErrorKind::Timeout, format!("plugin {name} ran past its execution budget of {:.1} s and was stopped", budget.as_secs_f64()));
        }
        if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>().is_some() {
            return guard::busy(format!("plugin {name}: every instance slot is in use; try again"));
        }
        if state.memory.hit {
            return CallError::new(ErrorKind::Internal, format!("plugin {name} exceeded its memory cap of {} MiB and was stopped", state.memory.max >> 20));
        }
        crashed(name, &state.operation, e, &state.stderr_text())
    }

    pub async fn describe(&self) -> Result<Manifest, CallError> {
        self.with_instance(None, "describe", |c, store| Box::pin(async move { c.call_describe(store).await })).await.map(Manifest::from)
    }

    /// Run `operation`. The input is checked against the operation's input
    /// schema first; input it refuses never reaches the guest.
    pub async fn invoke(&self, binding: Arc<Binding>, operation: &str, input: &str) -> Result<String, CallError> {
        self.inputs.check(&self.manifest.name, operation, input)?;
        let (op, input) = (operation.to_string(), input.to_string());
        let result = self.with_instance(Some(binding), operation, |c, store| Box::pin(async move { c.call_invoke(store, &op, &input).await })).await?;
        result.map_err(CallError::from)
    }

    pub async fn handle_webhook(&self, binding: Arc<Binding>, received: &Received) -> Result<Vec<Event>, CallError> {
        let received = v0_1_0::events::Received::from(received);
        let result = self.with_instance(Some(binding), "handle-webhook", |c, store| Box::pin(async move { c.call_handle_webhook(store, &received).await })).await?;
        result.map_err(CallError::from)?.into_iter().map(Event::try_from).collect()
    }
}

/// An instance kept for repeated calls (a warm path for embedders and the
/// benchmarks). Calls share the instance's memory, so it trades the per-call
/// isolation of [`Plugin::invoke`] for the instantiation cost; after any
/// trap it refuses further calls and must be dropped.
pub struct Instance {
    store: Store<CallState>,
    bindings: v0_1_0::Connector,
    plugin_name: String,
    inputs: Arc<input::Inputs>,
}

impl Plugin {
    pub async fn instantiate(&self, binding: Arc<Binding>) -> Result<Instance, CallError> {
        let limits = &self.runtime.limits;
        let mut store = Store::new(&self.runtime.engine, CallState::new(Some(binding), "", limits.memory_bytes));
        store.limiter(|s| &mut s.memory);
        arm_deadline(&mut store, limits.call_timeout);
        let bindings = self.pre.instantiate_async(&mut store).await.map_err(|e| self.trap_error(e, store.data(), limits.call_timeout))?;
        Ok(Instance { store, bindings, plugin_name: self.manifest.name.clone(), inputs: self.inputs.clone() })
    }
}

impl Instance {
    pub async fn invoke(&mut self, operation: &str, input: &str) -> Result<String, CallError> {
        self.inputs.check(&self.plugin_name, operation, input)?;
        let state = self.store.data_mut();
        state.operation = operation.to_string();
        // Each call gets the whole budget again.
        state.started = tokio::time::Instant::now();
        state.host_time = Duration::ZERO;
        self.store.set_epoch_deadline(1);
        match self.bindings.call_invoke(&mut self.store, operation, input).await {
            Ok(r) => r.map_err(CallError::from),
            Err(e) => Err(crashed(&self.plugin_name, operation, e, &self.store.data().stderr_text())),
        }
    }
}

/// A guest that trapped: the error names the trap and carries what the
/// guest wrote to stderr during the call (its own account of what went
/// wrong: a Rust panic message, a Python traceback), which is logged too.
fn crashed(name: &str, operation: &str, e: wasmtime::Error, stderr: &str) -> CallError {
    let trap = format!("{e:#}");
    let lines: Vec<&str> = stderr.lines().collect();
    // A Rust guest's panic prints "…panicked at FILE:LINE:" then the message.
    let summary = match lines.iter().position(|l| l.contains("panicked at")) {
        Some(i) => format!("panicked: {} ({})", lines.get(i + 1).unwrap_or(&""), lines[i].split("panicked at ").nth(1).unwrap_or("").trim_end_matches(':')),
        None => lines.iter().rev().find(|l| !l.trim().is_empty() && !l.starts_with("note:")).map(|l| l.to_string()).unwrap_or_else(|| trap.clone()),
    };
    tracing::warn!(plugin = %name, operation = %operation, trap = %trap, "plugin {name} trapped; its stderr:\n{}", if stderr.is_empty() { "(empty)" } else { stderr });
    let mut error = CallError::new(ErrorKind::Internal, format!("plugin {name} trapped: {summary}"));
    error.details = Some(serde_json::json!({ "trap": trap, "stderr": stderr }));
    error
}

/// Check guest time every epoch tick; time inside host imports is excluded.
fn arm_deadline(store: &mut Store<CallState>, budget: Duration) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |ctx| {
        if ctx.data().guest_time() >= budget {
            return Err(wasmtime::Error::new(DeadlineExceeded));
        }
        Ok(UpdateDeadline::Yield(1))
    });
}

#[derive(Debug)]
struct DeadlineExceeded;

impl std::fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("execution budget exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}
