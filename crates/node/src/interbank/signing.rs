//! Signed requests between banks. The sender signs, with its Ed25519 key, a string made of the
//! method, the path, the SHA-256 of the body, its bank code, a timestamp and a random nonce; the
//! receiver checks the signature with the key the consortium file lists for that bank, refuses
//! timestamps more than 30 s away from its own clock, and refuses a nonce it has already seen.

use crate::error::ApiError;
use crate::extract::sha256;
use axum::http::{HeaderMap, StatusCode};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier as _, VerifyingKey};
use ledger::BankCode;
use std::collections::HashMap;
use std::sync::Mutex;

pub const HEADER_BANK: &str = "x-interbank-bank";
pub const HEADER_TIMESTAMP: &str = "x-interbank-timestamp";
pub const HEADER_NONCE: &str = "x-interbank-nonce";
pub const HEADER_SIGNATURE: &str = "x-interbank-signature";

/// A request signed longer ago (or further ahead) than this is refused as stale.
pub const WINDOW_MS: u64 = 30_000;
/// Nonces remembered at once; beyond it, the ones too old to matter are forgotten.
const NONCES_MAX: usize = 1_000_000;

/// What is signed: one field per line, the body by its digest.
fn signed_text(
    method: &str,
    path: &str,
    body: &[u8],
    bank: &str,
    timestamp_ms: u64,
    nonce: &str,
) -> String {
    format!(
        "{method}\n{path}\n{}\n{bank}\n{timestamp_ms}\n{nonce}",
        hex::encode(sha256(body))
    )
}

/// The four headers that sign a request.
pub fn sign(
    key: &SigningKey,
    bank: BankCode,
    method: &str,
    path: &str,
    body: &[u8],
    now_ms: u64,
) -> [(&'static str, String); 4] {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).expect("the OS random source works");
    let nonce = hex::encode(nonce);
    let text = signed_text(method, path, body, bank.as_str(), now_ms, &nonce);
    let signature = key.sign(text.as_bytes());
    [
        (HEADER_BANK, bank.to_string()),
        (HEADER_TIMESTAMP, now_ms.to_string()),
        (HEADER_NONCE, nonce),
        (HEADER_SIGNATURE, hex::encode(signature.to_bytes())),
    ]
}

/// Checks signed requests from the consortium's banks.
pub struct Verifier {
    keys: HashMap<BankCode, VerifyingKey>,
    seen: Mutex<HashMap<(BankCode, String), u64>>,
}

fn refused(code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, detail)
}

impl Verifier {
    pub fn new(keys: HashMap<BankCode, VerifyingKey>) -> Verifier {
        Verifier {
            keys,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The bank that signed this request, or a 401 saying why it is refused.
    pub fn verify(
        &self,
        method: &str,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
        now_ms: u64,
    ) -> Result<BankCode, ApiError> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(bank), Some(timestamp), Some(nonce), Some(signature)) = (
            header(HEADER_BANK),
            header(HEADER_TIMESTAMP),
            header(HEADER_NONCE),
            header(HEADER_SIGNATURE),
        ) else {
            return Err(refused(
                "unsigned_request",
                "interbank requests carry x-interbank-bank, -timestamp, -nonce and -signature",
            ));
        };
        let code = BankCode::parse(bank)
            .ok_or_else(|| refused("unknown_bank", "the signing bank's code is not 8 digits"))?;
        let key = self.keys.get(&code).ok_or_else(|| {
            refused(
                "unknown_bank",
                format!("bank {code} is not in this consortium"),
            )
        })?;
        let timestamp_ms: u64 = timestamp.parse().map_err(|_| {
            refused(
                "bad_signature",
                "the timestamp is not a number of milliseconds",
            )
        })?;
        let mut signature_bytes = [0u8; 64];
        hex::decode_to_slice(signature, &mut signature_bytes)
            .map_err(|_| refused("bad_signature", "the signature is not 128 hex digits"))?;
        let text = signed_text(method, path, body, bank, timestamp_ms, nonce);
        key.verify(text.as_bytes(), &Signature::from_bytes(&signature_bytes))
            .map_err(|_| {
                refused(
                    "bad_signature",
                    format!("the signature does not match bank {code}'s key"),
                )
            })?;
        if timestamp_ms.abs_diff(now_ms) > WINDOW_MS {
            return Err(refused(
                "stale_request",
                format!(
                    "the request was signed {} ms away from this bank's clock",
                    timestamp_ms.abs_diff(now_ms)
                ),
            ));
        }
        if nonce.is_empty() || nonce.len() > 64 {
            return Err(refused("bad_signature", "the nonce has 1 to 64 characters"));
        }
        let mut seen = self.seen.lock().expect("nonce lock");
        if seen.len() >= NONCES_MAX {
            seen.retain(|_, at| at.abs_diff(now_ms) <= WINDOW_MS);
        }
        if seen
            .insert((code, nonce.to_string()), timestamp_ms)
            .is_some()
        {
            return Err(refused(
                "replayed_request",
                "this request was already received",
            ));
        }
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(signed: [(&'static str, String); 4]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in signed {
            map.insert(name, HeaderValue::from_str(&value).unwrap());
        }
        map
    }

    fn setup() -> (SigningKey, BankCode, Verifier) {
        let key = SigningKey::from_bytes(&[7; 32]);
        let bank = BankCode::parse("20000002").unwrap();
        let verifier = Verifier::new(HashMap::from([(bank, key.verifying_key())]));
        (key, bank, verifier)
    }

    fn code(result: Result<BankCode, ApiError>) -> String {
        result.unwrap_err().code.to_string()
    }

    #[test]
    fn a_signed_request_passes_once() {
        let (key, bank, verifier) = setup();
        let signed = headers(sign(
            &key,
            bank,
            "POST",
            "/interbank/v1/messages",
            b"{}",
            1_000_000,
        ));
        assert_eq!(
            verifier
                .verify("POST", "/interbank/v1/messages", &signed, b"{}", 1_000_500)
                .unwrap(),
            bank
        );
        assert_eq!(
            code(verifier.verify("POST", "/interbank/v1/messages", &signed, b"{}", 1_000_600)),
            "replayed_request"
        );
    }

    #[test]
    fn tampering_staleness_and_strangers_are_refused() {
        let (key, bank, verifier) = setup();
        let path = "/interbank/v1/messages";
        let signed = headers(sign(&key, bank, "POST", path, b"{\"a\":1}", 1_000_000));
        assert_eq!(
            code(verifier.verify("POST", path, &signed, b"{\"a\":2}", 1_000_000)),
            "bad_signature"
        );
        assert_eq!(
            code(verifier.verify(
                "POST",
                "/interbank/v1/other",
                &signed,
                b"{\"a\":1}",
                1_000_000
            )),
            "bad_signature"
        );
        assert_eq!(
            code(verifier.verify(
                "POST",
                path,
                &signed,
                b"{\"a\":1}",
                1_000_000 + WINDOW_MS + 1
            )),
            "stale_request"
        );
        assert_eq!(
            code(verifier.verify("POST", path, &HeaderMap::new(), b"", 1_000_000)),
            "unsigned_request"
        );
        let stranger = SigningKey::from_bytes(&[9; 32]);
        let forged = headers(sign(&stranger, bank, "POST", path, b"{}", 1_000_000));
        assert_eq!(
            code(verifier.verify("POST", path, &forged, b"{}", 1_000_000)),
            "bad_signature"
        );
        let unknown = headers(sign(
            &key,
            BankCode::parse("99999999").unwrap(),
            "POST",
            path,
            b"{}",
            1_000_000,
        ));
        assert_eq!(
            code(verifier.verify("POST", path, &unknown, b"{}", 1_000_000)),
            "unknown_bank"
        );
    }
}
