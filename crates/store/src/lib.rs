//! Durable state of one bank behind the [`Store`] boundary.
//!
//! Every change is a [`Command`] executed by [`Store::execute`]; a store runs many commands in
//! one database transaction (group commit) and answers each with its own [`Outcome`], so one
//! refusal never fails its batch neighbours. Reads are separate methods that never write.
//!
//! Durability rule for every implementation: `execute` returns only after the command's effects,
//! and its idempotency record, are on disk. Refusals change nothing but the idempotency record.
//!
//! Architecture invariant: only this crate knows SQL, and only its backends (`sqlite`) write
//! it. The bank's rules ([`rules`]) and the writer ([`writer`]) are written once against the
//! row-level [`tx::LedgerTx`] and [`tx::Backend`] traits, and counters change only through
//! `ledger::rules`, so every backend applies the same rules.

mod clock;
mod model;
pub mod postgres;
pub mod rules;
pub mod sqlite;
pub mod tx;
pub mod writer;

pub use clock::{SharedClock, wall_ms};
pub use model::*;
pub use postgres::{PgBackend, PgStore, PgTx};
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use std::future::Future;
use std::pin::Pin;

/// What can go wrong below the business rules. Refusals are not errors: they are outcomes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("database error: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("the idempotency key was used with a different request")]
    IdempotencyKeyReused,
    #[error("the store is shutting down")]
    Closed,
    #[error("the store's queue is full")]
    Overloaded,
    /// Another full-ledger audit is running ([`AUDITS_AT_ONCE_MAX`]).
    #[error("an audit of the whole ledger is already running")]
    AuditInProgress,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The command tripped a bug in the writer (a panic): nothing of it was kept, and the
    /// writer goes on with the next command.
    #[error("the command failed inside the store: {0}")]
    Failed(String),
}

/// Full-ledger audits running at once; each reads every row of the ledger.
pub const AUDITS_AT_ONCE_MAX: usize = 1;

impl StoreError {
    /// The database refused the command's data (a constraint: e.g. an end-to-end id already
    /// used), as opposed to failing to read or write (I/O, a full disk, corruption): the command
    /// changed nothing, and the store is as sound as before. What another bank asks for and the
    /// database refuses is a refusal of that request, not a reason to stop.
    pub fn is_constraint(&self) -> bool {
        match self {
            StoreError::Database(rusqlite::Error::SqliteFailure(error, _)) => {
                error.code == rusqlite::ErrorCode::ConstraintViolation
            }
            StoreError::Postgres(error) => postgres::is_constraint(error),
            _ => false,
        }
    }
}

/// A command the store has taken: resolves to its outcome once it is durable.
pub type Submitted = Pin<Box<dyn Future<Output = Result<Executed, StoreError>> + Send>>;

/// The boundary a PostgreSQL store will satisfy as well as the SQLite one.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Takes one command to run durably (see the module's durability rule), without waiting for
    /// it: commands are applied in the order they were taken, so a caller may start something
    /// that must come after this command as soon as `submit` returns. With an idempotency tag, a
    /// command already executed under the same scope and key resolves to its first outcome with
    /// `replayed` set, or [`StoreError::IdempotencyKeyReused`] if the fingerprint differs.
    fn submit(&self, request: Request) -> Result<Submitted, StoreError>;

    /// Runs one command durably: [`Store::submit`], then its outcome.
    async fn execute(&self, request: Request) -> Result<Executed, StoreError> {
        self.submit(request)?.await
    }

    /// Whether the writer still takes commands: false once it has stopped for good, so the
    /// node's health check can say the bank cannot serve writes.
    fn is_writing(&self) -> bool;

    async fn login_record(&self, username: &str) -> Result<Option<LoginRecord>, StoreError>;
    /// The customer a live session token (by hash) belongs to, and when the session expires.
    async fn session(
        &self,
        token_hash: [u8; 32],
        now_ms: u64,
    ) -> Result<Option<SessionRecord>, StoreError>;
    async fn customer(&self, id: CustomerId) -> Result<Option<CustomerRecord>, StoreError>;
    /// The customer registered here with this document (bare CPF or CNPJ), if any.
    async fn customer_by_document(
        &self,
        document: &str,
    ) -> Result<Option<CustomerRecord>, StoreError>;
    /// Every account the customer holds here.
    async fn accounts_of(&self, id: CustomerId) -> Result<Vec<AccountRecord>, StoreError>;
    /// The account, only if `viewer` holds it.
    async fn account(
        &self,
        viewer: CustomerId,
        number: ledger::AccountNumber,
    ) -> Result<Option<AccountRecord>, StoreError>;
    /// A page of the account's statement, newest first, strictly older than `before`; `None` if
    /// `viewer` does not hold the account.
    async fn statement(
        &self,
        viewer: CustomerId,
        number: ledger::AccountNumber,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Option<Vec<EntryRecord>>, StoreError>;
    async fn pix_key(&self, key: &ledger::PixKey) -> Result<Option<PixKeyRecord>, StoreError>;
    /// Every key on accounts the customer holds.
    async fn pix_keys_of(&self, id: CustomerId) -> Result<Vec<PixKeyRecord>, StoreError>;
    /// A transfer or package by end-to-end id, only if `viewer` holds an account it touched.
    async fn payment(
        &self,
        viewer: CustomerId,
        e2e: &ledger::EndToEndId,
    ) -> Result<Option<Outcome>, StoreError>;
    /// Every local invariant checked over the whole ledger: a read of every row, so at most
    /// [`AUDITS_AT_ONCE_MAX`] run at once and a further one is [`StoreError::AuditInProgress`].
    async fn audit(&self) -> Result<AuditRecord, StoreError>;
    /// Each other bank's code and this bank's settlement position with it (positive: it owes
    /// this bank): a read of a few rows, unlike the audit.
    async fn settlement(&self) -> Result<Vec<(String, i64)>, StoreError>;
    /// Interbank work left unfinished (read at start-up).
    async fn open_interbank(&self) -> Result<OpenInterbank, StoreError>;
    /// The decision recorded for an interbank transaction this bank coordinated, if any, with
    /// the banks it was recorded for (its participants).
    async fn decision(
        &self,
        e2e: &ledger::EndToEndId,
    ) -> Result<Option<(bool, Vec<ledger::BankCode>)>, StoreError>;
    /// Whether a customer with this document (bare CPF or CNPJ) holds the account: how a bank
    /// checks a request another bank forwards on its customer's behalf.
    async fn held_by_document(
        &self,
        number: ledger::AccountNumber,
        document: &str,
    ) -> Result<bool, StoreError>;
    /// The joint-account invitations `id` received or sent, oldest first.
    async fn invitations_of(&self, id: CustomerId) -> Result<Vec<InvitationRecord>, StoreError>;
    /// Every customer, holding and Pix key here, as the consortium's directory records them: a
    /// read of those whole tables, made at start-up only.
    async fn directory_listing(&self) -> Result<DirectoryListing, StoreError>;
}
