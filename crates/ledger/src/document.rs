//! Brazilian taxpayer documents: CPF (individuals) and CNPJ (companies), with their check digits.
//! CNPJ is also accepted in the alphanumeric format in force since July 2026, where each of the
//! first twelve characters is worth its ASCII code minus 48 under the same mod-11 rule.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("a CPF has 11 digits and a CNPJ 14 characters (12 letters or digits, then 2 digits)")]
    Length,
    #[error("the document has a character that is not a digit, a letter or a separator")]
    Character,
    #[error("the document's check digits do not match")]
    CheckDigits,
    #[error("a CPF with all digits equal is not valid")]
    Repeated,
}

/// Whether a party is a person (CPF) or a company (CNPJ); it follows from the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartyKind {
    Individual,
    Company,
}

impl PartyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PartyKind::Individual => "individual",
            PartyKind::Company => "company",
        }
    }
}

/// A valid CPF: eleven digits, stored bare.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cpf(String);

/// A valid CNPJ: fourteen characters (uppercase letters or digits, the last two digits), bare.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cnpj(String);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Document {
    Cpf(Cpf),
    Cnpj(Cnpj),
}

/// Removes the usual separators (`.`, `-`, `/`) and upper-cases letters.
fn bare(text: &str) -> Result<String, DocumentError> {
    let mut out = String::with_capacity(14);
    for c in text.chars() {
        match c {
            '.' | '-' | '/' => {}
            c if c.is_ascii_alphanumeric() => out.push(c.to_ascii_uppercase()),
            _ => return Err(DocumentError::Character),
        }
    }
    Ok(out)
}

fn cpf_digit(digits: &[u8]) -> u8 {
    let weight_first = digits.len() as u32 + 1;
    let sum: u32 = digits
        .iter()
        .zip((2..=weight_first).rev())
        .map(|(&d, w)| u32::from(d) * w)
        .sum();
    let rest = (sum * 10) % 11;
    if rest == 10 { 0 } else { rest as u8 }
}

fn cnpj_digit(values: &[u32]) -> u32 {
    // Weights run 2..=9 from the right, repeating.
    let sum: u32 = values
        .iter()
        .rev()
        .zip((2..=9).cycle())
        .map(|(&v, w)| v * w)
        .sum();
    let rest = sum % 11;
    if rest < 2 { 0 } else { 11 - rest }
}

impl Cpf {
    /// The CPF whose first nine digits are `base` (below 10⁹), with its check digits; `None`
    /// when all nine digits repeat (such numbers are not issued). For test data and demos.
    pub fn from_base(base: u32) -> Option<Cpf> {
        if base >= 1_000_000_000 {
            return None;
        }
        let mut digits: Vec<u8> = format!("{base:09}").bytes().map(|b| b - b'0').collect();
        if digits.iter().all(|&d| d == digits[0]) {
            return None;
        }
        digits.push(cpf_digit(&digits));
        digits.push(cpf_digit(&digits));
        Some(Cpf(digits.iter().map(|d| char::from(b'0' + d)).collect()))
    }

    pub fn parse(text: &str) -> Result<Cpf, DocumentError> {
        let bare = bare(text)?;
        Self::from_bare(&bare)
    }

    fn from_bare(bare: &str) -> Result<Cpf, DocumentError> {
        if bare.len() != 11 {
            return Err(DocumentError::Length);
        }
        if !bare.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DocumentError::Character);
        }
        let digits: Vec<u8> = bare.bytes().map(|b| b - b'0').collect();
        if digits.iter().all(|&d| d == digits[0]) {
            return Err(DocumentError::Repeated);
        }
        if cpf_digit(&digits[..9]) != digits[9] || cpf_digit(&digits[..10]) != digits[10] {
            return Err(DocumentError::CheckDigits);
        }
        Ok(Cpf(bare.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `***.456.789-**`: the masking the Pix directory shows to payers.
    pub fn masked(&self) -> String {
        format!("***.{}.{}-**", &self.0[3..6], &self.0[6..9])
    }
}

impl Cnpj {
    pub fn parse(text: &str) -> Result<Cnpj, DocumentError> {
        let bare = bare(text)?;
        Self::from_bare(&bare)
    }

    fn from_bare(bare: &str) -> Result<Cnpj, DocumentError> {
        if bare.len() != 14 {
            return Err(DocumentError::Length);
        }
        let bytes = bare.as_bytes();
        if !bytes[12..].iter().all(u8::is_ascii_digit) {
            return Err(DocumentError::Character);
        }
        let values: Vec<u32> = bytes.iter().map(|&b| u32::from(b) - 48).collect();
        if values.iter().all(|&v| v == values[0]) {
            return Err(DocumentError::Repeated);
        }
        if cnpj_digit(&values[..12]) != values[12] || cnpj_digit(&values[..13]) != values[13] {
            return Err(DocumentError::CheckDigits);
        }
        Ok(Cnpj(bare.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `**.345.678/0001-**`, the same masking shape as a CPF's.
    pub fn masked(&self) -> String {
        format!(
            "**.{}.{}/{}-**",
            &self.0[2..5],
            &self.0[5..8],
            &self.0[8..12]
        )
    }
}

impl Document {
    /// A CPF or a CNPJ, told apart by length once separators are removed.
    pub fn parse(text: &str) -> Result<Document, DocumentError> {
        let bare = bare(text)?;
        match bare.len() {
            11 => Cpf::from_bare(&bare).map(Document::Cpf),
            14 => Cnpj::from_bare(&bare).map(Document::Cnpj),
            _ => Err(DocumentError::Length),
        }
    }

    pub fn kind(&self) -> PartyKind {
        match self {
            Document::Cpf(_) => PartyKind::Individual,
            Document::Cnpj(_) => PartyKind::Company,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Document::Cpf(cpf) => cpf.as_str(),
            Document::Cnpj(cnpj) => cnpj.as_str(),
        }
    }

    pub fn masked(&self) -> String {
        match self {
            Document::Cpf(cpf) => cpf.masked(),
            Document::Cnpj(cnpj) => cnpj.masked(),
        }
    }
}

impl fmt::Display for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpfs_built_from_a_base_parse() {
        assert_eq!(Cpf::from_base(529_982_247).unwrap().as_str(), "52998224725");
        assert_eq!(Cpf::from_base(111_111_111), None);
        assert_eq!(Cpf::from_base(1_000_000_000), None);
        for base in (0..1_000_000_000u32).step_by(9_999_991) {
            if let Some(cpf) = Cpf::from_base(base) {
                assert_eq!(Cpf::parse(cpf.as_str()), Ok(cpf));
            }
        }
    }

    #[test]
    fn cpf_vectors() {
        let valid = [
            "529.982.247-25",
            "52998224725",
            "111.444.777-35",
            "000.000.001-91",
        ];
        for text in valid {
            assert!(Cpf::parse(text).is_ok(), "{text} should be valid");
        }
        let invalid = [
            ("529.982.247-24", DocumentError::CheckDigits),
            ("52998224752", DocumentError::CheckDigits),
            ("111.111.111-11", DocumentError::Repeated),
            ("00000000000", DocumentError::Repeated),
            ("5299822472", DocumentError::Length),
            ("529982247250", DocumentError::Length),
            ("529 982 247 25", DocumentError::Character),
            ("5299822472A", DocumentError::Character),
            ("", DocumentError::Length),
        ];
        for (text, error) in invalid {
            assert_eq!(Cpf::parse(text), Err(error), "{text:?}");
        }
    }

    #[test]
    fn cnpj_vectors() {
        let valid = [
            ("11.222.333/0001-81", "11222333000181"),
            ("11222333000181", "11222333000181"),
            // The Receita Federal's example of the alphanumeric format.
            ("12.ABC.345/01DE-35", "12ABC34501DE35"),
            ("12abc34501de35", "12ABC34501DE35"),
        ];
        for (text, bare) in valid {
            assert_eq!(
                Cnpj::parse(text).map(|c| c.as_str().to_string()),
                Ok(bare.to_string()),
                "{text}"
            );
        }
        let invalid = [
            ("11.222.333/0001-82", DocumentError::CheckDigits),
            ("12.ABC.345/01DE-36", DocumentError::CheckDigits),
            ("12.ABC.345/01DE-3A", DocumentError::Character),
            ("11.111.111/1111-11", DocumentError::Repeated),
            ("1122233300018", DocumentError::Length),
            ("11.222.333/0001_81", DocumentError::Character),
        ];
        for (text, error) in invalid {
            assert_eq!(Cnpj::parse(text), Err(error), "{text:?}");
        }
    }

    #[test]
    fn document_kind_follows_from_length() {
        assert_eq!(
            Document::parse("529.982.247-25").unwrap().kind(),
            PartyKind::Individual
        );
        assert_eq!(
            Document::parse("11.222.333/0001-81").unwrap().kind(),
            PartyKind::Company
        );
        assert_eq!(
            Document::parse("12ABC34501DE35").unwrap().kind(),
            PartyKind::Company
        );
        assert_eq!(Document::parse("123"), Err(DocumentError::Length));
    }

    #[test]
    fn masks_hide_the_ends() {
        assert_eq!(
            Cpf::parse("52998224725").unwrap().masked(),
            "***.982.247-**"
        );
        assert_eq!(
            Cnpj::parse("11222333000181").unwrap().masked(),
            "**.222.333/0001-**"
        );
    }
}
