//! The `spoke` commands. `main.rs` only parses; each command is here.
use spoke::{Config, Host};
use clap::{Parser, Subcommand};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "spoke", version, about = "Spoke runs vendor API connectors as WebAssembly components and chains them with scripts.")]
pub struct Cli {
    /// The configuration file.
    #[arg(long, short, global = true, env = "SPOKE_CONFIG", default_value = "spoke.toml")]
    pub config: PathBuf,
    /// Log filter, e.g. `info`, `spoke=debug` (also RUST_LOG). Default:
    /// `info` for `spoke run`, `warn` for the other commands.
    #[arg(long, global = true, env = "SPOKE_LOG")]
    pub log: Option<String>,
    /// Log lines as `text` (for people) or `json` (one object per line, for
    /// a log collector; a run's lines carry its run id and flow key).
    #[arg(long, global = true, env = "SPOKE_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the loaded plugins with their version, operation count and where
    /// their compiled code came from (compile cache or fresh compile), then
    /// the plugin files that failed to load with why; exits 1 if any did.
    Plugins,
    /// Check a plugin component as every load does, without starting a
    /// host: imports Spoke cannot satisfy, a memory floor above the cap, and
    /// the manifest (name, unique operations and auth schemes, paths, base
    /// URLs, JSON Schemas, rate windows). Lists every problem; exits 1 if
    /// there is any.
    Check {
        /// The component, e.g. target/wasm32-wasip2/release/acme.wasm.
        plugin: PathBuf,
        /// The memory cap to check against, in MiB. Default: the config's
        /// `limits.memory_mib` if the config file exists, else 64.
        #[arg(long)]
        memory_mib: Option<u32>,
    },
    /// Show a connector's manifest: operations with method, vendor path and
    /// schemas, auth schemes, rate policies, webhook topics.
    Describe {
        /// A configured connector, or a loaded plugin by name.
        connector: String,
        /// Print the manifest as JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Call one operation and print its JSON result. On failure, print the
    /// error kind and message and exit non-zero (2 for invalid input,
    /// 3 for vendor-side errors, 1 otherwise).
    Call {
        connector: String,
        operation: String,
        /// The input as JSON, or `-` to read it from stdin. Default `{}`.
        input: Option<String>,
    },
    /// Start the host: load plugins, bind connectors, receive webhooks on
    /// `POST /hooks/{connector}`, dispatch events; until Ctrl-C or SIGTERM.
    Run,
    /// Inspect and replay stored events (works while the host runs).
    #[command(subcommand)]
    Events(EventsCommand),
    /// Loaded scripts: version, triggers, last run, last load error.
    Scripts,
    /// Script runs: trigger, version, outcome, error with file:line, steps.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Run one script function by hand.
    #[command(subcommand)]
    Script(ScriptCommand),
    /// Durable flows: what each waits for, steps in doubt, operator fixes.
    #[command(subcommand)]
    Flows(crate::flows::FlowsCommand),
    /// What scripts keep with `state::` (read-only; works while the host runs).
    #[command(subcommand)]
    State(StateCommand),
    /// Vendor-side webhook subscriptions.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// A new connector project in its own folder: a sample operation, a
    /// webhook handler, a spoke.toml, a test, and a README with the one
    /// command that builds it into a component.
    New {
        /// The connector's name: a lowercase letter, then lowercase letters,
        /// digits or '_' (what spoke.toml accepts as a connector).
        name: String,
        /// The language: rust (the pdk), python (componentize-py) or js
        /// (componentize-js).
        #[arg(long, value_enum, default_value = "rust")]
        lang: crate::new::Lang,
        /// Where to write it (must not exist or be empty). Default: ./NAME.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Rust only: the spoke-pdk crate folder the project depends on.
        /// Default: plugins/pdk of the Spoke checkout this binary was built
        /// in, if it is still there; else a git placeholder to edit.
        #[arg(long)]
        pdk: Option<PathBuf>,
    },
    /// The sales-chain demo: sandbox + host + shipped scripts, a few leads
    /// pushed through, the story printed as it happens. Stops by itself.
    Demo {
        /// Plugin folder (built by `cargo xtask plugins`).
        #[arg(long, default_value = "target/spoke-plugins")]
        plugins: PathBuf,
        #[arg(long, default_value = "scripts")]
        scripts: PathBuf,
        /// Scratch folder for the demo's store and config (wiped first).
        #[arg(long, default_value = "target/demo")]
        work: PathBuf,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 90)]
        timeout: u64,
    },
    /// The vendor sandbox: simulators of CycleSoftware, WICS and Lagerkoll
    /// on loopback, seeded, to develop scripts without a real account.
    Sandbox {
        #[command(subcommand)]
        command: Option<SandboxCommand>,
    },
}

#[derive(Subcommand, Debug)]
pub enum SandboxCommand {
    /// Start the simulators (the default), print their URLs and the
    /// spoke.toml that points at them; run until Ctrl-C.
    Start {
        /// Also write that spoke.toml here.
        #[arg(long)]
        write: Option<PathBuf>,
        /// Where the host will receive webhooks.
        #[arg(long, default_value = "http://127.0.0.1:8080/hooks")]
        hooks: String,
    },
    /// Play the dealer: set a CycleSoftware lead's status (accepted,
    /// declined, noticed, succeeded, failed, cancelled).
    Lead { uuid: String, status: String },
    /// Play the warehouse: ship a WICS order (by reference), which sends
    /// the SHIPMENT webhook to subscribers.
    Ship {
        reference: String,
        #[arg(long)]
        track_and_trace: Option<String>,
    },
}

/// Ports `spoke sandbox` uses, so its spoke.toml stays valid across starts.
pub const SANDBOX_PORTS: spoke_sandbox::Ports = spoke_sandbox::Ports { cyclesoftware: 7101, wics: 7102, lagerkoll: 7103 };

#[derive(Subcommand, Debug)]
pub enum WebhooksCommand {
    /// Subscribe our ingress to every topic of each connector whose vendor
    /// has a subscription API (WICS); idempotent: existing subscriptions are
    /// kept, nothing is created twice. For the others (CycleSoftware), print
    /// what to configure in the vendor's account.
    Sync {
        /// How the vendors reach this host, e.g. https://spoke.example.com
        #[arg(long)]
        public_url: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum RunsCommand {
    /// Recent runs, newest first.
    List {
        #[arg(long)]
        script: Option<String>,
        #[arg(long)]
        function: Option<String>,
        /// ok, failed, interrupted (the host died during it; marked when
        /// the next `spoke run` starts) or running.
        #[arg(long)]
        outcome: Option<spoke::store::RunOutcome>,
        #[arg(long, default_value_t = 30)]
        limit: usize,
    },
    /// One run in full: trigger, outcome, error with file:line, steps and
    /// rate waits, and the lines it logged.
    Show {
        id: i64,
        /// Print the run record as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ScriptCommand {
    /// Load FILE with the configured connectors and call FN, with JSON as
    /// its argument if given; prints the result. Steps and state are shared
    /// with `spoke run` (same store), so a step already taken is not redone.
    Run {
        file: PathBuf,
        function: String,
        json: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum StateCommand {
    /// One key's value, as JSON; exits 1 if the script has no such key.
    Get { script: String, key: String },
    /// The script's keys starting with PREFIX (all without one), sorted,
    /// with their values.
    List {
        script: String,
        prefix: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// One JSON object of key -> value, values in full.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum EventsCommand {
    /// List events, newest first.
    List {
        #[arg(long)]
        connector: Option<String>,
        #[arg(long)]
        topic: Option<String>,
        /// waiting (not yet matched to subscribers, or held for one that is
        /// briefly absent), pending, delivered, dead or unrouted.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Show one event: payload, dispatch state per subscriber, every attempt.
    Show { seq: i64 },
    /// Dispatch an event again (or every dead-lettered one with --dead).
    Replay {
        #[arg(required_unless_present = "dead")]
        seq: Option<i64>,
        #[arg(long, conflicts_with = "seq")]
        dead: bool,
    },
    /// Webhook deliveries that were refused, with the reason and body.
    Refused {
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

pub fn run(cli: Cli) -> ExitCode {
    // Only the long-running host logs at info by default; one-shot commands
    // (and the demo, which tells its own story) keep stdout/stderr for results.
    let default = match cli.command {
        Command::Run => "info",
        Command::Demo { .. } => "off",
        _ => "warn",
    };
    init_tracing(cli.log.as_deref().unwrap_or(default), cli.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(async move {
        match dispatch(cli).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    });
    // A script run or load still on a blocking thread must not keep the
    // process alive after a stop: give it a moment, then leave.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    code
}

fn init_tracing(filter: &str, format: LogFormat) {
    let filter = std::env::var("RUST_LOG").ok().unwrap_or_else(|| filter.to_string());
    let builder = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new(filter)).with_writer(std::io::stderr).with_target(false);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init(),
        // The enclosing spans (a run: run id, script, function, flow key)
        // become fields of every line.
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).flatten_event(true).try_init(),
    };
}

async fn start(config: &PathBuf) -> anyhow::Result<Host> {
    let config = Config::load(config)?;
    Host::start(config).await
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Plugins => {
            let host = start(&cli.config).await?;
            println!("{:<16} {:<10} {:>10}  {:<14} {}", "PLUGIN", "VERSION", "OPERATIONS", "LOADED FROM", "FILE");
            for p in host.plugins() {
                let from = match p.source {
                    spoke::plugin::Source::Cache => "compile cache",
                    spoke::plugin::Source::Compiled => "fresh compile",
                };
                println!("{:<16} {:<10} {:>10}  {:<14} {}", p.manifest.name, p.manifest.version, p.manifest.operations.len(), from, p.path.display());
            }
            let failed = host.failed_plugins();
            for (path, error) in failed {
                println!("\nNOT LOADED {}\n  {}", path.display(), error.replace('\n', "\n  "));
            }
            Ok(if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Check { plugin, memory_mib } => crate::check::run(&cli.config, &plugin, memory_mib).await,
        Command::Describe { connector, json } => {
            let host = start(&cli.config).await?;
            let Some(m) = host.manifest(&connector) else {
                anyhow::bail!("no connector or plugin named {connector:?}");
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else {
                print_manifest(&m);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Call { connector, operation, input } => {
            let text = match input.as_deref() {
                None => "{}".to_string(),
                Some("-") => {
                    let mut s = String::new();
                    std::io::stdin().read_to_string(&mut s)?;
                    s
                }
                Some(s) => s.to_string(),
            };
            let input: serde_json::Value = serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("the input is not JSON: {e}"))?;
            let host = start(&cli.config).await?;
            match host.call(&connector, &operation, input).await {
                Ok(out) => {
                    println!("{}", serde_json::to_string_pretty(&out)?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    if let Some(f) = &e.field {
                        eprintln!("  field: {f}");
                    }
                    if let Some(s) = e.status {
                        eprintln!("  vendor status: {s}");
                    }
                    if let Some(ms) = e.retry_after_ms {
                        eprintln!("  retry after: {:.1} s", ms as f64 / 1000.0);
                    }
                    Ok(ExitCode::from(match e.kind {
                        spoke::ErrorKind::InvalidInput => 2,
                        spoke::ErrorKind::Vendor | spoke::ErrorKind::NotFound | spoke::ErrorKind::Conflict => 3,
                        _ => 1,
                    }))
                }
            }
        }
        Command::Events(cmd) => events(&cli.config, cmd),
        Command::Webhooks(WebhooksCommand::Sync { public_url }) => {
            let host = start(&cli.config).await?;
            webhooks_sync(&host, public_url.trim_end_matches('/')).await
        }
        Command::New { name, lang, dir, pdk } => {
            let dir = crate::new::run(&name, lang, dir, pdk)?;
            println!("wrote {} ({lang:?} connector {name}); its README.md has the build command", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { plugins, scripts, work, timeout } => {
            let ok = crate::demo::run(&plugins, &scripts, &work, std::time::Duration::from_secs(timeout)).await?;
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Sandbox { command } => sandbox(command.unwrap_or(SandboxCommand::Start { write: None, hooks: "http://127.0.0.1:8080/hooks".into() })).await,
        Command::Scripts => {
            let store = open_store(&cli.config)?;
            for s in spoke::store::Store::scripts(&store)? {
                match s.removed_at {
                    Some(at) => println!("{} (removed {}; was version {})", s.name, time(at), s.version),
                    None => println!("{} (version {}, loaded {})", s.name, s.version, time(s.loaded_at)),
                }
                for t in s.triggers.as_array().into_iter().flatten().filter(|_| s.removed_at.is_none()) {
                    println!("  trigger: {}", t.as_str().unwrap_or_default());
                }
                if let Some(c) = &s.trigger_change {
                    let list = |k: &str| c[k].as_array().map(|a| a.iter().filter_map(|t| t.as_str()).collect::<Vec<_>>().join("; ")).unwrap_or_default();
                    let at = c["at"].as_i64().map(time).unwrap_or_default();
                    println!("  triggers changed in version {} ({at}): added [{}], removed [{}]", c["version"], list("added"), list("removed"));
                }
                if let Some(r) = &s.last_run {
                    println!("  last run: #{} {} {} -> {}", r.id, time(r.started_at), r.function, r.outcome.as_deref().unwrap_or("running"));
                }
                if let Some(e) = &s.error {
                    println!("  LOAD ERROR ({}): {e}", time(s.error_at.unwrap_or_default()));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Flows(cmd) => crate::flows::run(&cli.config, cmd),
        Command::Runs(cmd) => {
            let store = open_store(&cli.config)?;
            match cmd {
                RunsCommand::List { script, function, outcome, limit } => {
                    use spoke::store::{RunFilter, RunOutcome};
                    println!("{:>6}  {:<19}  {:<20} {:<22} {:<11} {}", "RUN", "STARTED (UTC)", "SCRIPT", "FUNCTION", "RESULT", "TRIGGER / ERROR");
                    for r in spoke::store::Store::runs(&store, &RunFilter { script, function, outcome, limit })? {
                        let detail = match (&r.error, &r.location) {
                            (Some(e), Some(l)) => format!("{l}: {e}"),
                            (Some(e), None) => e.clone(),
                            _ => r.trigger.clone(),
                        };
                        // In the words --outcome takes.
                        let result = RunOutcome::from_stored(r.outcome.as_deref()).map(RunOutcome::as_str).or(r.outcome.as_deref()).unwrap_or("?");
                        println!("{:>6}  {:<19}  {:<20} {:<22} {:<11} {}", r.id, time(r.started_at), format!("{} v{}", r.script, r.version), r.function, result, detail);
                    }
                }
                RunsCommand::Show { id, json } => {
                    let Some(r) = spoke::store::Store::run(&store, id)? else { anyhow::bail!("no run {id}") };
                    if json {
                        println!("{}", serde_json::to_string_pretty(&r)?);
                    } else {
                        print_run(&r);
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::State(cmd) => crate::state::run(&open_store(&cli.config)?, cmd),
        Command::Script(ScriptCommand::Run { file, function, json }) => {
            let arg = json.map(|j| serde_json::from_str::<serde_json::Value>(&j)).transpose().map_err(|e| anyhow::anyhow!("the argument is not JSON: {e}"))?;
            let mut config = Config::load(&cli.config)?;
            // Load only this file, from wherever it is.
            config.scripts_dir = file.parent().map(|p| if p.as_os_str().is_empty() { PathBuf::from(".") } else { p.to_path_buf() }).unwrap_or_default();
            let host = std::sync::Arc::new(Host::start(config).await?);
            let scripts = spoke::script::Scripts::start_only(host, &file).await?;
            let name = spoke::script::script_name(&file).unwrap_or_default();
            match scripts.run(&name, &function, arg, "manual").await {
                Ok(v) => {
                    println!("{}", serde_json::to_string_pretty(&v)?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: {e} (run {})", e.run_id);
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Run => {
            let host = std::sync::Arc::new(start(&cli.config).await?);
            spoke::server::serve(host).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `spoke runs show`: the run's story, top to bottom.
fn print_run(r: &spoke::store::RunRecord) {
    let outcome = spoke::store::RunOutcome::from_stored(r.outcome.as_deref()).map(spoke::store::RunOutcome::as_str).unwrap_or("?");
    println!("run {}: {} v{} {}  {outcome}", r.id, r.script, r.version, r.function);
    println!("  trigger:  {}", r.trigger);
    if let Some(k) = &r.flow_key {
        println!("  flow:     {k}");
    }
    let took = r.ended_at.map(|e| format!(" (took {:.3} s)", (e - r.started_at) as f64 / 1000.0)).unwrap_or_default();
    println!("  started:  {}{took}", time(r.started_at));
    if let Some(e) = &r.error {
        println!("  error:    {}{e}", r.location.as_ref().map(|l| format!("{l}: ")).unwrap_or_default());
    }
    let steps: Vec<&str> = r.steps.as_array().into_iter().flatten().filter_map(|s| s.as_str()).collect();
    println!("  steps and rate waits:{}", if steps.is_empty() { " none" } else { "" });
    for s in steps {
        println!("    {s}");
    }
    let logs = r.logs.as_array().cloned().unwrap_or_default();
    println!("  log:{}", if logs.is_empty() { " nothing logged" } else { "" });
    for l in logs {
        println!("    {} {:<5} {}", time(l["at"].as_i64().unwrap_or(0)), l["level"].as_str().unwrap_or(""), l["message"].as_str().unwrap_or(""));
    }
}

fn print_manifest(m: &spoke::Manifest) {
    println!("{} {} — {}", m.name, m.version, m.vendor);
    if !m.description.is_empty() {
        println!("{}", m.description);
    }
    println!("\nBase URLs:");
    for b in &m.base_urls {
        println!("  {:<10} {}", b.key, b.url);
    }
    println!("\nAuth schemes:");
    for s in &m.auth_schemes {
        println!("  {:<12} {}{}  [credential fields: {}]", s.name, s.description, if s.optional { " (optional)" } else { "" }, s.method.fields().join(", "));
    }
    println!("\nRate policies:");
    for p in &m.rate_policies {
        let windows: Vec<_> = p.windows.iter().map(|w| format!("{}/{}s", w.limit, w.seconds)).collect();
        let scope = if p.operations.is_empty() { "all operations".to_string() } else { p.operations.join(", ") };
        println!("  {:<16} {}  ({scope})", p.name, windows.join(", "));
    }
    println!("\nOperations ({}):", m.operations.len());
    for o in &m.operations {
        let required = o.input_schema.get("required").and_then(|r| r.as_array()).map(|r| r.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(", ")).unwrap_or_default();
        println!(
            "  {:<36} {:<6} {}{}{}",
            o.name,
            o.method.as_str(),
            o.path,
            if o.paged { "  [paged]" } else { "" },
            if required.is_empty() { String::new() } else { format!("  requires: {required}") }
        );
    }
    if !m.webhook_topics.is_empty() {
        println!("\nWebhook topics:");
        for t in &m.webhook_topics {
            println!("  {:<28} {}", t.name, t.description);
        }
    }
}

pub(crate) fn time(ms: i64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = spoke::time::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem / 60 % 60, rem % 60)
}

/// The store a config names, for the commands that only read or replay it
/// (no plugins are loaded, so they work beside a running host).
pub(crate) fn open_store(config: &PathBuf) -> anyhow::Result<std::sync::Arc<dyn spoke::store::Store>> {
    spoke::store::open(&Config::load(config)?.store)
}

fn events(config: &PathBuf, cmd: EventsCommand) -> anyhow::Result<ExitCode> {
    use spoke::store::{EventFilter, Store};
    let store = open_store(config)?;
    match cmd {
        EventsCommand::List { connector, topic, status, limit, json } => {
            let events = store.list_events(&EventFilter { connector, topic, status, limit })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&events)?);
            } else {
                println!("{:>8}  {:<19}  {:<14} {:<24} {:<10} {}", "SEQ", "RECEIVED (UTC)", "CONNECTOR", "TOPIC", "STATUS", "SUBJECT");
                for e in events {
                    println!("{:>8}  {:<19}  {:<14} {:<24} {:<10} {}", e.seq, time(e.received_at), e.connector, e.topic, e.status, e.subject.unwrap_or_default());
                }
            }
        }
        EventsCommand::Show { seq } => {
            let Some(e) = store.event(seq)? else { anyhow::bail!("no event {seq}") };
            println!("{}", serde_json::to_string_pretty(&e)?);
        }
        EventsCommand::Replay { seq, dead } => {
            let now = spoke::store::now_ms();
            let n = if dead { store.replay_dead(now)? } else { store.replay(seq.unwrap_or_default(), now)? };
            println!("{n} dispatch(es) queued again; a running `spoke run` delivers them within a second");
            if n == 0 {
                return Ok(ExitCode::from(1));
            }
        }
        EventsCommand::Refused { limit } => {
            for r in store.refusals(limit)? {
                println!("#{} {} {} {} — {}", r.id, time(r.received_at), r.connector, r.http_status, r.reason);
                let body: String = r.body.chars().take(300).collect();
                println!("    body: {body}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn sandbox(cmd: SandboxCommand) -> anyhow::Result<ExitCode> {
    spoke::install_tls();
    let control = |port: u16, path: String, body: serde_json::Value| async move {
        let url = format!("http://127.0.0.1:{port}/_control/{path}");
        let resp = reqwest::Client::new().post(&url).json(&body).send().await.map_err(|e| anyhow::anyhow!("is `spoke sandbox` running? {url}: {}", e.without_url()))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            anyhow::bail!("{status}: {text}");
        }
        println!("{text}");
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    };
    match cmd {
        SandboxCommand::Lead { uuid, status } => control(SANDBOX_PORTS.cyclesoftware, format!("leads/{uuid}/status"), serde_json::json!({ "status": status })).await,
        SandboxCommand::Ship { reference, track_and_trace } => {
            let mut body = serde_json::json!({ "reference": reference });
            if let Some(t) = track_and_trace {
                body["trackAndTrace"] = t.into();
            }
            control(SANDBOX_PORTS.wics, "ship-order".into(), body).await
        }
        SandboxCommand::Start { write, hooks } => {
            let sandbox = spoke_sandbox::Sandbox::start(SANDBOX_PORTS, Some(&hooks)).await?;
            println!("CycleSoftware  {}   (control: {}/_control/...)", sandbox.cyclesoftware.url(), sandbox.cyclesoftware.url());
            println!("WICS           {}", sandbox.wics.url());
            println!("Lagerkoll      {}", sandbox.lagerkoll.url());
            let toml = format!("# spoke.toml for the sandbox (written by `spoke sandbox`)\nplugins_dir = \"target/spoke-plugins\"\nscripts_dir = \"scripts\"\nstore = \".spoke/sandbox.db\"\nlisten = \"127.0.0.1:8080\"\n\n{}", sandbox.connectors_toml());
            println!("\n{toml}");
            if let Some(path) = write {
                std::fs::write(&path, &toml)?;
                println!("(written to {})", path.display());
            }
            println!("Drive it by hand:  spoke sandbox lead UUID accepted   |   spoke sandbox ship REFERENCE\nCtrl-C stops the sandbox.");
            spoke::server::shutdown_signal()?.await;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// See [`WebhooksCommand::Sync`].
async fn webhooks_sync(host: &Host, public_url: &str) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for binding in host.connectors() {
        let m = binding.manifest();
        let name = binding.name();
        if m.webhook_topics.is_empty() {
            continue;
        }
        let has_api = m.operation("list_webhooks").is_some() && m.operation("create_webhook").is_some();
        if !has_api {
            println!("{name}: configure in the {} account:", m.vendor);
            println!("  webhook URL: {public_url}/hooks/{name}");
            for secret in binding.config.credentials.keys().filter(|k| k.contains("secret") && !m.auth_schemes.iter().any(|s| s.method.fields().contains(&k.as_str()))) {
                println!("  signing secret: the value of connectors.{name}.credentials.{secret}");
            }
            println!("  events: {}", m.webhook_topics.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", "));
            continue;
        }
        let existing = match host.call(name, "list_webhooks", serde_json::json!({ "all_pages": true })).await {
            Ok(v) => v,
            Err(e) => {
                eprintln!("{name}: listing subscriptions failed: {e}");
                failed = true;
                continue;
            }
        };
        let items = existing.get("items").or_else(|| existing.get("data")).and_then(|v| v.as_array()).cloned().unwrap_or_default();
        let (mut created, mut kept) = (0, 0);
        for topic in &m.webhook_topics {
            let url = format!("{public_url}/hooks/{name}/{}", topic.name.to_ascii_lowercase());
            let present = items.iter().any(|i| i.get("topic").and_then(|t| t.as_str()) == Some(topic.name.as_str()) && i.get("url").and_then(|u| u.as_str()) == Some(url.as_str()));
            if present {
                kept += 1;
                continue;
            }
            match host.call(name, "create_webhook", serde_json::json!({ "topic": topic.name, "url": url })).await {
                Ok(_) => {
                    created += 1;
                    println!("{name}: subscribed {} -> {url}", topic.name);
                }
                Err(e) => {
                    eprintln!("{name}: subscribing {} failed: {e}", topic.name);
                    failed = true;
                }
            }
        }
        println!("{name}: {created} subscription(s) created, {kept} already in place");
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
