//! Spoke connector for the WICS Service Layer (warehouse management):
//! announcements, receipts, orders, items, shipments, stock and webhooks.
//!
//! One operation per documented endpoint; each module follows a section of
//! the vendor's docs. Credentials stay in the host (`basic` scheme), the
//! host enforces the per-user rate limits declared here.
pub mod announcements;
pub mod client;
pub mod errors;
pub mod items;
pub mod login;
pub mod models;
pub mod orders;
pub mod receipts;
pub mod shipments;
pub mod spec;
pub mod stock;
pub mod webhooks;

use spoke_pdk::*;

pub struct Wics;

/// The per-user limits WICS documents, and the blocks it hands out.
pub fn rate_policy() -> RatePolicy {
    RatePolicy {
        name: "api-user".into(),
        description: "150 requests per minute and 20,000 per day per API user; the 151st request in a minute blocks the user for 1 minute, more requests while blocked escalate to 5 and then 15 minutes".into(),
        operations: vec![],
        windows: vec![Window { limit: 150, seconds: 60 }, Window { limit: 20_000, seconds: 86_400 }],
        headers: vec![],
        penalty_seconds: vec![60, 300, 900],
    }
}

impl Connector for Wics {
    fn info() -> Info {
        Info {
            name: "wics",
            version: env!("CARGO_PKG_VERSION"),
            vendor: "WICS",
            description: "WICS Service Layer: warehouse announcements, receipts, orders, items, shipments, stock and webhooks",
            base_urls: vec![
                BaseUrl { key: "test".into(), url: "https://test.servicelayer.wics.nl".into() },
                BaseUrl { key: "production".into(), url: "https://servicelayer.wics.nl".into() },
            ],
            auth_schemes: vec![AuthScheme {
                name: client::AUTH.into(),
                description: "HTTP Basic with the Service Layer API key and API secret; also how WICS signs webhooks".into(),
                method: AuthMethod::Basic(BasicFields { username: "apikey".into(), password: "apisecret".into() }),
                optional: false,
            }],
            rate_policies: vec![rate_policy()],
            webhook_topics: webhooks::topics(),
        }
    }

    fn operations() -> Vec<Op> {
        [
            login::ops(),
            announcements::ops(),
            receipts::ops(),
            orders::ops(),
            items::ops(),
            shipments::ops(),
            stock::ops(),
            webhooks::ops(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    fn handle_webhook(received: Received) -> Result<Vec<Event>, Error> {
        webhooks::handle(received)
    }
}

connector!(Wics);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_operation_per_documented_endpoint() {
        let ops = Wics::operations();
        assert_eq!(ops.len(), 32);
        let mut names: Vec<_> = ops.iter().map(|o| o.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 32, "operation names are unique");
        let mut endpoints: Vec<_> = ops.iter().map(|o| format!("{:?} {}", o.method, o.path)).collect();
        endpoints.sort();
        endpoints.dedup();
        assert_eq!(endpoints.len(), 32, "each endpoint once");
    }

    #[test]
    fn paged_operations_accept_all_pages() {
        for op in Wics::operations().iter().filter(|o| o.paged) {
            assert!(op.input["properties"]["all_pages"].is_object(), "{}", op.name);
        }
    }

    #[test]
    fn missing_required_fields_are_named() {
        let ops = Wics::operations();
        let create = ops.iter().find(|o| o.name == "create_order").unwrap();
        let input = json!({"deliveryDate": "2022-08-15", "lines": [{"itemCode": "16082"}]});
        let err = schema::validate(&create.input, &input).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        assert_eq!(err.field.as_deref(), Some("lines[0].quantity"));
        let err = schema::validate(&create.input, &json!({})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("deliveryDate"));
        let wrong_type = json!({"deliveryDate": "2022-08-15", "priority": "high"});
        assert_eq!(schema::validate(&create.input, &wrong_type).unwrap_err().field.as_deref(), Some("priority"));
    }
}
