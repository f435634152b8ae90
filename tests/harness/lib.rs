//! Test harness: a real Spoke host in-process, configured from a TOML
//! fragment, loading the plugins that `cargo xtask plugins` built.
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use spoke;

pub mod postgres;
pub mod vendor_docs;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Every built plugin, shipped and test-only (`cargo xtask plugins`).
/// The `spoke` command built from this workspace (nextest builds it with
/// the tests; `cargo build -p spoke-cli` otherwise).
pub fn spoke_bin() -> PathBuf {
    let bin = workspace().join("target/debug/spoke");
    assert!(bin.exists(), "{} is missing: build it with `cargo build -p spoke-cli` first", bin.display());
    bin
}

pub fn plugins_dir() -> PathBuf {
    let dir = std::env::var_os("SPOKE_TEST_PLUGINS").map(PathBuf::from).unwrap_or_else(|| workspace().join("target/test-plugins"));
    assert!(
        dir.join("probe.wasm").exists(),
        "no plugins in {}: run `cargo xtask plugins` (or `cargo xtask test`) first",
        dir.display()
    );
    dir
}

/// The `badmanifest` test plugin (target/broken-plugins, built by `cargo
/// xtask plugins`) with its variant marker patched to `variant` (see
/// tests/plugins/badmanifest): one build, every broken manifest.
pub fn badmanifest(variant: &str) -> Vec<u8> {
    let path = workspace().join("target/broken-plugins/badmanifest.wasm");
    let mut wasm = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask plugins`", path.display()));
    let marker = b"spoke-badmanifest:all###########";
    let at = wasm.windows(marker.len()).position(|w| w == marker).expect("the variant marker is in the component");
    let mut patched = format!("spoke-badmanifest:{variant}").into_bytes();
    assert!(patched.len() <= marker.len(), "variant name too long: {variant}");
    patched.resize(marker.len(), b'#');
    wasm[at..at + marker.len()].copy_from_slice(&patched);
    wasm
}

/// One compile cache for the whole test run, so each plugin is compiled once.
pub fn cache_dir() -> PathBuf {
    workspace().join("target/test-cache")
}

/// A webhook as a vendor would send it.
#[derive(Debug, Clone, Default)]
pub struct Webhook {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A host with its own temporary store.
pub struct TestHost {
    pub host: Arc<spoke::Host>,
    pub dir: tempfile::TempDir,
    pub config_text: String,
}

impl TestHost {
    /// Start a host whose `spoke.toml` is `fragment` (connectors, limits)
    /// plus the plugin folder, a temporary store and the shared cache.
    pub async fn start(fragment: &str) -> Result<TestHost> {
        let dir = tempfile::tempdir()?;
        Self::start_in(dir, fragment).await
    }

    /// Like [`TestHost::start`] in a given folder, so a test can restart a
    /// host on the same store.
    pub async fn start_in(dir: tempfile::TempDir, fragment: &str) -> Result<TestHost> {
        let text = config_text(dir.path(), fragment);
        Self::start_text(dir, text).await
    }

    /// Like [`TestHost::start`] with another plugin folder (the Python and
    /// JS examples live apart: every host would load them otherwise).
    pub async fn start_with_plugins(plugins: &Path, fragment: &str) -> Result<TestHost> {
        let dir = tempfile::tempdir()?;
        let text = config_text_with(dir.path(), plugins, fragment);
        Self::start_text(dir, text).await
    }

    async fn start_text(dir: tempfile::TempDir, text: String) -> Result<TestHost> {
        let config = spoke::Config::parse(&text, "test spoke.toml", dir.path()).map_err(|e| anyhow::anyhow!("{e}"))?;
        let host = spoke::Host::start(config).await.context("starting the test host")?;
        Ok(TestHost { host: Arc::new(host), dir, config_text: text })
    }

    pub async fn call(&self, connector: &str, operation: &str, input: serde_json::Value) -> Result<serde_json::Value, spoke::CallError> {
        self.host.call(connector, operation, input).await
    }

    pub async fn webhook(&self, connector: &str, webhook: Webhook) -> Result<Vec<spoke::Event>, spoke::CallError> {
        let received = spoke::Received {
            method: "POST".into(),
            path: String::new(),
            query: String::new(),
            headers: webhook.headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect(),
            body: webhook.body,
        };
        self.host.webhook(connector, &received).await
    }

    /// Serve the host's HTTP routes on loopback and run its dispatcher, as
    /// `spoke run` does. Both stop when the returned guard drops.
    pub async fn serve(&self) -> Served {
        self.serve_router(spoke::server::router(self.host.clone())).await
    }

    /// Like [`TestHost::serve`], plus the script engine over the configured
    /// scripts folder, watching it (and the plugin folder) for changes, and
    /// the admin surface (script triggers) at `Served::admin_url`.
    pub async fn serve_with_scripts(&self) -> (Served, Arc<spoke::script::Scripts>, notify::RecommendedWatcher) {
        let scripts = spoke::script::Scripts::start(self.host.clone()).await;
        let watcher = scripts.watch().unwrap();
        let mut served = self.serve_router(spoke::server::router(self.host.clone())).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let gate = spoke::server::admin::Gate::new(spoke::Secret::new(ADMIN_TOKEN), addr, &[]);
        let router = spoke::server::admin::router(self.host.clone(), scripts.clone(), gate);
        served.admin_url = format!("http://{addr}");
        served.tasks.push(tokio::spawn(spoke::server::limits::serve(listener, router, self.host.config().server.clone(), served.stop.subscribe())));
        (served, scripts, watcher)
    }

    async fn serve_router(&self, router: axum::Router) -> Served {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(spoke::server::limits::serve(listener, router, self.host.config().server.clone(), tx.subscribe()));
        let dispatcher = tokio::spawn(self.host.dispatcher().clone().run(async move {
            let _ = rx.wait_for(|v| *v).await;
        }));
        Served { url, admin_url: String::new(), tasks: vec![server, dispatcher], stop: tx }
    }

    /// Write the config to `spoke.toml` in the host's folder (for the CLI).
    pub fn write_config(&self) -> Result<PathBuf> {
        let path = self.dir.path().join("spoke.toml");
        std::fs::write(&path, &self.config_text)?;
        Ok(path)
    }
}

/// A `[connectors.probe]` table against `url` (the probe's API is under
/// `/api`), with placeholder credentials and `webhook_secret` as given.
pub fn probe_connector(url: &str, webhook_secret: &str) -> String {
    format!(
        "[connectors.probe]\nplugin = \"probe\"\nbase_url = \"{url}/api\"\n[connectors.probe.credentials]\nuser = \"value:u\"\npassword = \"value:p\"\napi_key = \"value:k\"\nstore = \"value:s\"\nwebhook_secret = \"value:{webhook_secret}\"\n"
    )
}

/// The full config text for a fragment, rooted in `dir`.
pub fn config_text(dir: &Path, fragment: &str) -> String {
    config_text_with(dir, &plugins_dir(), fragment)
}

/// [`config_text`] with another plugin folder.
pub fn config_text_with(dir: &Path, plugins: &Path, fragment: &str) -> String {
    // The admin surface as an inline table among the top-level keys, so
    // tests may still append top-level keys; a fragment with its own
    // `[admin]` replaces it.
    let admin = if fragment.contains("[admin]") { String::new() } else { format!("admin = {{ listen = \"127.0.0.1:0\", token = \"value:{ADMIN_TOKEN}\" }}\n") };
    // Every test host shares one compile cache, concurrently: none prunes it.
    let header = format!(
        "plugins_dir = {:?}\nstore = {:?}\ncache_dir = {:?}\ncache_prune = false\nlisten = \"127.0.0.1:0\"\n{admin}",
        plugins.display().to_string(),
        dir.join("spoke.db").display().to_string(),
        cache_dir().display().to_string(),
    );
    // Top-level keys must precede tables: put the header first, and let a
    // fragment that starts with `[limits]` follow it.
    format!("{header}\n{fragment}\n")
}

/// The admin token every test host is configured with.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

/// A served host; dropping it stops the servers and the dispatcher.
pub struct Served {
    /// The public surface: webhooks, liveness.
    pub url: String,
    /// The admin surface (with scripts only): script triggers.
    pub admin_url: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Served {
    /// `POST /scripts/{script}/{function}` on the admin surface, with the
    /// admin token, `body` as JSON (none if null).
    pub async fn trigger(&self, script: &str, function: &str, body: &serde_json::Value) -> reqwest::Response {
        trigger(&self.admin_url, script, function, body).await
    }
}

/// [`Served::trigger`] against any admin URL (a `spoke run` child's).
pub async fn trigger(admin_url: &str, script: &str, function: &str, body: &serde_json::Value) -> reqwest::Response {
    spoke::install_tls();
    let request = reqwest::Client::new().post(format!("{admin_url}/scripts/{script}/{function}")).bearer_auth(ADMIN_TOKEN);
    let request = if body.is_null() { request } else { request.json(body) };
    request.send().await.expect("admin request")
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A subscriber for tests: records what it got and fails as told.
pub struct Probe {
    pub name: String,
    pub topics: Vec<String>,
    /// Fail the first `fail_first` attempts (u32::MAX: always).
    pub fail_first: std::sync::atomic::AtomicU32,
    pub attempts: std::sync::atomic::AtomicU32,
    pub got: std::sync::Mutex<Vec<(String, spoke::Event)>>,
}

impl Probe {
    pub fn new(name: &str, topics: &[&str], fail_first: u32) -> Arc<Probe> {
        Arc::new(Probe {
            name: name.into(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            fail_first: fail_first.into(),
            attempts: 0.into(),
            got: Default::default(),
        })
    }
    pub fn delivered(&self) -> Vec<spoke::Event> {
        self.got.lock().unwrap().iter().map(|(_, e)| e.clone()).collect()
    }
}

impl spoke::dispatch::Subscriber for Probe {
    fn name(&self) -> &str {
        &self.name
    }
    fn wants(&self, connector: &str, topic: &str) -> bool {
        self.topics.iter().any(|p| spoke::dispatch::topic_matches(p, connector, topic))
    }
    fn deliver<'a>(&'a self, connector: &'a str, event: &'a spoke::Event) -> futures::future::BoxFuture<'a, Result<(), spoke::dispatch::Failure>> {
        use std::sync::atomic::Ordering;
        Box::pin(async move {
            let n = self.attempts.fetch_add(1, Ordering::SeqCst);
            if n < self.fail_first.load(Ordering::SeqCst) {
                return Err(format!("probe subscriber failing attempt {}", n + 1).into());
            }
            self.got.lock().unwrap().push((connector.to_string(), event.clone()));
            Ok(())
        })
    }
}

/// Poll `cond` every 20 ms until it holds or `secs` pass.
pub async fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    cond()
}

/// HMAC-SHA256 of `body` under `secret`, hex: a webhook signature as the
/// probe plugin (and CycleSoftware) checks it.
pub fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// How an answer `got` compares in shape with a vendor docs' example `doc`.
#[derive(Debug, Default)]
pub struct ShapeReport {
    /// Where the shapes differ; empty when they agree.
    pub differences: Vec<String>,
    /// Lists the example shows with elements but the answer left empty
    /// wherever they occur (`$.lists[].parts[]`): their elements went
    /// unchecked (not a difference, a gap in what was compared).
    pub unchecked: Vec<String>,
}

/// Where `got` differs in shape from a vendor docs' example `doc`: each
/// object has exactly the example's fields, and each value the example's
/// JSON type. Every field the example shows is expected, optional or not: a
/// vendor that documents a field in its example sends it, if only as null.
/// So a null in the example says nothing about the type, and a null where
/// the example has a value is allowed (it is harder on Spoke, not easier);
/// `metaFields` may be the example's string or an object (the docs describe
/// them as JSON the caller sent). Lists compare every element with the
/// example's first. Empty when the shapes agree.
pub fn shape_differences(doc: &serde_json::Value, got: &serde_json::Value) -> Vec<String> {
    shape_report(doc, got).differences
}

/// [`shape_differences`], plus the documented lists left unchecked.
pub fn shape_report(doc: &serde_json::Value, got: &serde_json::Value) -> ShapeReport {
    fn kind(v: &serde_json::Value) -> &'static str {
        match v {
            serde_json::Value::Null => "null",
            serde_json::Value::Bool(_) => "boolean",
            serde_json::Value::Number(_) => "number",
            serde_json::Value::String(_) => "string",
            serde_json::Value::Array(_) => "array",
            serde_json::Value::Object(_) => "object",
        }
    }
    /// The documented lists seen with elements and seen empty, by path
    /// without indices.
    #[derive(Default)]
    struct Lists {
        filled: std::collections::BTreeSet<String>,
        empty: std::collections::BTreeSet<String>,
    }
    fn walk(path: &str, doc: &serde_json::Value, got: &serde_json::Value, out: &mut ShapeReport, lists: &mut Lists) {
        use serde_json::Value;
        if doc.is_null() || got.is_null() {
            return;
        }
        if path.ends_with("metaFields") && (got.is_object() || got.is_string()) {
            return;
        }
        match (doc, got) {
            (Value::Object(d), Value::Object(g)) => {
                for key in d.keys().filter(|k| !g.contains_key(*k)) {
                    out.differences.push(format!("{path}.{key}: documented, not sent"));
                }
                for key in g.keys().filter(|k| !d.contains_key(*k)) {
                    out.differences.push(format!("{path}.{key}: sent, not documented"));
                }
                for (key, d) in d {
                    if let Some(g) = g.get(key) {
                        walk(&format!("{path}.{key}"), d, g, out, lists);
                    }
                }
            }
            (Value::Array(d), Value::Array(g)) => {
                if let Some(first) = d.first() {
                    let unindexed: String = path.split('[').map(|part| part.split_once(']').map_or(part, |(_, rest)| rest)).collect::<Vec<_>>().join("[]");
                    let seen = if g.is_empty() { &mut lists.empty } else { &mut lists.filled };
                    seen.insert(format!("{unindexed}[]"));
                    for (i, g) in g.iter().enumerate() {
                        walk(&format!("{path}[{i}]"), first, g, out, lists);
                    }
                }
            }
            (d, g) if kind(d) != kind(g) => out.differences.push(format!("{path}: documented as {} ({d}), sent as {} ({g})", kind(d), kind(g))),
            _ => {}
        }
    }
    let (mut out, mut lists) = (ShapeReport::default(), Lists::default());
    walk("$", doc, got, &mut out, &mut lists);
    out.unchecked = lists.empty.difference(&lists.filled).cloned().collect();
    out
}

#[cfg(test)]
mod tests {
    use super::shape_differences;
    use serde_json::json;

    #[test]
    fn shapes_differ_by_fields_and_types_only() {
        let doc = json!({"a": 1, "b": "x", "c": null, "lines": [{"n": 1}], "metaFields": ""});
        assert!(shape_differences(&doc, &json!({"a": 2.5, "b": "y", "c": {"any": 1}, "lines": [{"n": 2}, {"n": 3}], "metaFields": {"k": "v"}})).is_empty());
        let diff = shape_differences(&doc, &json!({"a": "1", "b": "y", "c": 1, "lines": [{"n": 2, "extra": true}], "metaFields": "", "more": 1}));
        assert_eq!(diff.len(), 3, "{diff:?}");
        assert!(diff.iter().any(|d| d.starts_with("$.a: documented as number")), "{diff:?}");
        assert!(diff.iter().any(|d| d == "$.more: sent, not documented"), "{diff:?}");
        assert!(diff.iter().any(|d| d == "$.lines[0].extra: sent, not documented"), "{diff:?}");
    }

    #[test]
    fn lists_left_empty_everywhere_are_unchecked() {
        let doc = json!({"lists": [{"parts": [{"n": 1}], "units": [{"u": ""}]}]});
        let report = super::shape_report(&doc, &json!({"lists": [{"parts": [], "units": []}, {"parts": [], "units": [{"u": "st"}]}]}));
        assert!(report.differences.is_empty(), "{report:?}");
        assert_eq!(report.unchecked, ["$.lists[].parts[]"]);
    }
}
