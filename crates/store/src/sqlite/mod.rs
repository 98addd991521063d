//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`.
//!
//! One writer thread owns the only writing connection. Requests queue up for it; it takes as
//! many as are waiting (up to [`BATCH_MAX`]), runs each in its own savepoint inside one
//! transaction, commits once (one fsync for the whole batch: group commit), and only then
//! answers each request with its own outcome. Reads go to a small pool of reader connections,
//! which WAL lets run beside the writer.

mod apply;
mod interbank;
mod memo;
mod priority;
mod read;
mod schema;
mod vfs;

use crate::model::*;
use crate::{SharedClock, Store, StoreError, Submitted};
use apply::Ctx;
use async_trait::async_trait;
use ledger::{AccountNumber, BankCode, EndToEndId, PixKey, Stamp};
use memo::Memo;
use priority::Priority;
pub use priority::set_realtime_commits;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// The most commands one database transaction commits together.
pub const BATCH_MAX: usize = 1024;
/// The most commands waiting for the writer; beyond it requests are refused as overloaded.
pub const QUEUE_MAX: usize = 16 * 1024;
/// How long a batch in progress keeps taking the jobs that arrive while it runs, before it
/// commits what it has (the first job waits for every later one, so this bounds its delay).
const TOP_UP_FOR: std::time::Duration = std::time::Duration::from_millis(2);
/// The writer's page cache, in KiB (SQLite's negative `cache_size`).
const WRITER_CACHE_KIB: i64 = -65_536;
/// Reader connections kept open between reads.
const READERS_IDLE_MAX: usize = 8;

struct Job {
    request: Request,
    reply: oneshot::Sender<Result<Executed, StoreError>>,
}

/// A deposit's description that makes its command panic, once [`SqliteStore::arm_faults`] ran.
pub const FAULT_PANIC: &str = "fault: panic inside the command";
/// A deposit's description that stops the writer, once [`SqliteStore::arm_faults`] ran.
pub const FAULT_STOP: &str = "fault: stop the writer";

/// The fault a command asks for, if faults are armed (see [`SqliteStore::arm_faults`]).
fn fault(armed: &std::sync::atomic::AtomicBool, command: &Command) -> Option<&'static str> {
    if !armed.load(std::sync::atomic::Ordering::Relaxed) {
        return None;
    }
    match command {
        Command::Deposit { description, .. } if description == FAULT_PANIC => Some(FAULT_PANIC),
        Command::Deposit { description, .. } if description == FAULT_STOP => Some(FAULT_STOP),
        _ => None,
    }
}

/// Why a batch's transaction did not commit: the caller rolls it back either way.
#[derive(Debug, thiserror::Error)]
enum BatchFailure {
    #[error("database error: {0}")]
    Database(rusqlite::Error),
    #[error("panicked: {0}")]
    Panicked(String),
}

impl From<BatchFailure> for StoreError {
    fn from(failure: BatchFailure) -> StoreError {
        match failure {
            BatchFailure::Database(error) => StoreError::Database(error),
            BatchFailure::Panicked(message) => StoreError::Failed(message),
        }
    }
}

pub struct SqliteStore {
    bank: String,
    queue: mpsc::Sender<Job>,
    faults: Arc<std::sync::atomic::AtomicBool>,
    /// Permits for full-ledger audits ([`crate::AUDITS_AT_ONCE_MAX`]).
    audits: tokio::sync::Semaphore,
    readers: Arc<Readers>,
    clock: Arc<SharedClock>,
}

struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    /// Runs `f` on an idle reader, inside one read transaction: every query `f` makes sees the
    /// same committed state (without it each statement would see the newest, and a reading of
    /// several queries, the audit's say, could mix states the writer committed in between).
    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.idle.lock().expect("readers lock").pop();
        let conn = match conn {
            Some(conn) => conn,
            None => open_connection(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)?,
        };
        let result = conn.unchecked_transaction().and_then(|snapshot| {
            let value = f(&snapshot)?;
            snapshot.commit()?;
            Ok(value)
        });
        let mut idle = self.idle.lock().expect("readers lock");
        if idle.len() < READERS_IDLE_MAX {
            idle.push(conn);
        }
        Ok(result?)
    }
}

fn open_connection(path: &Path, flags: OpenFlags) -> rusqlite::Result<Connection> {
    configure(Connection::open_with_flags(
        path,
        flags | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?)
}

/// The writer's connection, through the `coalesce` VFS (`vfs.rs`): each commit's WAL frames
/// reach the file in one write instead of two per frame.
fn open_writer(path: &Path) -> rusqlite::Result<Connection> {
    vfs::register().map_err(|code| {
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            Some("cannot register the coalesce VFS".to_string()),
        )
    })?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    configure(Connection::open_with_flags_and_vfs(path, flags, vfs::NAME)?)
}

/// The settings every connection shares.
fn configure(conn: Connection) -> rusqlite::Result<Connection> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the bank's database at `path`, checks the
    /// ledger's invariants on what is there, and starts the writer. `peers` are the other banks,
    /// each of which gets a settlement account.
    pub fn open(
        path: &Path,
        bank: BankCode,
        peers: &[BankCode],
        clock: Arc<SharedClock>,
    ) -> Result<SqliteStore, StoreError> {
        let mut conn = open_writer(path)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt(format!(
                "could not switch {} to WAL (got {mode})",
                path.display()
            )));
        }
        schema::migrate(&mut conn)?;
        let peer_codes: Vec<String> = peers
            .iter()
            .filter(|p| **p != bank)
            .map(|p| p.to_string())
            .collect();
        schema::ensure_settlement_accounts(&conn, &peer_codes)?;
        let floor: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'clock'", [], |row| {
                row.get(0)
            })
            .optional()?;
        if let Some(floor) = floor.as_deref().and_then(Stamp::parse) {
            clock.advance_past(floor);
        }
        let report = read::audit(&conn, clock.last().to_string())?;
        if let Some(failed) = report.checks.iter().find(|check| !check.ok) {
            return Err(StoreError::Corrupt(format!(
                "{} failed on {}: {}",
                failed.name,
                path.display(),
                failed.detail
            )));
        }
        let vault: i64 =
            conn.query_row("SELECT id FROM accounts WHERE kind = 'vault'", [], |row| {
                row.get(0)
            })?;
        // The writer's page cache holds a whole batch's pages; checkpoints run on their own thread.
        conn.pragma_update(None, "cache_size", WRITER_CACHE_KIB)?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // Every reference the writer makes is to a row it has just read or written, so it does
        // not pay SQLite to look each one up again (three parents per statement entry) nor the
        // statement journal an UPDATE of a referencing column costs; the audit checks every
        // reference instead (`every_reference_resolves`), at start and on demand.
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        let (sender, receiver) = mpsc::channel(QUEUE_MAX);
        let faults = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = Writer {
            faults: faults.clone(),
            conn,
            bank: bank.to_string(),
            vault,
            clock: clock.clone(),
            memo: Memo::default(),
            checkpointer: Checkpointer::start(path, &bank.to_string())?,
        };
        std::thread::Builder::new()
            .name(format!("writer-{bank}"))
            .spawn(move || {
                let priority = Priority::for_this_thread(&writer.bank);
                writer.run(receiver, priority)
            })
            .map_err(|e| StoreError::Corrupt(format!("cannot start the writer thread: {e}")))?;
        let readers = Arc::new(Readers {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
        });
        Ok(SqliteStore {
            bank: bank.to_string(),
            queue: sender,
            faults,
            audits: tokio::sync::Semaphore::new(crate::AUDITS_AT_ONCE_MAX),
            readers,
            clock,
        })
    }

    /// Debug builds only (release builds ignore it): from now on a deposit described as
    /// [`FAULT_PANIC`] panics inside its command, and one described as [`FAULT_STOP`] stops the
    /// writer for good, as a bug would. The tests use it to check that a command that trips a bug
    /// fails alone, and that a stopped writer shows in the node's health.
    pub fn arm_faults(&self) {
        self.faults
            .store(cfg!(debug_assertions), std::sync::atomic::Ordering::Relaxed);
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || readers.with(f))
            .await
            .map_err(|_| StoreError::Closed)?
    }
}

struct Writer {
    faults: Arc<std::sync::atomic::AtomicBool>,
    conn: Connection,
    bank: String,
    vault: i64,
    clock: Arc<SharedClock>,
    memo: Memo,
    checkpointer: Checkpointer,
}

/// How often the checkpointer copies committed pages from the WAL back into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);
/// A WAL longer than this many frames (4 KiB each) is restarted from its beginning.
const WAL_RESTART_FRAMES: i64 = 4096;

/// Copies the WAL back into the database file on its own thread and connection, so a commit
/// rarely waits for a checkpoint (the writer's automatic checkpoints are off). A page changed by
/// many commits between two checkpoints is copied once.
///
/// A passive checkpoint never stops the writer, but under constant writes it never catches up
/// either, and SQLite only starts the WAL over once every frame is copied: the file would grow
/// without end. So when the WAL is long, the checkpointer asks the writer to finish the job
/// between two batches (copying the little the background checkpoint left), after which the
/// next commit starts the WAL from its beginning.
struct Checkpointer {
    wake: std::sync::mpsc::SyncSender<()>,
    long: Arc<std::sync::atomic::AtomicBool>,
}

impl Checkpointer {
    fn start(path: &Path, bank: &str) -> Result<Checkpointer, StoreError> {
        let conn = open_connection(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        let long = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let wal_long = long.clone();
        std::thread::Builder::new()
            .name(format!("checkpoint-{bank}"))
            .spawn(move || {
                // Each wake-up means "something was committed"; the thread ends with the writer.
                while woken.recv().is_ok() {
                    match passive_checkpoint(&conn) {
                        Ok(frames) if frames > WAL_RESTART_FRAMES => {
                            wal_long.store(true, std::sync::atomic::Ordering::Relaxed)
                        }
                        Ok(_) => {}
                        Err(error) => {
                            tracing::warn!(%error, "checkpoint failed; the WAL keeps the pages until the next one")
                        }
                    }
                    std::thread::sleep(CHECKPOINT_EVERY);
                }
                let _ = passive_checkpoint(&conn);
            })
            .map_err(|e| StoreError::Corrupt(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Checkpointer { wake, long })
    }

    /// Called by the writer after each commit, outside any transaction.
    fn committed(&self, conn: &Connection) {
        if self.long.swap(false, std::sync::atomic::Ordering::Relaxed)
            && let Err(error) = passive_checkpoint(conn)
        {
            tracing::warn!(%error, "the writer's checkpoint failed");
        }
        // Full means a wake-up is already waiting: nothing more to say.
        let _ = self.wake.try_send(());
    }
}

/// Copies what it can of the WAL into the database file without waiting for anyone; answers
/// how many frames the WAL holds.
fn passive_checkpoint(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
}

impl Writer {
    fn run(mut self, mut receiver: mpsc::Receiver<Job>, priority: Priority) {
        let mut batch = Vec::with_capacity(BATCH_MAX);
        while let Some(first) = receiver.blocking_recv() {
            batch.push(first);
            while batch.len() < BATCH_MAX {
                match receiver.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.commit_batch(&mut batch, &mut receiver, &priority);
        }
        tracing::info!(bank = %self.bank, "writer stopped: every queued command was answered");
    }

    /// Runs every job of the batch in one transaction, with the jobs that arrive meanwhile, and
    /// answers them after the commit. If the transaction fails, nothing of it is kept and each
    /// job is tried again alone, so one command that trips the database fails only its own
    /// request. From the commit's sync to its last answer the writer may run at real-time
    /// priority ([`priority`]); the checkpoint it may owe comes after the answers.
    fn commit_batch(
        &mut self,
        batch: &mut Vec<Job>,
        receiver: &mut mpsc::Receiver<Job>,
        priority: &Priority,
    ) {
        if batch
            .iter()
            .any(|job| fault(&self.faults, &job.request.command) == Some(FAULT_STOP))
        {
            panic!("{FAULT_STOP}");
        }
        let results = match self.run_guarded(batch, Some(receiver), priority) {
            Ok(results) => results,
            Err(error) if batch.len() > 1 => {
                priority.lower();
                tracing::warn!(%error, size = batch.len(), "batch failed; trying its commands one by one");
                self.rollback();
                let mut results = Vec::with_capacity(batch.len());
                for job in std::mem::take(batch) {
                    let mut alone = vec![job];
                    let ran = self.run_guarded(&mut alone, None, priority);
                    priority.lower();
                    results.push(match ran {
                        Ok(mut one) => one.pop().expect("one result per job"),
                        Err(error) => {
                            tracing::error!(%error, "command failed; nothing of it was committed");
                            self.rollback();
                            Err(error.into())
                        }
                    });
                    batch.extend(alone);
                }
                results
            }
            Err(error) => {
                priority.lower();
                tracing::error!(%error, "command failed; nothing of it was committed");
                self.rollback();
                vec![Err(error.into())]
            }
        };
        for (job, result) in batch.drain(..).zip(results) {
            let _ = job.reply.send(result);
        }
        priority.lower();
        self.checkpointer.committed(&self.conn);
    }

    /// [`Writer::run_batch`], with a panic inside it (a bug a command tripped: an assertion of
    /// the ledger's invariants, say) caught and returned as the batch's failure, so the caller
    /// rolls the transaction back and the writer lives on to answer every later command. The
    /// writer's state is its connection, whose transaction the caller rolls back, and its memo,
    /// which the rollback forgets: nothing a panic interrupted survives it.
    fn run_guarded(
        &mut self,
        batch: &mut Vec<Job>,
        more: Option<&mut mpsc::Receiver<Job>>,
        priority: &Priority,
    ) -> Result<Vec<Result<Executed, StoreError>>, BatchFailure> {
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.run_batch(batch, more, priority)
        }));
        match ran {
            Ok(result) => result.map_err(BatchFailure::Database),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into());
                Err(BatchFailure::Panicked(message))
            }
        }
    }

    fn rollback(&mut self) {
        self.memo.forget();
        if let Err(error) = self.conn.execute_batch("ROLLBACK") {
            tracing::error!(%error, "rollback failed");
        }
    }

    /// Every database error fails the whole transaction: the caller rolls it back. With `more`,
    /// the jobs that arrived while the batch ran join it (up to [`BATCH_MAX`], for at most
    /// [`TOP_UP_FOR`]), so the commit comes once the queue is empty: commits are fewer and larger
    /// under load, and each one rewrites a table's last pages once for all of its commands.
    fn run_batch(
        &mut self,
        batch: &mut Vec<Job>,
        mut more: Option<&mut mpsc::Receiver<Job>>,
        priority: &Priority,
    ) -> rusqlite::Result<Vec<Result<Executed, StoreError>>> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let opened = std::time::Instant::now();
        let mut results = Vec::with_capacity(batch.len());
        let hot = apply::Hot::new(&self.conn);
        loop {
            while results.len() < batch.len() {
                let job = &batch[results.len()];
                results.push(self.run_one(&job.request, &hot)?);
            }
            let Some(receiver) = more.as_deref_mut() else {
                break;
            };
            if opened.elapsed() >= TOP_UP_FOR {
                break;
            }
            while batch.len() < BATCH_MAX {
                match receiver.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            if results.len() == batch.len() {
                break;
            }
        }
        drop(hot);
        let last = self.clock.last().to_string();
        self.conn
            .prepare_cached("INSERT INTO meta (key, value) VALUES ('clock', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value")?
            .execute(params![last])?;
        if cfg!(debug_assertions) {
            // Debug builds (every test) re-check invariant 1 on the whole ledger each commit
            // leaves, before the commit's real-time part.
            let totals = read::totals(&self.conn)?;
            assert_eq!(
                totals.debits_posted, totals.credits_posted,
                "posted debits equal posted credits"
            );
            assert_eq!(
                totals.debits_pending, totals.credits_pending,
                "pending debits equal pending credits"
            );
        }
        priority.arm(results.len());
        self.conn.execute_batch("COMMIT")?;
        Ok(results)
    }

    fn run_one(
        &self,
        request: &Request,
        hot: &apply::Hot,
    ) -> rusqlite::Result<Result<Executed, StoreError>> {
        let conn = &self.conn;
        if let Some(idempotency) = &request.idempotency {
            let stored: Option<(Vec<u8>, Option<String>, Option<i64>)> = hot
                .statement(
                    "SELECT i.fingerprint, coalesce(i.outcome, p.body), coalesce(p.entry, e.id) FROM idempotency i
                     LEFT JOIN payments p ON p.e2e_id = i.payment
                     LEFT JOIN entries e ON e.e2e_id = i.payment AND e.other_account_id IS NOT NULL
                     WHERE i.key = ?2 AND i.scope = ?1",
                )?
                .borrow_mut()
                .query_row(params![idempotency.scope, idempotency.key], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .optional()?;
            if let Some((fingerprint, body, entry)) = stored {
                if !idempotency.matches(&fingerprint) {
                    return Ok(Err(StoreError::IdempotencyKeyReused));
                }
                return Ok(read::stored_outcome(conn, &self.bank, body, entry)?
                    .map(|outcome| Executed {
                        outcome,
                        replayed: true,
                    })
                    .map_err(|e| StoreError::Corrupt(format!("stored outcome: {e}"))));
            }
        }
        if fault(&self.faults, &request.command) == Some(FAULT_PANIC) {
            panic!("{FAULT_PANIC}");
        }
        let stamp = self.clock.tick();
        let ctx = Ctx {
            bank: &self.bank,
            vault: self.vault,
            stamp,
            clock: stamp.to_string(),
            delta: Cell::new(Totals::default()),
            memo: &self.memo,
            hot,
        };
        let command = &request.command;
        let applied = if apply::writes_only_when_done(command) {
            apply::apply(conn, &ctx, command)
        } else {
            apply::in_savepoint(&ctx, || apply::apply(conn, &ctx, command))
        };
        let applied = applied?;
        // Every account the command changed gets its row written once, now.
        self.memo.flush(hot)?;
        let outcome = match applied {
            Ok(outcome) => outcome,
            Err(refusal) => Outcome::Refused(refusal),
        };
        let delta = ctx.delta.get();
        assert_eq!(
            delta.debits_posted, delta.credits_posted,
            "a command moved posted money on one side only: {request:?}"
        );
        assert_eq!(
            delta.debits_pending, delta.credits_pending,
            "a command moved pending money on one side only: {request:?}"
        );
        if let Some(idempotency) = &request.idempotency {
            let payment = apply::recorded_payment(command, &outcome);
            let body = payment
                .is_none()
                .then(|| serde_json::to_string(&outcome).expect("outcomes serialise"));
            // An outcome copied here that waits on a decision is settled by it (a package's).
            let pending = match &outcome {
                Outcome::Package(package) if package.status == PaymentStatus::Pending => {
                    Some(package.e2e_id.clone())
                }
                _ => None,
            };
            hot.statement("INSERT INTO idempotency (scope, key, fingerprint, outcome, payment, clock, pending_e2e) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?
                .borrow_mut()
                .execute(params![idempotency.scope, idempotency.key, &idempotency.fingerprint[..], body, payment, ctx.clock, pending])?;
        }
        Ok(Ok(Executed {
            outcome,
            replayed: false,
        }))
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn is_writing(&self) -> bool {
        !self.queue.is_closed()
    }

    /// The writer takes jobs from one queue, first in first out.
    fn submit(&self, request: Request) -> Result<Submitted, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .try_send(Job { request, reply })
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => StoreError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => StoreError::Closed,
            })?;
        Ok(Box::pin(async move {
            answer.await.map_err(|_| StoreError::Closed)?
        }))
    }

    async fn login_record(&self, username: &str) -> Result<Option<LoginRecord>, StoreError> {
        let username = username.to_string();
        self.read(move |conn| read::login_record(conn, &username))
            .await
    }

    async fn session(
        &self,
        token_hash: [u8; 32],
        now_ms: u64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.read(move |conn| read::session(conn, &token_hash, now_ms))
            .await
    }

    async fn customer(&self, id: CustomerId) -> Result<Option<CustomerRecord>, StoreError> {
        self.read(move |conn| read::customer(conn, id)).await
    }

    async fn customer_by_document(
        &self,
        document: &str,
    ) -> Result<Option<CustomerRecord>, StoreError> {
        let document = document.to_string();
        self.read(move |conn| read::customer_by_document(conn, &document))
            .await
    }

    async fn accounts_of(&self, id: CustomerId) -> Result<Vec<AccountRecord>, StoreError> {
        let bank = self.bank.clone();
        self.read(move |conn| read::accounts_of(conn, &bank, id))
            .await
    }

    async fn account(
        &self,
        viewer: CustomerId,
        number: AccountNumber,
    ) -> Result<Option<AccountRecord>, StoreError> {
        let bank = self.bank.clone();
        self.read(move |conn| read::account(conn, &bank, viewer, number))
            .await
    }

    async fn statement(
        &self,
        viewer: CustomerId,
        number: AccountNumber,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Option<Vec<EntryRecord>>, StoreError> {
        let bank = self.bank.clone();
        self.read(move |conn| read::statement(conn, &bank, viewer, number, before, limit))
            .await
    }

    async fn pix_key(&self, key: &PixKey) -> Result<Option<PixKeyRecord>, StoreError> {
        let (bank, key) = (self.bank.clone(), key.as_str().to_string());
        self.read(move |conn| read::pix_key(conn, &bank, &key))
            .await
    }

    async fn invitations_of(&self, id: CustomerId) -> Result<Vec<InvitationRecord>, StoreError> {
        let bank = self.bank.clone();
        self.read(move |conn| read::invitations_of(conn, &bank, id))
            .await
    }

    async fn directory_listing(&self) -> Result<DirectoryListing, StoreError> {
        self.read(read::directory_listing).await
    }

    async fn pix_keys_of(&self, id: CustomerId) -> Result<Vec<PixKeyRecord>, StoreError> {
        let bank = self.bank.clone();
        self.read(move |conn| read::pix_keys_of(conn, &bank, id))
            .await
    }

    async fn payment(
        &self,
        viewer: CustomerId,
        e2e: &EndToEndId,
    ) -> Result<Option<Outcome>, StoreError> {
        let (bank, e2e) = (self.bank.clone(), e2e.as_str().to_string());
        self.read(move |conn| read::payment(conn, &bank, viewer, &e2e))
            .await?
            .map(|stored| stored.map_err(|e| StoreError::Corrupt(format!("stored payment: {e}"))))
            .transpose()
    }

    async fn open_interbank(&self) -> Result<OpenInterbank, StoreError> {
        self.read(interbank::open_work).await
    }

    async fn decision(
        &self,
        e2e: &EndToEndId,
    ) -> Result<Option<(bool, Vec<BankCode>)>, StoreError> {
        let e2e = e2e.as_str().to_string();
        self.read(move |conn| interbank::decision(conn, &e2e)).await
    }

    async fn held_by_document(
        &self,
        number: AccountNumber,
        document: &str,
    ) -> Result<bool, StoreError> {
        let document = document.to_string();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM accounts a JOIN account_holders h ON h.account_id = a.id
                 JOIN customers c ON c.id = h.customer_id WHERE a.number = ?1 AND c.document = ?2)",
            )?
            .query_row(rusqlite::params![number.base() as i64, document], |row| row.get(0))
        })
        .await
    }

    async fn audit(&self) -> Result<AuditRecord, StoreError> {
        let _running = self
            .audits
            .try_acquire()
            .map_err(|_| StoreError::AuditInProgress)?;
        let clock = self.clock.last().to_string();
        self.read(move |conn| read::audit(conn, clock)).await
    }

    async fn settlement(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.read(read::settlement).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full-ledger audit reads every row: while one runs, another is refused at once rather
    /// than piling up beside it.
    #[tokio::test]
    async fn audits_run_one_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(
            &dir.path().join("ledger.db"),
            BankCode::parse("10000001").unwrap(),
            &[],
            Arc::new(SharedClock::default()),
        )
        .unwrap();
        let running = store.audits.try_acquire().unwrap();
        assert!(matches!(
            store.audit().await,
            Err(StoreError::AuditInProgress)
        ));
        drop(running);
        assert!(store.audit().await.unwrap().ok());
    }

    #[test]
    fn a_reading_sees_one_snapshot_while_the_writer_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snapshot.db");
        let writer = open_connection(&path, OpenFlags::default()).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1);",
            )
            .unwrap();
        let readers = Readers {
            path: path.clone(),
            idle: Mutex::new(Vec::new()),
        };
        let count = |conn: &Connection| -> rusqlite::Result<i64> {
            conn.query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))
        };
        let (before, after) = readers
            .with(|conn| {
                let before = count(conn)?;
                writer.execute("INSERT INTO t VALUES (2)", []).unwrap();
                Ok((before, count(conn)?))
            })
            .unwrap();
        assert_eq!(
            (before, after),
            (1, 1),
            "the second query saw the same state"
        );
        assert_eq!(
            readers.with(count).unwrap(),
            2,
            "the next reading sees the commit"
        );
    }
}
