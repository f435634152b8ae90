//! `spoke.toml`: what the host runs. Secrets are references (`env:NAME`,
//! `file:PATH`, or `value:TEXT` for sandboxes) resolved once at load into
//! [`Secret`]s, which never print.
use crate::manifest::Window;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A secret value. `Debug` and `Display` print `***`; the value is only
/// reachable through [`Secret::expose`], at the call that needs it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A configuration problem: the file, the key, and what was expected.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: `{}`: {}", self.file, self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Limits that protect the host from plugins and vendors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Guest execution time per call (time spent waiting in host imports,
    /// e.g. for the network, does not count).
    pub call_timeout_secs: f64,
    /// Linear memory cap per plugin instance.
    pub memory_mib: u32,
    /// Timeout of one outbound HTTP request.
    pub http_timeout_secs: f64,
    /// Largest vendor response body accepted.
    pub max_response_bytes: usize,
    /// Longest a request waits for rate budget before failing `rate-limited`.
    pub max_rate_wait_secs: f64,
    /// Largest webhook body accepted (larger: 413, recorded).
    pub max_webhook_bytes: usize,
    /// Wall-clock bound of one whole plugin call, time inside imports and
    /// WASI sleeps included (the guest budget above excludes them).
    pub call_deadline_secs: f64,
    /// Plugin calls of one connector running at once; more wait in line
    /// (up to `call_queue_secs`), so one connector's slow calls never take
    /// another's instances.
    pub max_concurrent_calls: u32,
    /// Longest a call waits for a free instance of its connector before
    /// failing as a transient `rate-limited` error.
    pub call_queue_secs: f64,
    /// Credential checks (`auth.verify-*`) one plugin call may make per
    /// second after its first few: enough for any webhook, far too few to
    /// guess a secret.
    pub max_verify_per_sec: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            call_timeout_secs: 30.0,
            memory_mib: 64,
            http_timeout_secs: 30.0,
            max_response_bytes: 16 << 20,
            max_rate_wait_secs: 120.0,
            max_webhook_bytes: 1 << 20,
            call_deadline_secs: 300.0,
            max_concurrent_calls: 64,
            call_queue_secs: 10.0,
            max_verify_per_sec: 50,
        }
    }
}

impl Limits {
    pub fn call_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.call_timeout_secs)
    }
    pub fn http_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.http_timeout_secs)
    }
    pub fn max_rate_wait(&self) -> Duration {
        Duration::from_secs_f64(self.max_rate_wait_secs)
    }
    pub fn call_deadline(&self) -> Duration {
        Duration::from_secs_f64(self.call_deadline_secs)
    }
    pub fn call_queue(&self) -> Duration {
        Duration::from_secs_f64(self.call_queue_secs)
    }
}

/// Limits of the HTTP listeners (`[server]`): a client that sends slowly,
/// idles, or opens connections by the thousand costs bounded resources.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerLimits {
    /// Connections open at once, per listener; past it a new connection is
    /// answered 503 and closed. Lowered at start to fit the file limit.
    pub max_connections: usize,
    /// Time to receive a request's headers, from the connection's first
    /// byte or the end of the previous response.
    pub header_read_timeout_secs: f64,
    /// Time to receive a whole request body.
    pub body_read_timeout_secs: f64,
    /// A connection with no request in flight and no traffic this long is closed.
    pub idle_timeout_secs: f64,
    /// On shutdown, how long requests in flight may take to finish.
    pub shutdown_grace_secs: f64,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits { max_connections: 4096, header_read_timeout_secs: 10.0, body_read_timeout_secs: 30.0, idle_timeout_secs: 60.0, shutdown_grace_secs: 5.0 }
    }
}

impl ServerLimits {
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.header_read_timeout_secs)
    }
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.body_read_timeout_secs)
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.idle_timeout_secs)
    }
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs_f64(self.shutdown_grace_secs)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<String>,
    token: Option<String>,
    #[serde(default)]
    allowed_hosts: Vec<String>,
}

/// The admin surface (`[admin]`): script triggers and everything that
/// runs, reads or changes state, on its own address, behind a bearer token.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: String,
    /// None: the admin surface is off.
    pub token: Option<Secret>,
    /// `Host` values accepted besides the listen address and localhost
    /// (the name a reverse proxy forwards).
    pub allowed_hosts: Vec<String>,
}

/// Shortest admin token accepted: a guessable token is no lock.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 24;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateOverride {
    pub windows: Vec<Window>,
    /// The penalty ladder in seconds, replacing the plugin's (a test
    /// against a simulator on a faster clock, or a vendor contract that
    /// differs from the published one).
    #[serde(default)]
    pub penalty_seconds: Option<Vec<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnector {
    plugin: String,
    base_url: Option<String>,
    country: Option<String>,
    #[serde(default)]
    credentials: BTreeMap<String, String>,
    #[serde(default)]
    settings: BTreeMap<String, String>,
    #[serde(default)]
    rate_limits: BTreeMap<String, RateOverride>,
    /// Auth scheme names a swapped plugin may use for this connector; a
    /// swap that changes them is refused unless they are pinned here.
    auth_schemes: Option<Vec<String>>,
    /// This connector's `kv` quota, instead of `[quotas]`.
    kv_max_keys: Option<u64>,
    kv_max_bytes: Option<u64>,
}

/// How events are retried before they are dead-lettered.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dispatch {
    pub max_attempts: u32,
    pub first_backoff_secs: f64,
    pub max_backoff_secs: f64,
    /// How long events wait for a subscription that vanished (a script file
    /// deleted, emptied or rewritten without a trigger) to come back before
    /// they are routed to the subscribers present.
    pub absent_hold_secs: f64,
    /// Lanes (subscriber, connector, topic, subject) delivered at once:
    /// events about different subjects run in parallel up to this many.
    pub concurrency: u32,
}

impl Default for Dispatch {
    fn default() -> Self {
        Dispatch { max_attempts: 8, first_backoff_secs: 1.0, max_backoff_secs: 300.0, absent_hold_secs: 60.0, concurrency: 32 }
    }
}

/// How long the store keeps what it no longer needs, from `[retention]`.
/// Ages bound a quiet host; row caps bound a busy (or flooded) one. Nothing
/// still owed to a subscriber (a pending dispatch, a running run) is pruned.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Accepted and duplicate webhook requests, with their bodies.
    pub deliveries_days: f64,
    pub max_deliveries: u64,
    /// Refused webhook requests.
    pub refusals_days: f64,
    pub max_refusals: u64,
    /// Bytes of a refused body kept (none for unknown connectors).
    pub refusal_body_bytes: usize,
    /// Events whose dispatches are all settled, with their dispatch
    /// state and attempts log.
    pub events_days: f64,
    /// Dead-lettered events (kept longer, for `spoke events replay`).
    pub dead_days: f64,
    /// Script runs that ended.
    pub runs_days: f64,
    pub max_runs: u64,
    /// `step()` records whose run ended. At least the dedupe retention
    /// (3 days): a vendor redelivery must still find its steps.
    pub steps_days: f64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            deliveries_days: 7.0,
            max_deliveries: 200_000,
            refusals_days: 7.0,
            max_refusals: 10_000,
            refusal_body_bytes: 4096,
            events_days: 30.0,
            dead_days: 90.0,
            runs_days: 14.0,
            max_runs: 200_000,
            steps_days: 30.0,
        }
    }
}

impl Retention {
    pub fn ms(days: f64) -> i64 {
        (days * 86_400_000.0) as i64
    }
}

/// Quotas on what plugins and scripts may write, from `[quotas]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quotas {
    /// Keys one connector may hold in `kv`.
    pub kv_max_keys: u64,
    /// Bytes (keys plus values) one connector may hold in `kv`.
    pub kv_max_bytes: u64,
    /// Log lines per second per plugin connector and per script; lines
    /// beyond it are counted and reported, not written.
    pub log_lines_per_sec: f64,
    /// Lines a source may write at once above the rate.
    pub log_burst: u32,
    /// Longest log line written; the rest is counted, not written.
    pub log_line_bytes: usize,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas { kv_max_keys: 10_000, kv_max_bytes: 16 << 20, log_lines_per_sec: 100.0, log_burst: 500, log_line_bytes: 4096 }
    }
}

/// An HTTP endpoint that receives events as JSON.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriberConfig {
    pub url: String,
    /// `connector/TOPIC` patterns, `*` for any part.
    pub topics: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    plugins_dir: Option<PathBuf>,
    scripts_dir: Option<PathBuf>,
    store: Option<String>,
    #[serde(default)]
    postgres: RawPostgres,
    cache_dir: Option<PathBuf>,
    cache_prune: Option<bool>,
    listen: Option<String>,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    dispatch: Dispatch,
    #[serde(default)]
    scripts: crate::script::ScriptLimits,
    #[serde(default)]
    server: ServerLimits,
    admin: Option<RawAdmin>,
    #[serde(default)]
    retention: Retention,
    #[serde(default)]
    quotas: Quotas,
    #[serde(default)]
    flows: crate::flow::FlowSettings,
    #[serde(default)]
    connectors: BTreeMap<String, RawConnector>,
    #[serde(default)]
    subscribers: BTreeMap<String, SubscriberConfig>,
}

/// One configured connector: a plugin plus an account.
#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    pub name: String,
    /// The manifest name of the plugin that serves it.
    pub plugin: String,
    pub base_url: Option<String>,
    pub country: Option<String>,
    pub credentials: BTreeMap<String, Secret>,
    pub settings: BTreeMap<String, String>,
    pub rate_limits: BTreeMap<String, RateOverride>,
    /// Pinned auth scheme names (see `RawConnector::auth_schemes`).
    pub auth_schemes: Option<Vec<String>>,
    /// `kv_max_keys` / `kv_max_bytes` set on this connector, overriding
    /// `[quotas]`.
    pub kv_max_keys: Option<u64>,
    pub kv_max_bytes: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Where the config came from, for error messages.
    pub source: String,
    pub plugins_dir: PathBuf,
    pub scripts_dir: PathBuf,
    pub store: StoreLocation,
    pub cache_dir: PathBuf,
    /// Delete compiled plugins this host no longer loads from `cache_dir`
    /// after each load (default). Hosts sharing one cache turn it off.
    pub cache_prune: bool,
    pub listen: String,
    pub limits: Limits,
    pub dispatch: Dispatch,
    pub scripts: crate::script::ScriptLimits,
    pub server: ServerLimits,
    pub admin: AdminConfig,
    pub retention: Retention,
    pub quotas: Quotas,
    pub flows: crate::flow::FlowSettings,
    pub connectors: BTreeMap<String, ConnectorConfig>,
    pub subscribers: BTreeMap<String, SubscriberConfig>,
}

impl Config {
    /// Read and check a config file. Relative paths in it are relative to
    /// the file's folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            key: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::parse(&text, &file, &base)
    }

    /// Parse config text; `source` names it in errors, `base` anchors
    /// relative paths.
    pub fn parse(text: &str, source: &str, base: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| toml_error(text, source, &e))?;
        let err = |key: String, message: String| ConfigError { file: source.to_string(), key, message };
        let rel = |p: Option<PathBuf>, default: &str| {
            let p = p.unwrap_or_else(|| PathBuf::from(default));
            if p.is_absolute() { p } else { base.join(p) }
        };
        if raw.limits.call_timeout_secs <= 0.0 {
            return Err(err("limits.call_timeout_secs".into(), "must be greater than 0".into()));
        }
        if raw.limits.memory_mib < 1 {
            return Err(err("limits.memory_mib".into(), "must be at least 1".into()));
        }
        if raw.limits.call_deadline_secs <= 0.0 {
            return Err(err("limits.call_deadline_secs".into(), "must be greater than 0".into()));
        }
        if raw.limits.max_concurrent_calls < 1 {
            return Err(err("limits.max_concurrent_calls".into(), "must be at least 1".into()));
        }
        if raw.limits.max_verify_per_sec < 1 {
            return Err(err("limits.max_verify_per_sec".into(), "must be at least 1".into()));
        }
        for (key, v) in [
            ("server.header_read_timeout_secs", raw.server.header_read_timeout_secs),
            ("server.body_read_timeout_secs", raw.server.body_read_timeout_secs),
            ("server.idle_timeout_secs", raw.server.idle_timeout_secs),
            ("server.shutdown_grace_secs", raw.server.shutdown_grace_secs),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(err(key.into(), "must be a number of seconds above 0".into()));
            }
        }
        if raw.server.max_connections < 1 {
            return Err(err("server.max_connections".into(), "must be at least 1".into()));
        }
        let admin = match raw.admin {
            None => AdminConfig { listen: "127.0.0.1:8081".into(), token: None, allowed_hosts: Vec::new() },
            Some(a) => {
                let token = match a.token {
                    None => None,
                    Some(reference) => {
                        let t = resolve_secret(&reference, base).map_err(|m| err("admin.token".into(), m))?;
                        if t.expose().chars().count() < MIN_ADMIN_TOKEN_CHARS {
                            return Err(err("admin.token".into(), format!("must be at least {MIN_ADMIN_TOKEN_CHARS} characters (the value is not shown); generate one with `openssl rand -hex 24`")));
                        }
                        Some(t)
                    }
                };
                AdminConfig { listen: a.listen.unwrap_or_else(|| "127.0.0.1:8081".into()), token, allowed_hosts: a.allowed_hosts }
            }
        };
        if raw.dispatch.concurrency < 1 {
            return Err(err("dispatch.concurrency".into(), "must be at least 1".into()));
        }
        if raw.dispatch.max_attempts < 1 {
            return Err(err("dispatch.max_attempts".into(), "must be at least 1".into()));
        }
        if !(raw.dispatch.absent_hold_secs.is_finite() && raw.dispatch.absent_hold_secs >= 0.0) {
            return Err(err("dispatch.absent_hold_secs".into(), "expected seconds, 0 or more".into()));
        }
        check_retention(&raw.retention).map_err(|(k, m)| err(format!("retention.{k}"), m))?;
        raw.flows.check().map_err(|m| err("flows".into(), m))?;
        let q = &raw.quotas;
        if q.kv_max_keys < 1 || q.kv_max_bytes < 1 || q.log_line_bytes < 1 || q.log_burst < 1 || !(q.log_lines_per_sec > 0.0) {
            return Err(err("quotas".into(), "every quota must be greater than 0".into()));
        }
        for (name, sub) in &raw.subscribers {
            if url::Url::parse(&sub.url).map(|u| !matches!(u.scheme(), "http" | "https")).unwrap_or(true) {
                return Err(err(format!("subscribers.{name}.url"), format!("expected an http(s) URL, got {:?}", sub.url)));
            }
        }
        let mut connectors = BTreeMap::new();
        for (name, c) in raw.connectors {
            if !is_identifier(&name) {
                return Err(err(format!("connectors.{name}"), "connector names are lower-case letters, digits and `_`, starting with a letter".into()));
            }
            if let Some(url) = &c.base_url {
                let parsed = url::Url::parse(url).map_err(|e| err(format!("connectors.{name}.base_url"), format!("expected an http(s) URL, got {url:?}: {e}")))?;
                if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                    return Err(err(format!("connectors.{name}.base_url"), format!("expected an http(s) URL with a host, got {url:?}")));
                }
            }
            let mut credentials = BTreeMap::new();
            for (field, reference) in c.credentials {
                let key = format!("connectors.{name}.credentials.{field}");
                let secret = resolve_secret(&reference, base).map_err(|m| err(key, m))?;
                credentials.insert(field, secret);
            }
            for (key, v) in [("kv_max_keys", c.kv_max_keys), ("kv_max_bytes", c.kv_max_bytes)] {
                if v == Some(0) {
                    return Err(err(format!("connectors.{name}.{key}"), "must be at least 1".into()));
                }
            }
            for (policy, o) in &c.rate_limits {
                if o.windows.is_empty() || o.windows.iter().any(|w| w.limit == 0 || w.seconds == 0) {
                    return Err(err(format!("connectors.{name}.rate_limits.{policy}.windows"), "expected a non-empty list of {limit = N, seconds = S} with N, S > 0".into()));
                }
                if o.penalty_seconds.as_ref().is_some_and(|p| p.is_empty() || p.iter().any(|s| !s.is_finite() || *s <= 0.0)) {
                    return Err(err(format!("connectors.{name}.rate_limits.{policy}.penalty_seconds"), "expected a non-empty list of seconds, each above 0".into()));
                }
            }
            connectors.insert(
                name.clone(),
                ConnectorConfig {
                    name,
                    plugin: c.plugin,
                    base_url: c.base_url,
                    country: c.country.map(|c| c.to_ascii_lowercase()),
                    credentials,
                    settings: c.settings,
                    rate_limits: c.rate_limits,
                    auth_schemes: c.auth_schemes,
                    kv_max_keys: c.kv_max_keys,
                    kv_max_bytes: c.kv_max_bytes,
                },
            );
        }
        Ok(Config {
            source: source.to_string(),
            plugins_dir: rel(raw.plugins_dir, "plugins"),
            scripts_dir: rel(raw.scripts_dir, "scripts"),
            store: store_location(raw.store, raw.postgres, base).map_err(|(key, m)| err(key, m))?,
            cache_dir: rel(raw.cache_dir, ".spoke/cache"),
            cache_prune: raw.cache_prune.unwrap_or(true),
            listen: raw.listen.unwrap_or_else(|| "127.0.0.1:8080".into()),
            limits: raw.limits,
            dispatch: raw.dispatch,
            scripts: raw.scripts,
            server: raw.server,
            admin,
            retention: raw.retention,
            quotas: raw.quotas,
            flows: raw.flows,
            connectors,
            subscribers: raw.subscribers,
        })
    }

    pub fn error(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError { file: self.source.clone(), key: key.into(), message: message.into() }
    }
}

/// A TOML error as file, key and expectation. The toml crate's own text
/// quotes the offending line, which may be a credential: never use it.
/// The message is cut before any quoted value for the same reason.
fn toml_error(text: &str, source: &str, e: &toml::de::Error) -> ConfigError {
    let line_no = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count());
    let mut table = String::new();
    let mut key = String::new();
    if let Some(n) = line_no {
        for line in text.lines().take(n + 1) {
            let t = line.trim();
            if t.starts_with('[') {
                table = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            }
        }
        let line = text.lines().nth(n).unwrap_or("").trim();
        if !line.starts_with('[') {
            if let Some((k, _)) = line.split_once('=') {
                let k = k.trim();
                if k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '"' | '\'')) {
                    key = k.trim_matches(|c| c == '"' || c == '\'').to_string();
                }
            }
        }
    }
    let full_key = match (table.is_empty(), key.is_empty()) {
        (true, _) => key,
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    };
    // "invalid type: string \"hunter2\", expected ..." names the value: keep
    // the kind of problem, drop every quoted value. Backticks quote field
    // names ("unknown field `x`"), except in type and value errors, where
    // they quote a number that may be the secret.
    let raw = e.message().trim().replace('\n', " ");
    let value_error = raw.starts_with("invalid type") || raw.starts_with("invalid value");
    let mut message = String::new();
    let mut quoted: Option<char> = None;
    for c in raw.chars() {
        match quoted {
            Some(q) if c == q => quoted = None,
            Some(_) => {}
            None if c == '"' || c == '\'' || (c == '`' && value_error) => {
                quoted = Some(c);
                message.push_str("(value not shown)");
            }
            None => message.push(c),
        }
    }
    let at = line_no.map(|n| format!(" (line {})", n + 1)).unwrap_or_default();
    ConfigError { file: source.to_string(), key: full_key, message: format!("{message}{at}") }
}

fn check_retention(r: &Retention) -> Result<(), (&'static str, String)> {
    let days = [
        ("deliveries_days", r.deliveries_days),
        ("refusals_days", r.refusals_days),
        ("events_days", r.events_days),
        ("dead_days", r.dead_days),
        ("runs_days", r.runs_days),
        ("steps_days", r.steps_days),
    ];
    for (key, d) in days {
        if !(d.is_finite() && d > 0.0) {
            return Err((key, format!("expected a number of days above 0, got {d}")));
        }
    }
    let min_steps = crate::store::DEDUPE_RETENTION_MS as f64 / 86_400_000.0;
    if r.steps_days < min_steps {
        return Err(("steps_days", format!("must be at least {min_steps} (the dedupe retention), or a vendor redelivery would repeat steps; got {}", r.steps_days)));
    }
    for (key, n) in [("max_deliveries", r.max_deliveries), ("max_refusals", r.max_refusals), ("max_runs", r.max_runs)] {
        if n < 1 {
            return Err((key, "must be at least 1".into()));
        }
    }
    Ok(())
}

fn is_identifier(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Where the host keeps its state: a SQLite file (one host, the embedded
/// default) or a PostgreSQL database (one or more hosts sharing it).
#[derive(Debug, Clone)]
pub enum StoreLocation {
    Sqlite(PathBuf),
    Postgres(PostgresLocation),
}

impl StoreLocation {
    /// The SQLite file, if that is the engine.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            StoreLocation::Sqlite(p) => Some(p),
            StoreLocation::Postgres(_) => None,
        }
    }
}

/// `store = "postgres://user@host:port/db"` with `[postgres]`.
#[derive(Debug, Clone)]
pub struct PostgresLocation {
    /// The URL without a password (safe to print).
    pub url: String,
    pub password: Option<Secret>,
    /// Connections this host opens.
    pub connections: u32,
    /// How long one statement may run before it is cancelled.
    pub statement_timeout_secs: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPostgres {
    password: Option<String>,
    connections: u32,
    statement_timeout_secs: f64,
}

impl Default for RawPostgres {
    fn default() -> Self {
        RawPostgres { password: None, connections: 8, statement_timeout_secs: 30.0 }
    }
}

/// `store`: a path (SQLite) or a `postgres://` URL whose password, if any,
/// is a secret reference in `[postgres] password`, never in the URL.
fn store_location(store: Option<String>, pg: RawPostgres, base: &Path) -> Result<StoreLocation, (String, String)> {
    let store = store.unwrap_or_else(|| ".spoke/spoke.db".into());
    if !(store.starts_with("postgres://") || store.starts_with("postgresql://")) {
        if pg.password.is_some() {
            return Err(("postgres.password".into(), "is set but `store` is not a postgres:// URL".into()));
        }
        let p = PathBuf::from(store);
        return Ok(StoreLocation::Sqlite(if p.is_absolute() { p } else { base.join(p) }));
    }
    let authority = store.split_once("://").map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or("")).unwrap_or("");
    if authority.rsplit_once('@').is_some_and(|(user, _)| user.contains(':')) {
        return Err(("store".into(), "holds a password; put it in [postgres] password as a secret reference (`env:NAME`, `file:PATH`) instead (the value is not shown)".into()));
    }
    if pg.connections < 2 {
        return Err(("postgres.connections".into(), "must be at least 2".into()));
    }
    if !(pg.statement_timeout_secs.is_finite() && pg.statement_timeout_secs > 0.0) {
        return Err(("postgres.statement_timeout_secs".into(), "must be a number of seconds above 0".into()));
    }
    let password = match pg.password {
        None => None,
        Some(reference) => Some(resolve_secret(&reference, base).map_err(|m| ("postgres.password".to_string(), m))?),
    };
    Ok(StoreLocation::Postgres(PostgresLocation { url: store, password, connections: pg.connections, statement_timeout_secs: pg.statement_timeout_secs }))
}

/// Resolve `env:NAME`, `file:PATH` or `value:TEXT`. The error never contains
/// the value, only the reference.
fn resolve_secret(reference: &str, base: &Path) -> Result<Secret, String> {
    if let Some(var) = reference.strip_prefix("env:") {
        std::env::var(var).map(Secret).map_err(|_| format!("environment variable {var} is not set"))
    } else if let Some(path) = reference.strip_prefix("file:") {
        let p = Path::new(path);
        let p = if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
        std::fs::read_to_string(&p)
            .map(|s| Secret(s.trim_end_matches(['\n', '\r']).to_string()))
            .map_err(|e| format!("cannot read secret file {}: {e}", p.display()))
    } else if let Some(value) = reference.strip_prefix("value:") {
        Ok(Secret(value.to_string()))
    } else {
        Err("expected a reference `env:NAME`, `file:PATH` or `value:TEXT` (the value itself is not shown)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "spoke.toml", Path::new("/etc/spoke"))
    }

    #[test]
    fn resolves_references_and_relative_paths() {
        std::env::set_var("SPOKE_TEST_SECRET_A", "s3cret-a");
        let c = parse(
            r#"
            plugins_dir = "p"
            [connectors.wics]
            plugin = "wics"
            base_url = "http://127.0.0.1:1"
            credentials = { apikey = "env:SPOKE_TEST_SECRET_A", apisecret = "value:lit" }
            "#,
        )
        .unwrap();
        assert_eq!(c.plugins_dir, Path::new("/etc/spoke/p"));
        let w = &c.connectors["wics"];
        assert_eq!(w.credentials["apikey"].expose(), "s3cret-a");
        assert_eq!(w.credentials["apisecret"].expose(), "lit");
        let debug = format!("{c:?}");
        assert!(!debug.contains("s3cret-a") && !debug.contains("lit\""), "secret leaked in Debug: {debug}");
    }

    #[test]
    fn names_file_key_and_expectation() {
        let e = parse("[connectors.wics]\nplugin = \"wics\"\ncredentials = { apikey = \"plain-secret-value\" }\n").unwrap_err();
        assert_eq!(e.key, "connectors.wics.credentials.apikey");
        assert!(e.message.contains("env:NAME"));
        assert!(!e.to_string().contains("plain-secret-value"));

        let e = parse("[connectors.wics]\nplugin = \"wics\"\nbase_url = \"not a url\"\n").unwrap_err();
        assert_eq!(e.key, "connectors.wics.base_url");

        let e = parse("listen = 5\n").unwrap_err();
        assert!(e.to_string().starts_with("spoke.toml: "), "{e}");
        assert_eq!(e.key, "listen", "{e}");

        let e = parse("[connectors.wics]\nplugin = \"wics\"\nbogus = 1\n").unwrap_err();
        assert_eq!(e.key, "connectors.wics.bogus", "{e}");
        assert!(e.message.contains("`base_url`"), "names the fields it expects: {e}");

        let e = parse("[connectors.wics]\nplugin = \"wics\"\nrate_limits.x = { windows = [] }\n").unwrap_err();
        assert_eq!(e.key, "connectors.wics.rate_limits.x.windows");

        std::env::remove_var("SPOKE_TEST_SECRET_MISSING");
        // A credentials line with a syntax or type error: the secret on it
        // never reaches the message.
        for text in [
            "[connectors.wics]\nplugin = \"wics\"\ncredentials = { apikey = \"value:sup3r-s3cret-line\" \n",
            "[connectors.wics]\nplugin = \"wics\"\ncredentials = { apikey = \"value:sup3r-s3cret-line\", x = 5 }\n",
            "[connectors.wics]\nplugin = \"wics\"\ncredentials = \"value:sup3r-s3cret-line\"\n",
            "[connectors.wics.credentials]\napikey = value:sup3r-s3cret-line\n",
        ] {
            let e = parse(text).unwrap_err();
            assert!(!format!("{e} {e:?}").contains("sup3r"), "secret echoed: {e}");
            assert!(e.key.starts_with("connectors.wics"), "names the key: {e}");
            assert!(e.message.contains("line "), "names the line: {e}");
        }
        let e = parse("[admin]\ntoken = \"value:short\"\n").unwrap_err();
        assert_eq!(e.key, "admin.token");
        assert!(!e.to_string().contains("short\""), "{e}");
        let e = parse("[connectors.wics]\nplugin = \"wics\"\ncredentials = { k = \"env:SPOKE_TEST_SECRET_MISSING\" }\n").unwrap_err();
        assert!(e.message.contains("SPOKE_TEST_SECRET_MISSING is not set"), "{e}");
    }
}
