//! Signed requests between banks. The sender signs, with its Ed25519 key, a string made of the
//! method, the path, the SHA-256 of the body, its bank code, the receiving bank's code, the id of
//! the key it signs with, a timestamp and a random nonce; the body's digest also travels as a
//! header, so the receiver checks everything signed *before* it reads the body (a stranger's
//! body is never read), then reads the body, bounded, and checks it has that digest. The
//! receiver checks the signature with the key the consortium file lists for that bank under
//! that key id, refuses a request addressed to another bank (a request captured on its way to
//! one bank is worth nothing at another), timestamps more than 30 s away from its own clock, and
//! a nonce it has already seen.
//!
//! A key's id is the first 8 bytes of the SHA-256 of its public key, in hex ([`key_id`]): a bank
//! lists its current key and may list its next one (`next_public_key` in the consortium file),
//! so it can switch keys without every bank switching at the same moment.

use crate::error::ApiError;
use crate::extract::sha256;
use axum::http::{HeaderMap, StatusCode};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier as _, VerifyingKey};
use ledger::BankCode;
use std::collections::HashMap;
use std::sync::Mutex;

pub const HEADER_BANK: &str = "x-interbank-bank";
/// The bank the request is for.
pub const HEADER_TO: &str = "x-interbank-to";
/// Which of the sending bank's keys signed it (see [`key_id`]).
pub const HEADER_KEY_ID: &str = "x-interbank-key-id";
/// The SHA-256 of the body, hex (also in the signed text).
pub const HEADER_DIGEST: &str = "x-interbank-content-sha256";
pub const HEADER_TIMESTAMP: &str = "x-interbank-timestamp";
pub const HEADER_NONCE: &str = "x-interbank-nonce";
pub const HEADER_SIGNATURE: &str = "x-interbank-signature";

/// A request signed longer ago (or further ahead) than this is refused as stale.
pub const WINDOW_MS: u64 = 30_000;
/// Nonces remembered at once; beyond it, the ones too old to matter are forgotten.
const NONCES_MAX: usize = 1_000_000;
/// A nonce is 16 to 64 lowercase hex digits (ours are 32: 16 random bytes).
const NONCE_HEX_MIN: usize = 16;
const NONCE_HEX_MAX: usize = 64;

/// A public key's id: the first 8 bytes of its SHA-256, 16 hex digits.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&sha256(key.as_bytes())[..8])
}

/// What is signed: one field per line, the body by its digest.
#[allow(clippy::too_many_arguments)]
fn signed_text(
    method: &str,
    path: &str,
    digest_hex: &str,
    bank: &str,
    to: &str,
    key_id: &str,
    timestamp_ms: u64,
    nonce: &str,
) -> String {
    format!("{method}\n{path}\n{digest_hex}\n{bank}\n{to}\n{key_id}\n{timestamp_ms}\n{nonce}")
}

/// The headers that sign a request from `bank` to bank `to`.
pub fn sign(
    key: &SigningKey,
    bank: BankCode,
    to: BankCode,
    method: &str,
    path: &str,
    body: &[u8],
    now_ms: u64,
) -> [(&'static str, String); 7] {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).expect("the OS random source works");
    let nonce = hex::encode(nonce);
    let digest = hex::encode(sha256(body));
    let id = key_id(&key.verifying_key());
    let text = signed_text(
        method,
        path,
        &digest,
        bank.as_str(),
        to.as_str(),
        &id,
        now_ms,
        &nonce,
    );
    let signature = key.sign(text.as_bytes());
    [
        (HEADER_BANK, bank.to_string()),
        (HEADER_TO, to.to_string()),
        (HEADER_KEY_ID, id),
        (HEADER_DIGEST, digest),
        (HEADER_TIMESTAMP, now_ms.to_string()),
        (HEADER_NONCE, nonce),
        (HEADER_SIGNATURE, hex::encode(signature.to_bytes())),
    ]
}

/// Checks signed requests from the consortium's banks to this one.
pub struct Verifier {
    me: BankCode,
    /// Each bank's keys by id (its current one, and its next one when listed).
    keys: HashMap<BankCode, Vec<(String, VerifyingKey)>>,
    seen: Mutex<HashMap<(BankCode, String), u64>>,
}

/// A request whose signed headers passed: its body is still to be read and matched.
#[must_use = "a request is accepted only once its body matches (`Signed::accept`)"]
pub struct Signed<'a> {
    verifier: &'a Verifier,
    bank: BankCode,
    digest: [u8; 32],
    timestamp_ms: u64,
    nonce: String,
}

fn refused(code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, detail)
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Verifier {
    pub fn new(me: BankCode, keys: HashMap<BankCode, Vec<VerifyingKey>>) -> Verifier {
        let keys = keys
            .into_iter()
            .map(|(bank, keys)| (bank, keys.iter().map(|k| (key_id(k), *k)).collect()))
            .collect();
        Verifier {
            me,
            keys,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Everything but the body: the bank is known, the request is for this bank, fresh, its
    /// nonce well formed, and signed by that bank's key over the digest its header declares.
    /// Cheap checks come first; nothing here reads the body.
    pub fn check_headers(
        &self,
        method: &str,
        path: &str,
        headers: &HeaderMap,
        now_ms: u64,
    ) -> Result<Signed<'_>, ApiError> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (
            Some(bank),
            Some(to),
            Some(id),
            Some(digest),
            Some(timestamp),
            Some(nonce),
            Some(signature),
        ) = (
            header(HEADER_BANK),
            header(HEADER_TO),
            header(HEADER_KEY_ID),
            header(HEADER_DIGEST),
            header(HEADER_TIMESTAMP),
            header(HEADER_NONCE),
            header(HEADER_SIGNATURE),
        )
        else {
            return Err(refused(
                "unsigned_request",
                "interbank requests carry x-interbank-bank, -to, -key-id, -content-sha256, \
                 -timestamp, -nonce and -signature",
            ));
        };
        let code = BankCode::parse(bank)
            .ok_or_else(|| refused("unknown_bank", "the signing bank's code is not 8 digits"))?;
        let keys = self.keys.get(&code).ok_or_else(|| {
            refused(
                "unknown_bank",
                format!("bank {code} is not in this consortium"),
            )
        })?;
        if to != self.me.as_str() {
            return Err(refused(
                "wrong_recipient",
                format!("the request was signed for bank {to:?}, not this bank"),
            ));
        }
        let timestamp_ms: u64 = timestamp.parse().map_err(|_| {
            refused(
                "bad_signature",
                "the timestamp is not a number of milliseconds",
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
        if !(NONCE_HEX_MIN..=NONCE_HEX_MAX).contains(&nonce.len()) || !is_lower_hex(nonce) {
            return Err(refused(
                "bad_signature",
                "the nonce is 16 to 64 lowercase hex digits",
            ));
        }
        let key = keys
            .iter()
            .find(|(known, _)| known == id)
            .map(|(_, key)| key)
            .ok_or_else(|| {
                refused(
                    "unknown_key",
                    format!("bank {code} has no key {id:?} in this consortium"),
                )
            })?;
        let mut digest_bytes = [0u8; 32];
        hex::decode_to_slice(digest, &mut digest_bytes)
            .map_err(|_| refused("bad_signature", "the body digest is not 64 hex digits"))?;
        let mut signature_bytes = [0u8; 64];
        hex::decode_to_slice(signature, &mut signature_bytes)
            .map_err(|_| refused("bad_signature", "the signature is not 128 hex digits"))?;
        let text = signed_text(method, path, digest, bank, to, id, timestamp_ms, nonce);
        key.verify(text.as_bytes(), &Signature::from_bytes(&signature_bytes))
            .map_err(|_| {
                refused(
                    "bad_signature",
                    format!("the signature does not match bank {code}'s key"),
                )
            })?;
        // A replay is known before its body is read too (`accept` checks again, and records).
        if self
            .seen
            .lock()
            .expect("nonce lock")
            .contains_key(&(code, nonce.to_string()))
        {
            return Err(refused(
                "replayed_request",
                "this request was already received",
            ));
        }
        Ok(Signed {
            verifier: self,
            bank: code,
            digest: digest_bytes,
            timestamp_ms,
            nonce: nonce.to_string(),
        })
    }

    /// A whole request at once: [`Verifier::check_headers`], then [`Signed::accept`].
    pub fn verify(
        &self,
        method: &str,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
        now_ms: u64,
    ) -> Result<BankCode, ApiError> {
        self.check_headers(method, path, headers, now_ms)?
            .accept(body, now_ms)
    }
}

impl Signed<'_> {
    /// The bank that signed the headers.
    pub fn bank(&self) -> BankCode {
        self.bank
    }

    /// The body is the one signed, and the nonce new: the request is accepted (once).
    pub fn accept(self, body: &[u8], now_ms: u64) -> Result<BankCode, ApiError> {
        if sha256(body) != self.digest {
            return Err(refused(
                "bad_signature",
                "the body is not the one whose digest was signed",
            ));
        }
        let mut seen = self.verifier.seen.lock().expect("nonce lock");
        if seen.len() >= NONCES_MAX {
            seen.retain(|_, at| at.abs_diff(now_ms) <= WINDOW_MS);
        }
        if seen
            .insert((self.bank, self.nonce), self.timestamp_ms)
            .is_some()
        {
            return Err(refused(
                "replayed_request",
                "this request was already received",
            ));
        }
        Ok(self.bank)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(signed: [(&'static str, String); 7]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in signed {
            map.insert(name, HeaderValue::from_str(&value).unwrap());
        }
        map
    }

    fn me() -> BankCode {
        BankCode::parse("10000001").unwrap()
    }

    fn setup() -> (SigningKey, BankCode, Verifier) {
        let key = SigningKey::from_bytes(&[7; 32]);
        let bank = BankCode::parse("20000002").unwrap();
        let verifier = Verifier::new(me(), HashMap::from([(bank, vec![key.verifying_key()])]));
        (key, bank, verifier)
    }

    fn code<T>(result: Result<T, ApiError>) -> String {
        match result {
            Ok(_) => "accepted".into(),
            Err(e) => e.code.to_string(),
        }
    }

    #[test]
    fn a_signed_request_passes_once() {
        let (key, bank, verifier) = setup();
        let path = "/interbank/v1/messages";
        let signed = headers(sign(&key, bank, me(), "POST", path, b"{}", 1_000_000));
        assert_eq!(
            verifier
                .verify("POST", path, &signed, b"{}", 1_000_500)
                .unwrap(),
            bank
        );
        assert_eq!(
            code(verifier.verify("POST", path, &signed, b"{}", 1_000_600)),
            "replayed_request"
        );
    }

    #[test]
    fn tampering_staleness_and_strangers_are_refused() {
        let (key, bank, verifier) = setup();
        let path = "/interbank/v1/messages";
        let signed = headers(sign(
            &key,
            bank,
            me(),
            "POST",
            path,
            b"{\"a\":1}",
            1_000_000,
        ));
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
        let forged = headers(sign(&stranger, bank, me(), "POST", path, b"{}", 1_000_000));
        assert_eq!(
            code(verifier.verify("POST", path, &forged, b"{}", 1_000_000)),
            "unknown_key"
        );
        let unknown = headers(sign(
            &key,
            BankCode::parse("99999999").unwrap(),
            me(),
            "POST",
            path,
            b"{}",
            1_000_000,
        ));
        assert_eq!(
            code(verifier.verify("POST", path, &unknown, b"{}", 1_000_000)),
            "unknown_bank"
        );
        // A signature over the headers does not cover a digest header changed after signing.
        let mut changed = headers(sign(&key, bank, me(), "POST", path, b"{}", 1_000_000));
        let digest = hex::encode(sha256(b"{\"a\":3}"));
        changed.insert(HEADER_DIGEST, HeaderValue::from_str(&digest).unwrap());
        assert_eq!(
            code(verifier.verify("POST", path, &changed, b"{\"a\":3}", 1_000_000)),
            "bad_signature"
        );
    }

    #[test]
    fn a_request_for_another_bank_is_refused() {
        let (key, bank, verifier) = setup();
        let path = "/interbank/v1/heartbeat";
        let other = BankCode::parse("30000003").unwrap();
        let signed = headers(sign(&key, bank, other, "POST", path, b"{}", 1_000_000));
        assert_eq!(
            code(verifier.verify("POST", path, &signed, b"{}", 1_000_000)),
            "wrong_recipient"
        );
        // Naming this bank in the header does not help: the signature covers the recipient.
        let mut readdressed = signed.clone();
        readdressed.insert(HEADER_TO, HeaderValue::from_str(me().as_str()).unwrap());
        assert_eq!(
            code(verifier.verify("POST", path, &readdressed, b"{}", 1_000_000)),
            "bad_signature"
        );
    }

    #[test]
    fn the_headers_are_checked_before_the_body_is_read() {
        let (key, bank, verifier) = setup();
        let path = "/interbank/v1/messages";
        let signed = headers(sign(&key, bank, me(), "POST", path, b"{}", 1_000_000));
        let checked = verifier
            .check_headers("POST", path, &signed, 1_000_000)
            .unwrap();
        assert_eq!(checked.bank(), bank);
        let mut bad_nonce = signed.clone();
        bad_nonce.insert(HEADER_NONCE, HeaderValue::from_static("not-hex!"));
        assert_eq!(
            code(verifier.check_headers("POST", path, &bad_nonce, 1_000_000)),
            "bad_signature"
        );
        // A refused body does not use up the nonce: the real body still passes after it.
        assert_eq!(
            code(checked.accept(b"{\"x\":1}", 1_000_000)),
            "bad_signature"
        );
        assert_eq!(
            verifier
                .verify("POST", path, &signed, b"{}", 1_000_000)
                .unwrap(),
            bank
        );
        assert_eq!(
            code(verifier.check_headers("POST", path, &signed, 1_000_000)),
            "replayed_request",
            "a replay is refused before its body is read"
        );
    }

    #[test]
    fn a_bank_may_sign_with_its_current_or_its_next_key() {
        let (key, bank, _) = setup();
        let next = SigningKey::from_bytes(&[8; 32]);
        let verifier = Verifier::new(
            me(),
            HashMap::from([(bank, vec![key.verifying_key(), next.verifying_key()])]),
        );
        let path = "/interbank/v1/heartbeat";
        for signer in [&key, &next] {
            let signed = headers(sign(signer, bank, me(), "POST", path, b"{}", 1_000_000));
            assert_eq!(
                verifier
                    .verify("POST", path, &signed, b"{}", 1_000_000)
                    .unwrap(),
                bank
            );
        }
        assert_eq!(key_id(&key.verifying_key()).len(), 16);
        assert_ne!(key_id(&key.verifying_key()), key_id(&next.verifying_key()));
    }
}
