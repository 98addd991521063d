//! Account numbers and kinds.

use std::fmt;

/// The kinds of account a bank keeps. Customer kinds can never be overdrawn; the vault and the
/// settlement accounts are the bank's own, and exist so every movement balances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    Individual,
    Company,
    Joint,
    /// Cash taken in by deposits and paid out by withdrawals.
    Vault,
    /// What this bank owes to, or is owed by, one other bank.
    Settlement,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Individual => "individual",
            AccountKind::Company => "company",
            AccountKind::Joint => "joint",
            AccountKind::Vault => "vault",
            AccountKind::Settlement => "settlement",
        }
    }

    pub fn parse(text: &str) -> Option<AccountKind> {
        [
            Self::Individual,
            Self::Company,
            Self::Joint,
            Self::Vault,
            Self::Settlement,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }

    /// Customer accounts hold customers' money and may never go below zero.
    pub fn is_customer(self) -> bool {
        matches!(
            self,
            AccountKind::Individual | AccountKind::Company | AccountKind::Joint
        )
    }
}

/// An account number: a base of 1 to 10 digits, a dash and a mod-11 check digit (`123456-7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountNumber(u64);

impl AccountNumber {
    const BASE_MAX: u64 = 9_999_999_999;

    /// The number with the given base, check digit computed.
    pub fn from_base(base: u64) -> Option<AccountNumber> {
        (base > 0 && base <= Self::BASE_MAX).then_some(AccountNumber(base))
    }

    pub fn base(self) -> u64 {
        self.0
    }

    /// Weights 2..=9 from the rightmost digit, repeating; a remainder giving 10 or 11 is 0.
    pub fn check_digit(base: u64) -> u8 {
        let mut sum = 0u64;
        let mut rest = base;
        let mut weight = 2;
        while rest > 0 {
            sum += (rest % 10) * weight;
            rest /= 10;
            weight = if weight == 9 { 2 } else { weight + 1 };
        }
        let digit = 11 - (sum % 11);
        if digit >= 10 { 0 } else { digit as u8 }
    }

    /// Accepts `123456-7` or `1234567`; the check digit must match.
    pub fn parse(text: &str) -> Option<AccountNumber> {
        // Only ASCII digits and a dash are valid, and splitting off the last byte of anything
        // else could cut a character in two (`10000é` panicked here, answering 500).
        if !text.is_ascii() {
            return None;
        }
        let (base, digit) = match text.split_once('-') {
            Some((base, digit)) => (base, digit),
            None if text.len() >= 2 => text.split_at(text.len() - 1),
            None => return None,
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(base) || base.len() > 10 || digit.len() != 1 || !digits(digit) {
            return None;
        }
        let base: u64 = base.parse().ok()?;
        let number = AccountNumber::from_base(base)?;
        (Self::check_digit(base) == digit.as_bytes()[0] - b'0').then_some(number)
    }
}

impl fmt::Display for AccountNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.0, Self::check_digit(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digit_table() {
        // sum for 100001: 1*2 + 1*7 = 9 -> 11 - 9 = 2
        let table = [
            (100001, 2),
            (100002, 0),
            (123456, 0),
            (1, 9),
            (9_999_999_999, 0),
        ];
        for (base, digit) in table {
            assert_eq!(AccountNumber::check_digit(base), digit, "{base}");
        }
    }

    #[test]
    fn parse_round_trips_and_refuses_wrong_digits() {
        for base in [1, 42, 100001, 100002, 987654, 9_999_999_999] {
            let number = AccountNumber::from_base(base).unwrap();
            let text = number.to_string();
            assert_eq!(AccountNumber::parse(&text), Some(number), "{text}");
            assert_eq!(
                AccountNumber::parse(&text.replace('-', "")),
                Some(number),
                "{text}"
            );
        }
        for bad in [
            "100001-3",
            "100001-",
            "-2",
            "",
            "1",
            "abc-1",
            "100001-22",
            "12345678901-0",
            "0-0",
            // Multi-byte characters anywhere, the last one above all (it was split in two).
            "é",
            "1é",
            "10000é",
            "100001-é",
            "é100001-2",
            "100001-2\u{1F4B8}",
            "１００００１-２",
        ] {
            assert_eq!(AccountNumber::parse(bad), None, "{bad:?}");
        }
    }
}
