//! What the directory holds and the commands that change it: the entries of the Raft log and
//! the answers their application gives. Every value that has a ledger type travels as that
//! type's canonical text and is parsed (so validated) again on the way in, so a command from
//! another bank is checked the same way as one made here.

use ledger::{AccountNumber, BankCode, Document, EndToEndId, PixKey, PixKeyType};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest name, username, password hash or holder's display name the directory accepts, in
/// bytes. The bank checks its own, tighter, limits at the edge; this one keeps a faulty peer from
/// filling every bank's log.
pub const FIELD_BYTES_MAX: usize = 512;

/// One change to the directory, as the Raft log carries it. Applying a command that is already
/// in effect (the same registration, the same key to the same account) answers
/// [`Effect::Unchanged`], so retrying a write whose answer was lost is safe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    RegisterCustomer {
        #[serde(with = "document_text")]
        document: Document,
        name: String,
        username: String,
        password_hash: String,
        home_bank: BankCode,
    },
    AddPixKey {
        #[serde(with = "pix_key_text")]
        key: PixKey,
        bank: BankCode,
        account: AccountNumber,
        holder_name: String,
        /// The holder who registers it; they must hold `account` in the directory.
        #[serde(with = "document_text")]
        document: Document,
    },
    /// Removes `key` if `bank` holds it; a key that is not there is already removed.
    RemovePixKey {
        #[serde(with = "pix_key_text")]
        key: PixKey,
        bank: BankCode,
    },
    /// Records that the customer `document` holds `account` at `bank` (each holder of a joint
    /// account is recorded).
    AddAccount {
        #[serde(with = "document_text")]
        document: Document,
        bank: BankCode,
        account: AccountNumber,
    },
    /// Interbank decisions (the non-blocking commit, issue #24), many per entry: for each
    /// transaction the first decision the log records wins, and a later one for the same
    /// end-to-end id changes nothing (every proposer reads the winner back). `forget`: the
    /// decisions of transactions their coordinator saw finished at every bank (nobody asks for
    /// them again), dropped so that the table and the snapshots stay the size of what is in
    /// flight.
    RecordDecisions {
        decisions: Vec<Decision>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        forget: Vec<EndToEndId>,
    },
}

/// Most decisions one log entry carries: a coordinator's batch is cut there, and a faulty peer's
/// cannot be larger.
pub const DECISIONS_PER_ENTRY_MAX: usize = 4_096;

/// One interbank transaction's outcome as the log records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub e2e: EndToEndId,
    pub commit: bool,
}

impl Command {
    /// The limits a command must meet before it is proposed (`FIELD_BYTES_MAX`); the name of the
    /// first field over it.
    pub fn check(&self) -> Result<(), &'static str> {
        if let Command::RecordDecisions { decisions, forget } = self
            && (decisions.len() > DECISIONS_PER_ENTRY_MAX || forget.len() > DECISIONS_PER_ENTRY_MAX)
        {
            return Err("decisions");
        }
        let fields: &[(&'static str, &str)] = match self {
            Command::RegisterCustomer {
                name,
                username,
                password_hash,
                ..
            } => &[
                ("name", name),
                ("username", username),
                ("password_hash", password_hash),
            ],
            Command::AddPixKey { holder_name, .. } => &[("holder_name", holder_name)],
            Command::RemovePixKey { .. } | Command::AddAccount { .. } => &[],
            Command::RecordDecisions { .. } => &[],
        };
        match fields
            .iter()
            .find(|(_, value)| value.len() > FIELD_BYTES_MAX)
        {
            Some((field, _)) => Err(field),
            None => Ok(()),
        }
    }
}

/// What applying a command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Changed,
    /// It was already so (a retried command, or a key removed twice).
    Unchanged,
    /// What a [`Command::RecordDecisions`] did: the decision that stands for each of its
    /// transactions, in order (the one proposed, or the one the log recorded first), and
    /// whether it changed the table (a decision recorded, or one forgotten).
    Decided {
        winners: Vec<bool>,
        changed: bool,
    },
}

/// A write the log committed and this bank applied: its index in the log and what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub index: u64,
    pub effect: Effect,
}

/// Why the log refused a command. Deterministic: every replica applying the same log gives the
/// same answer to the same entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Conflict {
    #[error("a customer with this document is already registered")]
    DuplicateDocument,
    #[error("this username is taken")]
    DuplicateUsername,
    #[error("this Pix key is already registered")]
    DuplicatePixKey,
    #[error("no customer with this document is registered")]
    CustomerNotFound,
    #[error("this customer does not hold that account")]
    AccountNotHeld,
    #[error("this Pix key belongs to another bank")]
    PixKeyNotYours,
}

impl Conflict {
    /// The stable code, as the API's problems carry it (the codes bankd already answers).
    pub fn code(self) -> &'static str {
        match self {
            Conflict::DuplicateDocument => "duplicate_document",
            Conflict::DuplicateUsername => "duplicate_username",
            Conflict::DuplicatePixKey => "duplicate_pix_key",
            Conflict::CustomerNotFound => "customer_not_found",
            Conflict::AccountNotHeld => "account_not_held",
            Conflict::PixKeyNotYours => "pix_key_not_yours",
        }
    }
}

/// The answer of one log entry (membership and blank entries answer `Ok(Unchanged)`).
pub type Response = Result<Effect, Conflict>;

/// A registered customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    #[serde(with = "document_text")]
    pub document: Document,
    pub name: String,
    pub username: String,
    pub password_hash: String,
    pub home_bank: BankCode,
}

/// Where a Pix key sends money.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PixEntry {
    #[serde(with = "pix_key_text")]
    pub key: PixKey,
    pub bank: BankCode,
    pub account: AccountNumber,
    pub holder_name: String,
    #[serde(with = "document_text")]
    pub document: Document,
}

/// One account a customer holds somewhere in the consortium.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccountRef {
    pub bank: BankCode,
    pub account: AccountNumber,
}

/// A document as its canonical digits.
pub(crate) mod document_text {
    use super::*;

    pub fn serialize<S: Serializer>(document: &Document, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(document.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Document, D::Error> {
        let text = String::deserialize(d)?;
        Document::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A Pix key as `type:canonical text`, so its type is never guessed from its shape.
pub(crate) mod pix_key_text {
    use super::*;

    pub fn serialize<S: Serializer>(key: &PixKey, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!(
            "{}:{}",
            key.key_type().as_str(),
            key.as_str()
        ))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PixKey, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).ok_or_else(|| serde::de::Error::custom(format!("invalid Pix key: {text:?}")))
    }

    pub fn parse(text: &str) -> Option<PixKey> {
        let (kind, value) = text.split_once(':')?;
        PixKey::parse_typed(PixKeyType::parse(kind)?, value).ok()
    }
}
