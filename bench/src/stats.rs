//! Samples and what is reported of them.
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub samples: usize,
    pub median_us: f64,
    pub p99_us: f64,
    pub min_us: f64,
    /// Interquartile range, as the spread.
    pub iqr_us: f64,
}

pub fn summarize(mut d: Vec<Duration>) -> Summary {
    d.sort();
    let us = |x: Duration| x.as_secs_f64() * 1e6;
    let at = |q: f64| us(d[((d.len() - 1) as f64 * q).round() as usize]);
    Summary { samples: d.len(), median_us: at(0.5), p99_us: at(0.99), min_us: us(d[0]), iqr_us: at(0.75) - at(0.25) }
}

/// Run `f` `warmup` times, then `n` timed times.
pub async fn sample<F, Fut>(warmup: usize, n: usize, mut f: F) -> Summary
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..warmup {
        f().await;
    }
    let mut d = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f().await;
        d.push(t.elapsed());
    }
    summarize(d)
}

pub fn sample_sync(warmup: usize, n: usize, mut f: impl FnMut()) -> Summary {
    for _ in 0..warmup {
        f();
    }
    let mut d = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f();
        d.push(t.elapsed());
    }
    summarize(d)
}
