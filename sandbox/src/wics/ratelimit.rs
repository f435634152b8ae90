//! WICS' per-user limits: 150 requests in a rolling minute and 20,000 a day.
//! The 151st request in a minute blocks the user for one minute; a request
//! during a block escalates it to five, then fifteen minutes. Every request
//! refused for rate reasons is a violation.
use crate::limits::RollingWindow;

/// The limits, scalable for tests.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub per_minute: u32,
    pub minute_ms: i64,
    pub per_day: u32,
    pub day_ms: i64,
    /// Block lengths of the first, second and third violation level.
    pub penalties_ms: [i64; 3],
}

impl Default for Limits {
    fn default() -> Self {
        Limits { per_minute: 150, minute_ms: 60_000, per_day: 20_000, day_ms: 86_400_000, penalties_ms: [60_000, 300_000, 900_000] }
    }
}

/// Why a request was refused, and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub message: String,
    pub retry_after_ms: i64,
}

/// One API user's counters and block.
#[derive(Debug, Clone)]
pub struct UserLimiter {
    minute: RollingWindow,
    day: RollingWindow,
    blocked_until: i64,
    /// 0 = not blocked, 1..=3 = violation level of the current block.
    level: usize,
}

impl UserLimiter {
    pub fn new(limits: &Limits) -> Self {
        UserLimiter {
            minute: RollingWindow::new(limits.per_minute, limits.minute_ms),
            day: RollingWindow::new(limits.per_day, limits.day_ms),
            blocked_until: 0,
            level: 0,
        }
    }

    pub fn apply(&mut self, limits: &Limits) {
        self.minute.set_limit(limits.per_minute, limits.minute_ms);
        self.day.set_limit(limits.per_day, limits.day_ms);
    }

    /// Count a request at `now`; `Err` when WICS would refuse it.
    pub fn check(&mut self, now: i64, limits: &Limits) -> Result<(), Refusal> {
        if now < self.blocked_until {
            self.level = (self.level + 1).min(3);
            return Err(self.block(now, limits, "a request during a block"));
        }
        self.level = 0;
        if !self.minute.try_hit(now) {
            self.level = 1;
            return Err(self.block(now, limits, "more than the allowed requests per minute"));
        }
        if !self.day.try_hit(now) {
            return Err(Refusal {
                message: format!("Too many requests: the daily maximum of {} requests per user is reached", limits.per_day),
                retry_after_ms: self.day.reset_in_ms(now).max(1),
            });
        }
        Ok(())
    }

    fn block(&mut self, now: i64, limits: &Limits, why: &str) -> Refusal {
        let length = limits.penalties_ms[self.level - 1];
        self.blocked_until = now + length;
        let level = ["First", "Second", "Third"][self.level - 1];
        Refusal {
            message: format!("Too many requests ({why}): API user blocked for {} seconds ({level} violation level)", length / 1000),
            retry_after_ms: length,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_151st_request_blocks_and_requests_during_the_block_escalate() {
        let limits = Limits::default();
        let mut user = UserLimiter::new(&limits);
        for i in 0..150 {
            user.check(i, &limits).unwrap();
        }
        let first = user.check(200, &limits).unwrap_err();
        assert_eq!(first.retry_after_ms, 60_000);
        let second = user.check(1_000, &limits).unwrap_err();
        assert_eq!(second.retry_after_ms, 300_000);
        let third = user.check(2_000, &limits).unwrap_err();
        assert_eq!(third.retry_after_ms, 900_000);
        assert_eq!(user.check(3_000, &limits).unwrap_err().retry_after_ms, 900_000);
        // After the block, and with the minute window passed, requests go through again.
        user.check(3_000 + 900_000, &limits).unwrap();
    }

    #[test]
    fn daily_limit() {
        let limits = Limits { per_minute: 1000, per_day: 3, ..Limits::default() };
        let mut user = UserLimiter::new(&limits);
        for i in 0..3 {
            user.check(i * 100_000, &limits).unwrap();
        }
        assert!(user.check(400_000, &limits).unwrap_err().message.contains("daily"));
    }
}
