//! Webhook delivery: the documented envelope, signed with HMAC-SHA256 of
//! the raw body under the account's hash secret, sent to a loopback URL.
//! The docs give no retry schedule, so a failed delivery is recorded and can
//! be sent again through the control API (same delivery id).
use super::{State, util};
use crate::serve::is_loopback_url;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::Arc;

/// The CycleSoftware account the simulator plays.
pub const ACCOUNT_ID: i64 = 4743;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    Hex,
    Base64,
}

/// One webhook message and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// X-CycleSoftware-Delivery, the envelope's `id`.
    pub id: String,
    pub event_name: String,
    pub body: String,
    pub signature: String,
    pub attempts: u32,
    /// The receiver's status of the last attempt.
    pub status: Option<u16>,
    pub error: Option<String>,
}

pub fn sign(secret: &str, body: &[u8], encoding: SignatureEncoding) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    match encoding {
        SignatureEncoding::Hex => hex::encode(digest),
        SignatureEncoding::Base64 => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(digest)
        }
    }
}

/// Record and send the events a change caused.
pub fn emit(state: &Arc<State>, events: Vec<(&'static str, Value)>) {
    if events.is_empty() {
        return;
    }
    let now = state.clock.now_ms();
    let mut ids = vec![];
    {
        let mut inner = state.lock();
        for (event_name, payload) in events {
            inner.delivery_counter += 1;
            let id = util::uuid(inner.delivery_counter.wrapping_add(1 << 40), now);
            let body = json!({
                "id": id,
                "account_id": ACCOUNT_ID,
                "event_name": event_name,
                "event_timestamp": now as f64 / 1000.0,
                "payload": payload,
            })
            .to_string();
            let signature = sign(&inner.opts.hash_secret, body.as_bytes(), inner.opts.signature_encoding);
            inner.deliveries.push(Delivery { id: id.clone(), event_name: event_name.into(), body, signature, attempts: 0, status: None, error: None });
            ids.push(id);
        }
    }
    for id in ids {
        tokio::spawn(send(state.clone(), id));
    }
}

pub fn redeliver(state: &Arc<State>, id: &str) -> Result<(), String> {
    if !state.lock().deliveries.iter().any(|d| d.id == id) {
        return Err(format!("no delivery {id}"));
    }
    tokio::spawn(send(state.clone(), id.to_string()));
    Ok(())
}

async fn send(state: Arc<State>, id: String) {
    let (url, delivery) = {
        let inner = state.lock();
        let Some(d) = inner.deliveries.iter().find(|d| d.id == id) else { return };
        (inner.opts.webhook_url.clone(), d.clone())
    };
    let outcome = match url {
        None => Err("no webhook_url configured".to_string()),
        Some(url) if !is_loopback_url(&url) => Err(format!("refused: {url} is not a loopback URL")),
        Some(url) => {
            let headers = [
                ("Content-Type", "application/json"),
                ("X-CycleSoftware-Delivery", delivery.id.as_str()),
                ("X-CycleSoftware-Event", delivery.event_name.as_str()),
                ("X-CycleSoftware-Signature", delivery.signature.as_str()),
            ];
            post_loopback(&url, &headers, delivery.body.as_bytes()).await
        }
    };
    let mut inner = state.lock();
    if let Some(d) = inner.deliveries.iter_mut().find(|d| d.id == id) {
        d.attempts += 1;
        match outcome {
            Ok(status) => (d.status, d.error) = (Some(status), None),
            Err(e) => d.error = Some(e),
        }
    }
}

/// A plain HTTP/1.1 POST to a loopback URL; the status of the answer.
/// Written by hand because deliveries never need TLS, and reqwest here is
/// built without a TLS provider.
async fn post_loopback(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<u16, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (authority, path) = rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let addr = if authority.contains(':') { authority.to_string() } else { format!("{authority}:80") };
    let addr = addr.replacen("localhost", "127.0.0.1", 1);
    let mut stream = tokio::net::TcpStream::connect(&addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
    let mut request = format!("POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    stream.write_all(body).await.map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.map_err(|e| e.to_string())?;
    let status_line = String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_string();
    status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| format!("no HTTP status in {status_line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_the_rfc_4231_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?", SignatureEncoding::Hex),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(sign("Jefe", b"what do ya want for nothing?", SignatureEncoding::Base64).len(), 44);
    }
}
