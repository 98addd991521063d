//! Amounts typed the way people type them (`10,50`, `1.234,56`, `R$ 10`), turned into the
//! ledger's integer centavos before anything is sent. The rule is to accept only what can mean
//! one thing and to refuse the rest with an explanation, never to guess: `1.234` could be one
//! thousand two hundred and thirty-four reais or one real and 23.4 centavos, so it is refused.
//!
//! Accepted (Brazilian convention, plus a bare decimal point):
//! - whole reais: `10`, `1234`;
//! - a decimal comma or point followed by one or two digits: `10,5`, `10,50`, `10.50`;
//! - `.` thousands separators only together with a decimal comma, in groups of three:
//!   `1.234,56`, `1.234.567,8`;
//! - an optional `R$` in front, with or without a space: `R$ 1.234,56`, `R$10`.
//!
//! Refused: a separator followed by exactly three digits and nothing else (`1.234`, `1,234`:
//! thousands or decimals?), more than two decimals, `,` as a thousands separator (`1,234.56`:
//! the other convention, easily mistyped), thousands separators without a decimal part
//! (`1.234.567`), signs, zero, spaces inside the number, anything over the ledger's maximum.

use ledger::Amount;

/// Why a typed amount was refused. [`AmountInputError::explain`] says it in the user's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountInputError {
    Empty,
    Negative,
    Zero,
    /// Characters other than digits, `.` and `,` (after an optional `R$`).
    NotANumber,
    /// `1.234` or `1,234`: thousands or decimals?
    Ambiguous,
    /// `10,505`, `0,001`.
    TooManyDecimals,
    /// `1,234.56`: a comma as the thousands separator.
    CommaThousands,
    /// Thousands separators in the wrong places, or without a decimal comma.
    BadGrouping,
    /// Over 999.999.999.999,99.
    TooLarge,
}

/// The languages the terminal client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Pt,
    En,
}

impl AmountInputError {
    pub fn explain(self, lang: Lang) -> &'static str {
        use AmountInputError::*;
        match (lang, self) {
            (Lang::En, Empty) => "no amount given; type it like 10,50 or 1.234,56",
            (Lang::En, Negative) => "amounts are positive; a minus sign is not accepted",
            (Lang::En, Zero) => "the amount must be greater than zero",
            (Lang::En, NotANumber) => {
                "an amount has only digits, an optional R$ in front, '.' for thousands and ',' for centavos, like 1.234,56"
            }
            (Lang::En, Ambiguous) => {
                "ambiguous: three digits after the only separator could be thousands or decimals; write 1234 or 1.234,00 for one thousand two hundred thirty-four reais, or 1,23 for one real and twenty-three centavos"
            }
            (Lang::En, TooManyDecimals) => {
                "more than two decimal places: centavos have two digits, like 10,50"
            }
            (Lang::En, CommaThousands) => {
                "',' separates centavos, not thousands: write 1.234,56 or 1234.56"
            }
            (Lang::En, BadGrouping) => {
                "thousands separators must split the reais in groups of three and come with a decimal comma, like 1.234,56 or 1.234.567,00; or write the number without them"
            }
            (Lang::En, TooLarge) => "the amount is larger than R$ 999.999.999.999,99",
            (Lang::Pt, Empty) => "nenhum valor informado; digite como 10,50 ou 1.234,56",
            (Lang::Pt, Negative) => "valores são positivos; o sinal de menos não é aceito",
            (Lang::Pt, Zero) => "o valor deve ser maior que zero",
            (Lang::Pt, NotANumber) => {
                "um valor tem só dígitos, R$ opcional na frente, '.' nos milhares e ',' nos centavos, como 1.234,56"
            }
            (Lang::Pt, Ambiguous) => {
                "ambíguo: três dígitos depois do único separador podem ser milhares ou decimais; escreva 1234 ou 1.234,00 para mil duzentos e trinta e quatro reais, ou 1,23 para um real e vinte e três centavos"
            }
            (Lang::Pt, TooManyDecimals) => {
                "mais de duas casas decimais: centavos têm dois dígitos, como 10,50"
            }
            (Lang::Pt, CommaThousands) => {
                "a vírgula separa os centavos, não os milhares: escreva 1.234,56 ou 1234.56"
            }
            (Lang::Pt, BadGrouping) => {
                "o ponto de milhar separa os reais em grupos de três e vem com vírgula decimal, como 1.234,56 ou 1.234.567,00; ou escreva o número sem pontos"
            }
            (Lang::Pt, TooLarge) => "o valor é maior que R$ 999.999.999.999,99",
        }
    }
}

impl std::fmt::Display for AmountInputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.explain(Lang::En))
    }
}

impl std::error::Error for AmountInputError {}

/// Parses a typed amount into centavos; see the module's documentation for the rules.
pub fn parse_amount(text: &str) -> Result<Amount, AmountInputError> {
    use AmountInputError::*;
    let mut rest = text.trim();
    if rest.starts_with('-') || rest.starts_with('−') {
        return Err(Negative);
    }
    if let Some(after) = rest.strip_prefix("R$").or_else(|| rest.strip_prefix("r$")) {
        rest = after.trim_start_matches([' ', '\u{a0}']);
        if rest.starts_with('-') || rest.starts_with('−') {
            return Err(Negative);
        }
    }
    if rest.is_empty() {
        return Err(Empty);
    }
    if !rest
        .chars()
        .all(|c| c.is_ascii_digit() || c == '.' || c == ',')
    {
        return Err(NotANumber);
    }
    let commas = rest.matches(',').count();
    let dots = rest.matches('.').count();
    let (integer_text, decimals): (String, &str) = match (dots, commas) {
        (0, 0) => (rest.to_string(), ""),
        // One separator of either kind, used once: decimals unless it is followed by exactly
        // three digits, which is also how thousands are written.
        (1, 0) | (0, 1) => {
            let (integer, decimals) = rest.split_once(['.', ',']).expect("one separator");
            check_decimals(integer, decimals)?;
            (integer.to_string(), decimals)
        }
        // Several of one kind and none of the other: only thousands, or nonsense.
        (_, 0) => return Err(BadGrouping),
        (0, _) => return Err(CommaThousands),
        // Both kinds: the Brazilian `1.234,56` only.
        _ => {
            let (integer, decimals) = rest.rsplit_once(',').expect("a comma");
            if commas > 1 || decimals.contains('.') {
                return Err(CommaThousands);
            }
            if decimals.is_empty() || decimals.len() > 2 {
                return Err(if decimals.len() > 2 {
                    TooManyDecimals
                } else {
                    NotANumber
                });
            }
            (ungroup(integer)?, decimals)
        }
    };
    if integer_text.is_empty() {
        return Err(NotANumber);
    }
    let significant = integer_text.trim_start_matches('0');
    // Thirteen or more significant digits can only be over the maximum; stopping here keeps
    // the arithmetic below inside i64.
    if significant.len() > 12 {
        return Err(TooLarge);
    }
    let reais: i64 = if significant.is_empty() {
        0
    } else {
        significant.parse().map_err(|_| NotANumber)?
    };
    let centavos: i64 = match decimals.len() {
        0 => 0,
        1 => decimals.parse::<i64>().map_err(|_| NotANumber)? * 10,
        _ => decimals.parse().map_err(|_| NotANumber)?,
    };
    let cents = reais * 100 + centavos;
    if cents == 0 {
        return Err(Zero);
    }
    Amount::from_cents(cents).ok_or(TooLarge)
}

/// The digits after a lone separator: one or two are decimals, three are ambiguous, more are
/// too many decimals (`10,5050`), none is a typo.
fn check_decimals(integer: &str, decimals: &str) -> Result<(), AmountInputError> {
    use AmountInputError::*;
    match decimals.len() {
        1 | 2 => Ok(()),
        // `0,123` cannot be thousands (a group never follows a lone zero): it is decimals.
        3 if integer.trim_start_matches('0').is_empty() && !integer.is_empty() => {
            Err(TooManyDecimals)
        }
        3 => Err(Ambiguous),
        0 => Err(NotANumber),
        _ => Err(TooManyDecimals),
    }
}

/// `1.234.567` → `1234567`, checking that every group after the first has three digits and the
/// first has one to three (and does not start with a zero).
fn ungroup(integer: &str) -> Result<String, AmountInputError> {
    let groups: Vec<&str> = integer.split('.').collect();
    let first = groups[0];
    let first_ok = (1..=3).contains(&first.len()) && !(first.starts_with('0'));
    if !first_ok || groups[1..].iter().any(|g| g.len() != 3) {
        return Err(AmountInputError::BadGrouping);
    }
    Ok(groups.concat())
}

/// For clap: an amount argument, refused before anything is sent.
pub fn amount_arg(text: &str) -> Result<Amount, String> {
    parse_amount(text).map_err(|e| e.explain(Lang::En).to_string())
}

#[cfg(test)]
mod tests {
    use super::AmountInputError::*;
    use super::*;

    #[test]
    fn accepted() {
        let table = [
            ("10", 1000),
            ("10,50", 1050),
            ("10.50", 1050),
            ("10,5", 1050),
            ("10.5", 1050),
            ("0,01", 1),
            ("0.99", 99),
            ("1234,56", 123_456),
            ("1234.56", 123_456),
            ("1.234,56", 123_456),
            ("1.234,5", 123_450),
            ("12.345.678,90", 1_234_567_890),
            ("R$ 10", 1000),
            ("R$10", 1000),
            ("r$ 10,00", 1000),
            ("R$ 1.234,56", 123_456),
            ("R$\u{a0}1.234,56", 123_456),
            ("  7,00  ", 700),
            ("007", 700),
            ("999999999999,99", 99_999_999_999_999),
            ("999.999.999.999,99", 99_999_999_999_999),
        ];
        for (text, cents) in table {
            assert_eq!(parse_amount(text).map(Amount::cents), Ok(cents), "{text:?}");
        }
    }

    #[test]
    fn refused() {
        let table = [
            ("", Empty),
            ("   ", Empty),
            ("R$", Empty),
            ("R$ ", Empty),
            ("1.234", Ambiguous),
            ("1,234", Ambiguous),
            ("R$ 1.234", Ambiguous),
            ("10,505", Ambiguous),
            ("0,001", TooManyDecimals),
            ("0.125", TooManyDecimals),
            ("10,5050", TooManyDecimals),
            ("1.234,567", TooManyDecimals),
            ("1,234.56", CommaThousands),
            ("1,234,567", CommaThousands),
            ("1,234,567.00", CommaThousands),
            ("1.234.567", BadGrouping),
            ("12.34,56", BadGrouping),
            ("1234.567,00", BadGrouping),
            ("0.234,00", BadGrouping),
            (".234,00", BadGrouping),
            ("-5", Negative),
            ("-5,00", Negative),
            ("R$ -5", Negative),
            ("−5", Negative),
            ("+5", NotANumber),
            ("0", Zero),
            ("0,00", Zero),
            ("R$ 0,0", Zero),
            ("10,", NotANumber),
            ("10.", NotANumber),
            (",50", NotANumber),
            ("1,234,", CommaThousands),
            ("1.234,", NotANumber),
            ("1 234,56", NotANumber),
            ("1e3", NotANumber),
            ("NaN", NotANumber),
            ("dez", NotANumber),
            ("US$ 10", NotANumber),
            ("١٢", NotANumber),
            ("1000000000000", TooLarge),
            ("1.000.000.000.000,00", TooLarge),
            ("99999999999999999999999", TooLarge),
        ];
        for (text, error) in table {
            assert_eq!(parse_amount(text), Err(error), "{text:?}");
        }
    }

    #[test]
    fn wire_form_has_two_decimals() {
        for (text, wire) in [("10", "10.00"), ("1.234,5", "1234.50"), ("0,07", "0.07")] {
            assert_eq!(parse_amount(text).unwrap().to_string(), wire);
        }
    }

    #[test]
    fn every_refusal_is_explained_in_both_languages() {
        for error in [
            Empty,
            Negative,
            Zero,
            NotANumber,
            Ambiguous,
            TooManyDecimals,
            CommaThousands,
            BadGrouping,
            TooLarge,
        ] {
            assert!(error.explain(Lang::En).len() > 20);
            assert!(error.explain(Lang::Pt).len() > 20);
            assert_ne!(error.explain(Lang::En), error.explain(Lang::Pt));
        }
    }
}
