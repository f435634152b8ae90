//! The host's guarantees, proven with the probe plugin (tests/plugins/probe)
//! and a recording loopback server — no vendor involved.
mod bounds;
mod flows;
mod kit;
mod languages;
mod operator;
mod recorder;
mod scripts;
mod webhooks;

use recorder::Recorder;
use serde_json::json;
use spoke::ErrorKind;
use spoke_tests::TestHost;
use std::time::Duration;

const USER: &str = "probe-user";
const PASSWORD: &str = "pa55-w0rd-never-in-guest";
const API_KEY: &str = "k3y-never-in-guest";

fn probe(url: &str, extra: &str) -> String {
    format!(
        r#"{extra}
[connectors.probe]
plugin = "probe"
base_url = "{url}/api"
[connectors.probe.credentials]
user = "value:{USER}"
password = "value:{PASSWORD}"
api_key = "value:{API_KEY}"
store = "value:store-7"
webhook_secret = "value:hook-secret"
[connectors.probe.settings]
flavour = "vanilla"
"#
    )
}

async fn host(url: &str) -> TestHost {
    TestHost::start(&probe(url, "")).await.unwrap()
}

fn masked_hex(secret: &str) -> String {
    secret.bytes().map(|b| format!("{:02x}", b ^ 0x5A)).collect()
}

#[tokio::test]
async fn describe_and_call() {
    let server = Recorder::start().await;
    let h = host(&server.url).await;
    let m = h.host.manifest("probe").unwrap();
    assert_eq!(m.name, "probe");
    assert!(m.operations.iter().any(|o| o.name == "echo"));
    assert_eq!(h.call("probe", "echo", json!({"a": [1, 2]})).await.unwrap(), json!({"a": [1, 2]}));

    let e = h.call("probe", "nope", json!({})).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert!(e.message.contains("echo"), "lists the known operations: {e}");
    let e = h.call("nobody", "echo", json!({})).await.unwrap_err();
    assert!(e.message.contains("probe"), "lists the configured connectors: {e}");
}

#[tokio::test]
async fn input_is_validated_against_the_published_schema() {
    let server = Recorder::start().await;
    let h = host(&server.url).await;
    let e = h.call("probe", "typed", json!({"count": 1})).await.unwrap_err();
    assert_eq!((e.kind, e.field.as_deref()), (ErrorKind::InvalidInput, Some("name")));
    let e = h.call("probe", "typed", json!({"name": "x", "count": "one"})).await.unwrap_err();
    assert_eq!(e.field.as_deref(), Some("count"));
    assert!(e.message.contains("integer"), "{e}");
    let e = h.call("probe", "typed", json!({"name": "x", "state": "LOST"})).await.unwrap_err();
    assert!(e.message.contains("\"NEW\"") && e.message.contains("\"SENT\""), "names the allowed values: {e}");
    let e = h.call("probe", "typed", json!({"name": "x", "day": "2024-02-30"})).await.unwrap_err();
    assert_eq!(e.field.as_deref(), Some("day"));
    assert!(h.call("probe", "typed", json!({"name": "x", "count": 3, "state": "NEW", "day": "2024-02-29"})).await.is_ok());
}

#[tokio::test]
async fn requests_cannot_leave_the_configured_origin() {
    let server = Recorder::start().await;
    let h = host(&server.url).await;
    for path in ["http://127.0.0.2/x", "//127.0.0.1:1/x", "/../admin", "/a/%2e%2e/b", "/a%2f..%2fadmin", "/x@127.0.0.2", "/a\\..\\b", "relative"] {
        let e = h.call("probe", "http", json!({"path": path})).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Refused, "{path}: {e}");
    }
    assert!(server.seen().is_empty(), "a refused request reached the server: {:?}", server.seen());
    let ok = h.call("probe", "http", json!({"path": "/orders/1", "query": {"q": "a b&c"}})).await.unwrap();
    assert_eq!(ok["status"], 200);
    let seen = server.seen();
    assert_eq!(seen[0].path, "/api/orders/1", "joined to the base URL's path");
    assert_eq!(seen[0].query.as_deref(), Some("q=a+b%26c"));
}

#[tokio::test]
async fn credentials_are_injected_and_never_reach_the_guest() {
    let server = Recorder::start().await;
    let h = host(&server.url).await;
    let out = h.call("probe", "http", json!({"path": "/echo", "auth": ["basic", "key"]})).await.unwrap();
    assert_eq!(out["status"], 200);
    let seen = &server.seen()[0];
    let header = |n: &str| seen.headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    assert_eq!(header("authorization"), Some(format!("Basic {basic}")));
    assert_eq!(header("x-api-key").as_deref(), Some(API_KEY));
    assert_eq!(header("store").as_deref(), Some("store-7"));
    let text = out.to_string();
    assert!(!text.contains(PASSWORD) && !text.contains(API_KEY) && !text.contains(&basic));

    // Scan the plugin's whole linear memory right after a credentialed call.
    for secret in [PASSWORD, API_KEY, basic.as_str()] {
        let scan = h.call("probe", "memory_contains", json!({"needle_hex_xor5a": masked_hex(secret)})).await.unwrap();
        assert_eq!(scan["found"], false, "secret found in plugin memory");
        assert!(scan["scanned"].as_u64().unwrap() > 65536);
    }
    // Positive control: text in the plugin's own data segment is found, so
    // a miss above means the secret really is absent.
    let scan = h.call("probe", "memory_contains", json!({"needle_hex_xor5a": masked_hex("the probe was asked to panic")})).await.unwrap();
    assert_eq!(scan["found"], true);

    // A plugin may not set auth headers itself.
    let e = h.call("probe", "http", json!({"path": "/echo", "auth": ["nope"]})).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused);
}

#[tokio::test]
async fn missing_credential_is_a_clear_refusal() {
    let server = Recorder::start().await;
    let h = TestHost::start(&format!("[connectors.probe]\nplugin = \"probe\"\nbase_url = \"{}\"\n", server.url)).await.unwrap();
    let e = h.call("probe", "http", json!({"path": "/echo", "auth": ["basic"]})).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused);
    assert!(e.message.contains("connectors.probe.credentials.user"), "{e}");
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn rate_policy_is_never_exceeded() {
    let server = Recorder::start().await;
    let h = host(&server.url).await;
    // `slow_http` draws from the `slow` bucket: 2 per rolling second.
    let calls = (0..7).map(|_| h.call("probe", "slow_http", json!({"path": "/echo"})));
    for r in futures_join(calls).await {
        assert_eq!(r.unwrap()["status"], 200);
    }
    let times: Vec<_> = server.seen().iter().map(|s| s.at).collect();
    assert_eq!(times.len(), 7);
    for (i, t) in times.iter().enumerate() {
        let within = times.iter().filter(|u| **u >= *t && **u < *t + Duration::from_secs(1)).count();
        assert!(within <= 2, "{within} requests within a second starting at #{i}");
    }
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let server = Recorder::start().await;
    let h = host(&server.url).await;
    let out = h.call("probe", "http", json!({"path": "/limited"})).await.unwrap();
    assert_eq!(out["status"], 200, "the 429 was waited out and retried");
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen[1].at - seen[0].at >= Duration::from_secs(1), "retried before Retry-After passed");
}

#[tokio::test]
async fn vendor_saying_remaining_zero_stops_sending() {
    let server = Recorder::start().await;
    let h = TestHost::start(&probe(&server.url, "[limits]\nmax_rate_wait_secs = 0.5\n")).await.unwrap();
    assert_eq!(h.call("probe", "http", json!({"path": "/exhausted"})).await.unwrap()["status"], 200);
    let e = h.call("probe", "http", json!({"path": "/echo"})).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::RateLimited);
    assert!(e.retry_after_ms.unwrap() > 1000, "{e:?}");
    assert_eq!(server.seen().len(), 1, "the request the vendor would refuse was not sent");
}

#[tokio::test]
async fn slow_and_oversized_responses_are_cut_off() {
    let server = Recorder::start().await;
    let h = TestHost::start(&probe(&server.url, "[limits]\nhttp_timeout_secs = 0.3\nmax_response_bytes = 1048576\n")).await.unwrap();
    let e = h.call("probe", "http", json!({"path": "/slow"})).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    let e = h.call("probe", "http", json!({"path": "/big"})).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused, "{e}");
    assert!(e.message.contains("1048576"), "{e}");
}

#[tokio::test]
async fn webhook_verification_helpers() {
    let server = Recorder::start().await;
    let h = host(&server.url).await;
    let msg = "{\"id\":7}";
    let good = spoke_tests::sign("hook-secret", msg.as_bytes());
    let r = h.call("probe", "hmac", json!({"field": "webhook_secret", "message": msg, "signature": good, "encoding": "hex"})).await.unwrap();
    assert_eq!(r["valid"], true);
    let r = h.call("probe", "hmac", json!({"field": "webhook_secret", "message": "{\"id\":8}", "signature": good})).await.unwrap();
    assert_eq!(r["valid"], false);
    let r = h.call("probe", "hmac", json!({"field": "not_configured", "message": msg, "signature": good})).await.unwrap();
    assert_eq!(r["valid"], false);

    use base64::Engine as _;
    let basic = |u: &str, p: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")));
    let r = h.call("probe", "basic", json!({"scheme": "basic", "authorization": basic(USER, PASSWORD)})).await.unwrap();
    assert_eq!(r["valid"], true);
    let r = h.call("probe", "basic", json!({"scheme": "basic", "authorization": basic(USER, "wrong")})).await.unwrap();
    assert_eq!(r["valid"], false);

    // The webhook path: a signed delivery becomes an event, a forged one is refused.
    let events = h.webhook("probe", spoke_tests::Webhook { headers: vec![("X-Signature".into(), good.clone())], body: msg.into() }).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].topic, "PING");
    assert_eq!(events[0].subject.as_deref(), Some("7"));
    let again = h.webhook("probe", spoke_tests::Webhook { headers: vec![("x-signature".into(), good)], body: msg.into() }).await.unwrap();
    assert_eq!(again[0].id, events[0].id, "stable dedupe id");
    let e = h.webhook("probe", spoke_tests::Webhook { headers: vec![("x-signature".into(), spoke_tests::sign("guess", msg.as_bytes()))], body: msg.into() }).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unauthorized);
}

#[tokio::test]
async fn kv_round_trip_is_private_and_durable() {
    let server = Recorder::start().await;
    let two = format!("{}\n[connectors.other]\nplugin = \"probe\"\nbase_url = \"{}\"\n", probe(&server.url, ""), server.url);
    let h = TestHost::start(&two).await.unwrap();
    h.call("probe", "kv_set", json!({"key": "cursor", "value": "42"})).await.unwrap();
    assert_eq!(h.call("probe", "kv_get", json!({"key": "cursor"})).await.unwrap()["value"], "42");
    assert_eq!(h.call("other", "kv_get", json!({"key": "cursor"})).await.unwrap()["value"], serde_json::Value::Null);
    let dir = h.dir;
    drop(h.host);
    let h = TestHost::start_in(dir, &two).await.unwrap();
    assert_eq!(h.call("probe", "kv_get", json!({"key": "cursor"})).await.unwrap()["value"], "42", "survives a restart");
    h.call("probe", "kv_delete", json!({"key": "cursor"})).await.unwrap();
    assert_eq!(h.call("probe", "kv_get", json!({"key": "cursor"})).await.unwrap()["value"], serde_json::Value::Null);
}

#[tokio::test]
async fn settings_and_logs_reach_the_plugin_and_the_host() {
    let server = Recorder::start().await;
    let h = host(&server.url).await;
    // The log import must not fail the call.
    h.call("probe", "log", json!({"message": "hello from the probe"})).await.unwrap();
    let b = h.call("probe", "rate_status", json!({"bucket": "slow"})).await.unwrap();
    assert_eq!(b["remaining"], 2);
    h.call("probe", "rate_acquire", json!({"bucket": "slow", "cost": 2})).await.unwrap();
    let b = h.call("probe", "rate_status", json!({"bucket": "slow"})).await.unwrap();
    assert_eq!(b["remaining"], 0);
    assert!(b["wait_ms"].as_u64().unwrap() > 0);
    let e = h.call("probe", "rate_status", json!({"bucket": "nope"})).await.unwrap_err();
    assert!(e.message.contains("slow"), "{e}");
}

#[tokio::test]
async fn endless_loop_is_stopped_and_the_host_keeps_serving() {
    let server = Recorder::start().await;
    let h = TestHost::start(&probe(&server.url, "[limits]\ncall_timeout_secs = 0.5\n")).await.unwrap();
    let (spin, echo) = tokio::join!(h.call("probe", "spin", json!({})), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        h.call("probe", "echo", json!({"still": "serving"})).await
    });
    let e = spin.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(e.message.contains("0.5 s"), "{e}");
    assert_eq!(echo.unwrap()["still"], "serving");
    assert_eq!(h.call("probe", "echo", json!({"after": 1})).await.unwrap()["after"], 1);
}

#[tokio::test]
async fn host_wait_does_not_count_as_guest_time() {
    let server = Recorder::start().await;
    // 0.5 s of guest time, but the 429 makes the host wait 1 s inside `send`.
    let h = TestHost::start(&probe(&server.url, "[limits]\ncall_timeout_secs = 0.5\n")).await.unwrap();
    assert_eq!(h.call("probe", "http", json!({"path": "/limited"})).await.unwrap()["status"], 200);
}

#[tokio::test]
async fn memory_bomb_is_capped() {
    let server = Recorder::start().await;
    let h = TestHost::start(&probe(&server.url, "[limits]\nmemory_mib = 16\n")).await.unwrap();
    let e = h.call("probe", "allocate", json!({"mib": 200})).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Internal);
    assert!(e.message.contains("memory cap of 16 MiB"), "{e}");
    assert_eq!(h.call("probe", "allocate", json!({"mib": 4})).await.unwrap()["allocated_mib"], 4);
}

#[tokio::test]
async fn a_panic_fails_only_its_own_call() {
    let server = Recorder::start().await;
    let h = host(&server.url).await;
    let mut calls = Vec::new();
    for i in 0..20 {
        let op = if i % 4 == 0 { "panic" } else { "echo" };
        calls.push(h.call("probe", op, json!({"i": i})));
    }
    for (i, r) in futures_join(calls).await.into_iter().enumerate() {
        if i % 4 == 0 {
            let e = r.unwrap_err();
            assert_eq!(e.kind, ErrorKind::Internal);
            assert!(e.message.contains("the probe was asked to panic"), "{e}");
        } else {
            assert_eq!(r.unwrap()["i"], i);
        }
    }
}

/// Instances are reused per connector binding (docs/architecture.md):
/// what one call leaves in guest memory is visible to the next call of the
/// same connector, never to another connector, and never survives a trap.
#[tokio::test]
async fn a_reused_instance_serves_one_connector_and_a_trap_drops_it() {
    let server = Recorder::start().await;
    let second = format!("[connectors.probe2]\nplugin = \"probe\"\nbase_url = \"{}/api\"\n", server.url);
    let h = TestHost::start(&probe(&server.url, &second)).await.unwrap();
    let binding = h.host.connector("probe").unwrap();
    let found = |connector: &'static str, needle: &'static str| {
        let h = &h;
        async move { h.call(connector, "memory_contains", json!({"needle_hex_xor5a": masked_hex(needle)})).await.unwrap()["found"] == true }
    };
    // Many copies, so that some outlive the allocator reusing freed memory.
    let kept = "kept-between-calls-5e1f";
    h.call("probe", "echo", json!({"pad": kept.repeat(2048)})).await.unwrap();
    assert_eq!(binding.plugin.warm_instances(&binding), 1);
    assert!(found("probe", kept).await, "positive control: the same connector's next call ran on the same instance");
    assert!(!found("probe2", kept).await, "another connector never sees a connector's instance");

    let trapped = "left-by-a-trap-9c2d";
    let e = h.call("probe", "panic", json!({"pad": trapped.repeat(2048)})).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Internal);
    assert_eq!(binding.plugin.warm_instances(&binding), 0, "the trapped instance was dropped");
    assert!(!found("probe", trapped).await, "the call after a trap runs on a fresh instance");
    assert!(!found("probe", kept).await, "…which has none of the old instance's memory");
    assert_eq!(binding.plugin.warm_instances(&binding), 1);
}

#[tokio::test]
async fn second_start_loads_from_the_compile_cache() {
    let server = Recorder::start().await;
    let cache = tempfile::tempdir().unwrap();
    let fragment = format!("cache_dir = {:?}\n{}", cache.path().display().to_string(), probe(&server.url, ""));
    // The harness header sets cache_dir too; a later key would be a
    // duplicate, so build the text by hand.
    let text = spoke_tests::config_text(cache.path(), "").replace(&format!("cache_dir = {:?}", spoke_tests::cache_dir().display().to_string()), "") + fragment.as_str();
    let first = spoke::Host::start(spoke::Config::parse(&text, "t", cache.path()).unwrap()).await.unwrap();
    let p = first.plugins().into_iter().find(|p| p.manifest.name == "probe").unwrap();
    assert_eq!(p.source, spoke::plugin::Source::Compiled);
    drop(first);
    let second = spoke::Host::start(spoke::Config::parse(&text, "t", cache.path()).unwrap()).await.unwrap();
    let p = second.plugins().into_iter().find(|p| p.manifest.name == "probe").unwrap();
    assert_eq!(p.source, spoke::plugin::Source::Cache);
    assert_eq!(second.call("probe", "echo", json!({"ok": true})).await.unwrap()["ok"], true);
}

#[tokio::test]
async fn config_that_the_plugin_cannot_serve_is_refused() {
    let e = TestHost::start("[connectors.x]\nplugin = \"no-such-plugin\"\n").await.err().unwrap();
    let text = format!("{e:#}");
    assert!(text.contains("connectors.x.plugin") && text.contains("probe"), "{text}");
    let e = TestHost::start("[connectors.x]\nplugin = \"probe\"\nbase_url = \"http://127.0.0.1:1\"\nrate_limits.nope = { windows = [{ limit = 1, seconds = 1 }] }\n").await.err().unwrap();
    let text = format!("{e:#}");
    assert!(text.contains("connectors.x.rate_limits.nope") && text.contains("slow"), "{text}");
}

#[tokio::test]
async fn the_plugin_template_loads_and_calls_through_the_host() {
    let server = Recorder::start().await;
    let h = TestHost::start(&format!("[connectors.acme]\nplugin = \"acme\"\nbase_url = \"{}\"\ncredentials = {{ api_key = \"value:acme-key\" }}\n", server.url)).await.unwrap();
    let e = h.call("acme", "get_order", json!({})).await.unwrap_err();
    assert_eq!((e.kind, e.field.as_deref()), (ErrorKind::InvalidInput, Some("id")));
    assert!(server.seen().is_empty());
    // The recorder answers "ok", which is not the JSON the template expects.
    let e = h.call("acme", "get_order", json!({"id": "A/7"})).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Internal, "{e}");
    let seen = &server.seen()[0];
    assert_eq!(seen.path, "/orders/A%2F7");
    assert!(seen.headers.iter().any(|(k, v)| k == "x-api-key" && v == "acme-key"));
}

/// The template's webhook handler (what `spoke new --lang rust` starts from):
/// verified through the host, normalized, refused when forged or not JSON.
#[tokio::test]
async fn the_plugin_template_turns_a_signed_webhook_into_an_event() {
    let h = TestHost::start("[connectors.acme]\nplugin = \"acme\"\nbase_url = \"http://127.0.0.1:9\"\ncredentials = { api_key = \"value:k\", webhook_secret = \"value:acme-hook\" }\n").await.unwrap();
    let body = br#"{"id": 41, "at": "2026-12-01T10:00:00Z", "order": {"id": "A7", "state": "SENT"}}"#.to_vec();
    let hook = |signature: String, body: Vec<u8>| spoke_tests::Webhook { headers: vec![("x-signature".into(), signature)], body };
    let events = h.webhook("acme", hook(spoke_tests::sign("acme-hook", &body), body.clone())).await.unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!((e.id.as_str(), e.topic.as_str(), e.subject.as_deref(), e.occurred_at.as_deref()), ("41", "ORDER_CHANGED", Some("A7"), Some("2026-12-01T10:00:00Z")));
    assert_eq!(e.payload, json!({"id": "A7", "state": "SENT"}));
    let e = h.webhook("acme", hook(spoke_tests::sign("guess", &body), body.clone())).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unauthorized, "{e}");
    let junk = b"not json".to_vec();
    let e = h.webhook("acme", hook(spoke_tests::sign("acme-hook", &junk), junk)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput, "{e}");
}

async fn futures_join<F: std::future::Future>(fs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = fs.into_iter().collect();
    futures::future::join_all(handles).await
}
