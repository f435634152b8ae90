//! A template connector for the fictional vendor Acme. Copy this crate to
//! `plugins/<vendor>`, rename it, and replace the operation with the vendor's
//! endpoints — one `Op` each. See docs/plugin-authoring.md. `spoke new NAME
//! --lang rust` writes a project from this file.
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
            webhook_topics: vec![WebhookTopic { name: "ORDER_CHANGED".into(), description: "An order was created or changed".into() }],
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

    /// Acme signs each webhook body with HMAC-SHA256 (hex, in `x-signature`)
    /// under the credential `webhook_secret`: the host checks it, so the
    /// secret never enters the plugin.
    fn handle_webhook(received: Received) -> Result<Vec<Event>, Error> {
        let signature = webhook::header(&received, "x-signature").ok_or_else(|| Error::new(ErrorKind::Unauthorized, "no x-signature header"))?;
        if !auth::verify_hmac_sha256("webhook_secret", &received.body, signature, auth::SignatureEncoding::Hex) {
            return Err(Error::new(ErrorKind::Unauthorized, "x-signature does not match the body (HMAC-SHA256 with webhook_secret)"));
        }
        let body: Value = serde_json::from_slice(&received.body).map_err(|e| Error::new(ErrorKind::InvalidInput, format!("the webhook body is not JSON: {e}")))?;
        let order = body.get("order").filter(|o| o.is_object()).ok_or_else(|| Error::new(ErrorKind::InvalidInput, "the webhook body has no `order` object"))?;
        let id = match body.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            // No delivery id: the same body is the same event.
            _ => webhook::stable_id(&[&received.body]),
        };
        let subject = order.get("id").map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
        Ok(vec![Event { id, topic: "ORDER_CHANGED".into(), occurred_at: body.get("at").and_then(Value::as_str).map(str::to_string), subject, payload: order.to_string() }])
    }
}

connector!(Acme);
