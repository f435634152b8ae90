//! The `spoke` commands. `main.rs` only parses; each command is here.
use crate::{Config, Host};
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
    /// Log filter, e.g. `info`, `spoke=debug` (also RUST_LOG).
    #[arg(long, global = true, env = "SPOKE_LOG", default_value = "info")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the loaded plugins with their version, operation count and where
    /// their compiled code came from (compile cache or fresh compile).
    Plugins,
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
    /// Start the host: load plugins, bind connectors, serve HTTP until
    /// Ctrl-C or SIGTERM.
    Run,
}

pub fn run(cli: Cli) -> ExitCode {
    init_tracing(&cli.log);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        match dispatch(cli).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}

fn init_tracing(filter: &str) {
    let filter = std::env::var("RUST_LOG").ok().unwrap_or_else(|| filter.to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
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
                    crate::plugin::Source::Cache => "compile cache",
                    crate::plugin::Source::Compiled => "fresh compile",
                };
                println!("{:<16} {:<10} {:>10}  {:<14} {}", p.manifest.name, p.manifest.version, p.manifest.operations.len(), from, p.path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
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
                        crate::ErrorKind::InvalidInput => 2,
                        crate::ErrorKind::Vendor | crate::ErrorKind::NotFound | crate::ErrorKind::Conflict => 3,
                        _ => 1,
                    }))
                }
            }
        }
        Command::Run => {
            let host = std::sync::Arc::new(start(&cli.config).await?);
            crate::server::serve(host).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_manifest(m: &crate::Manifest) {
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
