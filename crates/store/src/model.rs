//! Commands the store executes, the outcomes it answers, and the records it reads back.
//! Outcomes are serialisable because the store keeps each one beside its idempotency key, to
//! replay it exactly, also after a restart.

use ledger::{
    AccountKind, AccountNumber, Amount, BankCode, Document, EndToEndId, PixKey, Rejection,
};
use protocol::Leg;
use serde::{Deserialize, Serialize};

/// A customer's row id inside this bank.
pub type CustomerId = i64;

/// Customer accounts of individuals hold at most this many Pix keys; companies' hold more.
pub const PIX_KEYS_PER_ACCOUNT_INDIVIDUAL_MAX: usize = 5;
pub const PIX_KEYS_PER_ACCOUNT_COMPANY_MAX: usize = 20;
/// A joint account has between 2 and this many holders.
pub const JOINT_HOLDERS_MAX: usize = 5;
/// The smallest opening deposit, in centavos (R$ 50,00), as in the seed systems.
pub const OPENING_DEPOSIT_MIN_CENTS: i64 = 5_000;
/// Cash in or out of one account in one operation (a deposit, a withdrawal, an opening deposit,
/// a package's or another bank's cash leg) is at most R$ 1.000.000,00. Cash is the one way money
/// enters a bank, so this bounds what the vault's counters reach: past `i64::MAX` only after
/// some 92 billion operations, where the largest amount would take 92 thousand.
pub const CASH_OPERATION_MAX_CENTS: i64 = 100_000_000;
/// A package holds at most this many operations.
pub const PACKAGE_OPERATIONS_MAX: usize = 100;

#[derive(Debug, Clone)]
pub struct Request {
    pub command: Command,
    pub idempotency: Option<Idempotency>,
}

/// Scopes a client-chosen key to a customer (0 for requests made before logging in), with a
/// digest of the request so a reused key with a different body is caught.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub scope: CustomerId,
    pub key: String,
    pub fingerprint: [u8; 32],
}

impl Idempotency {
    /// Whether a stored record's digest names this request.
    pub fn matches(&self, stored: &[u8]) -> bool {
        stored == self.fingerprint
    }
}

#[derive(Debug, Clone)]
pub enum Command {
    RegisterCustomer {
        public_id: String,
        name: String,
        document: Document,
        username: String,
        password_hash: String,
    },
    /// A customer the consortium's directory registered at another bank (`home_bank`), taken in
    /// here when they first log in at this bank, so sessions and holdings work as for one's own.
    /// Refused like a registration when the document or username is already here.
    AdoptCustomer {
        public_id: String,
        name: String,
        document: Document,
        username: String,
        password_hash: String,
        home_bank: BankCode,
    },
    CreateSession {
        customer: CustomerId,
        token_hash: [u8; 32],
        expires_at_ms: u64,
    },
    DeleteSession {
        token_hash: [u8; 32],
    },
    OpenAccount {
        actor: CustomerId,
        kind: AccountKind,
        co_holders: Vec<String>,
        opening_deposit: Amount,
        e2e: EndToEndId,
    },
    AddPixKey {
        actor: CustomerId,
        account: AccountNumber,
        key: PixKey,
    },
    DeletePixKey {
        actor: CustomerId,
        key: PixKey,
    },
    Deposit {
        actor: CustomerId,
        account: AccountNumber,
        amount: Amount,
        description: String,
        e2e: EndToEndId,
    },
    Withdraw {
        actor: CustomerId,
        account: AccountNumber,
        amount: Amount,
        description: String,
        e2e: EndToEndId,
    },
    Transfer {
        actor: CustomerId,
        from: AccountNumber,
        to: Target,
        amount: Amount,
        description: String,
        e2e: EndToEndId,
    },
    Package {
        actor: CustomerId,
        operations: Vec<Operation>,
        e2e: EndToEndId,
    },
    /// Many independent transfers inside this bank in one command (bulk endpoint): each one
    /// commits, is aborted by the ledger, or is refused on its own.
    TransferBatch {
        actor: CustomerId,
        transfers: Vec<BatchEntry>,
    },
    /// Interbank participant: hold every leg durably, or none, and record the vote in the same
    /// step. Idempotent: a known transaction answers its recorded vote, or `AlreadyFinished`.
    Prepare {
        e2e: EndToEndId,
        coordinator: BankCode,
        legs: Vec<Leg>,
        payment: Option<PaymentRecord>,
    },
    /// Interbank participant: post (`commit`) or void the transaction's holds, exactly once, and
    /// record it finished, also when it never held anything here (so a late prepare holds nothing).
    Finish {
        e2e: EndToEndId,
        commit: bool,
    },
    /// Interbank coordinator: record the decision. The first decision recorded for a transaction
    /// stays and is answered; the payment and any idempotency record waiting on it are settled.
    /// With `finish_here`, this bank's own part is finished by the decision that stands in the
    /// same transaction (as `Finish` would, once the decision is durable).
    RecordDecision {
        e2e: EndToEndId,
        commit: bool,
        participants: Vec<BankCode>,
        reason: Option<String>,
        finish_here: bool,
    },
    /// Interbank coordinator: every participant acknowledged these transactions.
    CompleteDecisions {
        e2es: Vec<EndToEndId>,
    },
    /// Interbank coordinator: a customer starts a payment from `from`. Checks they hold it, ties
    /// the request's idempotency key to the end-to-end id, and prepares this bank's own part
    /// (`legs`) in the same step, as `Prepare` would with this bank as coordinator: the payment
    /// is `Pending` when the part is held (this bank votes yes), or recorded `aborted` with the
    /// refusal's code when it is not (this bank votes no, and the vote is recorded).
    BeginPayment {
        actor: CustomerId,
        from: AccountNumber,
        payment: PaymentRecord,
        legs: Vec<Leg>,
    },
    /// Interbank coordinator: a customer starts a package over several banks. Checks they hold
    /// every account of this bank it operates, and records it pending (tied to the request's
    /// idempotency key) before any bank hears of it.
    BeginPackage {
        actor: CustomerId,
        accounts: Vec<AccountNumber>,
        package: PackageRecord,
    },
    /// Deletes every session that expired by `now_ms` (Unix ms, the node's wall clock: the
    /// hybrid clock may run ahead of it after a peer's stamp). The node sends it as a customer
    /// logs in, so the table holds about the live sessions only.
    PurgeSessions {
        now_ms: u64,
    },
    /// A customer answers an invitation to hold a joint account (`OpenAccount` invites its
    /// co-holders): accepting makes them a holder (the account is the outcome), declining ends
    /// the invitation. Only the invited customer may answer, once.
    AnswerInvitation {
        actor: CustomerId,
        invitation: i64,
        accept: bool,
    },
}

/// One transfer of a batch: the caller's id, and the transfer or why its request was invalid
/// (a stable code), so the stored answer covers every item in order.
#[derive(Debug, Clone)]
pub struct BatchEntry {
    pub id: String,
    pub transfer: Result<BatchItem, String>,
}

#[derive(Debug, Clone)]
pub struct BatchItem {
    pub from: AccountNumber,
    pub to: Target,
    pub amount: Amount,
    pub description: String,
    pub e2e: EndToEndId,
}

/// What became of one transfer of a batch: `committed` or `aborted` (a payment was recorded,
/// with its end-to-end id), or `rejected` (nothing was recorded), with the reason's code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRecord {
    pub id: String,
    pub status: String,
    pub reason: Option<String>,
    pub e2e_id: Option<String>,
}

/// How a batch's outcome is kept under its idempotency key, which a bulk request writes once
/// per transfer: when its payments' end-to-end ids run in sequence by position (the bank hands a
/// batch one run of ids) and only its rejected transfers lack one, as the first position's id and
/// `[id, status, reason]` per transfer, about a third of the listed form's size; otherwise as the
/// list. Both forms are read back.
mod stored_batch {
    use super::BatchRecord;
    use ledger::EndToEndId;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    const REJECTED: &str = "rejected";

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Sequenced {
            /// The id the transfer at position 0 has or would have had.
            e2e0: Option<String>,
            items: Vec<(String, String, Option<String>)>,
        },
        Listed(Vec<BatchRecord>),
    }

    /// [`Form::Sequenced`] as it is written, borrowing the records.
    #[derive(Serialize)]
    struct SequencedRef<'a> {
        e2e0: Option<&'a str>,
        items: Vec<(&'a str, &'a str, Option<&'a str>)>,
    }

    /// The id of position 0 when every recorded payment's id is in sequence by position.
    fn sequenced(records: &[BatchRecord]) -> Option<Option<EndToEndId>> {
        let Some((index, first)) = records
            .iter()
            .enumerate()
            .find_map(|(index, r)| Some((index, r.e2e_id.as_deref()?)))
        else {
            return records.iter().all(|r| r.status == REJECTED).then_some(None);
        };
        let first = EndToEndId::parse(first)?;
        let base = first.sequence().checked_sub(index as u64)?;
        let e2e0 = first.with_sequence(base)?;
        // Same bank and minute as the first, and the sequence its position gives.
        let prefix = &e2e0.as_str()[..EndToEndId::LEN - 11];
        let in_sequence =
            records
                .iter()
                .enumerate()
                .all(|(index, r)| match (&r.e2e_id, r.status == REJECTED) {
                    (None, true) => true,
                    (Some(id), false) => {
                        id.starts_with(prefix)
                            && EndToEndId::sequence_of(id) == Some(base + index as u64)
                    }
                    _ => false,
                });
        in_sequence.then_some(Some(e2e0))
    }

    pub fn serialize<S: Serializer>(records: &[BatchRecord], s: S) -> Result<S::Ok, S::Error> {
        match sequenced(records) {
            Some(e2e0) => SequencedRef {
                e2e0: e2e0.as_ref().map(EndToEndId::as_str),
                items: records
                    .iter()
                    .map(|r| (r.id.as_str(), r.status.as_str(), r.reason.as_deref()))
                    .collect(),
            }
            .serialize(s),
            None => records.serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<BatchRecord>, D::Error> {
        use serde::de::Error;
        match Form::deserialize(d)? {
            Form::Listed(records) => Ok(records),
            Form::Sequenced { e2e0, items } => {
                let e2e0 = e2e0
                    .map(|id| EndToEndId::parse(&id).ok_or_else(|| D::Error::custom("bad e2e0")))
                    .transpose()?;
                items
                    .into_iter()
                    .enumerate()
                    .map(|(index, (id, status, reason))| {
                        let e2e_id = if status == REJECTED {
                            None
                        } else {
                            let e2e0 = e2e0.as_ref().ok_or_else(|| D::Error::custom("no e2e0"))?;
                            let id = e2e0
                                .with_sequence(e2e0.sequence() + index as u64)
                                .ok_or_else(|| D::Error::custom("sequence out of range"))?;
                            Some(id.as_str().to_string())
                        };
                        Ok(BatchRecord {
                            id,
                            status,
                            reason,
                            e2e_id,
                        })
                    })
                    .collect()
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::super::{BatchRecord, Outcome};
        use ledger::{BankCode, EndToEndId};

        fn record(id: &str, status: &str, reason: Option<&str>, e2e: Option<u64>) -> BatchRecord {
            let bank = BankCode::parse("10000001").unwrap();
            BatchRecord {
                id: id.into(),
                status: status.into(),
                reason: reason.map(Into::into),
                e2e_id: e2e.map(|n| EndToEndId::sequenced(bank, "202612041330", n).to_string()),
            }
        }

        fn round_trip(records: Vec<BatchRecord>) -> String {
            let outcome = Outcome::Batch(records);
            let json = serde_json::to_string(&outcome).unwrap();
            let back: Outcome = serde_json::from_str(&json).unwrap();
            assert_eq!(back, outcome, "{json}");
            json
        }

        #[test]
        fn a_batch_whose_ids_run_in_sequence_is_kept_short_and_read_back_whole() {
            let records = vec![
                record("t1", "rejected", Some("account_not_found"), None),
                record("t2", "committed", None, Some(41)),
                record("t3", "aborted", Some("insufficient_funds"), Some(42)),
                record("t4", "rejected", Some("invalid_amount"), None),
                record("t5", "committed", None, Some(44)),
            ];
            let json = round_trip(records.clone());
            assert!(
                json.contains("\"e2e0\":\"E1000000120261204133000000000014\""),
                "{json}"
            );
            // A bulk request's usual batch: every transfer committed.
            let bulk: Vec<BatchRecord> = (0..1_000)
                .map(|n| record(&format!("t-{n:06}"), "committed", None, Some(5_000 + n)))
                .collect();
            let listed = serde_json::to_string(&bulk).unwrap().len();
            let sequenced = round_trip(bulk).len();
            assert!(sequenced * 3 < listed, "{sequenced} bytes against {listed}");

            let all_rejected = vec![record("t1", "rejected", Some("same_account"), None)];
            assert!(round_trip(all_rejected).contains("\"e2e0\":null"));
        }

        #[test]
        fn a_batch_whose_ids_do_not_run_in_sequence_is_listed() {
            for records in [
                vec![
                    record("a", "committed", None, Some(5)),
                    record("b", "committed", None, Some(7)),
                ],
                vec![
                    record("a", "committed", None, Some(5)),
                    record("b", "rejected", None, Some(6)),
                ],
                vec![
                    record("a", "committed", None, Some(0)),
                    record("b", "committed", None, None),
                ],
                vec![
                    record("a", "committed", None, Some(0)),
                    record("b", "committed", None, Some(0)),
                ],
                vec![record("a", "committed", None, None)],
            ] {
                let json = round_trip(records);
                assert!(json.starts_with("{\"Batch\":[{"), "{json}");
            }
        }

        #[test]
        fn a_batch_stored_in_the_listed_form_reads_back() {
            let stored = r#"{"Batch":[{"id":"t1","status":"committed","reason":null,"e2e_id":"E1000000120261204133000000000001"},{"id":"t2","status":"rejected","reason":"invalid_amount","e2e_id":null}]}"#;
            let outcome: Outcome = serde_json::from_str(stored).unwrap();
            assert_eq!(
                outcome,
                Outcome::Batch(vec![
                    record("t1", "committed", None, Some(1)),
                    record("t2", "rejected", Some("invalid_amount"), None),
                ])
            );
        }
    }
}

/// Where a transfer goes, inside this bank.
#[derive(Debug, Clone)]
pub enum Target {
    Key(PixKey),
    Account(AccountNumber),
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub kind: OperationKind,
    pub account: AccountNumber,
    pub amount: Amount,
    pub description: String,
}

#[derive(Debug, Clone)]
pub enum OperationKind {
    Deposit,
    Withdrawal,
    Transfer(Target),
}

#[derive(Debug, Clone)]
pub struct Executed {
    pub outcome: Outcome,
    /// True when this is the stored answer to an earlier request with the same key.
    pub replayed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    Customer(CustomerRecord),
    Done,
    Account(AccountRecord),
    PixKey(PixKeyRecord),
    Entry(EntryRecord),
    Payment(PaymentRecord),
    Package(PackageRecord),
    /// An interbank participant's vote.
    Vote {
        yes: bool,
        reason: Option<String>,
    },
    /// The interbank transaction had already finished here.
    AlreadyFinished,
    /// The decision that stands for an interbank transaction, and whether this bank's own part
    /// was finished by it in the same step (asked with `finish_here`).
    Decision {
        commit: bool,
        finished_here: bool,
        /// The customer's payment or package as this decision settled it (`None` when an
        /// earlier decision stood, or no payment of this bank's customers waited on it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        settled: Option<Box<Outcome>>,
    },
    /// An interbank payment has begun; its outcome comes with the coordinator's decision.
    Pending(PaymentRecord),
    /// Each transfer of a batch, in order.
    Batch(#[serde(with = "stored_batch")] Vec<BatchRecord>),
    Refused(Refusal),
}

/// Why the bank refused a command. Stable codes; the detail is for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    #[error("a customer with this document is already registered")]
    DuplicateDocument,
    #[error("this username is taken")]
    DuplicateUsername,
    #[error("no such account among yours")]
    AccountNotFound,
    #[error("no such Pix key")]
    PixKeyNotFound,
    #[error("this Pix key is already registered")]
    DuplicatePixKey,
    #[error("the account already has its maximum of {0} Pix keys")]
    PixKeyLimitReached(usize),
    #[error("a CPF or CNPJ key must be your own document")]
    PixKeyNotYourDocument,
    #[error("no registered customer is called {0:?}")]
    CoHolderNotFound(String),
    #[error("{0}")]
    HolderKind(String),
    #[error("the opening deposit must be at least 50.00")]
    OpeningDepositTooSmall,
    #[error("{0}")]
    Ledger(LedgerRefusal),
    #[error("no such invitation waiting for you")]
    InvitationNotFound,
    #[error("cash in or out is at most 1000000.00 an operation")]
    CashLimitExceeded,
}

/// A `ledger::Rejection` in serialisable form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum LedgerRefusal {
    #[error("a transfer must move money between two different accounts")]
    SameAccount,
    #[error("the hold was already resolved")]
    HoldAlreadyResolved,
    #[error("the account's available balance is not enough")]
    InsufficientFunds,
    #[error("the amount would overflow the account's counters")]
    Overflow,
}

impl From<Rejection> for Refusal {
    fn from(rejection: Rejection) -> Refusal {
        Refusal::Ledger(match rejection {
            Rejection::SameAccount => LedgerRefusal::SameAccount,
            Rejection::HoldAlreadyPosted | Rejection::HoldAlreadyVoided => {
                LedgerRefusal::HoldAlreadyResolved
            }
            Rejection::InsufficientFunds => LedgerRefusal::InsufficientFunds,
            Rejection::Overflow => LedgerRefusal::Overflow,
        })
    }
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::DuplicateDocument => "duplicate_document",
            Refusal::DuplicateUsername => "duplicate_username",
            Refusal::AccountNotFound => "account_not_found",
            Refusal::PixKeyNotFound => "pix_key_not_found",
            Refusal::DuplicatePixKey => "duplicate_pix_key",
            Refusal::PixKeyLimitReached(_) => "pix_key_limit_reached",
            Refusal::PixKeyNotYourDocument => "pix_key_not_your_document",
            Refusal::CoHolderNotFound(_) => "co_holder_not_found",
            Refusal::HolderKind(_) => "holder_kind_mismatch",
            Refusal::OpeningDepositTooSmall => "opening_deposit_too_small",
            Refusal::Ledger(LedgerRefusal::SameAccount) => "same_account",
            Refusal::Ledger(LedgerRefusal::HoldAlreadyResolved) => "hold_already_resolved",
            Refusal::Ledger(LedgerRefusal::InsufficientFunds) => "insufficient_funds",
            Refusal::Ledger(LedgerRefusal::Overflow) => "amount_too_large",
            Refusal::InvitationNotFound => "invitation_not_found",
            Refusal::CashLimitExceeded => "cash_limit_exceeded",
        }
    }
}

/// A live session: whose it is, and until when (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub customer: CustomerRecord,
    pub expires_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerRecord {
    pub id: CustomerId,
    pub public_id: String,
    pub name: String,
    pub kind: ledger::PartyKind,
    pub document: String,
    pub username: String,
    pub home_bank: String,
}

#[derive(Debug, Clone)]
pub struct LoginRecord {
    pub customer: CustomerId,
    pub password_hash: String,
}

/// An invitation to hold a joint account, as its inviter or its invitee sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationRecord {
    pub id: i64,
    pub bank: String,
    pub account_number: String,
    pub inviter: HolderRecord,
    /// The username invited, as the inviter wrote it (a customer here or not).
    pub username: String,
    /// `pending`, `accepted` or `declined`.
    pub status: String,
    /// Whether the viewer is the one invited (otherwise they sent it).
    pub received: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderRecord {
    pub username: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    pub bank: String,
    /// The formatted number, `123456-7`.
    pub number: String,
    pub kind: AccountKind,
    pub holders: Vec<HolderRecord>,
    pub balance_cents: i64,
    pub available_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryRecord {
    pub id: i64,
    pub kind: String,
    pub amount_cents: i64,
    pub balance_after_cents: i64,
    pub counterparty: String,
    pub description: String,
    pub made_by: String,
    pub clock: String,
    pub at_ms: u64,
    pub e2e_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PixKeyRecord {
    pub key: String,
    pub key_type: String,
    pub bank: String,
    pub account_number: String,
    pub holder_name: String,
    pub document_masked: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountAddress {
    pub bank: String,
    pub number: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentStatus {
    /// Between banks, until the coordinator decides.
    Pending,
    Committed,
    Aborted,
}

impl PaymentStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Committed => "committed",
            PaymentStatus::Aborted => "aborted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
    pub e2e_id: String,
    pub status: PaymentStatus,
    /// The refusal code when aborted.
    pub reason: Option<String>,
    pub from: AccountAddress,
    pub to: AccountAddress,
    pub amount_cents: i64,
    pub description: String,
    pub clock: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperationStatus {
    /// The package's banks have not all decided yet.
    Pending,
    Committed,
    /// This operation was refused; `reason` says why.
    Rejected,
    /// This operation was fine but another one was refused, so it was undone.
    Aborted,
}

impl OperationStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            OperationStatus::Pending => "pending",
            OperationStatus::Committed => "committed",
            OperationStatus::Rejected => "rejected",
            OperationStatus::Aborted => "aborted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationRecord {
    pub status: OperationStatus,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageRecord {
    pub e2e_id: String,
    pub status: PaymentStatus,
    pub results: Vec<OperationRecord>,
    pub clock: String,
    /// Between banks: the banks each operation touches, in order, so a refusal of one bank's
    /// n-th leg names its operation. Empty for a package inside one bank.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub banks: Vec<Vec<BankCode>>,
}

impl PackageRecord {
    /// The operation a bank's `leg`-th leg belongs to.
    pub fn operation_of(&self, bank: BankCode, leg: usize) -> Option<usize> {
        self.banks
            .iter()
            .enumerate()
            .filter(|(_, banks)| banks.contains(&bank))
            .nth(leg)
            .map(|(index, _)| index)
    }

    /// Every bank the package touches.
    pub fn participants(&self) -> Vec<BankCode> {
        let all: std::collections::BTreeSet<BankCode> =
            self.banks.iter().flatten().copied().collect();
        all.into_iter().collect()
    }
}

/// The four counters summed over a set of accounts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub debits_pending: i128,
    pub debits_posted: i128,
    pub credits_pending: i128,
    pub credits_posted: i128,
}

#[derive(Debug, Clone)]
pub struct CheckRecord {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub accounts: u64,
    pub totals: Totals,
    pub customer_balances_cents: i128,
    pub cash_in_cents: i64,
    pub cash_out_cents: i64,
    /// Each other bank's code and this bank's position with it (positive: it owes us).
    pub settlement: Vec<(String, i64)>,
    pub clock: String,
    pub checks: Vec<CheckRecord>,
}

impl AuditRecord {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

/// Interbank work a restarted node must finish.
#[derive(Debug, Clone, Default)]
pub struct OpenInterbank {
    /// Votes not yet finished: transaction, coordinator, vote.
    pub votes: Vec<(EndToEndId, BankCode, bool)>,
    /// Decisions not yet acknowledged by every participant: transaction, commit, participants.
    pub decisions: Vec<(EndToEndId, bool, Vec<BankCode>)>,
    /// Payments this bank began and never decided (it stopped in between): transaction and the
    /// banks it touches. They are to be aborted.
    pub undecided: Vec<(EndToEndId, Vec<BankCode>)>,
}

/// What this bank's ledger says the consortium's directory should hold about it: every
/// customer, who holds which account here, and every Pix key (read to load a ledger made before
/// the directory into it, and to list again accounts whose listing did not reach it).
#[derive(Debug, Clone, Default)]
pub struct DirectoryListing {
    pub customers: Vec<ListedCustomer>,
    /// Holder (customer id) and account number, for every customer account here.
    pub holdings: Vec<(CustomerId, ledger::AccountNumber)>,
    pub pix_keys: Vec<ListedPixKey>,
}

/// A customer as the directory records one.
#[derive(Debug, Clone)]
pub struct ListedCustomer {
    pub id: CustomerId,
    pub document: String,
    pub name: String,
    pub username: String,
    pub password_hash: String,
    pub home_bank: String,
}

/// A Pix key here: the customer who registered it (`owner`) and the account it pays.
#[derive(Debug, Clone)]
pub struct ListedPixKey {
    pub key: String,
    pub key_type: String,
    pub account: ledger::AccountNumber,
    pub owner: CustomerId,
}
