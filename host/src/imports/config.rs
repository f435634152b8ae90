//! `config`: the connector's non-secret settings.
use super::CallState;
use crate::plugin::v0_1_0::config;

impl config::Host for CallState {
    async fn get(&mut self, key: String) -> Option<String> {
        self.binding.as_ref()?.config.settings.get(&key).cloned()
    }
}
