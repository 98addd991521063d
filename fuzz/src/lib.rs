//! What each fuzz target checks, one function per target (`fuzz_targets/<name>.rs` only hands
//! libFuzzer's bytes to it). Every parser here takes outside input, so each must answer every
//! input with a value or a refusal, never a panic; where a property exists it is asserted too
//! (a parsed value shown and parsed again is the same value, two parsers of one thing agree).
//!
//! The functions live in a library so that `cargo test` (on stable) can run them over the seed
//! corpus in `corpus/<target>/seed-*` without libFuzzer.

use ledger::amount::format_cents;
use ledger::{
    AccountKind, AccountNumber, Amount, AmountError, BankCode, Cnpj, Cpf, Document, EndToEndId,
    Hlc, PixKey, PixKeyType, Stamp,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The bytes as text; the parsers take `&str`, so other bytes never reach them.
fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// Whether the serde path (a JSON string holding `text`) agrees with the parser's answer.
fn serde_agrees<T: DeserializeOwned + PartialEq + std::fmt::Debug>(text: &str, parsed: Option<T>) {
    let json = serde_json::to_string(text).expect("a string serialises");
    assert_eq!(serde_json::from_str::<T>(&json).ok(), parsed, "{text:?}");
}

fn u64_at(data: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = data.get(at + i).copied().unwrap_or(0);
    }
    u64::from_le_bytes(bytes)
}

fn u32_at(data: &[u8], at: usize) -> u32 {
    u64_at(data, at) as u32
}

/// `ledger::Amount::parse`, the wire's `"10.50"`, against a model written from its contract:
/// an optional `-`, digits, a dot and exactly two digits; then positive and at most
/// `Amount::MAX`. An accepted amount shows as its text without leading zeros and parses back.
pub fn amount(data: &[u8]) {
    if data.len() >= 8 {
        let cents = u64_at(data, 0) as i64;
        let shown = format_cents(cents);
        assert_eq!(
            Amount::parse(&shown).ok(),
            Amount::from_cents(cents),
            "{cents}"
        );
    }
    let Some(text) = text(data) else { return };
    let parsed = Amount::parse(text);
    assert_eq!(parsed, amount_model(text), "{text:?}");
    if let Ok(amount) = parsed {
        let shown = amount.to_string();
        assert_eq!(Amount::parse(&shown), Ok(amount));
        let (integer, fraction) = text.split_once('.').expect("an accepted amount has a dot");
        let integer = integer.trim_start_matches('0');
        let integer = if integer.is_empty() { "0" } else { integer };
        assert_eq!(shown, format!("{integer}.{fraction}"));
    } else if let Err(error) = parsed {
        assert!(!error.code().is_empty());
    }
    serde_agrees(text, parsed.ok());
}

fn amount_model(text: &str) -> Result<Amount, AmountError> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let Some((integer, fraction)) = unsigned.split_once('.') else {
        return Err(AmountError::Format);
    };
    if !digits(integer) || !digits(fraction) || fraction.len() != 2 {
        return Err(AmountError::Format);
    }
    // Exact in u128 up to 36 significant digits; anything longer is over the maximum anyway.
    let significant = integer.trim_start_matches('0');
    let cents: Option<u128> = (significant.len() <= 36).then(|| {
        let whole: u128 = if significant.is_empty() {
            0
        } else {
            significant.parse().expect("digits")
        };
        whole * 100 + fraction.parse::<u128>().expect("digits")
    });
    match cents {
        _ if negative => Err(AmountError::NotPositive),
        Some(0) => Err(AmountError::NotPositive),
        Some(cents) if cents <= Amount::MAX.cents() as u128 => {
            Ok(Amount::from_cents(cents as i64).expect("in range"))
        }
        _ => Err(AmountError::TooLarge),
    }
}

/// The terminal client's amounts as people type them (`cli::amount::parse_amount`) and its
/// reading of the server's amounts (`cli::format::wire_cents`). An accepted amount is positive
/// and within the maximum; what the client shows (`R$ 1.234,56`) and the wire form (`1234.56`)
/// both parse back to it; and every wire amount the ledger accepts, typed in, means the same.
pub fn cli_amount(data: &[u8]) {
    use cli::amount::{Lang, parse_amount};
    use cli::format::{brl, brl_wire, wire_cents};
    let Some(text) = text(data) else { return };
    match parse_amount(text) {
        Ok(amount) => {
            assert!(amount.cents() > 0 && amount <= Amount::MAX);
            assert_eq!(parse_amount(&amount.to_string()), Ok(amount), "{text:?}");
            assert_eq!(parse_amount(&brl(amount.cents())), Ok(amount), "{text:?}");
        }
        Err(error) => {
            assert!(!error.explain(Lang::En).is_empty() && !error.explain(Lang::Pt).is_empty());
        }
    }
    if let Ok(wire) = Amount::parse(text) {
        assert_eq!(parse_amount(text), Ok(wire), "{text:?}");
    }
    if let Some(cents) = wire_cents(text) {
        assert_eq!(wire_cents(&format_cents(cents)), Some(cents), "{text:?}");
    }
    let _ = brl_wire(text);
}

/// CPF and CNPJ (numeric and alphanumeric). `Document::parse` agrees with the typed parsers; a
/// parsed document is bare (11 digits, or 12 letters or digits and 2 digits), re-parses to
/// itself bare, formatted and in lower case, and masks without panicking.
pub fn document(data: &[u8]) {
    if data.len() >= 4
        && let Some(cpf) = Cpf::from_base(u32_at(data, 0))
    {
        assert_eq!(Cpf::parse(cpf.as_str()), Ok(cpf));
    }
    let Some(text) = text(data) else { return };
    let cpf = Cpf::parse(text);
    let cnpj = Cnpj::parse(text);
    match Document::parse(text) {
        Ok(Document::Cpf(parsed)) => assert_eq!(cpf.as_ref(), Ok(&parsed), "{text:?}"),
        Ok(Document::Cnpj(parsed)) => assert_eq!(cnpj.as_ref(), Ok(&parsed), "{text:?}"),
        Err(_) => assert!(cpf.is_err() && cnpj.is_err(), "{text:?}"),
    }
    if let Ok(cpf) = cpf {
        let bare = cpf.as_str();
        assert!(bare.len() == 11 && bare.bytes().all(|b| b.is_ascii_digit()));
        let formatted = format!(
            "{}.{}.{}-{}",
            &bare[..3],
            &bare[3..6],
            &bare[6..9],
            &bare[9..]
        );
        assert_eq!(Cpf::parse(bare).as_ref(), Ok(&cpf));
        assert_eq!(Cpf::parse(&formatted).as_ref(), Ok(&cpf));
        assert_eq!(Document::parse(&formatted), Ok(Document::Cpf(cpf.clone())));
        assert_eq!(cpf.masked().len(), "***.982.247-**".len());
    }
    if let Ok(cnpj) = cnpj {
        let bare = cnpj.as_str();
        assert!(bare.len() == 14);
        assert!(
            bare.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        );
        assert!(bare[12..].bytes().all(|b| b.is_ascii_digit()));
        let formatted = format!(
            "{}.{}.{}/{}-{}",
            &bare[..2],
            &bare[2..5],
            &bare[5..8],
            &bare[8..12],
            &bare[12..]
        );
        assert_eq!(Cnpj::parse(bare).as_ref(), Ok(&cnpj));
        assert_eq!(Cnpj::parse(&formatted).as_ref(), Ok(&cnpj));
        assert_eq!(Cnpj::parse(&bare.to_ascii_lowercase()).as_ref(), Ok(&cnpj));
        let document = Document::parse(&formatted).expect("a CNPJ is a document");
        assert_eq!(document.kind(), ledger::PartyKind::Company);
        assert_eq!(document.to_string(), bare);
        assert_eq!(cnpj.masked().len(), "**.345.678/0001-**".len());
    }
}

/// Account numbers (`123456-7` or `1234567`, mod-11 check digit) and account kinds. A parsed
/// number is its text without leading zeros, shows with a dash and parses back, with or
/// without it; the serde path agrees.
pub fn account_number(data: &[u8]) {
    if data.len() >= 8
        && let Some(number) = AccountNumber::from_base(u64_at(data, 0))
    {
        assert_eq!(AccountNumber::parse(&number.to_string()), Some(number));
    }
    let Some(text) = text(data) else { return };
    if let Some(kind) = AccountKind::parse(text) {
        assert_eq!(kind.as_str(), text);
    }
    let parsed = AccountNumber::parse(text);
    if let Some(number) = parsed {
        assert!(AccountNumber::from_base(number.base()) == Some(number));
        let shown = number.to_string();
        assert_eq!(AccountNumber::parse(&shown), Some(number));
        let undashed = shown.replace('-', "");
        assert_eq!(AccountNumber::parse(&undashed), Some(number));
        let typed = text.replace('-', "");
        assert_eq!(typed.trim_start_matches('0'), undashed, "{text:?}");
    }
    serde_agrees(text, parsed);
}

/// Pix keys, typed (`PixKey::parse_typed`, as a customer registers one) and untyped
/// (`PixKey::parse_any`, as a payer types one). A key's canonical text is a fixed point of its
/// type's parser, and a payer who types a registered key's canonical text finds that key.
pub fn pix_key(data: &[u8]) {
    const TYPES: [PixKeyType; 5] = [
        PixKeyType::Cpf,
        PixKeyType::Cnpj,
        PixKeyType::Email,
        PixKeyType::Phone,
        PixKeyType::Random,
    ];
    let Some(text) = text(data) else { return };
    if let Some(kind) = PixKeyType::parse(text) {
        assert_eq!(kind.as_str(), text);
    }
    match PixKey::parse_any(text) {
        Ok(key) => {
            assert_eq!(
                PixKey::parse_typed(key.key_type(), text).as_ref(),
                Ok(&key),
                "{text:?}"
            );
            assert_eq!(PixKey::parse_any(key.as_str()).as_ref(), Ok(&key));
            assert_eq!(key.to_string(), key.as_str());
        }
        Err(error) => assert!(!error.code().is_empty()),
    }
    for kind in TYPES {
        match PixKey::parse_typed(kind, text) {
            Ok(key) => {
                assert_eq!(key.key_type(), kind);
                assert_eq!(
                    PixKey::parse_typed(kind, key.as_str()).as_ref(),
                    Ok(&key),
                    "{text:?}"
                );
                assert_eq!(
                    PixKey::parse_any(key.as_str()).as_ref(),
                    Ok(&key),
                    "a registered {} key typed by a payer: {:?}",
                    kind.as_str(),
                    key.as_str()
                );
            }
            Err(error) => assert!(!error.code().is_empty()),
        }
    }
}

/// Bank codes (8 digits) and Pix end-to-end ids (`E`, ISPB, `yyyyMMddHHmm`, 11 base-36
/// characters). A parsed id is its text; its bank, sequence and `with_sequence` agree with it;
/// `sequence_of` answers exactly for ids; the serde paths agree.
pub fn ids(data: &[u8]) {
    if data.len() >= 32 {
        let digit = |b: u8| char::from(b'0' + b % 10);
        let bank: String = data[..8].iter().map(|&b| digit(b)).collect();
        let minute: String = data[8..20].iter().map(|&b| digit(b)).collect();
        let random: [u8; 11] = data[20..31].try_into().expect("11 bytes");
        let bank = BankCode::parse(&bank).expect("8 digits");
        let id = EndToEndId::new(bank, &minute, random);
        assert_eq!(EndToEndId::parse(id.as_str()).as_ref(), Some(&id));
        assert_eq!(id.bank(), bank);
        let sequence = u64_at(data, 24);
        match id.with_sequence(sequence) {
            Some(other) => {
                assert_eq!(other.sequence(), sequence);
                assert_eq!(other.bank(), bank);
                assert_eq!(other.as_str()[..21], id.as_str()[..21]);
            }
            None => assert!(sequence >= 36u64.pow(11)),
        }
    }
    let Some(text) = text(data) else { return };
    let bank = BankCode::parse(text);
    if let Some(bank) = bank {
        assert_eq!(bank.as_str(), text);
        assert_eq!(bank.to_string(), text);
    }
    serde_agrees(text, bank);
    let id = EndToEndId::parse(text);
    match &id {
        Some(id) => {
            assert_eq!(id.as_str(), text);
            assert_eq!(Some(id.bank()), BankCode::parse(&text[1..9]));
            assert_eq!(EndToEndId::sequence_of(text), Some(id.sequence()));
            assert_eq!(id.with_sequence(id.sequence()).as_ref(), Some(id));
        }
        None => assert_eq!(EndToEndId::sequence_of(text), None),
    }
    serde_agrees(text, id);
}

/// The hybrid logical clock's text (`physical.logical`, as `X-Clock` headers and envelopes carry
/// it) and the clock fed with stamps from outside. A parsed stamp shows and parses back; the
/// clock never goes backwards, and each reading is after the one before and after any stamp it
/// observed, up to the last stamp there is; a stamp too far ahead is refused and moves nothing.
pub fn clock(data: &[u8]) {
    let (line, ops) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let mut clock = Hlc::default();
    if let Some(text) = text(line) {
        let stamp = Stamp::parse(text);
        if let Some(stamp) = stamp {
            assert_eq!(Stamp::parse(&stamp.to_string()), Some(stamp));
            clock = Hlc::starting_after(stamp);
            assert_eq!(clock.last(), stamp);
        }
        serde_agrees(text, stamp);
    }
    // Each step: a byte (even: a local event; odd: a message), the remote stamp, the wall time
    // and how far ahead of it a remote stamp may be.
    let top = Stamp {
        physical_ms: u64::MAX,
        logical: u32::MAX,
    };
    for step in ops.chunks(29) {
        let remote = Stamp {
            physical_ms: u64_at(step, 1),
            logical: u32_at(step, 9),
        };
        let wall = u64_at(step, 13);
        let max_ahead = u64_at(step, 21);
        let before = clock.last();
        if step[0] % 2 == 0 {
            let after = clock.tick(wall);
            assert_eq!(after, clock.last());
            assert!(
                after.physical_ms >= wall,
                "{after} before the wall time {wall}"
            );
            assert!(
                after > before || before == top,
                "{after} not after {before}"
            );
            assert!(after >= before);
            continue;
        }
        match clock.observe(remote, wall, max_ahead) {
            Ok(after) => {
                assert!(remote.physical_ms.saturating_sub(wall) <= max_ahead);
                assert_eq!(after, clock.last());
                assert!(
                    after.physical_ms >= wall,
                    "{after} before the wall time {wall}"
                );
                assert!(after >= before && after >= remote);
                if before < top && remote < top {
                    assert!(after > before && after > remote, "{after} not after both");
                }
            }
            Err(refused) => {
                assert_eq!(clock.last(), before, "a refused stamp moves nothing");
                assert_eq!(refused.ahead_ms, remote.physical_ms - wall);
                assert!(refused.ahead_ms > max_ahead);
            }
        }
    }
}

/// The node's decoding of an interbank envelope (`POST /interbank/v1/messages`: the same
/// `serde_json::from_slice::<Envelope>` as the handler) and what the bank does with its
/// contents before anything else: observes its clock, and keeps a prepare's legs and payment as
/// JSON that it later reads back with `expect` (store/src/rules/interbank.rs). (The envelope's
/// signature is checked before, by the `signature` target.) So an envelope
/// that decodes must encode and decode to itself, and so must what is kept of it.
pub fn envelope(data: &[u8]) {
    use node::interbank::Envelope;
    use node::interbank::signing::WINDOW_MS;
    use protocol::Message;
    let Ok(envelope) = serde_json::from_slice::<Envelope>(data) else {
        return;
    };
    let _ = Hlc::default().observe(envelope.clock, u64_at(data, 0), WINDOW_MS);
    let json = serde_json::to_vec(&envelope).expect("an envelope serialises");
    let again: Envelope = serde_json::from_slice(&json).expect("an encoded envelope decodes");
    assert_eq!(again.from, envelope.from);
    assert_eq!(again.clock, envelope.clock);
    assert_eq!(again.messages, envelope.messages);
    for message in envelope.messages {
        if let Message::Prepare { part, .. } = message {
            let legs = serde_json::to_string(&part.legs).expect("legs serialise");
            let back: Vec<protocol::Leg> = serde_json::from_str(&legs).expect("stored legs parse");
            assert_eq!(back, part.legs);
            if let Some(payment) = part.payment {
                for kept in [
                    store::Outcome::Payment(payment.clone()),
                    store::Outcome::Pending(payment),
                ] {
                    let body = serde_json::to_string(&kept).expect("outcomes serialise");
                    let back: store::Outcome =
                        serde_json::from_str(&body).expect("stored payments parse");
                    assert_eq!(
                        serde_json::to_string(&back).expect("outcomes serialise"),
                        body
                    );
                }
            }
        }
    }
}

/// The signature headers of interbank requests (`node::interbank::signing::Verifier::verify`:
/// the headers checked, then the body against the digest they declare). Made-up headers are
/// always refused with a 401 and a stable code (a forgery that passed would be a broken
/// signature scheme, not a lucky input). Every 32nd run, the first included (so a crash file
/// run alone takes this path too), also signs the same method, path and body for real: that
/// passes once, its replay is refused, the same headers over another body are refused, and so is
/// a request signed for another bank. (Signing and five checks on every run held the target to
/// about 3,500 runs a second.)
pub fn signature(data: &[u8]) {
    use axum::http::{HeaderMap, HeaderName, HeaderValue};
    use ed25519_dalek::SigningKey;
    use node::interbank::signing::{
        HEADER_BANK, HEADER_DIGEST, HEADER_KEY_ID, HEADER_NONCE, HEADER_SIGNATURE,
        HEADER_TIMESTAMP, HEADER_TO, Verifier, sign,
    };
    use std::collections::HashMap;
    let key = SigningKey::from_bytes(&[7; 32]);
    let me = BankCode::parse("10000001").expect("8 digits");
    let bank = BankCode::parse("20000002").expect("8 digits");
    let verifier = || Verifier::new(me, HashMap::from([(bank, vec![key.verifying_key()])]));
    // Fields split on newlines: method, path, now, then the seven headers, then the body.
    let mut fields = data.splitn(11, |&b| b == b'\n');
    let mut field = || fields.next().unwrap_or_default();
    let method = String::from_utf8_lossy(field()).into_owned();
    let path = String::from_utf8_lossy(field()).into_owned();
    let now = u64_at(field(), 0);
    let mut headers = HeaderMap::new();
    for name in [
        HEADER_BANK,
        HEADER_TO,
        HEADER_KEY_ID,
        HEADER_DIGEST,
        HEADER_TIMESTAMP,
        HEADER_NONCE,
        HEADER_SIGNATURE,
    ] {
        if let Ok(value) = HeaderValue::from_bytes(field()) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    let body = field();
    let refused = |result: Result<BankCode, node::error::ApiError>| -> &'static str {
        let error = result.expect_err("made-up or replayed signatures are refused");
        assert_eq!(error.status.as_u16(), 401);
        error.code
    };
    let code = refused(verifier().verify(&method, &path, &headers, body, now));
    assert!(
        [
            "unsigned_request",
            "unknown_bank",
            "wrong_recipient",
            "stale_request",
            "unknown_key",
            "bad_signature",
        ]
        .contains(&code),
        "{code}"
    );
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    if RUNS
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        .is_multiple_of(32)
    {
        let verifier = verifier();
        let headers_of = |to: BankCode| {
            let mut signed = HeaderMap::new();
            for (name, value) in sign(&key, bank, to, &method, &path, body, now) {
                let value = HeaderValue::from_str(&value).expect("signature headers are ASCII");
                signed.insert(HeaderName::from_static(name), value);
            }
            signed
        };
        let signed = headers_of(me);
        let mut other = body.to_vec();
        other.push(b'!');
        let tampered = verifier.verify(&method, &path, &signed, &other, now);
        assert_eq!(refused(tampered), "bad_signature");
        let first = verifier.verify(&method, &path, &signed, body, now);
        assert_eq!(first.ok(), Some(bank), "a request signed for real passes");
        let replay = verifier.verify(&method, &path, &signed, body, now);
        assert_eq!(refused(replay), "replayed_request");
        let elsewhere = verifier.verify(&method, &path, &headers_of(bank), body, now);
        assert_eq!(refused(elsewhere), "wrong_recipient");
    }
}

/// The node's request body parser (`ApiJson`, `extract::parse`) into each public request type
/// of `wire`, chosen by the first byte. A body is accepted or answered `malformed_json` (400) or
/// `invalid_request` (422), never a panic; an accepted body serialises (as
/// `Fingerprint::of_body` does, with `expect`) and the value serialised parses back to itself.
/// (This target once also read accepted bodies as a `serde_json::Value`, as the earlier digest
/// did with `expect`: it found bodies that parse but are not a `Value`; see extract.rs's tests.)
pub fn json_body(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 8 {
        0 => body_of::<wire::RegisterCustomer>(body),
        1 => body_of::<wire::Credentials>(body),
        2 => body_of::<wire::OpenAccount>(body),
        3 => body_of::<wire::MoneyRequest>(body),
        4 => body_of::<wire::AddPixKey>(body),
        5 => body_of::<wire::TransferRequest>(body),
        6 => body_of::<wire::BatchRequest>(body),
        _ => body_of::<wire::PackageRequest>(body),
    }
}

fn body_of<T: DeserializeOwned + Serialize>(body: &[u8]) {
    use node::fuzzing::parse_body;
    match parse_body::<T>(body) {
        Ok(value) => {
            let json = serde_json::to_vec(&value).expect("request types serialise");
            let again: T = parse_body(&json).expect("a serialised request parses");
            assert_eq!(
                serde_json::to_vec(&again).expect("request types serialise"),
                json
            );
        }
        Err(error) => {
            let answer = (error.status.as_u16(), error.code);
            assert!(
                matches!(answer, (400, "malformed_json") | (422, "invalid_request")),
                "{answer:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    //! Every target over its seeds, on stable, without libFuzzer.

    use std::path::Path;

    fn seeds(target: &str, check: fn(&[u8])) {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target);
        let mut ran = 0;
        for entry in std::fs::read_dir(&folder).expect("a seed folder") {
            let path = entry.expect("a seed").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with("seed-") {
                check(&std::fs::read(&path).expect("a readable seed"));
                ran += 1;
            }
        }
        assert!(ran > 0, "no seeds for {target}");
    }

    #[test]
    fn every_target_passes_its_seeds() {
        seeds("amount", super::amount);
        seeds("cli_amount", super::cli_amount);
        seeds("document", super::document);
        seeds("account_number", super::account_number);
        seeds("pix_key", super::pix_key);
        seeds("ids", super::ids);
        seeds("clock", super::clock);
        seeds("envelope", super::envelope);
        seeds("signature", super::signature);
        seeds("json_body", super::json_body);
    }
}
