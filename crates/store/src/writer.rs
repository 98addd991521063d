//! The writer, for any [`Backend`]: one thread owns the backend's writing side. Requests queue
//! up for it; it takes as many as are waiting (up to [`BATCH_MAX`]), runs each in turn inside
//! one transaction (a refused one undone by its savepoint), commits once (one sync for the whole
//! batch: group commit), and only then answers each request with its own outcome.
//!
//! Around the rules ([`crate::rules::apply`]) it keeps the idempotency records, the balance
//! assert (every command's counter changes sum to zero on each side; debug builds re-check the
//! whole ledger at each commit), the account cache ([`Memo`]), and the guard that turns a panic
//! inside a command into that command's failure. A batch the database fails is rolled back and
//! its commands are tried again one by one, so one command that trips the database fails only
//! its own request.

use crate::model::*;
use crate::rules::{self, Ctx, memo::Memo};
use crate::tx::{Backend, LedgerTx, NewIdempotency, RowId};
use crate::{SharedClock, StoreError, Submitted};
use ledger::BankCode;
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{mpsc, oneshot};

/// The most commands one database transaction commits together.
pub const BATCH_MAX: usize = 1024;
/// The most commands waiting for the writer; beyond it requests are refused as overloaded.
pub const QUEUE_MAX: usize = 16 * 1024;
/// How long a batch in progress keeps taking the jobs that arrive while it runs, before it
/// commits what it has (the first job waits for every later one, so this bounds its delay).
const TOP_UP_FOR: std::time::Duration = std::time::Duration::from_millis(2);
/// How many times a batch the backend calls [`Backend::retryable`] (a serialization failure)
/// is run again whole before its commands are tried one by one.
pub const BATCH_RETRIES_MAX: usize = 3;

/// A deposit's description that makes its command panic, once [`WriterHandle::arm_faults`] ran.
pub const FAULT_PANIC: &str = "fault: panic inside the command";
/// A deposit's description that stops the writer, once [`WriterHandle::arm_faults`] ran.
pub const FAULT_STOP: &str = "fault: stop the writer";

struct Job {
    request: Request,
    reply: oneshot::Sender<Result<Executed, StoreError>>,
}

/// The fault a command asks for, if faults are armed (see [`WriterHandle::arm_faults`]).
fn fault(armed: &AtomicBool, command: &Command) -> Option<&'static str> {
    if !armed.load(Ordering::Relaxed) {
        return None;
    }
    match command {
        Command::Deposit { description, .. } if description == FAULT_PANIC => Some(FAULT_PANIC),
        Command::Deposit { description, .. } if description == FAULT_STOP => Some(FAULT_STOP),
        _ => None,
    }
}

/// Why a batch's transaction did not commit: the caller rolls it back either way.
enum BatchFailure<E> {
    Database(E),
    Panicked(String),
}

impl<E: std::fmt::Display> std::fmt::Display for BatchFailure<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchFailure::Database(error) => write!(f, "database error: {error}"),
            BatchFailure::Panicked(message) => write!(f, "panicked: {message}"),
        }
    }
}

impl<E: Into<StoreError>> BatchFailure<E> {
    fn into_store_error(self) -> StoreError {
        match self {
            BatchFailure::Database(error) => error.into(),
            BatchFailure::Panicked(message) => StoreError::Failed(message),
        }
    }
}

/// The writer's queue: what a store hands its commands to.
pub struct WriterHandle {
    queue: mpsc::Sender<Job>,
    faults: Arc<AtomicBool>,
}

impl WriterHandle {
    /// Takes one command; the writer applies commands in the order they were taken (see
    /// [`crate::Store::submit`]).
    pub fn submit(&self, request: Request) -> Result<Submitted, StoreError> {
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

    /// Whether the writer still takes commands.
    pub fn is_writing(&self) -> bool {
        !self.queue.is_closed()
    }

    /// Debug builds only (release builds ignore it): from now on a deposit described as
    /// [`FAULT_PANIC`] panics inside its command, and one described as [`FAULT_STOP`] stops the
    /// writer for good, as a bug would. The tests use it to check that a command that trips a bug
    /// fails alone, and that a stopped writer shows in the node's health.
    pub fn arm_faults(&self) {
        self.faults.store(cfg!(debug_assertions), Ordering::Relaxed);
    }
}

/// Starts the writer thread of bank `bank` over `backend`; `vault` is the id of the bank's vault
/// account (cash comes from and goes to it).
pub fn spawn<B: Backend>(
    backend: B,
    bank: BankCode,
    vault: RowId,
    clock: Arc<SharedClock>,
) -> Result<WriterHandle, StoreError> {
    let (sender, receiver) = mpsc::channel(QUEUE_MAX);
    let faults = Arc::new(AtomicBool::new(false));
    let writer = Writer {
        faults: faults.clone(),
        backend,
        bank: bank.to_string(),
        vault,
        clock,
        memo: Memo::default(),
    };
    std::thread::Builder::new()
        .name(format!("writer-{bank}"))
        .spawn(move || writer.run(receiver))
        .map_err(|e| StoreError::Corrupt(format!("cannot start the writer thread: {e}")))?;
    Ok(WriterHandle {
        queue: sender,
        faults,
    })
}

struct Writer<B> {
    faults: Arc<AtomicBool>,
    backend: B,
    bank: String,
    vault: RowId,
    clock: Arc<SharedClock>,
    memo: Memo,
}

type Answers = Vec<Result<Executed, StoreError>>;

impl<B: Backend> Writer<B> {
    fn run(mut self, receiver: mpsc::Receiver<Job>) {
        self.backend.on_writer_thread(&self.bank);
        let mut batch = Vec::with_capacity(BATCH_MAX);
        // Declared after `batch`, so a panic drops it first: the queue is closed (the health
        // check reports the writer stopped) before any caller hears its request fail.
        let mut receiver = receiver;
        while let Some(first) = receiver.blocking_recv() {
            batch.push(first);
            while batch.len() < BATCH_MAX {
                match receiver.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.commit_batch(&mut batch, &mut receiver);
        }
        tracing::info!(bank = %self.bank, "writer stopped: every queued command was answered");
    }

    /// Runs every job of the batch in one transaction, with the jobs that arrive meanwhile, and
    /// answers them after the commit. If the transaction fails, nothing of it is kept: a batch
    /// the backend may retry (a serialization failure) runs again, and otherwise each job is
    /// tried again alone, so one command that trips the database fails only its own request.
    fn commit_batch(&mut self, batch: &mut Vec<Job>, receiver: &mut mpsc::Receiver<Job>) {
        if batch
            .iter()
            .any(|job| fault(&self.faults, &job.request.command) == Some(FAULT_STOP))
        {
            panic!("{FAULT_STOP}");
        }
        let mut ran = self.run_guarded(batch, Some(receiver));
        let mut retries = 0;
        while let Err(BatchFailure::Database(error)) = &ran
            && retries < BATCH_RETRIES_MAX
            && self.backend.retryable(error)
        {
            retries += 1;
            self.backend.settle();
            self.rollback();
            ran = self.run_guarded(batch, None);
        }
        let results = match ran {
            Ok(results) => results,
            Err(error) if batch.len() > 1 => {
                self.backend.settle();
                tracing::warn!(%error, size = batch.len(), "batch failed; trying its commands one by one");
                self.rollback();
                let mut results = Vec::with_capacity(batch.len());
                for job in std::mem::take(batch) {
                    let mut alone = vec![job];
                    let ran = self.run_alone(&mut alone);
                    self.backend.settle();
                    results.push(match ran {
                        Ok(mut one) => one.pop().expect("one result per job"),
                        Err(error) => {
                            tracing::error!(%error, "command failed; nothing of it was committed");
                            self.rollback();
                            Err(error.into_store_error())
                        }
                    });
                    batch.extend(alone);
                }
                results
            }
            Err(error) => {
                self.backend.settle();
                tracing::error!(%error, "command failed; nothing of it was committed");
                self.rollback();
                vec![Err(error.into_store_error())]
            }
        };
        for (job, result) in batch.drain(..).zip(results) {
            let _ = job.reply.send(result);
        }
        self.backend.after_answers();
    }

    /// One job alone, run again while the backend says its failure is worth retrying.
    fn run_alone(&mut self, alone: &mut Vec<Job>) -> Result<Answers, BatchFailure<B::Error>> {
        let mut ran = self.run_guarded(alone, None);
        let mut retries = 0;
        while let Err(BatchFailure::Database(error)) = &ran
            && retries < BATCH_RETRIES_MAX
            && self.backend.retryable(error)
        {
            retries += 1;
            self.rollback();
            ran = self.run_guarded(alone, None);
        }
        ran
    }

    /// [`Writer::run_batch`], with a panic inside it (a bug a command tripped: an assertion of
    /// the ledger's invariants, say) caught and returned as the batch's failure, so the caller
    /// rolls the transaction back and the writer lives on to answer every later command. The
    /// writer's state is its transaction, which the caller rolls back, and its memo, which the
    /// rollback forgets: nothing a panic interrupted survives it.
    fn run_guarded(
        &mut self,
        batch: &mut Vec<Job>,
        more: Option<&mut mpsc::Receiver<Job>>,
    ) -> Result<Answers, BatchFailure<B::Error>> {
        let ran =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_batch(batch, more)));
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
        if let Err(error) = self.backend.rollback() {
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
    ) -> Result<Answers, B::Error> {
        if !self.backend.exclusive() {
            // Another process may have changed any row since the last transaction.
            self.memo.forget();
        }
        let Writer {
            backend,
            faults,
            bank,
            vault,
            clock,
            memo,
        } = self;
        let mut tx = backend.begin()?;
        let opened = std::time::Instant::now();
        let mut results = Vec::with_capacity(batch.len());
        let one = One {
            faults,
            bank,
            vault: *vault,
            clock,
            memo,
        };
        loop {
            while results.len() < batch.len() {
                let job = &batch[results.len()];
                results.push(one.run(&mut tx, &job.request)?);
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
        tx.set_clock(&clock.last().to_string())?;
        if cfg!(debug_assertions) {
            // Debug builds (every test) re-check invariant 1 on the whole ledger each commit
            // leaves, before the commit itself.
            let totals = tx.totals()?;
            assert_eq!(
                totals.debits_posted, totals.credits_posted,
                "posted debits equal posted credits"
            );
            assert_eq!(
                totals.debits_pending, totals.credits_pending,
                "pending debits equal pending credits"
            );
        }
        tx.commit(results.len())?;
        Ok(results)
    }
}

/// What running one command needs of the writer (borrowed apart from its backend, which the
/// open transaction borrows).
struct One<'w> {
    faults: &'w AtomicBool,
    bank: &'w str,
    vault: RowId,
    clock: &'w SharedClock,
    memo: &'w Memo,
}

impl One<'_> {
    fn run<T: LedgerTx>(
        &self,
        tx: &mut T,
        request: &Request,
    ) -> Result<Result<Executed, StoreError>, T::Error> {
        if let Some(idempotency) = &request.idempotency
            && let Some(stored) = tx.idempotency(self.bank, idempotency.scope, &idempotency.key)?
        {
            if !idempotency.matches(&stored.fingerprint) {
                return Ok(Err(StoreError::IdempotencyKeyReused));
            }
            return Ok(stored
                .outcome
                .map(|outcome| Executed {
                    outcome,
                    replayed: true,
                })
                .map_err(|e| StoreError::Corrupt(format!("stored outcome: {e}"))));
        }
        if fault(self.faults, &request.command) == Some(FAULT_PANIC) {
            panic!("{FAULT_PANIC}");
        }
        let stamp = self.clock.tick();
        let ctx = Ctx {
            bank: self.bank,
            vault: self.vault,
            stamp,
            clock: stamp.to_string(),
            delta: Cell::new(Totals::default()),
            memo: self.memo,
        };
        let command = &request.command;
        let applied = if rules::writes_only_when_done(command) {
            rules::apply(tx, &ctx, command)
        } else {
            rules::in_savepoint(tx, &ctx, |tx| rules::apply(tx, &ctx, command))
        };
        let applied = applied?;
        // Every account the command changed gets its row written once, now.
        self.memo.flush(tx)?;
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
            let payment = rules::recorded_payment(command, &outcome);
            let body = payment
                .is_none()
                .then(|| serde_json::to_string(&outcome).expect("outcomes serialise"));
            // An outcome copied here that waits on a decision is settled by it (a package's).
            let pending = match &outcome {
                Outcome::Package(package) if package.status == PaymentStatus::Pending => {
                    Some(package.e2e_id.as_str())
                }
                _ => None,
            };
            tx.insert_idempotency(&NewIdempotency {
                scope: idempotency.scope,
                key: &idempotency.key,
                fingerprint: &idempotency.fingerprint[..],
                outcome: body.as_deref(),
                payment,
                clock: &ctx.clock,
                pending_e2e: pending,
            })?;
        }
        Ok(Ok(Executed {
            outcome,
            replayed: false,
        }))
    }
}
