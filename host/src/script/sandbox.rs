//! What keeps a script inside its box beyond Rhai's own limits:
//! - **memory**: Rhai's size limits are per value (a string, an array, a
//!   map's entry count), and assigning into a map by index skips even those,
//!   so 3,000 strings of 1 MB fit in one map. Instead every allocation is
//!   counted per thread (a script loads and runs on its own thread), and the
//!   engine's progress callback stops a load or run whose thread holds more
//!   than `scripts.max_memory_mib` beyond what it held at the start (the
//!   `script-memory-bound` feature, on by default: an embedder with its own
//!   global allocator turns it off and loses this bound);
//! - **`eval`** is off: a script's code is what its file says;
//! - **`import`** resolves only plain relative names inside the scripts
//!   folder, never `..`, absolute paths or another folder.
use rhai::{EvalAltResult, Module, ModuleResolver, Position, Shared};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;

/// The system allocator, counting bytes per thread.
pub struct Counting;

thread_local! {
    static NET: Cell<i64> = const { Cell::new(0) };
}

fn add(n: i64) {
    // try_with: the allocator also runs while a thread tears down.
    let _ = NET.try_with(|c| c.set(c.get().wrapping_add(n)));
}

// SAFETY: forwards to `System` unchanged; the counter touches no memory
// the allocator hands out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            add(layout.size() as i64);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            add(layout.size() as i64);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        add(-(layout.size() as i64));
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            add(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

#[cfg(feature = "script-memory-bound")]
#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes this thread has allocated and not freed (net; memory freed here
/// that another thread allocated makes it lower, which only errs lenient).
pub fn thread_bytes() -> i64 {
    NET.try_with(Cell::get).unwrap_or(0)
}

/// `import` confined to the scripts folder.
pub struct ConfinedResolver {
    dir: PathBuf,
    files: rhai::module_resolvers::FileModuleResolver,
}

impl ConfinedResolver {
    pub fn new(dir: PathBuf) -> ConfinedResolver {
        let files = rhai::module_resolvers::FileModuleResolver::new_with_path(&dir);
        ConfinedResolver { dir, files }
    }
}

/// `a`, `lib/a`, `a_b-c`: segments of letters, digits, `_` and `-`.
pub fn plain_module_name(path: &str) -> bool {
    !path.is_empty() && path.split('/').all(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
}

impl ModuleResolver for ConfinedResolver {
    fn resolve(&self, engine: &rhai::Engine, source: Option<&str>, path: &str, pos: Position) -> Result<Shared<Module>, Box<EvalAltResult>> {
        if !plain_module_name(path) {
            return Err(Box::new(EvalAltResult::ErrorRuntime(
                format!("import {path:?}: modules are named by a plain relative path inside {} (letters, digits, `_`, `-`, `/`; no `..`)", self.dir.display()).into(),
                pos,
            )));
        }
        // Resolve against the folder, never against the importing file's
        // own location.
        let _ = source;
        self.files.resolve(engine, None, path, pos)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn module_names_stay_inside_the_folder() {
        for ok in ["lib", "lib/dates", "a_b-c"] {
            assert!(super::plain_module_name(ok), "{ok}");
        }
        for bad in ["", "../x", "/etc/passwd", "a/../../b", "a//b", "./a", "a.rhai", "~/x", "a\\b"] {
            assert!(!super::plain_module_name(bad), "{bad}");
        }
    }

    #[cfg(feature = "script-memory-bound")]
    #[test]
    fn counts_this_threads_allocations() {
        let before = super::thread_bytes();
        let v = vec![1u8; 4 << 20];
        assert!(super::thread_bytes() - before >= 4 << 20);
        drop(v);
        assert!(super::thread_bytes() - before < 1 << 20);
    }
}
