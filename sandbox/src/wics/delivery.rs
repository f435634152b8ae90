//! Webhook delivery: a POST with the subscriber's Basic credentials per event
//! and subscription. Anything but HTTP 200 is retried on WICS' schedule, on
//! the simulated clock, so tests fast-forward instead of waiting a day.
use crate::serve::is_loopback_url;
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Minutes after the first attempt at which WICS retries (10 retries, ~a day).
pub const RETRY_MINUTES: [f64; 10] = [1.5, 4.5, 10.5, 22.5, 46.5, 94.5, 190.5, 382.5, 766.5, 1534.5];

/// One event on its way to one subscribed URL.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: u64,
    pub topic: String,
    pub url: String,
    #[serde(skip)]
    pub authorization: String,
    pub body: Value,
    pub first_attempt_ms: i64,
    /// Attempts made so far (the first delivery is attempt 1).
    pub attempts: u32,
    pub next_due_ms: Option<i64>,
    pub delivered: bool,
    pub given_up: bool,
    pub last_status: Option<u16>,
    #[serde(skip)]
    pub in_flight: bool,
}

impl Delivery {
    /// After a failed attempt: when to try again, or give up after the 10th retry.
    pub fn failed(&mut self, status: Option<u16>) {
        self.last_status = status;
        let retries_done = self.attempts.saturating_sub(1) as usize;
        match RETRY_MINUTES.get(retries_done) {
            Some(minutes) => self.next_due_ms = Some(self.first_attempt_ms + (minutes * 60_000.0) as i64),
            None => {
                self.next_due_ms = None;
                self.given_up = true;
            }
        }
    }
    pub fn succeeded(&mut self) {
        self.last_status = Some(200);
        self.delivered = true;
        self.next_due_ms = None;
    }
}

/// POST `body` to a loopback `url`; the answer's status, or `None` when there
/// was no answer. Plain HTTP/1.1 on a socket: deliveries only go to loopback.
pub async fn post(url: &str, authorization: &str, body: &[u8]) -> Option<u16> {
    if !is_loopback_url(url) {
        return None;
    }
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let address = if authority.contains(':') { authority.to_string() } else { format!("{authority}:80") };
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(address.replace("localhost", "127.0.0.1")).await.ok()?;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: {authorization}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: WICS-ServiceLayer-Simulator\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.ok()?;
        stream.write_all(body).await.ok()?;
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        // The status line is all we need.
        while !answer.windows(2).any(|w| w == b"\r\n") {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&answer);
        line.split_whitespace().nth(1)?.parse::<u16>().ok()
    };
    tokio::time::timeout(Duration::from_secs(10), attempt).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_follow_the_documented_schedule_then_stop() {
        let mut d = Delivery {
            id: 1, topic: "STOCK".into(), url: String::new(), authorization: String::new(), body: Value::Null,
            first_attempt_ms: 0, attempts: 1, next_due_ms: None, delivered: false, given_up: false, last_status: None, in_flight: false,
        };
        let mut due = Vec::new();
        loop {
            d.failed(Some(500));
            match d.next_due_ms {
                Some(at) => {
                    due.push(at);
                    d.attempts += 1;
                }
                None => break,
            }
        }
        assert_eq!(due.len(), 10);
        assert_eq!(due[0], 90_000);
        assert_eq!(due[9], 92_070_000);
        assert!(d.given_up);
    }
}
