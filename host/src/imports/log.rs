//! `log`: into `tracing`, tagged with the connector and operation, within
//! the connector's log quota (crate::log_budget).
use super::CallState;
use crate::plugin::v0_1_0::log::{self, Level};

impl log::Host for CallState {
    async fn log(&mut self, level: Level, message: String) {
        let connector = self.connector_name().to_string();
        // While a plugin describes itself there is no connector (and no budget
        // to charge): one call, bounded by its execution time.
        let (message, dropped) = match self.binding.as_ref() {
            Some(b) => match b.shared.logs.admit(&format!("plugin:{connector}"), &message) {
                Some(a) => (a.line, a.dropped),
                None => return,
            },
            None => (message.chars().take(4096).collect(), None),
        };
        let (dropped_lines, dropped_bytes) = dropped.map(|d| (d.lines, d.bytes)).unwrap_or_default();
        let connector = connector.as_str();
        let op = self.operation.as_str();
        if dropped_lines > 0 || dropped_bytes > 0 {
            tracing::warn!(target: "spoke::plugin", connector, dropped_lines, dropped_bytes, "log quota: lines and bytes not written since this connector's last line");
        }
        // A call made by a script run runs on that run's thread: the line
        // joins the run's record too (trace and debug stay in the log).
        if matches!(level, Level::Info | Level::Warn | Level::Error) {
            let as_level = match level {
                Level::Error => tracing::Level::ERROR,
                Level::Warn => tracing::Level::WARN,
                _ => tracing::Level::INFO,
            };
            crate::script::context::record_log(as_level, &format!("{connector}.{op}: {message}"));
        }
        match level {
            Level::Trace => tracing::trace!(target: "spoke::plugin", connector, operation = op, "{message}"),
            Level::Debug => tracing::debug!(target: "spoke::plugin", connector, operation = op, "{message}"),
            Level::Info => tracing::info!(target: "spoke::plugin", connector, operation = op, "{message}"),
            Level::Warn => tracing::warn!(target: "spoke::plugin", connector, operation = op, "{message}"),
            Level::Error => tracing::error!(target: "spoke::plugin", connector, operation = op, "{message}"),
        }
    }
}
