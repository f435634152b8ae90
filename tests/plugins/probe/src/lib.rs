//! The probe: a connector with no vendor, whose operations each exercise one
//! host import or one way a plugin can misbehave. The host's tests drive it.
use spoke_pdk::http::Request;
use spoke_pdk::*;

struct Probe;

fn any() -> Value {
    json!({"type": "object"})
}

fn op(name: &'static str, description: &'static str, input: Value, handler: fn(&Value) -> Result<Value, Error>) -> Op {
    Op {
        name,
        description,
        method: Method::Post,
        path: "/",
        input,
        output: any(),
        idempotent: true,
        paged: false,
        handler,
    }
}

fn method(name: &str) -> Method {
    match name {
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        "HEAD" => Method::Head,
        _ => Method::Get,
    }
}

fn str_field<'a>(input: &'a Value, name: &str) -> &'a str {
    input.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// Sends what the input describes and reports what came back.
fn http(input: &Value) -> Result<Value, Error> {
    let mut req = Request::new(method(str_field(input, "method")), str_field(input, "path"));
    for scheme in input.get("auth").and_then(Value::as_array).into_iter().flatten() {
        req = req.auth(scheme.as_str().unwrap_or_default());
    }
    for (k, v) in input.get("query").and_then(Value::as_object).into_iter().flatten() {
        req = req.query(k, v.as_str().unwrap_or_default());
    }
    if let Some(body) = input.get("body").and_then(Value::as_str) {
        req = req.body("text/plain", body.as_bytes().to_vec());
    }
    let resp = req.send()?;
    Ok(json!({
        "status": resp.status,
        "body": resp.text(),
        "headers": resp.headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
    }))
}

/// Reads the whole linear memory looking for `needle`. The needle arrives
/// XOR-ed with 0x5A so that asking does not itself plant it in memory.
fn memory_contains(input: &Value) -> Result<Value, Error> {
    let masked: Vec<u8> = str_field(input, "needle_hex_xor5a")
        .as_bytes()
        .chunks(2)
        .filter_map(|c| u8::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok())
        .collect();
    if masked.is_empty() {
        return Err(Error::invalid_input("needle_hex_xor5a", "must be non-empty hex"));
    }
    #[cfg(target_arch = "wasm32")]
    {
        let len = core::arch::wasm32::memory_size(0) * 65536;
        // SAFETY: every byte below memory_size is addressable linear memory.
        let memory = unsafe { core::slice::from_raw_parts(core::ptr::null::<u8>().wrapping_add(1).wrapping_sub(1), len) };
        let found = memory
            .windows(masked.len())
            .any(|w| w.iter().zip(&masked).all(|(m, n)| *m == n ^ 0x5A));
        return Ok(json!({ "found": found, "scanned": len }));
    }
    #[allow(unreachable_code)]
    Err(Error::internal("only meaningful in wasm"))
}

impl Connector for Probe {
    fn info() -> Info {
        Info {
            name: "probe",
            version: "0.1.0",
            vendor: "Spoke tests",
            description: "Exercises every host import; used by the host's tests only.",
            base_urls: vec![BaseUrl { key: "default".into(), url: "http://127.0.0.1:9".into() }],
            auth_schemes: vec![
                AuthScheme {
                    name: "basic".into(),
                    description: "user + password".into(),
                    method: AuthMethod::Basic(BasicFields { username: "user".into(), password: "password".into() }),
                    optional: true,
                },
                AuthScheme {
                    name: "key".into(),
                    description: "an API key header and a store header".into(),
                    method: AuthMethod::Headers(vec![("x-api-key".into(), "api_key".into()), ("store".into(), "store".into())]),
                    optional: true,
                },
            ],
            rate_policies: vec![
                RatePolicy {
                    name: "general".into(),
                    description: "every request".into(),
                    operations: vec![],
                    windows: vec![Window { limit: 1000, seconds: 60 }],
                    headers: vec![RateHeader { name: "x-remaining".into(), meaning: HeaderMeaning::Remaining, window_seconds: 60 }],
                    penalty_seconds: vec![],
                },
                RatePolicy {
                    name: "slow".into(),
                    description: "the `slow_http` operation only".into(),
                    operations: vec!["slow_http".into()],
                    windows: vec![Window { limit: 2, seconds: 1 }],
                    headers: vec![],
                    penalty_seconds: vec![60],
                },
            ],
            webhook_topics: vec![WebhookTopic { name: "PING".into(), description: "a signed ping".into() }],
        }
    }

    fn operations() -> Vec<Op> {
        vec![
            op("echo", "returns its input", any(), |v| Ok(v.clone())),
            op(
                "typed",
                "validates a typed input",
                json!({"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "count": {"type": "integer", "minimum": 0},
                    "state": {"enum": ["NEW", "SENT"]},
                    "day": {"type": "string", "format": "date"}
                }}),
                |v| Ok(v.clone()),
            ),
            op("http", "sends the described request", any(), http),
            op("slow_http", "like http, in the `slow` bucket", any(), http),
            // A write: a replay must not repeat it (flows refuse it outside a step).
            Op { idempotent: false, ..op("write", "like http, declared a write (not idempotent)", any(), http) },
            op("hmac", "verify-hmac-sha256", any(), |v| {
                let encoding = match str_field(v, "encoding") {
                    "hex" => auth::SignatureEncoding::Hex,
                    "base64" => auth::SignatureEncoding::Base64,
                    _ => auth::SignatureEncoding::HexOrBase64,
                };
                let ok = auth::verify_hmac_sha256(str_field(v, "field"), str_field(v, "message").as_bytes(), str_field(v, "signature"), encoding);
                Ok(json!({ "valid": ok }))
            }),
            op("basic", "verify-basic", any(), |v| {
                Ok(json!({ "valid": auth::verify_basic(str_field(v, "scheme"), str_field(v, "authorization")) }))
            }),
            op("kv_set", "kv.set", any(), |v| {
                kv::set(str_field(v, "key"), str_field(v, "value").as_bytes())?;
                Ok(json!({}))
            }),
            op("kv_get", "kv.get", any(), |v| {
                let value = kv::get(str_field(v, "key"))?.map(|b| String::from_utf8_lossy(&b).into_owned());
                Ok(json!({ "value": value }))
            }),
            op("kv_delete", "kv.delete", any(), |v| {
                kv::delete(str_field(v, "key"))?;
                Ok(json!({}))
            }),
            op("rate_status", "rate-limit.status", any(), |v| {
                let b = rate_limit::status(str_field(v, "bucket"))?;
                Ok(json!({ "bucket": b.bucket, "remaining": b.remaining, "wait_ms": b.wait_ms }))
            }),
            op("rate_acquire", "rate-limit.acquire", any(), |v| {
                rate_limit::acquire(str_field(v, "bucket"), v.get("cost").and_then(Value::as_u64).unwrap_or(1) as u32)?;
                Ok(json!({}))
            }),
            op("log", "writes a log line", any(), |v| {
                spoke_pdk::log(log::Level::Info, str_field(v, "message"));
                Ok(json!({}))
            }),
            op("spin", "never returns", any(), |_| {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }),
            op("allocate", "allocates `mib` MiB and touches it", any(), |v| {
                let mib = v.get("mib").and_then(Value::as_u64).unwrap_or(1) as usize;
                let mut chunks: Vec<Vec<u8>> = Vec::new();
                for i in 0..mib {
                    chunks.push(vec![i as u8 | 1; 1 << 20]);
                }
                Ok(json!({ "allocated_mib": chunks.len() }))
            }),
            op("panic", "panics", any(), |_| panic!("the probe was asked to panic")),
            op("noisy_panic", "writes `kib` KiB of noise to stderr, then panics", any(), |v| {
                let kib = v.get("kib").and_then(Value::as_u64).unwrap_or(0);
                for i in 0..kib * 16 {
                    eprintln!("noise line {i:05} ....................................................");
                }
                panic!("the probe panicked after {kib} KiB of noise")
            }),
            op("sleep", "sleeps `ms` in WASI", any(), |v| {
                let ms = v.get("ms").and_then(Value::as_u64).unwrap_or(0);
                std::thread::sleep(std::time::Duration::from_millis(ms));
                Ok(json!({ "slept_ms": ms }))
            }),
            op("http_loop", "sends the described request again and again, forever", any(), |v| loop {
                let _ = http(v);
            }),
            op("verify_many", "guesses at a credential `n` times through verify-hmac-sha256", any(), |v| {
                let n = v.get("n").and_then(Value::as_u64).unwrap_or(1);
                let mut valid = 0;
                for i in 0..n {
                    if auth::verify_hmac_sha256("webhook_secret", b"guess", &format!("{i:064x}"), auth::SignatureEncoding::Hex) {
                        valid += 1;
                    }
                }
                Ok(json!({ "tried": n, "valid": valid }))
            }),
            op("memory_contains", "scans linear memory for a masked needle", any(), memory_contains),
        ]
    }

    fn handle_webhook(received: Received) -> Result<Vec<Event>, Error> {
        let signature = webhook::header(&received, "x-signature").unwrap_or_default();
        if !auth::verify_hmac_sha256("webhook_secret", &received.body, signature, auth::SignatureEncoding::HexOrBase64) {
            return Err(Error::new(ErrorKind::Unauthorized, "x-signature does not match the body"));
        }
        let payload: Value = serde_json::from_slice(&received.body)
            .map_err(|e| Error::invalid_input("", format!("body is not JSON: {e}")))?;
        // Lets a test hold a delivery before commit (to kill the host then).
        if let Some(ms) = payload.get("spin_ms").and_then(Value::as_u64) {
            let until = std::time::Instant::now() + std::time::Duration::from_millis(ms);
            while std::time::Instant::now() < until {}
        }
        Ok(vec![Event {
            id: webhook::stable_id(&[b"PING", &received.body]),
            topic: "PING".into(),
            occurred_at: None,
            subject: payload.get("id").and_then(http::scalar_text),
            payload: payload.to_string(),
        }])
    }
}

connector!(Probe);
