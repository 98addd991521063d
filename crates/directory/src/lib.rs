//! The consortium's directory (DESIGN §5): customers (document, name, username, password hash,
//! home bank), Pix keys (key → bank, account, holder's display name) and the accounts each
//! customer holds, as the state machine of one Raft group of all the banks (openraft).
//!
//! - [`model`]: the commands the log carries and what applying them answers.
//! - `state`: the tables and the deterministic `apply` (SQL only, no clock, no network).
//! - [`store`]: openraft's log store and state machine over one SQLite file per bank, every
//!   write fsynced before openraft hears of it.
//! - [`network`]: the [`Transport`] the caller supplies and the messages it carries.
//! - [`Directory`]: start a member, write through the leader, read locally.
//! - [`mesh`]: an in-process transport with partitions, for tests.
//!
//! Uniqueness of a document, a username and a Pix key across the consortium comes from the
//! order of the log: of two registrations of the same CPF proposed at once at different banks,
//! the one applied first wins and the other is answered [`Conflict::DuplicateDocument`] on every
//! replica.

mod directory;
pub mod mesh;
pub mod model;
pub mod network;
mod state;
pub mod store;
mod thread;

pub use directory::{
    Directory, DirectoryError, FORWARDS_MAX, SNAPSHOT_CHUNK_BYTES, Settings, Standing,
};
pub use model::{
    AccountRef, Applied, Command, Conflict, Customer, Effect, FIELD_BYTES_MAX, PixEntry, Response,
};
pub use model::{DECISIONS_PER_ENTRY_MAX, Decision};
pub use network::{Forged, Message, Refused, Reply, Transport, TransportError};
pub use state::ReadError;

/// The directory's file name, beside the bank's ledger in its data folder.
pub const FILE_NAME: &str = "directory.db";

/// A bank's id in the Raft group. bankd uses the number its 8-digit code spells
/// ([`node_id`]).
pub type NodeId = u64;

/// The bank's member id: its code's digits as a number (codes are exactly 8 digits, so two
/// codes never give the same id).
pub fn node_id(bank: &ledger::BankCode) -> NodeId {
    bank.as_str()
        .bytes()
        .fold(0, |id, digit| id * 10 + u64::from(digit - b'0'))
}

openraft::declare_raft_types!(
    /// The directory's Raft types: commands in, [`Response`]s out, members known by id only
    /// (the transport knows where each bank is).
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = NodeId,
        Node = openraft::EmptyNode,
        SnapshotData = std::io::Cursor<Vec<u8>>,
);
