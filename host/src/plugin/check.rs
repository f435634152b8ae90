//! What every load and `spoke check` look for in a component, all of it at
//! once so an author fixes everything in one round: imports Spoke cannot
//! satisfy, a linear memory floor above the configured cap, and a manifest
//! the host could not serve (names, duplicates, paths, URLs, JSON Schemas,
//! rate windows). One implementation; `Runtime::check` runs it.
use super::input::{self, Inputs};
use super::{compile, spoke_linker, v0_1_0, Plugin, Runtime, RuntimeRef};
use crate::manifest::Manifest;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker, LinkerInstance, ResourceType};
use wasmtime::Engine;

/// What checking a component found.
pub struct Checked {
    /// The plugin, if it got as far as describing itself.
    pub plugin: Option<Plugin>,
    /// Every problem found; a plugin with any is not loaded.
    pub problems: Vec<String>,
}

impl Runtime {
    /// Everything wrong with the component at `path` (see `check.rs`), and
    /// the plugin if it got as far as describing itself. Errs only when the
    /// file cannot be read. Reading, hashing and compiling run off the async
    /// workers (a blocking thread, then the low-priority compile pool of
    /// `compile.rs`): a compile takes seconds, and webhooks keep their
    /// latency meanwhile.
    pub async fn check(&self, path: &Path) -> Result<Checked> {
        let (engine, cache, file, max) = (self.engine.clone(), self.cache.clone(), path.to_path_buf(), self.limits.memory_bytes);
        let (hash, floor, compiled) = tokio::task::spawn_blocking(move || -> Result<_> {
            let wasm = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&wasm));
            let floor = memory_floor(&wasm, max);
            Ok((hash, floor, compile::run(|| cache.load(&engine, &wasm))))
        })
        .await
        .map_err(|e| anyhow::anyhow!("compiling {} panicked: {e}", path.display()))??;
        let mut problems = floor;
        let refused = |problems| Ok(Checked { plugin: None, problems });
        let (component, source) = match compiled {
            Ok(c) => c,
            Err(e) => {
                problems.push(format!("is not a component wasmtime can compile: {e:#}"));
                return refused(problems);
            }
        };
        let pre = match self.linker.instantiate_pre(&component) {
            Ok(pre) => pre,
            Err(e) => {
                let found = imports(&self.engine, &component, || spoke_linker(&self.engine));
                if found.is_empty() {
                    problems.push(format!("cannot be linked: {:#}", anyhow::Error::from(e)));
                }
                problems.extend(found);
                return refused(problems);
            }
        };
        let pre = match v0_1_0::ConnectorPre::new(pre) {
            Ok(pre) => pre,
            Err(e) => {
                problems.push(format!("does not implement spoke:connector/connector@0.1.0: {:#}", anyhow::Error::from(e)));
                return refused(problems);
            }
        };
        if !problems.is_empty() {
            // Below its memory floor it cannot even be instantiated to describe.
            return refused(problems);
        }
        let runtime = Arc::new(RuntimeRef { engine: self.engine.clone(), limits: self.limits.clone(), guards: self.guards.clone() });
        let mut plugin = Plugin {
            manifest: Manifest { name: String::new(), version: String::new(), vendor: String::new(), description: String::new(), base_urls: vec![], auth_schemes: vec![], rate_policies: vec![], operations: vec![], webhook_topics: vec![] },
            path: path.to_path_buf(),
            hash,
            source,
            pre,
            inputs: Arc::default(),
            runtime,
            warm: Default::default(),
        };
        plugin.manifest = match plugin.describe().await {
            Ok(m) => m,
            Err(e) => {
                problems.push(format!("describe failed: {e}"));
                return refused(problems);
            }
        };
        match manifest(&plugin.manifest) {
            Ok(inputs) => plugin.inputs = Arc::new(inputs),
            Err(found) => problems.extend(found),
        }
        Ok(Checked { plugin: Some(plugin), problems })
    }
}

/// A plugin name: what connectors, scripts and logs call it.
pub fn is_plugin_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase()) && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_') && name.len() <= 64
}

/// Every problem with `m`, or its operations' compiled input validators.
pub fn manifest(m: &Manifest) -> Result<Inputs, Vec<String>> {
    let mut problems = Vec::new();
    if !is_plugin_name(&m.name) {
        problems.push(format!("name {:?} is not a plugin name: lower-case letters, digits, `-` and `_`, starting with a letter, at most 64", m.name));
    }
    if m.version.trim().is_empty() {
        problems.push("version is empty".to_string());
    }
    for (what, names) in [
        ("operation", m.operations.iter().map(|o| o.name.as_str()).collect::<Vec<_>>()),
        ("auth scheme", m.auth_schemes.iter().map(|s| s.name.as_str()).collect()),
        ("base URL key", m.base_urls.iter().map(|b| b.key.as_str()).collect()),
        ("webhook topic", m.webhook_topics.iter().map(|t| t.name.as_str()).collect()),
    ] {
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for n in names {
            if n.trim().is_empty() {
                problems.push(format!("{what} with an empty name"));
            }
            *count.entry(n).or_default() += 1;
        }
        for (n, c) in count.into_iter().filter(|(n, c)| *c > 1 && !n.trim().is_empty()) {
            problems.push(format!("{what} `{n}` is declared {c} times; names must be unique"));
        }
    }
    for b in &m.base_urls {
        match url::Url::parse(&b.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            Ok(u) => problems.push(format!("base URL `{}` = {:?} is not an http(s) URL (scheme {})", b.key, b.url, u.scheme())),
            Err(e) => problems.push(format!("base URL `{}` = {:?} is not an http(s) URL: {e}", b.key, b.url)),
        }
    }
    let mut inputs = Inputs::default();
    for op in &m.operations {
        if !op.path.starts_with('/') {
            problems.push(format!("operation `{}`: path {:?} must start with `/`", op.name, op.path));
        }
        match input::compile(&op.input_schema) {
            Ok(v) => inputs.insert(&op.name, v),
            Err(e) => problems.push(format!("operation `{}`: input schema {e}", op.name)),
        }
        if let Err(e) = input::compile(&op.output_schema) {
            problems.push(format!("operation `{}`: output schema {e}", op.name));
        }
    }
    problems.extend(crate::rate_limit::policy::problems(m));
    if problems.is_empty() {
        Ok(inputs)
    } else {
        Err(problems)
    }
}

/// Linear memories of the component's core modules whose minimum size is
/// above `max_bytes`: such a plugin could never be instantiated.
pub fn memory_floor(wasm: &[u8], max_bytes: usize) -> Vec<String> {
    let mut problems = Vec::new();
    let mut module = 0;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let Ok(payload) = payload else { break };
        match payload {
            wasmparser::Payload::ModuleSection { .. } => module += 1,
            wasmparser::Payload::MemorySection(reader) => {
                for memory in reader.into_iter().flatten() {
                    let page = 1u64 << memory.page_size_log2.unwrap_or(16);
                    let floor = memory.initial.saturating_mul(page);
                    if floor > max_bytes as u64 {
                        problems.push(format!(
                            "core module {} needs at least {:.1} MiB of linear memory ({} pages), above the cap of {} MiB (limits.memory_mib)",
                            module.max(1),
                            floor as f64 / (1 << 20) as f64,
                            memory.initial,
                            max_bytes >> 20
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    problems
}

/// Every import of `component` that a linker from `spoke_linker` cannot
/// satisfy. wasmtime stops at the first; each round stubs the imports
/// found so far and links again, so all of them are named.
pub fn imports<T: 'static>(engine: &Engine, component: &Component, spoke_linker: impl Fn() -> anyhow::Result<Linker<T>>) -> Vec<String> {
    let types = component.component_type();
    let declared: BTreeMap<&str, ComponentItem> = types.imports(engine).map(|(n, e)| (n, e.ty)).collect();
    let mut problems = Vec::new();
    let mut stubbed: Vec<&str> = Vec::new();
    for _ in 0..=declared.len() {
        let linker = spoke_linker().and_then(|mut l| {
            l.allow_shadowing(true);
            for name in &stubbed {
                stub(&mut l.root(), name, &declared[name], engine)?;
            }
            Ok(l)
        });
        let error = match linker.map(|l| l.instantiate_pre(component).map(|_| ())) {
            Ok(Ok(())) => break,
            Ok(Err(e)) => anyhow::Error::from(e),
            Err(e) => e,
        };
        let text = format!("{error:#}");
        // "component imports instance `NAME`, but a matching implementation was not found…"
        let name = text.split('`').nth(1).and_then(|n| declared.get_key_value(n)).map(|(n, _)| *n);
        let detail = text.split_once(": ").map(|(_, d)| d).unwrap_or("");
        match name {
            Some(n) if !stubbed.contains(&n) => {
                problems.push(format!("imports `{n}`, which Spoke does not provide{}", if detail.is_empty() { String::new() } else { format!(" ({detail})") }));
                stubbed.push(n);
            }
            _ => {
                problems.push(format!("cannot be linked: {text}"));
                break;
            }
        }
    }
    problems
}

/// Define `item` under `name` as something that only traps, so linking can
/// look past it.
fn stub<T: 'static>(at: &mut LinkerInstance<'_, T>, name: &str, item: &ComponentItem, engine: &Engine) -> anyhow::Result<()> {
    struct Stub;
    match item {
        ComponentItem::ComponentFunc(_) => at.func_new(name, |_, _, _, _| Err(wasmtime::format_err!("stub import called")))?,
        ComponentItem::Resource(_) => at.resource(name, ResourceType::host::<Stub>(), |_, _| Ok(()))?,
        ComponentItem::ComponentInstance(ty) => {
            let mut inner = at.instance(name)?;
            for (n, e) in ty.exports(engine) {
                stub(&mut inner, n, &e.ty, engine)?;
            }
        }
        // Types need no definition; modules and components are not imported
        // by plugins built with the usual tools.
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_plugin_name;

    #[test]
    fn plugin_names_are_lower_case_words() {
        for ok in ["wics", "cyclesoftware", "acme-2", "my_vendor"] {
            assert!(is_plugin_name(ok), "{ok}");
        }
        for bad in ["Tiny Bad!", "", "2fast", "Acme", "-acme", "acme.v2", &"a".repeat(65)] {
            assert!(!is_plugin_name(bad), "{bad}");
        }
    }
}
