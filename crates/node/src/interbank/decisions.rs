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
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::time::Instant;

/// Log entries of decisions in flight at once from this bank; proposals arriving meanwhile wait
/// and go together in the next entry. Every entry costs each bank HTTP requests and fsyncs, so
/// on a busy machine fewer, fuller entries beat many in flight (with 4 and a fixed gap, the
/// interbank bench ran at 0.42x the rate without the log); since the gap ends with the last vote,
/// two in flight ran 1.06x one, and four no better than two (BENCHMARKS.md).
pub const IN_FLIGHT_MAX: usize = 2;
/// After an entry that carried several decisions, the next waits up to this long for the
/// payments this bank coordinates that are still collecting votes, so that their decisions go
/// together; once none is (every decision that could join has been proposed), it goes at once.
/// Every entry costs each bank signed HTTP requests, a log write and an apply; on a busy machine
/// fewer, fuller entries leave more of the CPU to the payments themselves. A fixed 15 ms gap
/// doubled as a floor on every payment's latency (16 clients: 990 payments a second, against
/// 1,970 when the wait ends with the last vote; BENCHMARKS.md). A lone payment never waits.
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
    /// How many payments this bank coordinates are still collecting votes.
    collecting: watch::Sender<usize>,
}

impl Decider {
    /// Starts the task that writes this bank's proposals to `directory`'s log.
    pub fn start(directory: Directory) -> Decider {
        Decider::with_gap(directory, GATHER)
    }

    /// As [`Decider::start`], entries spaced by `gap` instead of [`GATHER`].
    fn with_gap(directory: Directory, gap: Duration) -> Decider {
        let (proposals, queue) = mpsc::unbounded_channel();
        let (collecting, watching) = watch::channel(0);
        tokio::spawn(gather(directory, gap, queue, watching));
        Decider {
            proposals,
            collecting,
        }
    }

    /// Tells how many payments this bank coordinates are still collecting votes: when none
    /// is, every decision that could join the next entry has been proposed, and the entry
    /// need not wait out the rest of [`GATHER`].
    pub fn collecting(&self, payments: usize) {
        self.collecting
            .send_if_modified(|now| std::mem::replace(now, payments) != payments);
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

async fn gather(
    directory: Directory,
    gap: Duration,
    mut queue: mpsc::UnboundedReceiver<Ask>,
    mut collecting: watch::Receiver<usize>,
) {
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
        let mut batch: Vec<Proposal> = first.into_iter().collect();
        if let Some(last) = last_sent {
            // Within the gap, wait for the payments still collecting votes: once none is, every
            // decision that could join has been proposed.
            let until = last + gap;
            while *collecting.borrow_and_update() > 0 && batch.len() < DECISIONS_PER_ENTRY_MAX {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => break,
                    asked = queue.recv() => match asked {
                        None => return,
                        Some(Ask::Decide(proposal)) => batch.push(proposal),
                        Some(Ask::Forget(e2es)) => forget.extend(e2es),
                    },
                    changed = collecting.changed() => if changed.is_err() {
                        return;
                    },
                }
            }
            // The last vote's decision may be on its way from the engine's task.
            tokio::task::yield_now().await;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use directory::mesh::Mesh;
    use ledger::{BankCode, EndToEndId};
    use tokio::time::timeout;

    /// Far longer than any of these tests should take: a decision that waited out the gap
    /// would show as a timeout.
    const GAP: Duration = Duration::from_secs(60);
    const SETTLE: Duration = Duration::from_secs(20);

    /// A one-bank consortium's directory (real openraft and SQLite, in a temp dir) and a
    /// decider on it with a gap of [`GAP`].
    async fn decider() -> (Decider, Directory, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let mesh = Mesh::new();
        let directory =
            Directory::start(1, [1], &dir.path().join("directory.db"), mesh.endpoint(1))
                .await
                .unwrap();
        mesh.join(&directory);
        (Decider::with_gap(directory.clone(), GAP), directory, dir)
    }

    fn txn(sequence: u64) -> TxnId {
        EndToEndId::sequenced(
            BankCode::parse("10000001").unwrap(),
            "202612070000",
            sequence,
        )
    }

    /// Two decisions asked for together go in one entry, after which the gap applies.
    async fn two_together(decider: &Decider) {
        let (first, second) =
            tokio::join!(decider.decide(txn(1), true), decider.decide(txn(2), false));
        assert_eq!((first, second), (Some(true), Some(false)));
    }

    #[tokio::test]
    async fn after_a_full_entry_a_decision_waits_for_the_payments_still_collecting_votes() {
        let (decider, directory, _dir) = decider().await;
        two_together(&decider).await;
        decider.collecting(1);
        let early = tokio::spawn({
            let decider = decider.clone();
            async move { decider.decide(txn(3), true).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !early.is_finished(),
            "it went without the payment still collecting votes"
        );
        let late = decider.decide(txn(4), true);
        decider.collecting(0);
        let late = timeout(SETTLE, late)
            .await
            .expect("the last vote's decision went at once");
        assert_eq!(late, Some(true));
        let early = timeout(SETTLE, early)
            .await
            .expect("it went with the last one");
        assert_eq!(early.unwrap(), Some(true));
        assert_eq!(directory.decision(&txn(3)).unwrap(), Some(true));
        directory.shutdown().await;
    }

    #[tokio::test]
    async fn after_a_full_entry_a_decision_goes_at_once_when_no_payment_is_collecting_votes() {
        let (decider, directory, _dir) = decider().await;
        two_together(&decider).await;
        let alone = timeout(SETTLE, decider.decide(txn(3), false)).await;
        assert_eq!(alone.expect("it waited out the gap"), Some(false));
        directory.shutdown().await;
    }
}
