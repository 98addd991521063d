//! [`PgStore`]: the [`Store`] of a bank whose ledger is a PostgreSQL database. Commands go to
//! the generic writer over a [`super::PgBackend`]; reads run on a small pool of blocking
//! connections, each read in one `REPEATABLE READ` transaction so it sees one committed state.

use super::read;
use crate::model::*;
use crate::{SharedClock, Store, StoreError, Submitted};
use async_trait::async_trait;
use ledger::{AccountNumber, BankCode, EndToEndId, PixKey, Stamp};
use std::sync::{Arc, Mutex};

/// Reader threads, each with its own connection: the blocking client may not run on a tokio
/// thread (not even a blocking-pool one, which is inside the runtime), so reads are handed to
/// threads of their own.
const READERS: usize = 4;

/// What takes the store's commands: the writer thread over a [`super::PgBackend`].
pub trait Writes: Send + Sync + 'static {
    fn submit(&self, request: Request) -> Result<Submitted, StoreError>;
    fn is_writing(&self) -> bool;
}

type ReadJob = Box<dyn FnOnce(&mut Option<postgres::Client>) + Send>;

/// The reader threads and the queue they take reads from.
struct Readers {
    jobs: Mutex<std::sync::mpsc::Sender<ReadJob>>,
}

impl Readers {
    fn start(bank: &str) -> Result<Readers, StoreError> {
        let (jobs, queue) = std::sync::mpsc::channel::<ReadJob>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..READERS {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("pg-reader-{bank}-{n}"))
                .spawn(move || {
                    let mut client: Option<postgres::Client> = None;
                    loop {
                        let job = match queue.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                            Ok(job) => job,
                            // The store is gone.
                            Err(_) => return,
                        };
                        job(&mut client);
                    }
                })
                .map_err(|e| StoreError::Corrupt(format!("cannot start a reader thread: {e}")))?;
        }
        Ok(Readers {
            jobs: Mutex::new(jobs),
        })
    }
}

/// Runs `f` on `client` (connected from `config` if it is not) inside one read-only REPEATABLE
/// READ transaction: every query of one read sees the same committed state.
fn read_on<T>(
    config: &postgres::Config,
    client: &mut Option<postgres::Client>,
    f: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<T, postgres::Error>,
) -> Result<T, StoreError> {
    if client.as_ref().is_none_or(|c| c.is_closed()) {
        *client = Some(config.connect(postgres::NoTls)?);
    }
    let Some(connected) = client.as_mut() else {
        return Err(StoreError::Closed);
    };
    let result = connected
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .and_then(|mut snapshot| {
            let value = f(&mut snapshot)?;
            snapshot.commit()?;
            Ok(value)
        });
    Ok(result?)
}

/// A bank's store on PostgreSQL.
pub struct PgStore<W: Writes> {
    bank: String,
    writer: W,
    readers: Readers,
    read_config: postgres::Config,
    audits: tokio::sync::Semaphore,
    clock: Arc<SharedClock>,
}

/// What [`prepare`] found: the vault's row id, for the writer.
pub struct Prepared {
    pub vault: i64,
}

/// Brings the database to the newest schema (whichever process of the bank comes first), gives
/// each peer bank its settlement account, moves `clock` past the last stamp stored, and checks
/// the ledger's invariants on what is there: a bank does not start on a ledger that fails its
/// audit.
pub async fn prepare(
    config: &tokio_postgres::Config,
    bank: BankCode,
    peers: &[BankCode],
    clock: &SharedClock,
) -> Result<Prepared, StoreError> {
    let mut client = super::connect(config).await?;
    super::migrate(&mut client)
        .await
        .map_err(StoreError::Corrupt)?;
    for peer in peers.iter().filter(|p| **p != bank) {
        client
            .execute(
                "INSERT INTO accounts (kind, peer_bank, clock) VALUES ('settlement', $1, '0.0')
                 ON CONFLICT (peer_bank) DO NOTHING",
                &[&peer.as_str()],
            )
            .await?;
    }
    let floor: Option<String> = client
        .query_opt("SELECT value FROM meta WHERE key = 'clock'", &[])
        .await?
        .map(|row| row.get(0));
    if let Some(floor) = floor.as_deref().and_then(Stamp::parse) {
        clock.advance_past(floor);
    }
    let vault: i64 = client
        .query_one("SELECT id FROM accounts WHERE kind = 'vault'", &[])
        .await?
        .get(0);
    Ok(Prepared { vault })
}

impl<W: Writes> PgStore<W> {
    /// The store over `writer`, reading through connections made from `config`. Checks the
    /// ledger's invariants first (see [`prepare`], which must have run).
    pub async fn start(
        config: &tokio_postgres::Config,
        bank: BankCode,
        clock: Arc<SharedClock>,
        writer: W,
    ) -> Result<PgStore<W>, StoreError> {
        let store = PgStore {
            bank: bank.to_string(),
            writer,
            readers: Readers::start(&bank.to_string())?,
            read_config: config.clone().into(),
            audits: tokio::sync::Semaphore::new(crate::AUDITS_AT_ONCE_MAX),
            clock,
        };
        let report = store.audit().await?;
        if let Some(failed) = report.checks.iter().find(|check| !check.ok) {
            return Err(StoreError::Corrupt(format!(
                "{} failed on the PostgreSQL ledger: {}",
                failed.name, failed.detail
            )));
        }
        Ok(store)
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<T, postgres::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let config = self.read_config.clone();
        let job: ReadJob = Box::new(move |client| {
            let _ = reply.send(read_on(&config, client, f));
        });
        self.readers
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job)
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

#[async_trait]
impl<W: Writes> Store for PgStore<W> {
    fn submit(&self, request: Request) -> Result<Submitted, StoreError> {
        self.writer.submit(request)
    }

    fn is_writing(&self) -> bool {
        self.writer.is_writing()
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

    async fn audit(&self) -> Result<AuditRecord, StoreError> {
        let _running = self
            .audits
            .try_acquire()
            .map_err(|_| StoreError::AuditInProgress)?;
        let clock = self.clock.last().to_string();
        self.read(move |conn| read::audit(conn, clock)).await
    }

    async fn settlement(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.read(|conn| read::settlement(conn)).await
    }

    async fn open_interbank(&self) -> Result<OpenInterbank, StoreError> {
        self.read(|conn| read::open_work(conn)).await
    }

    async fn decision(
        &self,
        e2e: &EndToEndId,
    ) -> Result<Option<(bool, Vec<BankCode>)>, StoreError> {
        let e2e = e2e.as_str().to_string();
        self.read(move |conn| read::decision(conn, &e2e)).await
    }

    async fn held_by_document(
        &self,
        number: AccountNumber,
        document: &str,
    ) -> Result<bool, StoreError> {
        let document = document.to_string();
        self.read(move |conn| read::held_by_document(conn, number, &document))
            .await
    }

    async fn invitations_of(&self, id: CustomerId) -> Result<Vec<InvitationRecord>, StoreError> {
        let bank = self.bank.clone();
        self.read(move |conn| read::invitations_of(conn, &bank, id))
            .await
    }

    async fn directory_listing(&self) -> Result<DirectoryListing, StoreError> {
        self.read(|conn| read::directory_listing(conn)).await
    }
}

impl Writes for crate::writer::WriterHandle {
    fn submit(&self, request: Request) -> Result<Submitted, StoreError> {
        crate::writer::WriterHandle::submit(self, request)
    }

    fn is_writing(&self) -> bool {
        crate::writer::WriterHandle::is_writing(self)
    }
}

/// A bank's store on the PostgreSQL database at `url`, with the generic writer over a
/// [`super::PgBackend`].
pub type PgLedger = PgStore<crate::writer::WriterHandle>;

/// Opens the bank's ledger in the database at `url` (a `postgres://` URL): migrates it if this
/// process comes first, checks its invariants, and starts the writer. `peers` are the other
/// banks, each of which gets a settlement account. Several processes of one bank may open the
/// same database.
pub async fn open(
    url: &str,
    bank: BankCode,
    peers: &[BankCode],
    clock: Arc<SharedClock>,
) -> Result<PgLedger, StoreError> {
    let config = super::connect_config(url).map_err(StoreError::Corrupt)?;
    let prepared = prepare(&config, bank, peers, &clock).await?;
    // The blocking client connects off the runtime's threads.
    let (connected, backend) = tokio::sync::oneshot::channel();
    let writer_config = config.clone();
    std::thread::spawn(move || {
        let _ = connected.send(super::PgBackend::connect(&writer_config));
    });
    let backend = backend.await.map_err(|_| StoreError::Closed)??;
    let writer = crate::writer::spawn(backend, bank, prepared.vault, clock.clone())?;
    PgStore::start(&config, bank, clock, writer).await
}

impl PgLedger {
    /// Debug builds only: see [`crate::writer::WriterHandle::arm_faults`].
    pub fn arm_faults(&self) {
        self.writer.arm_faults();
    }
}
