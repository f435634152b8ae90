//! `spoke flows`: see every flow, what it waits for and since when, and
//! give an operator's word on a step in doubt. Reads and writes the store
//! directly, so it works beside a running host (which picks a resolved
//! flow up within a second).
use clap::Subcommand;
use spoke::flow::{FlowFilter, Resolution};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum FlowsCommand {
    /// Flows, newest first: key, status, current step, what it waits for.
    List {
        #[arg(long)]
        script: Option<String>,
        /// ready, waiting, in_doubt, done or failed.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        key: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// One flow in full, with every durable call it has made.
    Show {
        /// The flow's id (`spoke flows list`).
        id: i64,
    },
    /// Settle a step in doubt: `--value JSON` if it happened (the JSON is
    /// taken as its result), `--rerun` if it did not.
    Resolve {
        /// The id of a flow in doubt (`spoke flows list --status in_doubt`).
        id: i64,
        /// The step happened: this JSON is its result, e.g. '"<lead uuid>"'.
        #[arg(long, conflicts_with = "rerun", required_unless_present = "rerun")]
        value: Option<String>,
        /// The step did not happen: run it again.
        #[arg(long)]
        rerun: bool,
    },
    /// Run a failed flow again (after fixing its script, say).
    Retry {
        /// The id of a failed flow.
        id: i64,
    },
}

pub fn run(config: &PathBuf, cmd: FlowsCommand) -> anyhow::Result<ExitCode> {
    let store = crate::cli::open_store(config)?;
    let now = spoke::store::now_ms();
    match cmd {
        FlowsCommand::List { script, status, key, limit, json } => {
            if let Some(s) = status.as_deref().filter(|s| !spoke::flow::STATES.contains(s)) {
                anyhow::bail!("--status {s:?}: expected one of {}", spoke::flow::STATES.join(", "));
            }
            let flows = store.flows(&FlowFilter { script, status, key, limit })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&flows)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{:>6}  {:<16} {:<24} {:<9} {:<24} {}", "FLOW", "SCRIPT", "KEY", "STATUS", "STEP", "WAITING FOR / LAST ERROR");
            for f in flows {
                let running = f.lease_until.is_some_and(|u| u > now);
                let status = if running { "running".to_string() } else { f.status.clone() };
                let since = f.waiting_since.map(|s| format!(" (since {})", crate::cli::time(s))).unwrap_or_default();
                let detail = match (&f.last_error, &f.waiting_for) {
                    (Some(e), _) => format!("error: {e}"),
                    (None, Some(w)) if f.status != "done" => format!("{w}{since}"),
                    _ => String::new(),
                };
                println!("{:>6}  {:<16} {:<24} {:<9} {:<24} {}", f.id, format!("{}.{}", f.script, f.function), f.key, status, f.current_step.unwrap_or_default(), detail);
            }
        }
        FlowsCommand::Show { id } => {
            let Some(flow) = store.flow(id)? else { anyhow::bail!("no flow {id}") };
            let steps = store.flow_steps(id)?;
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "flow": flow, "calls": steps }))?);
        }
        FlowsCommand::Resolve { id, value, rerun } => {
            let resolution = match (value, rerun) {
                (Some(v), _) => Resolution::Value(serde_json::from_str(&v).map_err(|e| anyhow::anyhow!("--value is not JSON: {e}"))?),
                (None, _) => Resolution::Rerun,
            };
            let step = store.flow_resolve(id, &resolution, now)?;
            match resolution {
                Resolution::Value(_) => println!("flow {id}: step {step:?} takes the given value; the flow resumes"),
                Resolution::Rerun => println!("flow {id}: step {step:?} runs again; the flow resumes"),
            }
        }
        FlowsCommand::Retry { id } => {
            store.flow_retry(id, now)?;
            println!("flow {id} is ready again");
        }
    }
    Ok(ExitCode::SUCCESS)
}
