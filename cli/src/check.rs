//! `spoke check PLUGIN.wasm`: the checks every load runs (host
//! `plugin::check`), run on one file without starting a host, every problem
//! listed. Exit 0 when the plugin would load, 1 when it would be refused.
use spoke::plugin::{Checked, EngineLimits, Runtime};
use spoke::Config;
use std::path::Path;
use std::process::ExitCode;

pub async fn run(config_path: &Path, plugin: &Path, memory_mib: Option<u32>) -> anyhow::Result<ExitCode> {
    // The limits of the configured host when there is one; defaults otherwise.
    let configured = config_path.exists();
    let mut config = if configured { Config::load(config_path)? } else { Config::parse("", "defaults", Path::new("."))? };
    if let Some(mib) = memory_mib {
        anyhow::ensure!(mib >= 1, "--memory-mib must be at least 1");
        config.limits.memory_mib = mib;
    }
    // A configured host's compile cache makes its next start fast; without
    // one, compile into a scratch folder that goes away.
    let scratch = std::env::temp_dir().join(format!("spoke-check-{}", std::process::id()));
    let cache = if configured { config.cache_dir.clone() } else { scratch.clone() };
    let runtime = Runtime::new(&cache, EngineLimits::from_config(&config))?;
    let checked = runtime.check(plugin).await;
    let _ = std::fs::remove_dir_all(&scratch);
    let Checked { plugin: loaded, problems } = checked?;
    if problems.is_empty() {
        if let Some(p) = loaded {
            println!("{}: ok — plugin {} {}, {} operation(s)", plugin.display(), p.manifest.name, p.manifest.version, p.manifest.operations.len());
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}: {} problem(s); it would not load", plugin.display(), problems.len());
    for p in &problems {
        println!("  - {}", p.replace('\n', "\n    "));
    }
    Ok(ExitCode::FAILURE)
}
