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
        let max_wait = self.binding()?.shared.limits.max_rate_wait();
        let entered = Instant::now();
        let result = crate::rate_limit::reserve(&b, cost, max_wait).await;
        self.host_time += entered.elapsed();
        result.map_err(|w| {
            let mut e = CallError::new(ErrorKind::RateLimited, format!("rate policy `{bucket}` cannot grant {cost} request(s) within the wait bound"));
            e.retry_after_ms = Some(w.retry_after.as_millis() as u64);
            types::Error::from(e)
        })?;
        *self.reserved.entry(bucket).or_default() += cost;
        Ok(())
    }

    async fn status(&mut self, bucket: String) -> Result<rate_limit::Budget, types::Error> {
        let b = self.bucket_named(&bucket)?;
        Ok(rate_limit::Budget { bucket, remaining: b.remaining(), wait_ms: b.wait_ms() })
    }
}
