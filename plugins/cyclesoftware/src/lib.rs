//! Spoke connector for CycleSoftware, the bike-retail POS of NL, BE and FR:
//! the warehouse API, the platform API (keys, stock-in-store locator, sales
//! leads), sales orders, and the warehouse webhooks.
//!
//! Modules follow the vendor's own sections; `types` writes JSON Schema in
//! the docs' type vocabulary, `client` sends and pages, `errors` reads the
//! JSON, XML and SOAP error forms.
pub mod client;
pub mod errors;
pub mod leads;
pub mod models;
pub mod platform;
pub mod sales_orders;
pub mod time;
pub mod types;
pub mod warehouse_inbound;
pub mod warehouse_outbound;
pub mod warehouse_stock;
pub mod webhooks;

use spoke_pdk::*;

pub struct CycleSoftware;

/// An operation with the defaults that fit most endpoints: GETs are
/// idempotent, POSTs are not, nothing is paged. Override with `Op { .., ..op(..) }`.
pub(crate) fn op(
    name: &'static str,
    description: &'static str,
    method: Method,
    path: &'static str,
    input: Value,
    output: Value,
    handler: fn(&Value) -> Result<Value, Error>,
) -> Op {
    Op { name, description, idempotent: matches!(method, Method::Get), method, path, input, output, paged: false, handler }
}

/// The docs say limits apply to "endpoints that implement limits" without
/// listing them, and only some examples show the X-RateLimit headers. Where
/// the docs are unclear, assume every endpoint is limited: the general
/// policy covers every operation, and create-invoices also has its own
/// 15/minute bucket.
const MINUTE: u32 = 60;
const DAY: u32 = 86_400;

/// The documented limit headers, the same on every limited endpoint.
fn rate_headers() -> Vec<RateHeader> {
    [
        ("X-RateLimit-Minutely-Limit", HeaderMeaning::Limit, MINUTE),
        ("X-RateLimit-Minutely-Remaining", HeaderMeaning::Remaining, MINUTE),
        ("X-RateLimit-Daily-Limit", HeaderMeaning::Limit, DAY),
        ("X-RateLimit-Daily-Remaining", HeaderMeaning::Remaining, DAY),
        ("X-RateLimit-Daily-Reset", HeaderMeaning::ResetAt, DAY),
    ]
    .into_iter()
    .map(|(name, meaning, window_seconds)| RateHeader { name: name.into(), meaning, window_seconds })
    .collect()
}

fn rate_policies() -> Vec<RatePolicy> {
    vec![
        RatePolicy {
            name: "general".into(),
            description: "every operation: 360 requests per moving minute and 15,000 per day (the docs' example headers); the docs do not say which endpoints are exempt, so none is".into(),
            operations: vec![],
            windows: vec![Window { limit: 360, seconds: MINUTE }, Window { limit: 15_000, seconds: DAY }],
            headers: rate_headers(),
            penalty_seconds: vec![],
        },
        RatePolicy {
            name: "create-invoices".into(),
            description: "create-invoices: 15 requests per minute; the default daily limit applies".into(),
            operations: vec!["create_invoices".into()],
            windows: vec![Window { limit: 15, seconds: MINUTE }, Window { limit: 15_000, seconds: DAY }],
            headers: rate_headers(),
            penalty_seconds: vec![],
        },
    ]
}

impl Connector for CycleSoftware {
    fn info() -> Info {
        Info {
            name: "cyclesoftware",
            version: env!("CARGO_PKG_VERSION"),
            vendor: "CycleSoftware",
            description: "CycleSoftware bike-retail POS (NL/BE/FR): warehouse, stock, outbound orders, platform keys, stock locator, sales leads, sales orders, warehouse webhooks.",
            // The host picks by the account's `country`; any other country uses NL.
            base_urls: [("nl", "https://api.cyclesoftware.nl"), ("be", "https://api.cyclesoftware.be"), ("fr", "https://api.cyclesoftware.fr")]
                .into_iter()
                .map(|(key, url)| BaseUrl { key: key.into(), url: url.into() })
                .collect(),
            auth_schemes: vec![
                AuthScheme {
                    name: client::AUTH.into(),
                    description: "HTTP Basic with the API username and password (every REST endpoint)".into(),
                    method: AuthMethod::Basic(BasicFields { username: "username".into(), password: "password".into() }),
                    optional: false,
                },
            ],
            rate_policies: rate_policies(),
            webhook_topics: webhooks::topics(),
        }
    }

    fn operations() -> Vec<Op> {
        let mut ops = warehouse_inbound::operations();
        ops.extend(warehouse_stock::operations());
        ops.extend(warehouse_outbound::operations());
        ops.extend(platform::operations());
        ops.extend(leads::operations());
        ops.extend(sales_orders::operations());
        ops
    }

    fn handle_webhook(received: Received) -> Result<Vec<Event>, Error> {
        webhooks::handle(received)
    }
}

connector!(CycleSoftware);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn one_operation_per_documented_endpoint() {
        let ops = CycleSoftware::operations();
        assert_eq!(ops.len(), 22);
        let names: HashSet<_> = ops.iter().map(|o| o.name).collect();
        assert_eq!(names.len(), 22, "names are unique");
        let paths: HashSet<_> = ops.iter().map(|o| (o.path, o.method as u8)).collect();
        assert_eq!(paths.len(), 22, "every endpoint once");
        for name in ["create_invoices", "create_lead", "get_lead", "cancel_lead"] {
            assert!(names.contains(name), "{name}");
        }
    }

    #[test]
    fn hosts_by_country_nl_first_and_the_documented_limits() {
        let info = CycleSoftware::info();
        let keys: Vec<_> = info.base_urls.iter().map(|b| (b.key.as_str(), b.url.as_str())).collect();
        assert_eq!(
            keys,
            [("nl", "https://api.cyclesoftware.nl"), ("be", "https://api.cyclesoftware.be"), ("fr", "https://api.cyclesoftware.fr")]
        );
        let general = &info.rate_policies[0];
        assert_eq!((general.windows[0].limit, general.windows[0].seconds), (360, 60));
        assert_eq!((general.windows[1].limit, general.windows[1].seconds), (15_000, 86_400));
        assert!(general.operations.is_empty(), "the general policy covers every operation");
        let invoices = &info.rate_policies[1];
        assert_eq!(invoices.operations, ["create_invoices"]);
        assert_eq!((invoices.windows[0].limit, invoices.windows[0].seconds), (15, 60));
        assert_eq!(general.headers.len(), 5);
    }

    #[test]
    fn schemas_are_objects_and_paged_ops_take_all_pages() {
        for op in CycleSoftware::operations() {
            assert_eq!(op.input["type"], "object", "{}", op.name);
            assert_eq!(op.output["type"], "object", "{}", op.name);
            let takes_all_pages = op.input["properties"].get("all_pages").is_some();
            assert_eq!(op.paged, takes_all_pages, "{}", op.name);
        }
    }
}
