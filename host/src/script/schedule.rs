//! `every(...)` specs: a duration ("90s", "5m", "1h", "2d") or a five-field
//! cron expression ("*/5 * * * *", minute hour day-of-month month
//! day-of-week, UTC).
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Every(Duration),
    Cron(Cron),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cron {
    minutes: Vec<u32>,
    hours: Vec<u32>,
    days: Vec<u32>,
    months: Vec<u32>,
    weekdays: Vec<u32>,
}

impl Schedule {
    pub fn parse(spec: &str) -> Result<Schedule, String> {
        let spec = spec.trim();
        if let Some(d) = parse_duration(spec) {
            if d < Duration::from_millis(100) {
                return Err(format!("schedule {spec:?} is shorter than 100ms"));
            }
            return Ok(Schedule::Every(d));
        }
        let fields: Vec<&str> = spec.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!("schedule {spec:?} is neither a duration like \"90s\", \"5m\", \"1h\" nor a five-field cron expression"));
        }
        Ok(Schedule::Cron(Cron {
            minutes: field(fields[0], 0, 59, "minute")?,
            hours: field(fields[1], 0, 23, "hour")?,
            days: field(fields[2], 1, 31, "day of month")?,
            months: field(fields[3], 1, 12, "month")?,
            weekdays: field(fields[4], 0, 6, "day of week")?,
        }))
    }

    /// Milliseconds since 1970 of the next firing strictly after `after_ms`.
    pub fn next_after(&self, after_ms: i64) -> i64 {
        match self {
            // Aligned to multiples of the period since 1970, so every host
            // sharing a store names the same ticks (each fires once).
            Schedule::Every(d) => {
                let d = (d.as_millis() as i64).max(1);
                (after_ms.div_euclid(d) + 1) * d
            }
            Schedule::Cron(c) => {
                let mut minute = after_ms.div_euclid(60_000) + 1;
                // At most ~4 years of minutes; a valid spec always matches sooner.
                for _ in 0..(366 * 24 * 60 * 4) {
                    if c.matches(minute) {
                        return minute * 60_000;
                    }
                    minute += 1;
                }
                i64::MAX
            }
        }
    }
}

impl Cron {
    fn matches(&self, minute_index: i64) -> bool {
        let days = minute_index.div_euclid(1440);
        let in_day = minute_index.rem_euclid(1440) as u32;
        let (_, month, day) = crate::time::civil_from_days(days);
        let weekday = (days + 4).rem_euclid(7) as u32; // 1970-01-01 was a Thursday
        self.minutes.contains(&(in_day % 60)) && self.hours.contains(&(in_day / 60)) && self.days.contains(&day) && self.months.contains(&month) && self.weekdays.contains(&weekday)
    }
}

pub fn parse_duration(spec: &str) -> Option<Duration> {
    let split = spec.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = spec.split_at(split);
    let n: u64 = n.parse().ok()?;
    let ms = match unit {
        "ms" => n,
        "s" => n * 1000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        "d" => n * 86_400_000,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

fn field(text: &str, min: u32, max: u32, name: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().map_err(|_| format!("cron {name}: bad step in {part:?}"))?),
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (a.parse().map_err(|_| format!("cron {name}: {part:?}"))?, b.parse().map_err(|_| format!("cron {name}: {part:?}"))?)
        } else {
            let v: u32 = range.parse().map_err(|_| format!("cron {name}: {part:?} is not a number"))?;
            (v, if step > 1 { max } else { v })
        };
        if lo < min || hi > max || lo > hi || step == 0 {
            return Err(format!("cron {name}: {part:?} is outside {min}-{max}"));
        }
        out.extend((lo..=hi).step_by(step as usize));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_cron() {
        assert_eq!(Schedule::parse("90s").unwrap(), Schedule::Every(Duration::from_secs(90)));
        assert_eq!(Schedule::parse("5m").unwrap().next_after(0), 300_000);
        assert!(Schedule::parse("soon").unwrap_err().contains("cron"));
        assert!(Schedule::parse("61 * * * *").is_err());
        // Every 15 minutes: from 00:07 the next is 00:15.
        let c = Schedule::parse("*/15 * * * *").unwrap();
        assert_eq!(c.next_after(7 * 60_000), 15 * 60_000);
        // 09:30 on Mondays; 1970-01-05 was a Monday.
        let c = Schedule::parse("30 9 * * 1").unwrap();
        assert_eq!(c.next_after(0), (4 * 1440 + 9 * 60 + 30) * 60_000);
    }
}
