//! What every benchmark needs: the workspace, the built plugins, a loopback
//! "vendor" that answers at once and records when each id arrived.
use axum::extract::{Query, State};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub struct Fixture {
    pub root: PathBuf,
    pub plugins: PathBuf,
    pub vendor_url: String,
    /// id -> when the vendor saw its `/b` request.
    pub arrivals: Arc<Mutex<HashMap<i64, Instant>>>,
    _vendor: spoke_sandbox::serve::Server,
}

impl Fixture {
    pub async fn new() -> anyhow::Result<Fixture> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
        let plugins = root.join("target/test-plugins");
        anyhow::ensure!(plugins.join("probe.wasm").exists(), "run `cargo xtask plugins` first (cargo xtask bench does)");
        let arrivals: Arc<Mutex<HashMap<i64, Instant>>> = Default::default();
        let router = axum::Router::new()
            .route("/a", axum::routing::any(|| async { axum::Json(serde_json::json!({"ok": true})) }))
            .route(
                "/b",
                axum::routing::any(|State(a): State<Arc<Mutex<HashMap<i64, Instant>>>>, Query(q): Query<HashMap<String, String>>| async move {
                    if let Some(id) = q.get("id").and_then(|i| i.parse().ok()) {
                        a.lock().unwrap().insert(id, Instant::now());
                    }
                    axum::Json(serde_json::json!({"ok": true}))
                }),
            )
            .with_state(arrivals.clone());
        let vendor = spoke_sandbox::serve::serve(router, 0).await?;
        Ok(Fixture { root, plugins, vendor_url: vendor.url(), arrivals, _vendor: vendor })
    }

    /// A spoke.toml for the probe connector against the loopback vendor,
    /// with limits high enough that the limiter never waits.
    pub fn config(&self, dir: &Path, cache: &Path, extra: &str) -> spoke::Config {
        spoke::Config::parse(&self.config_text(dir, cache, extra), "bench", dir).expect("bench config")
    }

    /// [`Fixture::config`] as the text of a spoke.toml (for `spoke run`).
    pub fn config_text(&self, dir: &Path, cache: &Path, extra: &str) -> String {
        self.config_text_on(dir, cache, &dir.join("spoke.db").display().to_string(), extra)
    }

    /// [`Fixture::config_text`] with another store (a `postgres://` URL).
    pub fn config_text_on(&self, dir: &Path, cache: &Path, store: &str, extra: &str) -> String {
        format!(
            "plugins_dir = {:?}\ncache_dir = {:?}\ncache_prune = false\nstore = {:?}\nscripts_dir = {:?}\n{extra}\n[connectors.probe]\nplugin = \"probe\"\nbase_url = \"{}\"\ncredentials = {{ webhook_secret = \"value:bench-secret\" }}\nrate_limits.general = {{ windows = [{{ limit = 100000000, seconds = 60 }}] }}\n",
            self.plugins.display().to_string(),
            cache.display().to_string(),
            store,
            dir.join("scripts").display().to_string(),
            self.vendor_url
        )
    }

    /// A binary of this workspace, from the profile this bench was built
    /// with (`cargo xtask bench` builds release).
    pub fn bin(&self, name: &str) -> PathBuf {
        self.root.join(if cfg!(debug_assertions) { "target/debug" } else { "target/release" }).join(name)
    }

    pub fn cache(&self) -> PathBuf {
        self.root.join("target/bench/cache")
    }
}

pub fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|t| t.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()));
    let mem = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| t.lines().next().map(str::to_string));
    serde_json::json!({ "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), "cpu": cpu, "memory": mem, "os": std::env::consts::OS })
}

/// Resident set size of a process, in MiB.
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The pipeline's script: each PING makes two plugin calls to the vendor,
/// the second carrying the event's id (when the vendor sees it, the event
/// is done).
pub const PIPE_SCRIPT: &str = "on(\"probe\", \"PING\", \"handle\");\nfn handle(e) {\n    probe::http(#{ path: \"/a\" });\n    probe::http(#{ path: \"/b\", query: #{ id: e.payload.id.to_string() } });\n}\n";

/// A scratch folder under target/ with `scripts/pipe.rhai` in it.
pub fn pipeline_dir(fx: &Fixture) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir_in(fx.root.join("target"))?;
    std::fs::create_dir_all(dir.path().join("scripts"))?;
    std::fs::write(dir.path().join("scripts/pipe.rhai"), PIPE_SCRIPT)?;
    Ok(dir)
}

pub fn sign(body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"bench-secret").unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}
