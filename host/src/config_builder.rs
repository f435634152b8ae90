//! A [`Config`] built in code, for services that embed Spoke and keep their
//! settings elsewhere. It produces the same document a spoke.toml holds and
//! goes through the same checks ([`Config::parse`]), so a builder can never
//! make a config the file format would refuse, and errors name the same keys.
//!
//! ```
//! let config = spoke::Config::builder("/srv/app")
//!     .plugins_dir("plugins")
//!     .store("state/spoke.db")
//!     .connector("wics", "wics", |c| c
//!         .base_url("https://servicelayer.wics.nl")
//!         .credential("apikey", "env:WICS_APIKEY")
//!         .credential("apisecret", "env:WICS_APISECRET"));
//! # let _ = config;
//! ```
//! Credentials are secret references (`env:NAME`, `file:/path`) or values
//! the service supplies (`value:…`); either way they are held as
//! [`crate::Secret`] and never printed.
use crate::{Config, ConfigError};
use std::path::{Path, PathBuf};
use toml::{Table, Value};

#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    base: PathBuf,
    doc: Table,
}

/// One `[connectors.NAME]` table.
#[derive(Debug, Clone, Default)]
pub struct ConnectorBuilder {
    table: Table,
}

impl Config {
    /// Start a config whose relative paths are relative to `base`.
    pub fn builder(base: impl AsRef<Path>) -> ConfigBuilder {
        ConfigBuilder { base: base.as_ref().to_path_buf(), doc: Table::new() }
    }
}

fn path_value(p: impl AsRef<Path>) -> Value {
    Value::String(p.as_ref().display().to_string())
}

impl ConfigBuilder {
    pub fn plugins_dir(self, p: impl AsRef<Path>) -> Self {
        self.set("plugins_dir", path_value(p))
    }
    pub fn scripts_dir(self, p: impl AsRef<Path>) -> Self {
        self.set("scripts_dir", path_value(p))
    }
    /// The SQLite store file.
    pub fn store(self, p: impl AsRef<Path>) -> Self {
        self.set("store", path_value(p))
    }
    pub fn cache_dir(self, p: impl AsRef<Path>) -> Self {
        self.set("cache_dir", path_value(p))
    }
    /// Where [`crate::Engine`] serves webhooks when asked to listen.
    pub fn listen(self, addr: &str) -> Self {
        self.set("listen", Value::String(addr.into()))
    }

    /// Any key of the file format, dotted (`limits.max_rate_wait_secs`,
    /// `dispatch.max_attempts`): everything a spoke.toml can say, a builder
    /// can say.
    pub fn set(mut self, dotted: &str, value: impl Into<Value>) -> Self {
        let mut parts: Vec<&str> = dotted.split('.').collect();
        let last = parts.pop().unwrap_or_default();
        let mut table = &mut self.doc;
        for p in parts {
            table = table.entry(p).or_insert_with(|| Value::Table(Table::new())).as_table_mut().expect("a dotted key crosses a value that is not a table");
        }
        table.insert(last.to_string(), value.into());
        self
    }

    /// Bind connector `name` to the plugin named `plugin`.
    pub fn connector(mut self, name: &str, plugin: &str, f: impl FnOnce(ConnectorBuilder) -> ConnectorBuilder) -> Self {
        let mut c = f(ConnectorBuilder::default()).table;
        c.insert("plugin".into(), Value::String(plugin.into()));
        let connectors = self.doc.entry("connectors").or_insert_with(|| Value::Table(Table::new())).as_table_mut().expect("connectors is a table");
        connectors.insert(name.into(), Value::Table(c));
        self
    }

    /// The config as a spoke.toml would say it (secrets as the references
    /// or values given: keep it out of logs when values are inline).
    pub fn to_toml(&self) -> String {
        toml::to_string(&self.doc).unwrap_or_default()
    }

    /// Check and build it, exactly as [`Config::parse`] checks a file.
    pub fn build(self) -> Result<Config, ConfigError> {
        Config::parse(&self.to_toml(), "the embedding service's config", &self.base)
    }
}

impl ConnectorBuilder {
    pub fn base_url(self, url: &str) -> Self {
        self.set("base_url", url)
    }
    /// A credential field: `env:NAME`, `file:/path` or `value:…`.
    pub fn credential(mut self, field: &str, reference: &str) -> Self {
        let creds = self.table.entry("credentials").or_insert_with(|| Value::Table(Table::new())).as_table_mut().expect("credentials is a table");
        creds.insert(field.into(), Value::String(reference.into()));
        self
    }
    /// A plugin setting (`[connectors.NAME.settings]`).
    pub fn setting(mut self, key: &str, value: impl Into<Value>) -> Self {
        let settings = self.table.entry("settings").or_insert_with(|| Value::Table(Table::new())).as_table_mut().expect("settings is a table");
        settings.insert(key.into(), value.into());
        self
    }
    /// Any other key of the connector's table (`rate_limits`, …).
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.table.insert(key.into(), value.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_config_is_checked_like_a_file() {
        let c = Config::builder("/srv").plugins_dir("p").store("s.db").set("limits.max_rate_wait_secs", 7.0).connector("w", "wics", |c| c.base_url("http://127.0.0.1:9").credential("apikey", "value:k")).build();
        // The plugin folder has no wics plugin, but parsing does not load plugins.
        let c = c.unwrap();
        assert_eq!(c.plugins_dir, PathBuf::from("/srv/p"));
        assert_eq!(c.connectors["w"].plugin, "wics");
        assert_eq!(c.limits.max_rate_wait_secs, 7.0);
        let bad = Config::builder("/srv").set("limits.max_rate_wait_secs", "soon").build().unwrap_err();
        assert!(bad.to_string().contains("max_rate_wait_secs"), "{bad}");
    }
}
