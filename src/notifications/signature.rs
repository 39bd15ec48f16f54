//! The HMAC-SHA256 signature of a webhook body, as GitHub sends it in
//! `X-Hub-Signature-256`: `sha256=<hex of HMAC-SHA256(secret, body)>`. Incoming hook
//! deliveries are checked with it (`server::hooks`) and outgoing notifications are signed
//! with it, so a receiver checks ours exactly as we check GitHub's.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const PREFIX: &str = "sha256=";

fn mac(secret: &[u8], body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    mac
}

/// The header value that signs `body` with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    format!(
        "{PREFIX}{}",
        hex::encode(mac(secret, body).finalize().into_bytes())
    )
}

/// Whether `header` (`sha256=<hex>`) signs `body` with `secret`, compared in constant time.
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    header
        .strip_prefix(PREFIX)
        .and_then(|h| hex::decode(h).ok())
        .is_some_and(|given| mac(secret, body).verify_slice(&given).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's documented example ("Validating webhook deliveries").
    #[test]
    fn a_signature_is_githubs() {
        let header = sign(b"It's a Secret to Everybody", b"Hello, World!");
        assert_eq!(
            header,
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        assert!(verify(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            &header
        ));
    }

    #[test]
    fn another_secret_body_or_form_does_not_verify() {
        let header = sign(b"key", b"body");
        assert!(!verify(b"other", b"body", &header));
        assert!(!verify(b"key", b"body!", &header));
        assert!(!verify(
            b"key",
            b"body",
            header.trim_start_matches("sha256=")
        ));
        assert!(!verify(b"key", b"body", "sha256=zz"));
    }
}
