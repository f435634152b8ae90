//! A plugin whose manifest is broken, for the tests of `spoke check` and of
//! load-time refusal. Plugins get no config while describing, so the variant
//! is chosen by patching the marker below in a copy of the built `.wasm`
//! (same length, so the component stays valid): `spoke-badmanifest:VARIANT`,
//! `#`-padded. One build gives every variant.
//!
//! Variants: `all` (every problem at once), `name`, `dupop`, `dupauth`,
//! `path`, `schema` (not JSON), `badschema` (JSON but not a JSON Schema),
//! `url`, `rate` (a window with limit 0), `ok` (nothing wrong).
use spoke_pdk::bindings::{export, Guest};
use spoke_pdk::spoke::connector::manifest::*;
use spoke_pdk::spoke::connector::types::Method;
use spoke_pdk::{Error, ErrorKind, Event, Manifest, Received};

/// Read with a volatile load so the optimiser keeps the bytes in the data
/// segment, where a test can patch them.
#[used]
static MARKER: [u8; 32] = *b"spoke-badmanifest:all###########";

fn variant() -> String {
    // SAFETY: reading a static through a valid reference.
    let bytes = unsafe { core::ptr::read_volatile(&MARKER) };
    String::from_utf8_lossy(&bytes["spoke-badmanifest:".len()..]).trim_end_matches('#').to_string()
}

fn operation(name: &str, path: &str, input: &str) -> Operation {
    Operation {
        name: name.into(),
        description: String::new(),
        method: Method::Get,
        path: path.into(),
        input_schema: input.into(),
        output_schema: r#"{"type":"object"}"#.into(),
        idempotent: true,
        paged: false,
    }
}

fn scheme(name: &str) -> AuthScheme {
    AuthScheme { name: name.into(), description: String::new(), method: AuthMethod::Bearer("token".into()), optional: true }
}

struct Bad;

impl Guest for Bad {
    fn describe() -> Manifest {
        let v = variant();
        let on = |what: &str| v == what || v == "all";
        // The guest never checks input itself: what is refused, the host refused.
        let object = r#"{"type":"object","additionalProperties":false,"properties":{"limit":{"type":"integer","minimum":1}}}"#;
        let mut m = Manifest {
            name: if on("name") { "Tiny Bad!".into() } else { "badmanifest".into() },
            version: "0.1.0".into(),
            vendor: "Spoke tests".into(),
            description: "A manifest broken on purpose".into(),
            base_urls: vec![BaseUrl { key: "default".into(), url: if on("url") { "not a url".into() } else { "https://example.test".into() } }],
            auth_schemes: vec![scheme("basic")],
            rate_policies: vec![RatePolicy {
                name: "general".into(),
                description: String::new(),
                operations: vec![],
                windows: vec![Window { limit: if on("rate") { 0 } else { 10 }, seconds: 60 }],
                headers: vec![],
                penalty_seconds: vec![],
            }],
            operations: vec![operation("list_items", if on("path") { "items" } else { "/items" }, if on("schema") { "{not json" } else { object })],
            webhook_topics: vec![],
        };
        if on("dupop") {
            m.operations.push(operation("list_items", "/items/again", object));
        }
        if on("dupauth") {
            m.auth_schemes.push(scheme("basic"));
        }
        if on("badschema") {
            m.operations.push(operation("get_item", "/items/{id}", r#"{"type":"nope"}"#));
        }
        m
    }

    fn invoke(_operation: String, input: String) -> Result<String, Error> {
        Ok(input)
    }

    fn handle_webhook(_received: Received) -> Result<Vec<Event>, Error> {
        Err(Error { kind: ErrorKind::Unsupported, message: "no webhooks".into(), vendor_code: None, field: None, retry_after_ms: None, status: None })
    }
}

export!(Bad with_types_in spoke_pdk::bindings);
