//! Identifiers that cross the wire: a bank's 8-digit code (ISPB) and the Pix end-to-end id.

use std::fmt;

/// A bank's 8-digit code (ISPB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BankCode([u8; 8]);

impl BankCode {
    pub fn parse(text: &str) -> Option<BankCode> {
        let bytes: [u8; 8] = text.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(u8::is_ascii_digit)
            .then_some(BankCode(bytes))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a bank code is ASCII digits")
    }
}

impl fmt::Display for BankCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Pix end-to-end id: `E` + ISPB + `yyyyMMddHHmm` (UTC) + 11 alphanumerics = 32 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndToEndId(String);

const ALPHANUMERIC: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// 36^11: the first sequence 11 base-36 digits cannot hold.
const SEQUENCE_END: u64 = 36u64.pow(11);

/// Whether `bytes` have an end-to-end id's shape: `E`, 20 digits, 11 base-36 characters.
fn shaped(bytes: &[u8]) -> bool {
    bytes.len() == EndToEndId::LEN
        && bytes[0] == b'E'
        && bytes[1..21].iter().all(u8::is_ascii_digit)
        && bytes[21..]
            .iter()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

/// Base-36 digits (`0-9A-Z`) read as a number.
fn base36(digits: &[u8]) -> u64 {
    digits.iter().fold(0, |n, &b| {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            _ => b - b'A' + 10,
        };
        n * 36 + u64::from(digit)
    })
}

impl EndToEndId {
    pub const LEN: usize = 32;
    /// The first sequence [`EndToEndId::sequenced`] cannot hold (36^11).
    pub const SEQUENCE_END: u64 = SEQUENCE_END;

    /// Builds an id from the bank, the UTC minute as `yyyyMMddHHmm`, and 11 random bytes (the
    /// caller supplies randomness; this crate reads no random source).
    pub fn new(bank: BankCode, utc_minute: &str, random: [u8; 11]) -> EndToEndId {
        assert!(utc_minute.len() == 12 && utc_minute.bytes().all(|b| b.is_ascii_digit()));
        let mut id = String::with_capacity(Self::LEN);
        id.push('E');
        id.push_str(bank.as_str());
        id.push_str(utc_minute);
        id.extend(
            random
                .iter()
                .map(|&b| ALPHANUMERIC[usize::from(b) % ALPHANUMERIC.len()] as char),
        );
        debug_assert_eq!(id.len(), Self::LEN);
        EndToEndId(id)
    }

    /// Builds an id whose last 11 characters are `sequence` in base 36: ids made from a rising
    /// sequence sort in the order they were made, so every index keyed by them grows at its
    /// end instead of at random places (fewer pages written per payment).
    pub fn sequenced(bank: BankCode, utc_minute: &str, sequence: u64) -> EndToEndId {
        let mut digits = [0u8; 11];
        let mut rest = sequence;
        for digit in digits.iter_mut().rev() {
            *digit = (rest % 36) as u8;
            rest /= 36;
        }
        assert_eq!(rest, 0, "the sequence fits in 11 base-36 digits");
        EndToEndId::new(bank, utc_minute, digits)
    }

    /// The last 11 characters read as a base-36 number: the sequence of an id built by
    /// [`EndToEndId::sequenced`] (any id reads as some number).
    pub fn sequence(&self) -> u64 {
        base36(&self.0.as_bytes()[21..])
    }

    /// The sequence of `text` when it is an id, without making one (no allocation).
    pub fn sequence_of(text: &str) -> Option<u64> {
        shaped(text.as_bytes()).then(|| base36(&text.as_bytes()[21..]))
    }

    /// The id of the same bank and minute whose sequence is `sequence`, when 11 base-36 digits
    /// hold it.
    pub fn with_sequence(&self, sequence: u64) -> Option<EndToEndId> {
        (sequence < SEQUENCE_END)
            .then(|| EndToEndId::sequenced(self.bank(), &self.0[9..21], sequence))
    }

    pub fn parse(text: &str) -> Option<EndToEndId> {
        shaped(text.as_bytes()).then(|| EndToEndId(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The bank that created the id.
    pub fn bank(&self) -> BankCode {
        BankCode::parse(&self.0[1..9]).expect("checked when built")
    }
}

impl fmt::Display for EndToEndId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bank_codes() {
        assert!(BankCode::parse("00000000").is_some());
        for bad in ["", "1234567", "123456789", "1234567a", "１２３４５６７８"] {
            assert!(BankCode::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn end_to_end_ids_have_the_pix_shape() {
        let bank = BankCode::parse("10000001").unwrap();
        let id = EndToEndId::new(
            bank,
            "202611230959",
            [0, 1, 35, 36, 255, 7, 8, 9, 10, 11, 12],
        );
        assert_eq!(id.as_str(), "E1000000120261123095901Z03789ABC");
        assert_eq!(id.as_str().len(), 32);
        assert_eq!(EndToEndId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(id.bank(), bank);
        for bad in [
            "",
            "X10000001202611230959ABCDEFGHIJK",
            "E10000001202611230959abcdefghijk",
            "E1000000120261123095ABCDEFGHIJKL",
        ] {
            assert!(EndToEndId::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn sequenced_ids_sort_in_sequence_order() {
        let bank = BankCode::parse("10000001").unwrap();
        let id = |n| EndToEndId::sequenced(bank, "202611230959", n);
        assert_eq!(id(0).as_str(), "E1000000120261123095900000000000");
        assert_eq!(id(36 + 35).as_str(), "E100000012026112309590000000001Z");
        assert!(EndToEndId::parse(id(u64::MAX / 1_000).as_str()).is_some());
        let ids: Vec<EndToEndId> = [0, 1, 35, 36, 1_295, 1_296, 1_763_900_000_000_000]
            .into_iter()
            .map(id)
            .collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
        for id in &ids {
            assert_eq!(id.with_sequence(id.sequence()).as_ref(), Some(id));
        }
        assert_eq!(id(7).with_sequence(8), Some(id(8)));
        assert_eq!(
            id(0).with_sequence(SEQUENCE_END - 1).unwrap().sequence(),
            SEQUENCE_END - 1
        );
        assert_eq!(id(0).with_sequence(SEQUENCE_END), None);
        let random = EndToEndId::new(bank, "202611230959", [35; 11]);
        assert_eq!(random.sequence(), SEQUENCE_END - 1);
    }
}
