//! A subscriber that forwards events as JSON to an HTTP endpoint, configured
//! in `[subscribers.NAME]`: for feeding another system, and for watching the
//! event stream from outside the process.
use super::{Failure, Subscriber};
use crate::manifest::Event;
use futures::future::BoxFuture;

pub struct Forwarder {
    pub name: String,
    pub url: String,
    /// `connector/TOPIC` patterns; `*` matches any part.
    pub topics: Vec<String>,
    pub http: reqwest::Client,
}

/// `wics/SHIPMENT`, `wics/*`, `*/*` or `*`.
pub fn topic_matches(pattern: &str, connector: &str, topic: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let (c, t) = pattern.split_once('/').unwrap_or((pattern, "*"));
    (c == "*" || c == connector) && (t == "*" || t == topic)
}

impl Subscriber for Forwarder {
    fn name(&self) -> &str {
        &self.name
    }
    fn wants(&self, connector: &str, topic: &str) -> bool {
        self.topics.iter().any(|p| topic_matches(p, connector, topic))
    }
    fn deliver<'a>(&'a self, connector: &'a str, event: &'a Event) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            let body = serde_json::json!({
                "connector": connector, "topic": event.topic, "id": event.id,
                "subject": event.subject, "occurred_at": event.occurred_at, "payload": event.payload,
            });
            let resp = self.http.post(&self.url).json(&body).send().await.map_err(|e| format!("forwarding to {}: {}", self.url, e.without_url()))?;
            if resp.status().is_success() {
                Ok(())
            } else {
                Err(Failure::transient(format!("forwarding to {} answered {}", self.url, resp.status())))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::topic_matches;

    #[test]
    fn patterns() {
        assert!(topic_matches("*", "wics", "SHIPMENT"));
        assert!(topic_matches("wics/*", "wics", "SHIPMENT"));
        assert!(topic_matches("wics", "wics", "STOCK"));
        assert!(topic_matches("*/SHIPMENT", "wics", "SHIPMENT"));
        assert!(!topic_matches("wics/STOCK", "wics", "SHIPMENT"));
        assert!(!topic_matches("lagerkoll/*", "wics", "SHIPMENT"));
    }
}
