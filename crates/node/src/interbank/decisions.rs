//! Interbank decisions through the consortium's Raft log (the non-blocking commit, issue #24).
//!
//! A coordinator's decision is final only once the directory's log holds it; the first decision
//! the log records for a transaction wins, so a participant in doubt whose coordinator is gone
//! can force an abort there, and the coordinator, proposing later, learns it and obeys.
//!
//! Proposals are batched: one task gathers every decision asked for while this bank's previous
//! entry is in flight ([`IN_FLIGHT_MAX`]) into one entry of up to
//! `directory::DECISIONS_PER_ENTRY_MAX`, so the log's round trips are shared by many payments.
//! A proposal that cannot be committed (this bank has no majority, an election) is retried until
//! it is: the transaction stays pending meanwhile, and nobody is told any outcome.

use directory::{DECISIONS_PER_ENTRY_MAX, Decision, Directory, DirectoryError};
use protocol::TxnId;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

/// Log entries of decisions in flight at once from this bank; proposals arriving meanwhile wait
/// and go together in the next entry. One: every entry costs each bank HTTP requests and
/// fsyncs, so on a busy machine fewer, fuller entries beat more entries in flight (with 4, the
/// interbank bench ran at 0.42x the rate without the log; see BENCHMARKS.md).
pub const IN_FLIGHT_MAX: usize = 1;
/// Entries of decisions leave this bank at most once per this long: proposals arriving within it
/// of the last entry wait and go together in the next. Every entry costs each bank signed HTTP
/// requests, a log write and an apply; on a busy machine fewer, fuller entries leave more of the
/// CPU to the payments themselves (interbank bench, 64 clients: 1.2x the rate with 16 ms, 0.8x
/// with 24 ms, where the wait outgrows the saving; BENCHMARKS.md). Only after an entry that
/// carried several decisions: one payment at a time (a lone client paying in sequence) never
/// waits for it (without that, one client's rate fell from 276 to 62 a second).
pub const GATHER: Duration = Duration::from_millis(15);
/// Finished transactions whose decisions the log may forget go along with the next entry of
/// decisions; when none comes, on their own at most this long after.
pub const FORGET_EVERY: Duration = Duration::from_secs(5);
/// The first and the longest wait before a proposal the log could not take is tried again.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

type Proposal = (Decision, oneshot::Sender<bool>);

/// What the batching task is asked.
enum Ask {
    Decide(Proposal),
    Forget(Vec<TxnId>),
}

/// Hands decisions to the batching task. Cheap to clone.
#[derive(Clone)]
pub struct Decider {
    proposals: mpsc::UnboundedSender<Ask>,
}

impl Decider {
    /// Starts the task that writes this bank's proposals to `directory`'s log.
    pub fn start(directory: Directory) -> Decider {
        let (proposals, queue) = mpsc::unbounded_channel();
        tokio::spawn(gather(directory, queue));
        Decider { proposals }
    }

    /// Proposes `commit` for `txn` and answers the decision the log holds for it once it is
    /// committed and applied here (the proposal, or an earlier one). Waits as long as that takes;
    /// `None` only when the bank is stopping.
    pub async fn decide(&self, txn: TxnId, commit: bool) -> Option<bool> {
        let (told, winner) = oneshot::channel();
        self.proposals
            .send(Ask::Decide((Decision { e2e: txn, commit }, told)))
            .ok()?;
        winner.await.ok()
    }

    /// Lets the log forget the decisions of `e2es`: transactions this bank coordinated that every
    /// participant has acknowledged, so nobody asks the log about them again. They go with the
    /// next entry, or within [`FORGET_EVERY`]; those a stop cut short are found again when the
    /// bank starts (`engine::forget_finished`).
    pub fn forget(&self, e2es: Vec<TxnId>) {
        if !e2es.is_empty() {
            let _ = self.proposals.send(Ask::Forget(e2es));
        }
    }
}

async fn gather(directory: Directory, mut queue: mpsc::UnboundedReceiver<Ask>) {
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT_MAX));
    let mut last_sent: Option<Instant> = None;
    let mut forget: Vec<TxnId> = Vec::new();
    let mut forget_due = tokio::time::interval(FORGET_EVERY);
    loop {
        let first = tokio::select! {
            asked = queue.recv() => match asked {
                None => return,
                Some(Ask::Forget(e2es)) => {
                    forget.extend(e2es);
                    continue;
                }
                Some(Ask::Decide(proposal)) => Some(proposal),
            },
            _ = forget_due.tick() => {
                if forget.is_empty() {
                    continue;
                }
                None
            }
        };
        // Waiting for a free slot is what batches: everything that arrives meanwhile joins.
        let Ok(slot) = in_flight.clone().acquire_owned().await else {
            return;
        };
        if let Some(last) = last_sent {
            tokio::time::sleep_until(last + GATHER).await;
        }
        let mut batch: Vec<Proposal> = first.into_iter().collect();
        while batch.len() < DECISIONS_PER_ENTRY_MAX {
            match queue.try_recv() {
                Ok(Ask::Decide(proposal)) => batch.push(proposal),
                Ok(Ask::Forget(e2es)) => forget.extend(e2es),
                Err(_) => break,
            }
        }
        let forgetting: Vec<TxnId> = forget
            .drain(..forget.len().min(DECISIONS_PER_ENTRY_MAX))
            .collect();
        last_sent = (batch.len() > 1).then(Instant::now);
        let directory = directory.clone();
        tokio::spawn(async move {
            propose(&directory, batch, forgetting).await;
            drop(slot);
        });
    }
}

/// Writes one batch (and what it forgets) until the log takes it, then tells each proposer its
/// transaction's winner.
async fn propose(directory: &Directory, batch: Vec<Proposal>, forget: Vec<TxnId>) {
    let decisions: Vec<Decision> = batch.iter().map(|(d, _)| d.clone()).collect();
    let mut wait = RETRY_FIRST;
    let winners = loop {
        match directory
            .decide_and_forget(decisions.clone(), forget.clone())
            .await
        {
            Ok(winners) => break winners,
            Err(DirectoryError::Unavailable) => {
                tracing::debug!(
                    decisions = decisions.len(),
                    "the log cannot take decisions now (no majority?); they stay pending"
                );
            }
            Err(error) => {
                tracing::warn!(%error, decisions = decisions.len(), "recording decisions in the log failed; retrying");
            }
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RETRY_MAX);
    };
    for ((_, told), winner) in batch.into_iter().zip(winners) {
        // A proposer that stopped waiting has nobody left to tell.
        let _ = told.send(winner);
    }
}
