//! `auth`: webhook verification with secrets the guest never sees.
use super::CallState;
use crate::manifest::AuthMethod;
use crate::plugin::v0_1_0::auth::{self, SignatureEncoding};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// HMAC-SHA256 of `message` under `secret`, compared in constant time with
/// `signature` written in `encoding`. A `sha256=` prefix is accepted.
pub fn verify_hmac_sha256(secret: &[u8], message: &[u8], signature: &str, encoding: SignatureEncoding) -> bool {
    let signature = signature.trim();
    let signature = signature.strip_prefix("sha256=").unwrap_or(signature);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(message);
    let expected = mac.finalize().into_bytes();
    let decoded = |enc| -> Option<Vec<u8>> {
        match enc {
            SignatureEncoding::Hex => hex::decode(signature.to_ascii_lowercase()).ok(),
            _ => base64::engine::general_purpose::STANDARD.decode(signature).ok(),
        }
    };
    let candidates = match encoding {
        SignatureEncoding::Hex => vec![decoded(SignatureEncoding::Hex)],
        SignatureEncoding::Base64 => vec![decoded(SignatureEncoding::Base64)],
        SignatureEncoding::HexOrBase64 => vec![decoded(SignatureEncoding::Hex), decoded(SignatureEncoding::Base64)],
    };
    candidates.into_iter().flatten().any(|c| c.len() == expected.len() && bool::from(c.ct_eq(&expected)))
}

/// Checks one call may make at full speed: a webhook needs one or two.
const FREE_VERIFIES: u32 = 8;

impl CallState {
    /// Past the first few checks of a call, each waits its turn at
    /// `limits.max_verify_per_sec`: a plugin guessing at its own credentials
    /// gets tens of tries a second, not a hundred thousand. The wait counts
    /// against the call's wall-clock deadline, not its guest budget.
    async fn pace_verify(&mut self) {
        self.verifies += 1;
        if self.verifies <= FREE_VERIFIES {
            return;
        }
        let Ok(binding) = self.binding() else { return };
        let per_sec = binding.shared.limits.max_verify_per_sec.max(1);
        let wait = std::time::Duration::from_secs(1) / per_sec;
        if self.verifies == FREE_VERIFIES + 1 {
            tracing::warn!(connector = binding.name(), operation = %self.operation, "plugin makes many credential checks in one call; pacing them at {per_sec}/s");
        }
        tokio::time::sleep(wait).await;
        self.host_time += wait;
    }
}

impl auth::Host for CallState {
    async fn verify_hmac_sha256(&mut self, secret_field: String, message: Vec<u8>, signature: String, encoding: SignatureEncoding) -> bool {
        self.pace_verify().await;
        let Ok(binding) = self.binding() else { return false };
        match binding.config.credentials.get(&secret_field) {
            Some(secret) => verify_hmac_sha256(secret.expose().as_bytes(), &message, &signature, encoding),
            None => {
                tracing::warn!(connector = binding.name(), field = %secret_field, "webhook signature checked against a credential that is not configured");
                false
            }
        }
    }

    async fn verify_basic(&mut self, scheme: String, authorization: String) -> bool {
        self.pace_verify().await;
        let Ok(binding) = self.binding() else { return false };
        let Some(AuthMethod::Basic { username_field, password_field }) = binding.manifest().auth_scheme(&scheme).map(|s| &s.method) else {
            return false;
        };
        let creds = &binding.config.credentials;
        let (Some(user), Some(pass)) = (creds.get(username_field), creds.get(password_field)) else { return false };
        let Some(token) = authorization.trim().strip_prefix("Basic ").or_else(|| authorization.trim().strip_prefix("basic ")) else {
            return false;
        };
        let Ok(given) = base64::engine::general_purpose::STANDARD.decode(token.trim()) else { return false };
        let expected = format!("{}:{}", user.expose(), pass.expose());
        given.len() == expected.len() && bool::from(given.ct_eq(expected.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_in_hex_and_base64() {
        // RFC 4231 test case 2.
        let key = b"Jefe";
        let msg = b"what do ya want for nothing?";
        let hex_sig = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let b64_sig = base64::engine::general_purpose::STANDARD.encode(hex::decode(hex_sig).unwrap());
        assert!(verify_hmac_sha256(key, msg, hex_sig, SignatureEncoding::Hex));
        assert!(verify_hmac_sha256(key, msg, &hex_sig.to_uppercase(), SignatureEncoding::HexOrBase64));
        assert!(verify_hmac_sha256(key, msg, &b64_sig, SignatureEncoding::Base64));
        assert!(verify_hmac_sha256(key, msg, &format!("sha256={hex_sig}"), SignatureEncoding::Hex));
        assert!(!verify_hmac_sha256(key, msg, &b64_sig, SignatureEncoding::Hex));
        assert!(!verify_hmac_sha256(key, b"what do ya want for nothing!", hex_sig, SignatureEncoding::HexOrBase64));
        assert!(!verify_hmac_sha256(b"other", msg, hex_sig, SignatureEncoding::HexOrBase64));
        assert!(!verify_hmac_sha256(key, msg, "", SignatureEncoding::HexOrBase64));
    }
}
