//! Where plugin compiles run: a thread pool of their own, one thread short
//! of the machine's cores and at low scheduling priority, so a swap's
//! compile (seconds of cranelift) never takes the CPU the async workers
//! need to answer webhooks. wasmtime compiles in parallel on whatever rayon
//! pool it is called from.
use std::sync::OnceLock;

/// Niceness of compile threads (0 is normal, 19 the lowest priority).
const NICE: i32 = 10;

fn pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        rayon::ThreadPoolBuilder::new()
            .num_threads(cores.saturating_sub(1).max(1))
            .thread_name(|i| format!("spoke-compile-{i}"))
            .start_handler(|_| lower_priority())
            .build()
            .map_err(|e| tracing::warn!("no compile pool ({e}); compiling on the global pool"))
            .ok()
    })
    .as_ref()
}

/// Run `f` (a compile) on the compile pool; call it from a blocking thread.
pub fn run<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match pool() {
        Some(p) => p.install(f),
        None => f(),
    }
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    extern "C" {
        fn setpriority(which: i32, who: u32, prio: i32) -> i32;
    }
    const PRIO_PROCESS: i32 = 0;
    // SAFETY: on Linux, PRIO_PROCESS with who = 0 sets the calling
    // thread's niceness only; no memory is involved.
    unsafe { setpriority(PRIO_PROCESS, 0, NICE) };
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}
