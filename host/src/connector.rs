//! A configured connector bound to the plugin that serves it: the resolved
//! base URL, the effective rate policies with their shared buckets, and the
//! credentials. Rebuilt when a plugin is replaced; the buckets outlive it
//! because they belong to the credential, not the plugin.
use crate::config::{ConfigError, ConnectorConfig, Limits};
use crate::manifest::{Manifest, RatePolicy};
use crate::plugin::Plugin;
use crate::rate_limit::{self, Bucket, Limiter};
use crate::store::Store;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// What every connector shares: the HTTP client, the store, the limits and
/// the rate buckets.
pub struct Shared {
    pub http: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub limits: Limits,
    pub limiter: Limiter,
    pub config_source: String,
    pub quotas: crate::config::Quotas,
    /// Log quotas of every plugin connector and script.
    pub logs: Arc<crate::log_budget::LogBudget>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

pub struct Binding {
    pub config: ConnectorConfig,
    pub plugin: Arc<Plugin>,
    pub base_url: url::Url,
    /// "This account at this vendor", as a name that reveals nothing: the
    /// scope of rate budgets and vendor pauses.
    pub credential: String,
    pub policies: Vec<(RatePolicy, Arc<Bucket>)>,
    pub shared: Arc<Shared>,
}

impl Binding {
    /// Bind `config` to `plugin`, checking that the plugin can serve it:
    /// every required credential field is configured, every rate-limit
    /// override names a policy the plugin has, the base URL resolves.
    pub fn new(config: &ConnectorConfig, plugin: Arc<Plugin>, shared: Arc<Shared>) -> Result<Binding, ConfigError> {
        let manifest = &plugin.manifest;
        let err = |key: String, message: String| ConfigError { file: shared.config_source.clone(), key, message };
        let key = |rest: &str| format!("connectors.{}.{rest}", config.name);

        for scheme in manifest.auth_schemes.iter().filter(|s| !s.optional) {
            for field in scheme.method.fields() {
                if !config.credentials.contains_key(field) {
                    return Err(err(key(&format!("credentials.{field}")), format!("plugin {} needs it for auth scheme `{}` ({})", manifest.name, scheme.name, scheme.description)));
                }
            }
        }
        for name in config.rate_limits.keys() {
            if !manifest.rate_policies.iter().any(|p| &p.name == name) {
                let known: Vec<_> = manifest.rate_policies.iter().map(|p| p.name.as_str()).collect();
                return Err(err(key(&format!("rate_limits.{name}")), format!("plugin {} has no rate policy `{name}`; it has: {}", manifest.name, known.join(", "))));
            }
        }
        let base = resolve_base_url(config, manifest).map_err(|m| err(key("base_url"), m))?;
        let base_url = url::Url::parse(&base).map_err(|e| err(key("base_url"), format!("{base:?} is not a URL: {e}")))?;

        let credential = credential_identity(&plugin.manifest.name, config);
        let policies = manifest
            .rate_policies
            .iter()
            .map(|p| {
                let mut p = p.clone();
                if let Some(o) = config.rate_limits.get(&p.name) {
                    p.windows = o.windows.clone();
                }
                let mut penalty_ms: Vec<i64> = p.penalty_seconds.iter().map(|s| i64::from(*s) * 1000).collect();
                if let Some(o) = config.rate_limits.get(&p.name).and_then(|o| o.penalty_seconds.as_ref()) {
                    penalty_ms = o.iter().map(|s| (s * 1000.0) as i64).collect();
                }
                let policy = rate_limit::Policy { name: p.name.clone(), windows: p.windows.clone(), headers: p.headers.clone(), penalty_ms };
                let bucket = shared.limiter.bucket(&credential, &policy);
                (p, bucket)
            })
            .collect();
        Ok(Binding { config: config.clone(), plugin, base_url, credential, policies, shared })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn manifest(&self) -> &Manifest {
        &self.plugin.manifest
    }

    /// The buckets a request made during `operation` draws from.
    pub fn buckets_for(&self, operation: &str) -> Vec<Arc<Bucket>> {
        self.policies.iter().filter(|(p, _)| p.applies_to(operation)).map(|(_, b)| b.clone()).collect()
    }

    /// What `operation` may spend, from every bucket it draws from: the
    /// requests per second it can make for ever (the tightest window's rate:
    /// a daily budget, not the per-minute burst) and the most it may make at
    /// once (the smallest window's limit). `None` when no policy limits it.
    pub fn budget(&self, operation: &str) -> Option<(f64, u32)> {
        let windows: Vec<_> = self.policies.iter().filter(|(p, _)| p.applies_to(operation)).flat_map(|(p, _)| p.windows.iter()).filter(|w| w.seconds > 0).collect();
        let rate = windows.iter().map(|w| f64::from(w.limit) / f64::from(w.seconds)).min_by(f64::total_cmp)?;
        let burst = windows.iter().map(|w| w.limit).min()?;
        Some((rate, burst))
    }

    pub fn bucket(&self, name: &str) -> Option<&Arc<Bucket>> {
        self.policies.iter().find(|(p, _)| p.name == name).map(|(_, b)| b)
    }
}

/// `base_url` wins; else `country` picks a manifest key; else the first.
fn resolve_base_url(config: &ConnectorConfig, manifest: &Manifest) -> Result<String, String> {
    if let Some(url) = &config.base_url {
        return Ok(url.clone());
    }
    let first = manifest.base_urls.first().ok_or_else(|| format!("plugin {} declares no base URL: set `base_url`", manifest.name))?;
    Ok(config
        .country
        .as_deref()
        .and_then(|c| manifest.base_urls.iter().find(|b| b.key.eq_ignore_ascii_case(c)))
        .unwrap_or(first)
        .url
        .clone())
}

/// A name for "this account at this vendor" that reveals nothing: two
/// connectors with the same plugin and credentials share rate buckets.
fn credential_identity(plugin: &str, config: &ConnectorConfig) -> String {
    let mut h = Sha256::new();
    h.update(plugin.as_bytes());
    for (field, secret) in &config.credentials {
        h.update([0]);
        h.update(field.as_bytes());
        h.update([0]);
        h.update(secret.expose().as_bytes());
    }
    hex::encode(&h.finalize()[..12])
}
