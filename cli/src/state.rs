//! `spoke state`: what scripts keep with `state::`, read from the store.
use crate::cli::StateCommand;
use spoke::store::Store;
use std::process::ExitCode;

/// Width of a value in `spoke state list` (`--json` prints them whole).
const VALUE_WIDTH: usize = 100;

pub fn run(store: &dyn Store, cmd: StateCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        StateCommand::Get { script, key } => {
            let Some(text) = store.state_get(&script, &key)? else {
                eprintln!("script {script:?} has no state key {key:?}");
                return Ok(ExitCode::from(1));
            };
            println!("{}", serde_json::to_string_pretty(&value(&text))?);
        }
        StateCommand::List { script, prefix, limit, json } => {
            let mut entries = store.state_list(&script, prefix.as_deref().unwrap_or(""), limit.saturating_add(1))?;
            let more = entries.len() > limit;
            entries.truncate(limit);
            if json {
                let map: serde_json::Map<String, serde_json::Value> = entries.iter().map(|(k, v)| (k.clone(), value(v))).collect();
                println!("{}", serde_json::to_string_pretty(&map)?);
            } else {
                let width = entries.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
                for (key, text) in &entries {
                    println!("{key:<width$}  {}", cut(text));
                }
            }
            if more {
                eprintln!("(more keys than --limit {limit}; raise it or give a longer prefix)");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A stored value; text that is not JSON (written by hand) is shown as is.
fn value(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_string()))
}

fn cut(text: &str) -> String {
    match text.char_indices().nth(VALUE_WIDTH) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}
