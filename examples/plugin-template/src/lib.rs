//! A template connector for the fictional vendor Acme. Copy this crate to
//! `plugins/<vendor>`, rename it, and replace the operation with the vendor's
//! endpoints — one `Op` each. See docs/plugin-authoring.md.
use spoke_pdk::http::{fill_path, Request};
use spoke_pdk::*;

struct Acme;

/// The vendor's error body, e.g. `{"error": "no such order"}`, mapped to a kind.
fn vendor_error(resp: &http::Response) -> Error {
    let message = resp.json::<Value>().ok().and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string)).unwrap_or_else(|| resp.text());
    Error::new(Error::kind_for_status(resp.status), message).with_status(resp.status).with_vendor_code(resp.status.to_string())
}

fn get_order(input: &Value) -> Result<Value, Error> {
    let resp = Request::get(fill_path("/orders/{id}", input)?).auth("api-key").send()?;
    if !resp.is_success() {
        let mut e = vendor_error(&resp);
        if let Some(ms) = resp.retry_after_ms() {
            e = e.with_retry_after_ms(ms);
        }
        return Err(e);
    }
    resp.json()
}

impl Connector for Acme {
    fn info() -> Info {
        Info {
            name: "acme",
            version: "0.1.0",
            vendor: "Acme Corp.",
            description: "Template: one operation, one auth scheme, one rate policy.",
            base_urls: vec![BaseUrl { key: "default".into(), url: "https://api.acme.example".into() }],
            auth_schemes: vec![AuthScheme {
                name: "api-key".into(),
                description: "the X-Api-Key header".into(),
                method: AuthMethod::Headers(vec![("x-api-key".into(), "api_key".into())]),
                optional: false,
            }],
            rate_policies: vec![RatePolicy {
                name: "general".into(),
                description: "60 requests per minute".into(),
                operations: vec![],
                windows: vec![Window { limit: 60, seconds: 60 }],
                headers: vec![],
                penalty_seconds: vec![],
            }],
            webhook_topics: vec![],
        }
    }

    fn operations() -> Vec<Op> {
        vec![Op {
            name: "get_order",
            description: "One order by id",
            method: Method::Get,
            path: "/orders/{id}",
            input: json!({"type": "object", "required": ["id"], "properties": {"id": {"type": "string", "minLength": 1}}}),
            output: json!({"type": "object"}),
            idempotent: true,
            paged: false,
            handler: get_order,
        }]
    }

    fn handle_webhook(_received: Received) -> Result<Vec<Event>, Error> {
        Err(Error::new(ErrorKind::Unsupported, "acme sends no webhooks"))
    }
}

connector!(Acme);
