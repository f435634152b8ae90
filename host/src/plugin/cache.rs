//! The compile cache: a component is compiled once and its native code kept
//! on disk, keyed by the component's content hash, the wasmtime version and
//! the engine's settings, so a second start only maps the file.
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Where the component came from on this load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache,
    Compiled,
}

pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn new(dir: &Path) -> Cache {
        Cache { dir: dir.to_path_buf() }
    }

    fn path_for(&self, engine: &Engine, wasm: &[u8]) -> PathBuf {
        self.path_for_hash(engine, &hex::encode(Sha256::digest(wasm)))
    }

    fn path_for_hash(&self, engine: &Engine, content: &str) -> PathBuf {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let engine_key = h.finish();
        self.dir.join(format!("{content}-wasmtime{}-{engine_key:016x}.cwasm", wasmtime_version()))
    }

    /// The component for `wasm`: from the cache if present and valid, else
    /// compiled and written to the cache (atomically, so a crash mid-write
    /// leaves no torn file).
    pub fn load(&self, engine: &Engine, wasm: &[u8]) -> Result<(Component, Source)> {
        let path = self.path_for(engine, wasm);
        if path.exists() {
            // SAFETY: the file was written by `precompile_component` of an
            // engine with the same compatibility hash (it is in the name),
            // in a folder only Spoke writes.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(c) => return Ok((c, Source::Cache)),
                Err(e) => tracing::warn!(path = %path.display(), "ignoring unusable cached artifact: {e:#}"),
            }
        }
        let compiled = engine.precompile_component(wasm).map_err(anyhow::Error::from).context("compiling component")?;
        std::fs::create_dir_all(&self.dir).with_context(|| format!("creating cache dir {}", self.dir.display()))?;
        // Unique per process and per call: two threads may compile the same
        // component at once, and each must rename its own complete file.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
        std::fs::write(&tmp, &compiled).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("renaming into {}", path.display()))?;
        // SAFETY: as above; we just wrote it. Should another host's prune
        // have removed it meanwhile, the bytes in hand serve as well.
        let component = match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => c,
            Err(_) => unsafe { Component::deserialize(engine, &compiled) }.map_err(anyhow::Error::from)?,
        };
        Ok((component, Source::Compiled))
    }

    /// Delete every compiled artifact except those of `keep` (content hashes
    /// of the components loaded now, for this engine): older versions of a
    /// plugin, removed plugins, other wasmtime versions. Each version of a
    /// large plugin costs tens of MB. Returns the files removed.
    pub fn prune<'a>(&self, engine: &Engine, keep: impl IntoIterator<Item = &'a str>) -> Vec<PathBuf> {
        let keep: std::collections::HashSet<PathBuf> = keep.into_iter().map(|h| self.path_for_hash(engine, h)).collect();
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        let mut removed = Vec::new();
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            // Only finished artifacts: a `.tmp…` file may be another
            // compile's write in progress.
            if path.extension().is_some_and(|x| x == "cwasm") && !keep.contains(&path) {
                match std::fs::remove_file(&path) {
                    Ok(()) => removed.push(path),
                    Err(e) => tracing::warn!(path = %path.display(), "cannot prune compiled plugin: {e}"),
                }
            }
        }
        if !removed.is_empty() {
            tracing::info!(removed = removed.len(), dir = %self.dir.display(), "pruned compiled plugins no longer loaded");
        }
        removed
    }
}

fn wasmtime_version() -> &'static str {
    // The crate's version is part of the engine hash too; naming it in the
    // file makes stale artifacts easy to spot and clean.
    "48"
}
