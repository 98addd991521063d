//! The boundary between the bank's rules and a database: [`LedgerTx`], the reads and writes of
//! rows one open transaction offers, and [`Backend`], what the writer needs besides (opening a
//! transaction, rolling it back, hooks around a commit).
//!
//! A backend implements these two traits, the reads of [`crate::Store`] and its own schema;
//! everything above rows (idempotency, the account, Pix, cash, transfer, package and interbank
//! rules, batching, retry-alone, the balance assert, the account cache) is written once against
//! them in [`crate::rules`] and [`crate::writer`]. Nothing here decides anything: a method reads
//! or writes the rows it names, and answers what the database holds.
//!
//! Row ids are `i64` chosen by the database. Clock stamps are written as the command's stamp
//! text (`Ctx::clock`). JSON columns (a payment's body, a vote's legs, a decision's
//! participants) are written and read as text the rules made.

use crate::model::*;
use ledger::rules::Counters;
use ledger::{AccountKind, AccountNumber, BankCode};

/// A database row id.
pub type RowId = i64;

/// What a movement writes in `transfers.flags`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferFlags {
    Posted,
    Pending,
    PostPending,
    VoidPending,
}

impl TransferFlags {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferFlags::Posted => "posted",
            TransferFlags::Pending => "pending",
            TransferFlags::PostPending => "post_pending",
            TransferFlags::VoidPending => "void_pending",
        }
    }
}

/// The savepoints the rules open, nested in this order at most: a package around its
/// operations, and a step around one command or operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Savepoint {
    Package,
    Step,
}

impl Savepoint {
    pub fn name(self) -> &'static str {
        match self {
            Savepoint::Package => "package",
            Savepoint::Step => "step",
        }
    }
}

/// What changes on an account's row: its counters and the newest entry of its statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountRow {
    pub kind: AccountKind,
    pub counters: Counters,
    pub last_entry: Option<RowId>,
}

/// A new customer.
pub struct NewCustomer<'a> {
    pub public_id: &'a str,
    pub name: &'a str,
    pub document: &'a ledger::Document,
    pub username: &'a str,
    pub password_hash: &'a str,
    pub home_bank: &'a str,
    pub clock: &'a str,
}

/// A new row of `transfers`: a movement between two accounts, posted, held, or the resolution
/// (`pending_id`) of a hold.
pub struct NewTransfer<'a> {
    pub e2e: &'a str,
    pub debit: RowId,
    pub credit: RowId,
    pub amount_cents: i64,
    pub flags: TransferFlags,
    pub pending_id: Option<RowId>,
    pub clock: &'a str,
}

/// A pending transfer that holds money for an interbank part until its decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    pub id: RowId,
    pub debit_id: RowId,
    pub credit_id: RowId,
    pub amount: ledger::Amount,
}

/// One statement line on one customer account.
pub struct NewEntry<'a> {
    pub account_id: RowId,
    pub transfer_id: RowId,
    pub kind: &'a str,
    pub amount_cents: i64,
    pub balance_after_cents: i64,
    pub counterparty: &'a str,
    pub description: &'a str,
    pub made_by: &'a str,
    pub clock: &'a str,
    pub at_ms: i64,
    pub e2e: &'a str,
    pub prev_entry: Option<RowId>,
}

/// One side of a local transfer's statement row.
#[derive(Clone, Copy, Debug)]
pub struct EntrySide {
    pub account_id: RowId,
    pub balance_after_cents: i64,
    pub prev_entry: Option<RowId>,
}

/// The one statement row of a transfer between two customer accounts here: the payer's side
/// (`transfer_out`, amount negative) and the payee's (`other_*`). It is also the transfer's only
/// record (no `transfers` row).
pub struct NewTransferEntry<'a> {
    pub payer: EntrySide,
    pub payee: EntrySide,
    pub amount_cents: i64,
    pub description: &'a str,
    pub made_by: &'a str,
    pub clock: &'a str,
    pub at_ms: i64,
    pub e2e: &'a str,
}

/// A participant's vote on an interbank transaction, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoteRow {
    pub yes: bool,
    pub reason: Option<String>,
    /// The legs it holds, as JSON.
    pub legs: String,
    /// Whether its part committed (`Some(true)`) or aborted, once finished.
    pub finished: Option<bool>,
}

/// A new vote. `coordinator` is `None` for the abort remembered for a transaction never
/// prepared here.
pub struct NewVote<'a> {
    pub e2e: &'a str,
    pub coordinator: Option<&'a str>,
    pub yes: bool,
    pub reason: Option<&'a str>,
    pub legs: &'a str,
    pub finished: Option<bool>,
    pub clock: &'a str,
}

/// An idempotency record as found: the request's fingerprint and its first outcome, read from
/// the stored JSON or from the payment the record names (a local transfer's entry is read back
/// as its payment record). `Err` holds why the stored outcome could not be read.
pub struct StoredRequest {
    pub fingerprint: Vec<u8>,
    pub outcome: Result<Outcome, String>,
}

/// A new idempotency record: the outcome as JSON, or the payment whose record answers it.
pub struct NewIdempotency<'a> {
    pub scope: i64,
    pub key: &'a str,
    pub fingerprint: &'a [u8],
    pub outcome: Option<&'a str>,
    pub payment: Option<&'a str>,
    pub clock: &'a str,
    /// The interbank transaction whose decision settles the stored outcome.
    pub pending_e2e: Option<&'a str>,
}

/// One open transaction of a bank's ledger, at row level. Every method runs inside it; a
/// constraint the database enforces (a unique end-to-end id, say) is an `Err` like any other
/// failure, and the writer then tries the command alone so it fails only itself.
pub trait LedgerTx {
    type Error: std::error::Error + Send + Sync + 'static;

    // ---- the transaction ----

    /// Opens a savepoint inside the transaction.
    fn savepoint(&mut self, savepoint: Savepoint) -> Result<(), Self::Error>;
    /// Keeps what was done since the savepoint opened, and closes it.
    fn release(&mut self, savepoint: Savepoint) -> Result<(), Self::Error>;
    /// Undoes what was done since the savepoint opened, and closes it.
    fn rollback_to(&mut self, savepoint: Savepoint) -> Result<(), Self::Error>;
    /// Makes the transaction durable; `commands` is how many commands it answers (a backend
    /// may tune its commit by it).
    fn commit(self, commands: usize) -> Result<(), Self::Error>
    where
        Self: Sized;

    // ---- the writer's bookkeeping ----

    /// The idempotency record under this scope and key, if any.
    fn idempotency(
        &mut self,
        bank: &str,
        scope: i64,
        key: &str,
    ) -> Result<Option<StoredRequest>, Self::Error>;
    fn insert_idempotency(&mut self, record: &NewIdempotency) -> Result<(), Self::Error>;
    /// Every idempotency record waiting on `e2e`'s decision takes `outcome` (JSON).
    fn settle_idempotency(&mut self, e2e: &str, outcome: &str) -> Result<(), Self::Error>;
    /// Remembers the clock's last stamp (the clock never goes backwards across restarts).
    fn set_clock(&mut self, stamp: &str) -> Result<(), Self::Error>;
    /// The sums of every account's counters (the balance assert of debug builds).
    fn totals(&mut self) -> Result<Totals, Self::Error>;

    // ---- customers and sessions ----

    fn customer(&mut self, id: CustomerId) -> Result<Option<CustomerRecord>, Self::Error>;
    fn customer_id_by_username(
        &mut self,
        username: &str,
    ) -> Result<Option<CustomerId>, Self::Error>;
    fn document_registered(&mut self, document: &str) -> Result<bool, Self::Error>;
    fn insert_customer(&mut self, customer: &NewCustomer) -> Result<CustomerId, Self::Error>;
    /// The customer's username (the customer exists).
    fn username(&mut self, id: CustomerId) -> Result<String, Self::Error>;
    fn insert_session(
        &mut self,
        token_hash: &[u8; 32],
        customer: CustomerId,
        expires_at_ms: i64,
    ) -> Result<(), Self::Error>;
    fn delete_session(&mut self, token_hash: &[u8; 32]) -> Result<(), Self::Error>;
    /// Deletes every session that expired at or before `now_ms`.
    fn purge_sessions(&mut self, now_ms: i64) -> Result<(), Self::Error>;

    // ---- accounts ----

    /// The id and kind of the account with this number.
    fn account_by_number(
        &mut self,
        number: AccountNumber,
    ) -> Result<Option<(RowId, AccountKind)>, Self::Error>;
    /// The number of the account with this id (which exists).
    fn account_number(&mut self, id: RowId) -> Result<AccountNumber, Self::Error>;
    /// The account's holders, first holder first.
    fn holders(&mut self, account: RowId) -> Result<Vec<CustomerId>, Self::Error>;
    /// This bank's settlement account with `peer`, if there is one.
    fn settlement_account(&mut self, peer: BankCode) -> Result<Option<RowId>, Self::Error>;
    /// The account's kind, counters and newest entry (the account exists).
    fn account_row(&mut self, id: RowId) -> Result<AccountRow, Self::Error>;
    /// Writes the account's counters and newest entry.
    fn update_account(
        &mut self,
        id: RowId,
        counters: &Counters,
        last_entry: Option<RowId>,
    ) -> Result<(), Self::Error>;
    /// One more than the highest account number (the base without its check digit), or the
    /// first number of a new bank.
    fn next_account_number(&mut self) -> Result<u64, Self::Error>;
    fn insert_account(
        &mut self,
        number: u64,
        kind: AccountKind,
        clock: &str,
    ) -> Result<RowId, Self::Error>;
    fn insert_holder(
        &mut self,
        account: RowId,
        customer: CustomerId,
        position: i64,
    ) -> Result<(), Self::Error>;
    /// How many holders the account has, and the position the next one takes.
    fn holder_count(&mut self, account: RowId) -> Result<(usize, i64), Self::Error>;
    /// The account as its holders see it (the account exists).
    fn account_record(&mut self, bank: &str, id: RowId) -> Result<AccountRecord, Self::Error>;

    // ---- invitations ----

    fn insert_invitation(
        &mut self,
        account: RowId,
        inviter: CustomerId,
        username: &str,
        invitee: Option<CustomerId>,
        clock: &str,
    ) -> Result<(), Self::Error>;
    /// The account of the pending invitation `id` sent to `invitee`.
    fn pending_invitation(
        &mut self,
        id: i64,
        invitee: CustomerId,
    ) -> Result<Option<RowId>, Self::Error>;
    fn set_invitation_status(&mut self, id: i64, status: &str) -> Result<(), Self::Error>;

    // ---- Pix keys ----

    fn pix_key_count(&mut self, account: RowId) -> Result<usize, Self::Error>;
    /// The account the key points to, if the key is registered here.
    fn pix_key_account(&mut self, key: &str) -> Result<Option<RowId>, Self::Error>;
    fn insert_pix_key(
        &mut self,
        key: &ledger::PixKey,
        account: RowId,
        owner: CustomerId,
        clock: &str,
    ) -> Result<(), Self::Error>;
    /// Deletes the key if it is on an account `holder` holds; answers whether it did.
    fn delete_held_pix_key(&mut self, key: &str, holder: CustomerId) -> Result<bool, Self::Error>;
    fn pix_key_record(
        &mut self,
        bank: &str,
        key: &str,
    ) -> Result<Option<PixKeyRecord>, Self::Error>;

    // ---- movements and statements ----

    fn insert_transfer(&mut self, transfer: &NewTransfer) -> Result<RowId, Self::Error>;
    /// The holds (`pending` transfers) of an interbank transaction, oldest first.
    fn holds(&mut self, e2e: &str) -> Result<Vec<Hold>, Self::Error>;
    fn insert_entry(&mut self, entry: &NewEntry) -> Result<RowId, Self::Error>;
    fn insert_transfer_entry(&mut self, entry: &NewTransferEntry) -> Result<RowId, Self::Error>;

    // ---- payments (records customers look up) ----

    fn insert_payment(
        &mut self,
        e2e: &str,
        status: &PaymentStatus,
        body: &str,
        started_by: Option<CustomerId>,
    ) -> Result<(), Self::Error>;
    /// Lets the account's holders read the payment (a second link is ignored).
    fn link_payment(&mut self, e2e: &str, account: RowId) -> Result<(), Self::Error>;
    /// The body of the payment recorded as pending, if there is one.
    fn pending_payment(&mut self, e2e: &str) -> Result<Option<String>, Self::Error>;
    fn update_payment(
        &mut self,
        e2e: &str,
        status: &PaymentStatus,
        body: &str,
    ) -> Result<(), Self::Error>;

    // ---- interbank: votes and decisions ----

    fn vote(&mut self, e2e: &str) -> Result<Option<VoteRow>, Self::Error>;
    fn insert_vote(&mut self, vote: &NewVote) -> Result<(), Self::Error>;
    fn finish_vote(&mut self, e2e: &str, commit: bool) -> Result<(), Self::Error>;
    /// The decision recorded for `e2e`: commit or abort.
    fn decision(&mut self, e2e: &str) -> Result<Option<bool>, Self::Error>;
    fn insert_decision(
        &mut self,
        e2e: &str,
        commit: bool,
        participants: &str,
        clock: &str,
    ) -> Result<(), Self::Error>;
    /// Marks the decision as acknowledged by every participant.
    fn complete_decision(&mut self, e2e: &str) -> Result<(), Self::Error>;
}

/// What the generic writer ([`crate::writer`]) needs of a database besides [`LedgerTx`]: one
/// is moved onto the writer's thread and used only there.
pub trait Backend: Send + 'static {
    type Error: std::error::Error + Send + Sync + 'static + Into<crate::StoreError>;
    type Tx<'b>: LedgerTx<Error = Self::Error>
    where
        Self: 'b;

    /// Called once on the writer's thread before the first batch.
    fn on_writer_thread(&mut self, _bank: &str) {}
    /// Opens a transaction that will hold one batch of commands.
    fn begin(&mut self) -> Result<Self::Tx<'_>, Self::Error>;
    /// Rolls back the transaction left open by a failed batch (its `Tx` is dropped already).
    fn rollback(&mut self) -> Result<(), Self::Error>;
    /// After a batch failed (before its rollback) or after each retried command: undo any
    /// commit-time tuning.
    fn settle(&mut self) {}
    /// After a batch's answers were sent: undo commit-time tuning, and do housekeeping (SQLite
    /// checkpoints here).
    fn after_answers(&mut self) {}
    /// Whether this writer is the only one writing the database. Then the writer's account
    /// cache (counters, holders, usernames) outlives a transaction; otherwise it is forgotten
    /// at the start of each one, since another process may have changed any row.
    fn exclusive(&self) -> bool {
        true
    }
    /// Whether a failed batch should be run again as it was (a serialization failure), before
    /// its commands are tried one by one.
    fn retryable(&self, _error: &Self::Error) -> bool {
        false
    }
}
