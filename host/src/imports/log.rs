//! `log`: into `tracing`, tagged with the connector and operation.
use super::CallState;
use crate::plugin::v0_1_0::log::{self, Level};

/// Longest message kept; a plugin cannot flood the log with one line.
const MAX_MESSAGE: usize = 4096;

impl log::Host for CallState {
    async fn log(&mut self, level: Level, message: String) {
        let mut message = message;
        if message.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str("…");
        }
        let connector = self.connector_name();
        let op = self.operation.as_str();
        match level {
            Level::Trace => tracing::trace!(target: "spoke::plugin", connector, operation = op, "{message}"),
            Level::Debug => tracing::debug!(target: "spoke::plugin", connector, operation = op, "{message}"),
            Level::Info => tracing::info!(target: "spoke::plugin", connector, operation = op, "{message}"),
            Level::Warn => tracing::warn!(target: "spoke::plugin", connector, operation = op, "{message}"),
            Level::Error => tracing::error!(target: "spoke::plugin", connector, operation = op, "{message}"),
        }
    }
}
