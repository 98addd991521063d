//! Pix keys: the holder's CPF or CNPJ, an e-mail, a Brazilian mobile phone in E.164, or a random
//! UUID that the bank generates. Every key has one canonical text, which is what is stored and
//! looked up.

use crate::document::{Cnpj, Cpf, DocumentError};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixKeyType {
    Cpf,
    Cnpj,
    Email,
    Phone,
    Random,
}

impl PixKeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            PixKeyType::Cpf => "cpf",
            PixKeyType::Cnpj => "cnpj",
            PixKeyType::Email => "email",
            PixKeyType::Phone => "phone",
            PixKeyType::Random => "random",
        }
    }

    pub fn parse(text: &str) -> Option<PixKeyType> {
        [
            Self::Cpf,
            Self::Cnpj,
            Self::Email,
            Self::Phone,
            Self::Random,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PixKey {
    Cpf(Cpf),
    Cnpj(Cnpj),
    /// Lower-cased, at most 77 characters.
    Email(String),
    /// `+55`, a two-digit area code and an 8- or 9-digit number.
    Phone(String),
    /// A lower-case hyphenated UUID.
    Random(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PixKeyError {
    #[error("invalid document: {0}")]
    Document(DocumentError),
    #[error("an e-mail key is one address of at most 77 characters, like ana@example.com")]
    Email,
    #[error("a phone key is a Brazilian number in E.164, like +5511987654321")]
    Phone,
    #[error("a random key is a UUID, like 123e4567-e89b-42d3-a456-426614174000")]
    Random,
    #[error("not a Pix key: use a CPF, a CNPJ, an e-mail, a +55 phone or a random UUID")]
    Unrecognised,
}

impl PixKeyError {
    pub fn code(self) -> &'static str {
        match self {
            PixKeyError::Document(_) => "invalid_document",
            _ => "invalid_pix_key",
        }
    }
}

pub const EMAIL_LEN_MAX: usize = 77;

fn parse_email(text: &str) -> Result<String, PixKeyError> {
    let email = text.to_ascii_lowercase();
    if email.is_empty() || email.len() > EMAIL_LEN_MAX || !email.is_ascii() {
        return Err(PixKeyError::Email);
    }
    let (local, domain) = email.split_once('@').ok_or(PixKeyError::Email)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._%+-'".contains(&b));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if local_ok && domain_ok {
        Ok(email)
    } else {
        Err(PixKeyError::Email)
    }
}

fn parse_phone(text: &str) -> Result<String, PixKeyError> {
    let rest = text.strip_prefix('+').ok_or(PixKeyError::Phone)?;
    let digits: String = rest
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PixKeyError::Phone);
    }
    let national = digits.strip_prefix("55").ok_or(PixKeyError::Phone)?;
    let area_ok =
        national.len() >= 2 && national.as_bytes()[0] != b'0' && national.as_bytes()[1] != b'0';
    let subscriber = if national.len() >= 2 {
        &national[2..]
    } else {
        ""
    };
    let subscriber_ok = match subscriber.len() {
        8 => true,
        9 => subscriber.starts_with('9'),
        _ => false,
    };
    if area_ok && subscriber_ok {
        Ok(format!("+55{national}"))
    } else {
        Err(PixKeyError::Phone)
    }
}

fn parse_random(text: &str) -> Result<String, PixKeyError> {
    let lower = text.to_ascii_lowercase();
    let groups: Vec<&str> = lower.split('-').collect();
    let lengths_ok = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12]);
    if lengths_ok
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        Ok(lower)
    } else {
        Err(PixKeyError::Random)
    }
}

impl PixKey {
    /// A key of a declared type, as a customer registers it.
    pub fn parse_typed(kind: PixKeyType, value: &str) -> Result<PixKey, PixKeyError> {
        match kind {
            PixKeyType::Cpf => Cpf::parse(value)
                .map(PixKey::Cpf)
                .map_err(PixKeyError::Document),
            PixKeyType::Cnpj => Cnpj::parse(value)
                .map(PixKey::Cnpj)
                .map_err(PixKeyError::Document),
            PixKeyType::Email => parse_email(value).map(PixKey::Email),
            PixKeyType::Phone => parse_phone(value).map(PixKey::Phone),
            PixKeyType::Random => parse_random(value).map(PixKey::Random),
        }
    }

    /// A key typed by a payer, its type told from its shape: `@` makes an e-mail, `+` starts a
    /// phone, a UUID is random, 11 characters a CPF and 14 a CNPJ (separators allowed). `@` is
    /// looked at first: an e-mail may start with `+`, a phone never has an `@`.
    pub fn parse_any(text: &str) -> Result<PixKey, PixKeyError> {
        if text.contains('@') {
            return Self::parse_typed(PixKeyType::Email, text);
        }
        if text.starts_with('+') {
            return Self::parse_typed(PixKeyType::Phone, text);
        }
        if text.len() == 36 && text.matches('-').count() == 4 {
            return Self::parse_typed(PixKeyType::Random, text);
        }
        let bare: String = text
            .chars()
            .filter(|c| !matches!(c, '.' | '-' | '/'))
            .collect();
        match bare.len() {
            11 => Self::parse_typed(PixKeyType::Cpf, text),
            14 => Self::parse_typed(PixKeyType::Cnpj, text),
            _ => Err(PixKeyError::Unrecognised),
        }
    }

    pub fn key_type(&self) -> PixKeyType {
        match self {
            PixKey::Cpf(_) => PixKeyType::Cpf,
            PixKey::Cnpj(_) => PixKeyType::Cnpj,
            PixKey::Email(_) => PixKeyType::Email,
            PixKey::Phone(_) => PixKeyType::Phone,
            PixKey::Random(_) => PixKeyType::Random,
        }
    }

    /// The canonical text: what is stored, unique and looked up.
    pub fn as_str(&self) -> &str {
        match self {
            PixKey::Cpf(cpf) => cpf.as_str(),
            PixKey::Cnpj(cnpj) => cnpj.as_str(),
            PixKey::Email(text) | PixKey::Phone(text) | PixKey::Random(text) => text,
        }
    }
}

impl fmt::Display for PixKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_keys_table() {
        use PixKeyType::*;
        let ok = [
            (Cpf, "529.982.247-25", "52998224725"),
            (Cnpj, "12.ABC.345/01DE-35", "12ABC34501DE35"),
            (Email, "Ana.Silva@Example.COM", "ana.silva@example.com"),
            (
                Email,
                "a+pix@sub.example.com.br",
                "a+pix@sub.example.com.br",
            ),
            (Phone, "+5511987654321", "+5511987654321"),
            (Phone, "+55 (11) 98765-4321", "+5511987654321"),
            (Phone, "+556132345678", "+556132345678"),
            (
                Random,
                "123E4567-E89B-42D3-A456-426614174000",
                "123e4567-e89b-42d3-a456-426614174000",
            ),
        ];
        for (kind, value, canonical) in ok {
            let key = PixKey::parse_typed(kind, value).unwrap_or_else(|e| panic!("{value}: {e}"));
            assert_eq!(key.as_str(), canonical);
            assert_eq!(key.key_type(), kind);
        }
        let long_local = format!("{}@example.com", "a".repeat(66)); // 78 characters
        let refused = [
            (Cpf, "529.982.247-24".to_string()),
            (Email, "no-at-sign.example.com".to_string()),
            (Email, "two@@example.com".to_string()),
            (Email, "ana@localhost".to_string()),
            (Email, "ana silva@example.com".to_string()),
            (Email, ".ana@example.com".to_string()),
            (Email, long_local),
            (Phone, "5511987654321".to_string()),
            (Phone, "+1 415 555 0100".to_string()),
            (Phone, "+5511887654321".to_string()),
            (Phone, "+550187654321".to_string()),
            (Phone, "+55119876543".to_string()),
            (Random, "123e4567e89b42d3a456426614174000".to_string()),
            (Random, "123e4567-e89b-42d3-a456-42661417400g".to_string()),
        ];
        for (kind, value) in refused {
            assert!(
                PixKey::parse_typed(kind, &value).is_err(),
                "{value:?} should be refused"
            );
        }
    }

    #[test]
    fn untyped_keys_are_told_apart_by_shape() {
        let table = [
            ("+5511987654321", PixKeyType::Phone),
            ("ana@example.com", PixKeyType::Email),
            ("52998224725", PixKeyType::Cpf),
            ("11.222.333/0001-81", PixKeyType::Cnpj),
            ("123e4567-e89b-42d3-a456-426614174000", PixKeyType::Random),
        ];
        for (text, kind) in table {
            assert_eq!(
                PixKey::parse_any(text).map(|k| k.key_type()),
                Ok(kind),
                "{text}"
            );
        }
        assert_eq!(PixKey::parse_any("hello"), Err(PixKeyError::Unrecognised));
    }

    #[test]
    fn every_registered_key_is_found_by_its_canonical_text() {
        // Found by the fuzzer: an e-mail may start with `+`, which made it a phone to a payer.
        for (kind, value) in [
            (PixKeyType::Email, "+ana@example.com"),
            (PixKeyType::Email, "+5511987654321@example.com"),
            (PixKeyType::Phone, "+5511987654321"),
            (PixKeyType::Cpf, "529.982.247-25"),
            (PixKeyType::Cnpj, "12.ABC.345/01DE-35"),
            (PixKeyType::Random, "123e4567-e89b-42d3-a456-426614174000"),
        ] {
            let key = PixKey::parse_typed(kind, value).unwrap();
            assert_eq!(PixKey::parse_any(key.as_str()), Ok(key), "{value}");
        }
    }
}
