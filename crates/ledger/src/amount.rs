//! Money: an integer number of centavos. On the wire an amount is a decimal string with exactly
//! two places ("10.50"), the Brazilian Pix API convention. No floating point anywhere.

use std::fmt;

/// A positive amount of money in centavos, at most [`Amount::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(i64);

/// Why a wire amount was refused. Each has a stable code for the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("an amount is a decimal string with exactly two places, like \"10.50\"")]
    Format,
    #[error("the amount must be greater than zero")]
    NotPositive,
    #[error("the amount is larger than 999999999999.99")]
    TooLarge,
}

impl AmountError {
    pub fn code(self) -> &'static str {
        match self {
            AmountError::Format => "invalid_amount",
            AmountError::NotPositive => "amount_not_positive",
            AmountError::TooLarge => "amount_too_large",
        }
    }
}

impl Amount {
    /// 999,999,999,999.99: twelve integer digits, far inside i64 so sums have room.
    pub const MAX: Amount = Amount(99_999_999_999_999);
    const INTEGER_DIGITS_MAX: usize = 12;

    /// A positive number of centavos, or `None` for zero, negatives and values over the limit.
    pub fn from_cents(cents: i64) -> Option<Amount> {
        (cents > 0 && cents <= Self::MAX.0).then_some(Amount(cents))
    }

    pub fn cents(self) -> i64 {
        self.0
    }

    /// Parses the wire format: digits, a dot, exactly two digits. Signs, exponents, spaces,
    /// thousands separators, `NaN` and `Infinity` are refused.
    pub fn parse(text: &str) -> Result<Amount, AmountError> {
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (integer, fraction) = unsigned.split_once('.').ok_or(AmountError::Format)?;
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(integer) || !all_digits(fraction) || fraction.len() != 2 {
            return Err(AmountError::Format);
        }
        let significant = integer.trim_start_matches('0');
        if significant.len() > Self::INTEGER_DIGITS_MAX {
            return Err(if negative {
                AmountError::NotPositive
            } else {
                AmountError::TooLarge
            });
        }
        let whole: i64 = if significant.is_empty() {
            0
        } else {
            significant.parse().map_err(|_| AmountError::Format)?
        };
        let cents = whole * 100 + fraction.parse::<i64>().map_err(|_| AmountError::Format)?;
        if negative || cents == 0 {
            return Err(AmountError::NotPositive);
        }
        Amount::from_cents(cents).ok_or(AmountError::TooLarge)
    }
}

/// Formats signed centavos the wire way: `-20.00`, `0.05`. Centavos as a wire amount (`"-20.00"`). Sums of many amounts (the audit's totals) are wider
/// than one amount, so it takes any integer up to `i128`.
pub fn format_cents(cents: impl Into<i128>) -> String {
    let cents: i128 = cents.into();
    let sign = if cents < 0 { "-" } else { "" };
    let magnitude = cents.unsigned_abs();
    format!("{sign}{}.{:02}", magnitude / 100, magnitude % 100)
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_cents(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let ok = [
            ("10.50", 1050),
            ("0.01", 1),
            ("50.00", 5000),
            ("007.00", 700),
            ("999999999999.99", 99_999_999_999_999),
        ];
        for (text, cents) in ok {
            assert_eq!(Amount::parse(text).map(Amount::cents), Ok(cents), "{text}");
        }
        let refused = [
            ("10.5", AmountError::Format),
            ("10", AmountError::Format),
            ("10.505", AmountError::Format),
            ("1,000.00", AmountError::Format),
            ("1.000,00", AmountError::Format),
            ("1e3", AmountError::Format),
            ("1.0e2", AmountError::Format),
            ("NaN", AmountError::Format),
            ("Infinity", AmountError::Format),
            ("+1.00", AmountError::Format),
            (" 1.00", AmountError::Format),
            ("1.00 ", AmountError::Format),
            ("", AmountError::Format),
            (".50", AmountError::Format),
            ("1.", AmountError::Format),
            ("0.00", AmountError::NotPositive),
            ("-0.00", AmountError::NotPositive),
            ("-5.00", AmountError::NotPositive),
            ("1000000000000.00", AmountError::TooLarge),
            ("99999999999999999999999.00", AmountError::TooLarge),
            ("١٢.٠٠", AmountError::Format),
        ];
        for (text, error) in refused {
            assert_eq!(Amount::parse(text), Err(error), "{text:?}");
        }
    }

    #[test]
    fn display_round_trips() {
        for cents in [1, 5, 10, 99, 100, 1050, 99_999_999_999_999] {
            let amount = Amount::from_cents(cents).unwrap();
            assert_eq!(Amount::parse(&amount.to_string()), Ok(amount));
        }
        assert_eq!(format_cents(-2000), "-20.00");
        assert_eq!(format_cents(-5), "-0.05");
        assert_eq!(Amount::from_cents(0), None);
        assert_eq!(Amount::from_cents(-1), None);
    }
}
