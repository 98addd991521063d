//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`, written by the
//! generic writer ([`crate::writer`]) through [`SqliteBackend`], the only writing connection
//! (its rows: `tx.rs`). Reads go to a small pool of reader connections, which WAL lets run
//! beside the writer.

mod interbank;
mod priority;
mod read;
mod schema;
mod tx;
mod vfs;

use crate::model::*;
use crate::writer::WriterHandle;
use crate::{SharedClock, Store, StoreError, Submitted};
use async_trait::async_trait;
use ledger::{AccountNumber, BankCode, EndToEndId, PixKey, Stamp};
use priority::Priority;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
pub use tx::SqliteTx;

pub use crate::writer::{BATCH_MAX, FAULT_PANIC, FAULT_STOP, QUEUE_MAX};

/// The writer's page cache, in KiB (SQLite's negative `cache_size`).
const WRITER_CACHE_KIB: i64 = -65_536;
/// Reader connections kept open between reads.
const READERS_IDLE_MAX: usize = 8;

/// The SQLite backend's own tuning of its writer, each part off unless asked for
/// (`bankd --sqlite-tuning`; BENCHMARKS.md measures them). None changes what is durable when.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SqliteTuning {
    /// The writer's connection goes through the `coalesce` VFS (`vfs.rs`): each commit's WAL
    /// frames reach the file in one write instead of two per frame.
    pub coalesce_vfs: bool,
    /// From a commit's sync until its last answer the writer runs at real-time priority, when
    /// the process may (`priority.rs`). Works through the `coalesce` VFS's sync hook, so it opens
    /// the writer through that VFS too.
    pub realtime_commits: bool,
    /// The writer's hot statements are taken from the statement cache once per batch instead
    /// of once per use (`tx.rs`, `Hot`).
    pub batch_statements: bool,
}

impl SqliteTuning {
    /// Every part on.
    pub const ALL: SqliteTuning = SqliteTuning {
        coalesce_vfs: true,
        realtime_commits: true,
        batch_statements: true,
    };

    /// Reads `none`, `all`, or a comma-separated list of `vfs`, `realtime` and `statements`.
    pub fn parse(text: &str) -> Option<SqliteTuning> {
        let mut tuning = SqliteTuning::default();
        for part in text.split(',').map(str::trim) {
            match part {
                "none" => {}
                "all" => tuning = SqliteTuning::ALL,
                "vfs" => tuning.coalesce_vfs = true,
                "realtime" => tuning.realtime_commits = true,
                "statements" => tuning.batch_statements = true,
                _ => return None,
            }
        }
        Some(tuning)
    }

    fn bits(self) -> u8 {
        u8::from(self.coalesce_vfs)
            | u8::from(self.realtime_commits) << 1
            | u8::from(self.batch_statements) << 2
    }

    fn from_bits(bits: u8) -> SqliteTuning {
        SqliteTuning {
            coalesce_vfs: bits & 1 != 0,
            realtime_commits: bits & 2 != 0,
            batch_statements: bits & 4 != 0,
        }
    }
}

/// The tuning of stores opened by [`SqliteStore::open`] from now on (none unless set).
static TUNING: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Chooses the tuning of the SQLite stores this process opens from now on with
/// [`SqliteStore::open`] (`bankd --sqlite-tuning`, and `bank bench` for the banks it starts).
pub fn set_tuning(tuning: SqliteTuning) {
    TUNING.store(tuning.bits(), std::sync::atomic::Ordering::Relaxed);
}

pub struct SqliteStore {
    bank: String,
    writer: WriterHandle,
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

/// The writer's connection, through the `coalesce` VFS (`vfs.rs`) when tuned so: each commit's
/// WAL frames reach the file in one write instead of two per frame.
fn open_writer(path: &Path, tuning: SqliteTuning) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if !(tuning.coalesce_vfs || tuning.realtime_commits) {
        return configure(Connection::open_with_flags(path, flags)?);
    }
    vfs::register().map_err(|code| {
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            Some("cannot register the coalesce VFS".to_string()),
        )
    })?;
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
    /// each of which gets a settlement account. Tuned as [`set_tuning`] last chose.
    pub fn open(
        path: &Path,
        bank: BankCode,
        peers: &[BankCode],
        clock: Arc<SharedClock>,
    ) -> Result<SqliteStore, StoreError> {
        let tuning = SqliteTuning::from_bits(TUNING.load(std::sync::atomic::Ordering::Relaxed));
        SqliteStore::open_tuned(path, bank, peers, clock, tuning)
    }

    /// [`SqliteStore::open`] with this tuning.
    pub fn open_tuned(
        path: &Path,
        bank: BankCode,
        peers: &[BankCode],
        clock: Arc<SharedClock>,
        tuning: SqliteTuning,
    ) -> Result<SqliteStore, StoreError> {
        let mut conn = open_writer(path, tuning)?;
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
        let backend = SqliteBackend {
            conn,
            tuning,
            priority: None,
            checkpointer: Checkpointer::start(path, &bank.to_string())?,
        };
        let writer = crate::writer::spawn(backend, bank, vault, clock.clone())?;
        let readers = Arc::new(Readers {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
        });
        Ok(SqliteStore {
            bank: bank.to_string(),
            writer,
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
        self.writer.arm_faults();
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

/// The writer's side of the SQLite file: its connection, its tuning, and the checkpointer it
/// wakes after each batch.
struct SqliteBackend {
    conn: Connection,
    tuning: SqliteTuning,
    /// Set on the writer's thread ([`Backend::on_writer_thread`]).
    priority: Option<Priority>,
    checkpointer: Checkpointer,
}

impl crate::tx::Backend for SqliteBackend {
    type Error = rusqlite::Error;
    type Tx<'b> = SqliteTx<'b>;

    fn on_writer_thread(&mut self, bank: &str) {
        self.priority = Some(Priority::for_this_thread(
            bank,
            self.tuning.realtime_commits,
        ));
    }

    fn begin(&mut self) -> rusqlite::Result<SqliteTx<'_>> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(SqliteTx {
            conn: &self.conn,
            hot: tx::Hot::new(&self.conn, self.tuning.batch_statements),
            priority: self.priority.as_ref(),
        })
    }

    fn rollback(&mut self) -> rusqlite::Result<()> {
        self.conn.execute_batch("ROLLBACK")
    }

    /// From the commit's sync to its last answer the writer may run at real-time priority
    /// ([`priority`]); a failed batch or a command retried alone goes back to normal.
    fn settle(&mut self) {
        if let Some(priority) = &self.priority {
            priority.lower();
        }
    }

    /// Normal priority again, then the checkpoint the writer may owe.
    fn after_answers(&mut self) {
        self.settle();
        self.checkpointer.committed(&self.conn);
    }
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

#[async_trait]
impl Store for SqliteStore {
    fn is_writing(&self) -> bool {
        self.writer.is_writing()
    }

    /// The writer takes jobs from one queue, first in first out.
    fn submit(&self, request: Request) -> Result<Submitted, StoreError> {
        self.writer.submit(request)
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

    /// SQLite's backend as another backend may behave: failing to begin a few times with an error
    /// it calls retryable (a serialization failure, say), and sharing its database with other
    /// writers (`exclusive` false).
    struct Shared {
        inner: SqliteBackend,
        fail_begins: usize,
        exclusive: bool,
    }

    fn busy() -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            Some("test: try again".into()),
        )
    }

    impl crate::tx::Backend for Shared {
        type Error = rusqlite::Error;
        type Tx<'b> = SqliteTx<'b>;

        fn begin(&mut self) -> rusqlite::Result<SqliteTx<'_>> {
            if self.fail_begins > 0 {
                self.fail_begins -= 1;
                return Err(busy());
            }
            self.inner.begin()
        }

        fn rollback(&mut self) -> rusqlite::Result<()> {
            self.inner.rollback()
        }

        fn exclusive(&self) -> bool {
            self.exclusive
        }

        fn retryable(&self, error: &rusqlite::Error) -> bool {
            error.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
        }
    }

    /// A bank with one customer holding one account of R$ 50,00, closed again; answers its
    /// file, the customer and the account.
    async fn closed_bank(dir: &Path) -> (PathBuf, CustomerId, AccountNumber) {
        let path = dir.join("ledger.db");
        let store = SqliteStore::open(
            &path,
            BankCode::parse("10000001").unwrap(),
            &[],
            Arc::new(SharedClock::default()),
        )
        .unwrap();
        let run = |command| {
            store.execute(Request {
                command,
                idempotency: None,
            })
        };
        let Outcome::Customer(ana) = run(Command::RegisterCustomer {
            public_id: "p".into(),
            name: "Ana".into(),
            document: ledger::Document::parse("529.982.247-25").unwrap(),
            username: "ana".into(),
            password_hash: "h".into(),
        })
        .await
        .unwrap()
        .outcome
        else {
            panic!("not registered")
        };
        let Outcome::Account(account) = run(Command::OpenAccount {
            actor: ana.id,
            kind: ledger::AccountKind::Individual,
            co_holders: vec![],
            opening_deposit: ledger::Amount::from_cents(5_000).unwrap(),
            e2e: e2e(0),
        })
        .await
        .unwrap()
        .outcome
        else {
            panic!("not opened")
        };
        drop(store);
        // The writer lets go of the file once its queue's last handle is gone.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        (path, ana.id, AccountNumber::parse(&account.number).unwrap())
    }

    fn e2e(serial: u64) -> EndToEndId {
        EndToEndId::sequenced(BankCode::parse("10000001").unwrap(), "202612070000", serial)
    }

    fn shared_writer(path: &Path, fail_begins: usize, exclusive: bool) -> WriterHandle {
        let conn = open_writer(path, SqliteTuning::default()).unwrap();
        let vault: i64 = conn
            .query_row("SELECT id FROM accounts WHERE kind = 'vault'", [], |row| {
                row.get(0)
            })
            .unwrap();
        let backend = Shared {
            inner: SqliteBackend {
                conn,
                tuning: SqliteTuning::default(),
                priority: None,
                checkpointer: Checkpointer::start(path, "10000001").unwrap(),
            },
            fail_begins,
            exclusive,
        };
        crate::writer::spawn(
            backend,
            BankCode::parse("10000001").unwrap(),
            vault,
            Arc::new(SharedClock::default()),
        )
        .unwrap()
    }

    async fn deposit(
        writer: &WriterHandle,
        actor: CustomerId,
        account: AccountNumber,
        serial: u64,
    ) -> Result<Executed, StoreError> {
        writer
            .submit(Request {
                command: Command::Deposit {
                    actor,
                    account,
                    amount: ledger::Amount::from_cents(100).unwrap(),
                    description: String::new(),
                    e2e: e2e(serial),
                },
                idempotency: None,
            })?
            .await
    }

    /// A batch that fails with an error its backend calls retryable is run again, up to
    /// `BATCH_RETRIES_MAX` times, before it fails.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_retryable_failure_runs_the_batch_again() {
        let dir = tempfile::tempdir().unwrap();
        let (path, ana, account) = closed_bank(dir.path()).await;
        let writer = shared_writer(&path, crate::writer::BATCH_RETRIES_MAX, true);
        let done = deposit(&writer, ana, account, 1).await.unwrap();
        assert!(matches!(done.outcome, Outcome::Entry(ref e) if e.balance_after_cents == 5_100));
        drop(writer);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let writer = shared_writer(&path, crate::writer::BATCH_RETRIES_MAX + 1, true);
        let failed = deposit(&writer, ana, account, 2).await;
        assert!(
            matches!(&failed, Err(StoreError::Database(error)) if error.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)),
            "{failed:?}"
        );
        let again = deposit(&writer, ana, account, 3).await.unwrap();
        assert!(matches!(again.outcome, Outcome::Entry(ref e) if e.balance_after_cents == 5_200));
    }

    /// A writer that shares its database (`exclusive` false) reads every account again in each
    /// transaction: money another process moved in between counts. (An exclusive writer keeps
    /// what it read, which is exact only while it is the one writer.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shared_writer_reads_what_another_process_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let (path, ana, account) = closed_bank(dir.path()).await;
        let writer = shared_writer(&path, 0, false);
        let first = deposit(&writer, ana, account, 1).await.unwrap();
        assert!(matches!(first.outcome, Outcome::Entry(ref e) if e.balance_after_cents == 5_100));
        // Another process deposits R$ 10,00 (both sides, so the ledger still balances).
        let other = Connection::open(&path).unwrap();
        other
            .execute_batch(&format!(
                "BEGIN IMMEDIATE;
                 UPDATE accounts SET credits_posted = credits_posted + 1000 WHERE number = {};
                 UPDATE accounts SET debits_posted = debits_posted + 1000 WHERE kind = 'vault';
                 COMMIT;",
                account.base()
            ))
            .unwrap();
        let second = deposit(&writer, ana, account, 2).await.unwrap();
        assert!(
            matches!(second.outcome, Outcome::Entry(ref e) if e.balance_after_cents == 6_200),
            "{second:?}"
        );
    }

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

    /// `bankd --sqlite-tuning` reads parts by name, `all` and `none`; anything else is refused.
    #[test]
    fn tuning_reads_its_parts_by_name() {
        assert_eq!(SqliteTuning::parse("none"), Some(SqliteTuning::default()));
        assert_eq!(SqliteTuning::parse("all"), Some(SqliteTuning::ALL));
        assert_eq!(
            SqliteTuning::parse("vfs, statements"),
            Some(SqliteTuning {
                coalesce_vfs: true,
                realtime_commits: false,
                batch_statements: true,
            })
        );
        for bad in ["", "fast", "vfs,", "all,turbo"] {
            assert_eq!(SqliteTuning::parse(bad), None, "{bad:?}");
        }
        for tuning in [SqliteTuning::default(), SqliteTuning::ALL] {
            assert_eq!(SqliteTuning::from_bits(tuning.bits()), tuning);
        }
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
