//! Hot reload: watch the scripts and plugins folders. Editors save in many
//! ways (write in place, write a temp file and rename, several events per
//! save), so events are collected per final path and acted on after a short
//! quiet period; a reload whose content did not change is skipped.
use super::{script_name, Scripts};
use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Quiet time after the last event of a save.
const SETTLE: Duration = Duration::from_millis(30);

impl Scripts {
    /// Watch until the returned watcher is dropped.
    pub fn watch(self: &Arc<Self>) -> anyhow::Result<notify::RecommendedWatcher> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(event) = res {
                if matches!(event.kind, notify::EventKind::Access(_)) {
                    return;
                }
                for p in event.paths {
                    let _ = tx.send(p);
                }
            }
        })?;
        std::fs::create_dir_all(&self.dir)?;
        watcher.watch(&self.dir, RecursiveMode::NonRecursive)?;
        let plugins_dir = self.host.config().plugins_dir.clone();
        if plugins_dir.exists() {
            watcher.watch(&plugins_dir, RecursiveMode::NonRecursive)?;
        }
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut paths = BTreeSet::from([first]);
                // Collect the rest of this save.
                while let Ok(Some(p)) = tokio::time::timeout(SETTLE, rx.recv()).await {
                    paths.insert(p);
                }
                let Some(scripts) = me.upgrade() else { return };
                for path in paths {
                    if script_name(&path).is_some() {
                        // Its own task: a script whose top level is slow
                        // holds up only its own next reload.
                        let scripts = scripts.clone();
                        tokio::spawn(async move { scripts.reload(&path).await });
                    } else if path.extension().is_some_and(|e| e == "wasm") && path.exists() {
                        let swapped = scripts.host.reload_plugin(&path).await;
                        if !matches!(&swapped, Ok(s) if s.is_empty()) {
                            scripts.host.metrics().reload("plugin", swapped.is_ok());
                        }
                        match swapped {
                            Ok(swapped) if !swapped.is_empty() => {
                                scripts.refresh_engine();
                                tracing::info!(connectors = %swapped.join(", "), "plugin {} replaced without restart", path.display());
                            }
                            Ok(_) => {}
                            Err(e) => tracing::error!("plugin {} not swapped in; the old version keeps serving: {e:#}", path.display()),
                        }
                    }
                }
            }
        });
        Ok(watcher)
    }
}
