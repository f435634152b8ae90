//! `http`: outbound requests to the connector's vendor, and nowhere else.
use super::CallState;
use crate::error::{CallError, ErrorKind};
use crate::manifest::AuthMethod;
use crate::rate_limit::{Limiter, Outcome};
use crate::plugin::v0_1_0::{self as wit, http};
use base64::Engine as _;
use std::time::Duration;
use tokio::time::Instant;

/// A path the plugin may ask for: relative, no traversal, no tricks. Checked
/// on the raw text and again after percent-decoding, because the vendor's
/// server may decode before it normalises. An encoded `/` inside an id
/// (`/orders/A%2F7`) is fine; one that forms a `..` segment is not.
pub fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("path {path:?} must start with `/`: plugins name a path under the connector's base URL, never a URL"));
    }
    if path.starts_with("//") {
        return Err(format!("path {path:?} starts with `//`, which would name another host"));
    }
    if let Some(c) = path.chars().find(|c| c.is_control() || c.is_whitespace() || matches!(c, '\\' | '#' | '@')) {
        return Err(format!("path {path:?} contains {c:?}, which is not allowed"));
    }
    let only_path = path.split('?').next().unwrap_or(path);
    let decoded = percent_encoding::percent_decode_str(only_path).decode_utf8_lossy();
    if let Some(c) = decoded.chars().find(|c| c.is_control() || matches!(c, '\\')) {
        return Err(format!("path {path:?} encodes {c:?}, which is not allowed"));
    }
    if decoded.starts_with("//") || decoded.split('/').any(|seg| seg == ".." || seg == ".") {
        return Err(format!("path {path:?} contains a `.` or `..` segment (possibly encoded)"));
    }
    // Encoded twice: a server that decodes twice would see the above.
    if decoded.as_bytes().windows(3).any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit()) {
        return Err(format!("path {path:?} is percent-encoded twice"));
    }
    Ok(())
}

fn refused(message: impl Into<String>) -> wit::types::Error {
    CallError::new(ErrorKind::Refused, message).into()
}

fn reqwest_method(m: wit::types::Method) -> reqwest::Method {
    use wit::types::Method as M;
    match m {
        M::Get => reqwest::Method::GET,
        M::Post => reqwest::Method::POST,
        M::Put => reqwest::Method::PUT,
        M::Patch => reqwest::Method::PATCH,
        M::Delete => reqwest::Method::DELETE,
        M::Head => reqwest::Method::HEAD,
    }
}

impl http::Host for CallState {
    async fn send(&mut self, request: http::Request) -> Result<http::Response, wit::types::Error> {
        let entered = Instant::now();
        let result = self.send_inner(request).await;
        self.host_time += entered.elapsed();
        result
    }
}

impl CallState {
    async fn send_inner(&mut self, request: http::Request) -> Result<http::Response, wit::types::Error> {
        let binding = self.binding()?.clone();
        check_path(&request.path).map_err(refused)?;

        // Join to the base URL and prove the result stayed under it.
        let base = &binding.base_url;
        let base_path = base.path().trim_end_matches('/');
        let mut url = join_base(base, &request.path).map_err(|e| refused(format!("path {:?} does not form a URL: {e}", request.path)))?;
        if url.origin() != base.origin() || !url.path().starts_with(base_path) {
            return Err(refused(format!("path {:?} would leave {}", request.path, base.origin().ascii_serialization())));
        }
        if !request.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &request.query {
                pairs.append_pair(k, v);
            }
        }

        let manifest = binding.manifest();
        let mut headers = reqwest::header::HeaderMap::new();
        let host_only = host_only_headers(manifest, &request.auth);
        for (name, value) in &request.headers {
            let lower = name.to_ascii_lowercase();
            if host_only.contains(&lower) {
                return Err(refused(format!("header {name:?} is set by the host, not by plugins")));
            }
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| refused(format!("{name:?} is not a valid header name")))?;
            let value = reqwest::header::HeaderValue::from_str(value).map_err(|_| refused(format!("header {name} has an invalid value")))?;
            headers.append(name, value);
        }
        // Credentials: injected here, never seen by the guest.
        for scheme_name in &request.auth {
            let scheme = manifest.auth_scheme(scheme_name).ok_or_else(|| refused(format!("auth scheme {scheme_name:?} is not in the manifest")))?;
            let field = |f: &str| {
                binding.config.credentials.get(f).ok_or_else(|| {
                    refused(format!("connector {} has no credential `{f}` (needed by auth scheme {scheme_name:?}); set connectors.{}.credentials.{f}", binding.name(), binding.name()))
                })
            };
            let mut set = |name: &str, value: String| -> Result<(), wit::types::Error> {
                let mut v = reqwest::header::HeaderValue::from_str(&value).map_err(|_| refused(format!("credential for header {name} is not a valid header value")))?;
                v.set_sensitive(true);
                headers.insert(reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| refused(format!("{name:?} is not a valid header name")))?, v);
                Ok(())
            };
            match &scheme.method {
                AuthMethod::Basic { username_field, password_field } => {
                    let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", field(username_field)?.expose(), field(password_field)?.expose()));
                    set("authorization", format!("Basic {token}"))?;
                }
                AuthMethod::Headers { headers: pairs } => {
                    for (header, f) in pairs {
                        set(header, field(f)?.expose().to_string())?;
                    }
                }
                AuthMethod::Bearer { field: f } => set("authorization", format!("Bearer {}", field(f)?.expose()))?,
                AuthMethod::Query { params } => {
                    for (param, f) in params {
                        url.query_pairs_mut().append_pair(param, field(f)?.expose());
                    }
                }
            }
        }

        let limits = &binding.shared.limits;
        let limiter = &binding.shared.limiter;
        // Buckets the plugin reserved ahead (`rate-limit.acquire`) are not
        // charged again; a 429 still pauses the whole credential.
        let all_buckets = binding.buckets_for(&self.operation);
        let buckets: Vec<_> = all_buckets.iter().filter(|b| !take_reserved(&mut self.reserved, &b.policy.name)).cloned().collect();
        let started = Instant::now();
        let method = reqwest_method(request.method);
        let path_only = request.path.split('?').next().unwrap_or("").to_string();
        loop {
            let permit = limiter
                .acquire(binding.name(), &binding.credential, &buckets, 1, limits.max_rate_wait().saturating_sub(started.elapsed()), false)
                .await
                .map_err(|r| rate_refusal(binding.name(), r))?;
            if let Some(w) = &permit.waited {
                crate::rate_limit::record_wait(binding.name(), w);
            }
            let mut builder = binding.shared.http.request(method.clone(), url.clone()).headers(headers.clone()).timeout(limits.http_timeout());
            if let Some(body) = &request.body {
                builder = builder.body(body.clone());
            }
            let response = match builder.send().await {
                Ok(r) => r,
                Err(e) => {
                    // The vendor may have counted it: the slot stays spent.
                    let _ = limiter.finish(permit, Outcome::Unknown).await;
                    // reqwest's error text includes the URL, which may carry a
                    // query credential: report without it.
                    let e = e.without_url();
                    let kind = if e.is_timeout() { ErrorKind::Timeout } else { ErrorKind::Transport };
                    return Err(CallError::new(kind, format!("{method} {path_only}: {e}")).into());
                }
            };
            let status = response.status().as_u16();
            let resp_headers: Vec<(String, String)> = response
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect();
            let body = read_capped(response, limits.max_response_bytes).await;
            let ledger_error = |e: anyhow::Error| wit::types::Error::from(CallError::new(ErrorKind::Transport, format!("rate ledger of {}: {e:#}", binding.name())));
            let refused_with_wait = status == 503 && crate::rate_limit::retry_after_ms(&resp_headers).is_some();
            let outcome = if status == 429 || refused_with_wait {
                Limiter::refusal(&all_buckets, &resp_headers, &format!("{status} on {}", self.operation))
            } else {
                Outcome::Accepted
            };
            let pause = limiter.finish(permit, outcome).await.map_err(ledger_error)?;
            limiter.observe(&all_buckets, &resp_headers).await.map_err(ledger_error)?;
            if status == 429 {
                binding.shared.metrics.vendor_429(binding.name(), &all_buckets.iter().map(|b| b.policy.name.clone()).collect::<Vec<_>>());
            }
            if let Some(pause) = pause.filter(|_| status == 429) {
                // The vendor refused it, so sending again is safe even for a
                // non-idempotent operation — after the pause, within the bound.
                let left = Duration::from_millis((pause.until_ms - crate::store::now_ms()).max(0) as u64);
                tracing::warn!(connector = binding.name(), operation = %self.operation, pause_ms = left.as_millis() as u64, penalty_level = pause.level, "vendor answered 429; nothing is sent on this credential until the pause ends");
                if started.elapsed() + left <= limits.max_rate_wait() {
                    continue;
                }
                // Giving up: the plugin maps the vendor's own refusal (its
                // code and message), told the true remaining pause as
                // Retry-After whether or not the vendor sent one.
                let mut resp_headers: Vec<(String, String)> = resp_headers.into_iter().filter(|(k, _)| k != "retry-after").collect();
                resp_headers.push(("retry-after".into(), left.as_millis().div_ceil(1000).to_string()));
                let body = body?;
                return Ok(http::Response { status, headers: resp_headers, body });
            }
            let body = body?;
            tracing::debug!(connector = binding.name(), operation = %self.operation, %method, path = %path_only, status, "vendor request");
            return Ok(http::Response { status, headers: resp_headers, body });
        }
    }
}

/// `path` under the base URL. The base may carry a path, with or without a
/// trailing slash (Lagerkoll documents `https://capi.lagerkoll.com/v1/customer_orders/`);
/// a plugin path that already starts with that path (plugins name the
/// vendor's full documented paths) is not prefixed a second time.
pub fn join_base(base: &url::Url, path: &str) -> Result<url::Url, url::ParseError> {
    let base_path = base.path().trim_end_matches('/');
    let only_path = path.split('?').next().unwrap_or(path);
    let already_under = !base_path.is_empty()
        && only_path.strip_prefix(base_path).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    if already_under {
        base.join(path)
    } else {
        base.join(&format!("{base_path}{path}"))
    }
}

/// Headers only the host may set on this request: the ones the host sets
/// itself, and the credential headers of the auth schemes the request uses.
/// A header that belongs to a scheme the request does not use is the
/// plugin's to send (Lagerkoll's `user_id` names the warehouse worker when
/// the api-key scheme authenticates).
fn host_only_headers(manifest: &crate::manifest::Manifest, schemes: &[String]) -> Vec<String> {
    let mut names: Vec<String> = vec!["host".into(), "content-length".into()];
    for scheme in manifest.auth_schemes.iter().filter(|s| schemes.contains(&s.name)) {
        match &scheme.method {
            AuthMethod::Headers { headers } => names.extend(headers.iter().map(|(h, _)| h.to_ascii_lowercase())),
            AuthMethod::Basic { .. } | AuthMethod::Bearer { .. } => names.push("authorization".into()),
            AuthMethod::Query { .. } => {}
        }
    }
    names
}

/// A request that cannot get budget within the bound, as the plugin sees it.
pub(super) fn rate_refusal(connector: &str, r: crate::rate_limit::Refused) -> wit::types::Error {
    use crate::rate_limit::Refused;
    match r {
        Refused::WouldWait { why, retry_after } => {
            let mut e = CallError::new(ErrorKind::RateLimited, format!("{connector}: {}; the next request fits in {:.1} s", crate::rate_limit::describe(&why), retry_after.as_secs_f64()));
            e.retry_after_ms = Some(retry_after.as_millis() as u64);
            e.into()
        }
        Refused::Ledger(m) => CallError::new(ErrorKind::Transport, format!("{connector}: the rate ledger is unavailable, so nothing was sent: {m}")).into(),
        Refused::TooMany { bucket, count, limit } => CallError::new(ErrorKind::Refused, format!("{connector}: {count} requests at once can never fit rate policy `{bucket}` ({limit} per window)")).into(),
    }
}

fn take_reserved(reserved: &mut std::collections::HashMap<String, u32>, bucket: &str) -> bool {
    match reserved.get_mut(bucket) {
        Some(n) if *n > 0 => {
            *n -= 1;
            true
        }
        _ => false,
    }
}

async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, wit::types::Error> {
    if response.content_length().is_some_and(|n| n as usize > cap) {
        return Err(CallError::new(ErrorKind::Refused, format!("vendor response of {} bytes exceeds the {cap}-byte cap", response.content_length().unwrap_or(0))).into());
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > cap {
                    return Err(CallError::new(ErrorKind::Refused, format!("vendor response exceeds the {cap}-byte cap")).into());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                let kind = if e.is_timeout() { ErrorKind::Timeout } else { ErrorKind::Transport };
                return Err(CallError::new(kind, format!("reading the vendor response: {}", e.without_url())).into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{check_path, join_base};

    #[test]
    fn base_urls_join_with_or_without_a_path_and_a_trailing_slash() {
        let cases = [
            ("https://capi.lagerkoll.com", "/v1/customer_orders/7", "https://capi.lagerkoll.com/v1/customer_orders/7"),
            ("https://capi.lagerkoll.com/", "/v1/customer_orders/7", "https://capi.lagerkoll.com/v1/customer_orders/7"),
            ("https://capi.lagerkoll.com/v1/customer_orders/", "/v1/customer_orders/7", "https://capi.lagerkoll.com/v1/customer_orders/7"),
            ("https://capi.lagerkoll.com/v1/customer_orders", "/v1/customer_orders/7/send", "https://capi.lagerkoll.com/v1/customer_orders/7/send"),
            ("https://capi.lagerkoll.com/v1/customer_orders/", "/v1/customer_orders", "https://capi.lagerkoll.com/v1/customer_orders"),
            ("https://proxy.example/wics", "/api/order?reference=A", "https://proxy.example/wics/api/order?reference=A"),
            ("https://proxy.example/wics/", "/api/order", "https://proxy.example/wics/api/order"),
            // A base path that is only a prefix of the first segment is not "already under".
            ("https://x.example/v1", "/v10/a", "https://x.example/v1/v10/a"),
        ];
        for (base, path, want) in cases {
            let got = join_base(&url::Url::parse(base).unwrap(), path).unwrap();
            assert_eq!(got.as_str(), want, "{base} + {path}");
        }
    }

    #[test]
    fn refuses_everything_that_could_leave_the_origin() {
        for bad in [
            "http://evil.example/x",
            "evil.example/x",
            "//evil.example/x",
            "/a/../../etc",
            "/a/./b",
            "/%2e%2e/x",
            "/a%2f..%2fadmin",
            "/%252e%252e/x",
            "/a%5c..",
            "/x@evil",
            "/a\\b",
            "/a b",
            "/a\nb",
            "/a#frag",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?} was accepted");
        }
        for good in ["/", "/api/order/123", "/api/stock?nettoSalable[gte]=1000", "/v1/customer_orders/12/send", "/a/b%20c", "/orders/A%2F7"] {
            assert!(check_path(good).is_ok(), "{good:?} was refused");
        }
    }
}
