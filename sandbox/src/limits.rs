//! Rolling-window request counting, as the vendors do it.
use std::collections::VecDeque;

/// Counts requests in a rolling window of `window_ms`.
#[derive(Debug, Clone)]
pub struct RollingWindow {
    pub limit: u32,
    pub window_ms: i64,
    hits: VecDeque<i64>,
}

impl RollingWindow {
    pub fn new(limit: u32, window_ms: i64) -> Self {
        Self { limit, window_ms, hits: VecDeque::new() }
    }
    fn expire(&mut self, now_ms: i64) {
        while self.hits.front().is_some_and(|t| *t <= now_ms - self.window_ms) {
            self.hits.pop_front();
        }
    }
    /// Record a request at `now_ms`; false when it is over the limit (it is
    /// still recorded only when allowed).
    pub fn try_hit(&mut self, now_ms: i64) -> bool {
        self.expire(now_ms);
        if self.hits.len() as u32 >= self.limit {
            return false;
        }
        self.hits.push_back(now_ms);
        true
    }
    pub fn remaining(&mut self, now_ms: i64) -> u32 {
        self.expire(now_ms);
        self.limit.saturating_sub(self.hits.len() as u32)
    }
    /// Milliseconds until the oldest counted request leaves the window.
    pub fn reset_in_ms(&mut self, now_ms: i64) -> i64 {
        self.expire(now_ms);
        self.hits.front().map(|t| t + self.window_ms - now_ms).unwrap_or(0)
    }
    pub fn set_limit(&mut self, limit: u32, window_ms: i64) {
        self.limit = limit;
        self.window_ms = window_ms;
    }
}
