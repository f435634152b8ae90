//! Log quotas: each plugin connector and each script may write
//! `log_lines_per_sec` lines (bursts up to `log_burst`) of at most
//! `log_line_bytes`. Lines beyond the rate and bytes beyond the line size
//! are counted, not written; the next line written by that source says how
//! much was dropped, and [`LogBudget::dropped`] reports the totals.
use crate::config::Quotas;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// What was dropped from one source since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Dropped {
    pub lines: u64,
    pub bytes: u64,
}

struct Source {
    tokens: f64,
    refilled: Instant,
    /// Dropped since this source last wrote a line.
    unreported: Dropped,
    total: Dropped,
}

pub struct LogBudget {
    quotas: Quotas,
    sources: Mutex<HashMap<String, Source>>,
}

/// A line that may be written: cut to the line size, with what this source
/// dropped since its last written line.
pub struct Admitted {
    pub line: String,
    pub dropped: Option<Dropped>,
}

impl LogBudget {
    pub fn new(quotas: &Quotas) -> LogBudget {
        LogBudget { quotas: quotas.clone(), sources: Mutex::new(HashMap::new()) }
    }

    /// Take one line for `source` (`plugin:NAME`, `script:NAME`): `None`
    /// when over its rate (counted).
    pub fn admit(&self, source: &str, line: &str) -> Option<Admitted> {
        let q = &self.quotas;
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        let s = sources.entry(source.to_string()).or_insert_with(|| Source {
            tokens: q.log_burst as f64,
            refilled: Instant::now(),
            unreported: Dropped::default(),
            total: Dropped::default(),
        });
        let now = Instant::now();
        s.tokens = (s.tokens + now.duration_since(s.refilled).as_secs_f64() * q.log_lines_per_sec).min(q.log_burst as f64);
        s.refilled = now;
        if s.tokens < 1.0 {
            s.unreported.lines += 1;
            s.total.lines += 1;
            s.unreported.bytes += line.len() as u64;
            s.total.bytes += line.len() as u64;
            return None;
        }
        s.tokens -= 1.0;
        let mut kept = line;
        if line.len() > q.log_line_bytes {
            let mut end = q.log_line_bytes;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            kept = &line[..end];
            let cut = (line.len() - end) as u64;
            s.unreported.bytes += cut;
            s.total.bytes += cut;
        }
        let dropped = std::mem::take(&mut s.unreported);
        let line = if kept.len() < line.len() { format!("{kept}… [{} bytes not written]", line.len() - kept.len()) } else { kept.to_string() };
        Some(Admitted { line, dropped: (dropped != Dropped::default()).then_some(dropped) })
    }

    /// Totals dropped per source since start (sources that dropped nothing
    /// are left out).
    pub fn dropped(&self) -> Vec<(String, Dropped)> {
        let sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = sources.iter().filter(|(_, s)| s.total != Dropped::default()).map(|(n, s)| (n.clone(), s.total)).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_beyond_the_rate_and_bytes_beyond_the_size_are_counted_not_written() {
        let b = LogBudget::new(&Quotas { log_lines_per_sec: 0.001, log_burst: 3, log_line_bytes: 10, ..Quotas::default() });
        let written: Vec<_> = (0..10).filter_map(|i| b.admit("plugin:a", &format!("line {i}"))).collect();
        assert_eq!(written.len(), 3, "the burst, then nothing");
        assert!(b.admit("script:other", "own budget").is_some());
        let long = b.admit("script:other", &"x".repeat(25)).unwrap();
        assert!(long.line.starts_with("xxxxxxxxxx…") && long.line.contains("15 bytes not written"), "{}", long.line);
        let dropped = b.dropped();
        assert_eq!(dropped[0].0, "plugin:a");
        assert_eq!(dropped[0].1.lines, 7);
        assert_eq!(dropped[1].1, Dropped { lines: 0, bytes: 15 });
    }
}
