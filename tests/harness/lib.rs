//! Test harness: a real Spoke host in-process, configured from a TOML
//! fragment, loading the plugins that `cargo xtask plugins` built.
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use spoke;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Every built plugin, shipped and test-only (`cargo xtask plugins`).
pub fn plugins_dir() -> PathBuf {
    let dir = std::env::var_os("SPOKE_TEST_PLUGINS").map(PathBuf::from).unwrap_or_else(|| workspace().join("target/test-plugins"));
    assert!(
        dir.join("probe.wasm").exists(),
        "no plugins in {}: run `cargo xtask plugins` (or `cargo xtask test`) first",
        dir.display()
    );
    dir
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

    /// Write the config to `spoke.toml` in the host's folder (for the CLI).
    pub fn write_config(&self) -> Result<PathBuf> {
        let path = self.dir.path().join("spoke.toml");
        std::fs::write(&path, &self.config_text)?;
        Ok(path)
    }
}

/// The full config text for a fragment, rooted in `dir`.
pub fn config_text(dir: &Path, fragment: &str) -> String {
    let header = format!(
        "plugins_dir = {:?}\nstore = {:?}\ncache_dir = {:?}\nlisten = \"127.0.0.1:0\"\n",
        plugins_dir().display().to_string(),
        dir.join("spoke.db").display().to_string(),
        cache_dir().display().to_string(),
    );
    // Top-level keys must precede tables: put the header first, and let a
    // fragment that starts with `[limits]` follow it.
    format!("{header}\n{fragment}\n")
}
