//! Interbank atomic commit over holds (DESIGN §4), as pure state machines.
//!
//! A payment that touches several banks is one transaction, named by its end-to-end id. The bank
//! that took the customer's request coordinates; every bank owning a touched account
//! participates. Participants *prepare* (hold the money durably) and *vote*; the coordinator
//! *decides* (durably, before telling anyone); participants *commit* or *abort* their holds and
//! acknowledge. Messages are resent until acknowledged and every handler is idempotent on the
//! transaction id. A participant that voted yes and hears nothing *queries* the coordinator; a
//! coordinator asked about a transaction it has no decision for decides abort (presumed abort).
//!
//! Architecture invariant: nothing here does I/O, reads a clock or draws a random number. Every
//! input is a method call with the current time passed in; every effect is an [`Output`] that
//! the caller carries out (sending a message, or making a change durable and reporting back).
//! That is what lets a seeded simulation drop, duplicate, delay and reorder messages and crash
//! banks at every step (see `tests/simulation.rs`).

mod coordinator;
mod participant;
mod plan;

pub use coordinator::Coordinator;
pub use participant::Participant;
pub use plan::{Endpoint, Leg, Memo, Movement, plan, touched};

use ledger::{BankCode, EndToEndId};
use serde::{Deserialize, Serialize};

/// A transaction is named by its Pix end-to-end id.
pub type TxnId = EndToEndId;

/// Why a participant voted no, as the reason in its vote: which of its legs was refused and the
/// refusal's stable code, written `bank/leg/code` (e.g. `20000002/1/insufficient_funds`), so the
/// coordinator can tell which operation of a package failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegRefusal {
    pub bank: BankCode,
    pub leg: usize,
    pub code: String,
}

impl LegRefusal {
    pub fn parse(text: &str) -> Option<LegRefusal> {
        let mut fields = text.splitn(3, '/');
        let bank = BankCode::parse(fields.next()?)?;
        let leg = fields.next()?.parse().ok()?;
        let code = fields.next()?.to_string();
        Some(LegRefusal { bank, leg, code })
    }

    /// The stable code in a vote's reason, whether or not it names a leg.
    pub fn code_of(reason: &str) -> &str {
        reason.rsplit('/').next().unwrap_or(reason)
    }
}

impl std::fmt::Display for LegRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.bank, self.leg, self.code)
    }
}

/// Reasons the coordinator gives for an abort no participant explained.
pub mod reasons {
    /// A participant voted no without saying why.
    pub const REFUSED: &str = "refused";
    /// Not every vote came in time (a bank is slow, down, or lost the prepare).
    pub const TIMEOUT: &str = "bank_timeout";
}

/// How long things may take, in milliseconds of the caller's clock.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// A coordinator that has not heard every vote by then decides abort.
    pub vote_timeout_ms: u64,
    /// Unanswered prepares, decisions and queries are sent again this often.
    pub retry_ms: u64,
    /// A participant that voted yes queries its coordinator after this long without a decision.
    pub query_after_ms: u64,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            vote_timeout_ms: 5_000,
            retry_ms: 500,
            query_after_ms: 2_000,
        }
    }
}

/// What banks say to each other about a transaction. `P` is a participant's part of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message<P> {
    Prepare {
        txn: TxnId,
        part: P,
    },
    Vote {
        txn: TxnId,
        yes: bool,
        reason: Option<String>,
    },
    Decide {
        txn: TxnId,
        commit: bool,
    },
    Ack {
        txn: TxnId,
    },
    Query {
        txn: TxnId,
    },
}

impl<P> Message<P> {
    pub fn txn(&self) -> &TxnId {
        match self {
            Message::Prepare { txn, .. }
            | Message::Vote { txn, .. }
            | Message::Decide { txn, .. }
            | Message::Ack { txn }
            | Message::Query { txn } => txn,
        }
    }
}

/// An effect for the caller to carry out, in order. An output that makes something durable must
/// be durable before any `Send` that follows it in the same list is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<P> {
    Send {
        to: BankCode,
        message: Message<P>,
    },
    /// Coordinator: record the decision durably. A store that already holds a decision for this
    /// transaction must keep the first one (see [`Coordinator::restore`]).
    RecordDecision {
        txn: TxnId,
        commit: bool,
        participants: Vec<BankCode>,
    },
    /// Coordinator: the outcome is known (and durable); tell whoever is waiting for it.
    Decided {
        txn: TxnId,
        commit: bool,
        reason: Option<String>,
    },
    /// Coordinator: every participant acknowledged; the transaction may be marked complete.
    Completed {
        txn: TxnId,
    },
    /// Participant: hold the part durably (or refuse), recording the vote in the same durable
    /// step, then call [`Participant::prepared`]. If the transaction is already finished here,
    /// change nothing and call [`Participant::finished`] instead.
    Prepare {
        txn: TxnId,
        coordinator: BankCode,
        part: P,
    },
    /// Participant: post (`commit`) or void the holds durably, recording the transaction as
    /// finished (also when nothing was ever held, so a late prepare holds nothing), then call
    /// [`Participant::finished`].
    Finish {
        txn: TxnId,
        commit: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leg_refusals_read_back() {
        let refusal = LegRefusal {
            bank: BankCode::parse("20000002").unwrap(),
            leg: 3,
            code: "insufficient_funds".into(),
        };
        assert_eq!(refusal.to_string(), "20000002/3/insufficient_funds");
        assert_eq!(LegRefusal::parse(&refusal.to_string()), Some(refusal));
        assert_eq!(LegRefusal::parse("bank_timeout"), None);
        assert_eq!(
            LegRefusal::code_of("20000002/3/insufficient_funds"),
            "insufficient_funds"
        );
        assert_eq!(LegRefusal::code_of("bank_timeout"), "bank_timeout");
    }
}
