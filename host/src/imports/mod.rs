//! The host side of the WIT imports, one module per interface. Every call a
//! plugin makes lands on [`CallState`], the per-call store data, which knows
//! which connector and operation it is serving — so each capability check
//! happens at the call that needs it.
mod auth;
mod config;
mod http;
mod kv;
mod log;
mod rate_limit;
pub mod stderr;

use crate::connector::Binding;
use crate::plugin::v0_1_0 as wit;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub use http::check_path;

/// Data of one store = one plugin call.
pub struct CallState {
    /// The connector being served; `None` while describing a plugin.
    pub binding: Option<Arc<Binding>>,
    /// The operation being invoked, for rate buckets and logs.
    pub operation: String,
    /// Requests reserved through `rate-limit.acquire`, by bucket.
    pub reserved: HashMap<String, u32>,
    pub(crate) memory: crate::plugin::MemoryLimiter,
    pub(crate) started: Instant,
    /// Time spent inside host imports; it does not count against the
    /// plugin's execution budget.
    pub(crate) host_time: Duration,
    /// The guest's stderr for this call, its last few KiB (crash reports).
    pub(crate) stderr: stderr::TailPipe,
    /// Credential checks made so far (`auth.verify-*`), for pacing.
    pub(crate) verifies: u32,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl CallState {
    pub(crate) fn new(binding: Option<Arc<Binding>>, operation: &str, memory_bytes: usize) -> Self {
        let stderr = stderr::TailPipe::default();
        // No files, no environment, no sockets, no clocks beyond the default:
        // everything a plugin may do goes through the Spoke imports.
        let wasi = WasiCtx::builder().stderr(stderr.clone()).build();
        CallState {
            binding,
            operation: operation.to_string(),
            reserved: HashMap::new(),
            memory: crate::plugin::MemoryLimiter::new(memory_bytes),
            started: Instant::now(),
            host_time: Duration::ZERO,
            stderr,
            verifies: 0,
            wasi,
            table: ResourceTable::new(),
        }
    }

    /// Make a reused instance's state a new call's: every per-call field
    /// as [`CallState::new`] sets it. The WASI context and resource table
    /// stay (the guest holds handles into them, e.g. its stderr stream).
    pub(crate) fn reset_for_call(&mut self, binding: Option<Arc<Binding>>, operation: &str) {
        self.binding = binding;
        self.operation = operation.to_string();
        self.reserved.clear();
        self.memory.hit = false;
        self.started = Instant::now();
        self.host_time = Duration::ZERO;
        self.stderr.clear();
        self.verifies = 0;
    }

    /// Guest execution time so far.
    pub(crate) fn guest_time(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.host_time)
    }

    /// What the plugin wrote to stderr (a panic message, typically).
    pub(crate) fn stderr_text(&self) -> String {
        self.stderr.text()
    }

    fn binding(&self) -> Result<&Arc<Binding>, wit::types::Error> {
        self.binding.as_ref().ok_or_else(|| {
            crate::error::CallError::new(crate::error::ErrorKind::Refused, "host imports are not available while a plugin describes itself").into()
        })
    }

    fn connector_name(&self) -> &str {
        self.binding.as_ref().map(|b| b.name()).unwrap_or("-")
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

// Interfaces that only declare types.
impl wit::types::Host for CallState {}
impl wit::manifest::Host for CallState {}
impl wit::events::Host for CallState {}
