//! The pure domain of one bank: money, documents, account numbers, Pix keys, the double-entry
//! rules after TigerBeetle's four counters, and the hybrid logical clock.
//!
//! Architecture invariant: this crate does no I/O, never reads the clock or a random source
//! (callers pass them in), and knows nothing of HTTP, SQL or async runtimes. Values are parsed
//! here once, at the edge, and travel inside the system as validated types.

pub mod account;
pub mod amount;
pub mod clock;
pub mod document;
pub mod ids;
pub mod pix;
pub mod rules;
mod serde_impls;

pub use account::{AccountKind, AccountNumber};
pub use amount::{Amount, AmountError};
pub use clock::{Hlc, Stamp, TooFarAhead};
pub use document::{Cnpj, Cpf, Document, DocumentError, PartyKind};
pub use ids::{BankCode, EndToEndId};
pub use pix::{PixKey, PixKeyError, PixKeyType};
pub use rules::{Counters, Rejection};
