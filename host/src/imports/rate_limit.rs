//! `rate-limit`: a plugin's view of its connector's budget.
use super::CallState;
use crate::error::{CallError, ErrorKind};
use crate::plugin::v0_1_0::{rate_limit, types};
use tokio::time::Instant;

impl CallState {
    fn bucket_named(&self, bucket: &str) -> Result<std::sync::Arc<crate::rate_limit::Bucket>, types::Error> {
        let b = self.binding()?;
        b.bucket(bucket).cloned().ok_or_else(|| {
            let known: Vec<_> = b.policies.iter().map(|(p, _)| p.name.as_str()).collect();
            CallError::new(ErrorKind::Refused, format!("no rate policy `{bucket}`; known: {}", known.join(", "))).into()
        })
    }
}

impl rate_limit::Host for CallState {
    async fn acquire(&mut self, bucket: String, cost: u32) -> Result<(), types::Error> {
        let b = self.bucket_named(&bucket)?;
        let binding = self.binding()?.clone();
        let entered = Instant::now();
        // Reserved slots count as spent now; the sends that use them skip
        // this bucket (see `http`).
        let result = binding.shared.limiter.acquire(binding.name(), &binding.credential, std::slice::from_ref(&b), cost, binding.shared.limits.max_rate_wait(), true).await;
        self.host_time += entered.elapsed();
        let permit = result.map_err(|r| super::http::rate_refusal(binding.name(), r))?;
        if let Some(w) = &permit.waited {
            crate::rate_limit::record_wait(binding.name(), w);
        }
        // Already counted as done; finishing only drops the ticket.
        let _ = binding.shared.limiter.finish(permit, crate::rate_limit::Outcome::Unknown).await;
        *self.reserved.entry(bucket).or_default() += cost;
        Ok(())
    }

    async fn status(&mut self, bucket: String) -> Result<rate_limit::Budget, types::Error> {
        let b = self.bucket_named(&bucket)?;
        let binding = self.binding()?.clone();
        let (remaining, wait_ms) = binding
            .shared
            .limiter
            .status(&binding.credential, &b)
            .await
            .map_err(|e| types::Error::from(CallError::new(ErrorKind::Transport, format!("rate ledger of {}: {e:#}", binding.name()))))?;
        Ok(rate_limit::Budget { bucket, remaining, wait_ms })
    }
}
