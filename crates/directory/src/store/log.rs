//! The Raft log and the vote. openraft's storage-v2 contract is followed to the letter: `append`
//! returns as soon as the entries are readable and calls back once they are on disk, so the
//! leader sends an entry to the followers while its own copy is still being flushed, and Raft's
//! core never waits for a disk.
//!
//! - Every write (append, truncate, purge, vote) goes, in order, to one thread of the store's
//!   own, which commits with `synchronous=FULL` before it answers or calls back; appends queued
//!   together share one transaction, so one fsync.
//! - Appended entries stay in memory ([`Recent`]) until they are flushed, and a few after: the
//!   replication to each follower reads what it sends from there, not from SQLite.

use super::{StoreResult, failed, from_json, get_meta, put_meta, to_json};
use crate::{NodeId, TypeConfig};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader, Vote};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use std::collections::VecDeque;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

/// Flushed entries kept in memory besides the unflushed ones: a follower a few entries behind
/// is sent them from memory; one further behind, from SQLite.
const FLUSHED_KEPT: usize = 64;

/// The log and the vote. Cloned as the log reader.
#[derive(Clone)]
pub struct LogStore {
    conn: Arc<Mutex<Connection>>,
    recent: Arc<Mutex<Recent>>,
    writes: mpsc::Sender<Write>,
}

/// The newest entries, contiguous by index, and how far the disk has them.
#[derive(Default)]
struct Recent {
    entries: VecDeque<Entry<TypeConfig>>,
    /// The highest index known on disk.
    flushed: u64,
}

impl Recent {
    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|e| e.log_id.index)
    }

    /// Takes in newly appended entries: an overlap replaces what it overlaps (openraft truncates
    /// first, but the entries are the truth either way), a gap (a snapshot was installed, the log
    /// starts further on) drops what was kept.
    fn push(&mut self, entries: &[Entry<TypeConfig>]) {
        let Some(first) = entries.first().map(|e| e.log_id.index) else {
            return;
        };
        self.truncate(first);
        if self
            .entries
            .back()
            .is_some_and(|last| last.log_id.index + 1 != first)
        {
            self.entries.clear();
        }
        self.entries.extend(entries.iter().cloned());
    }

    /// Drops the entries from `index` on.
    fn truncate(&mut self, index: u64) {
        while self.entries.back().is_some_and(|e| e.log_id.index >= index) {
            self.entries.pop_back();
        }
        self.flushed = self.flushed.min(index.saturating_sub(1));
    }

    /// Drops the entries up to `index`.
    fn purge(&mut self, index: u64) {
        while self
            .entries
            .front()
            .is_some_and(|e| e.log_id.index <= index)
        {
            self.entries.pop_front();
        }
    }

    /// Notes that the disk has everything up to `index`, and lets go of flushed entries beyond
    /// the few kept.
    fn flushed_to(&mut self, index: u64) {
        self.flushed = self.flushed.max(index);
        while self.entries.len() > FLUSHED_KEPT
            && self
                .entries
                .front()
                .is_some_and(|e| e.log_id.index <= self.flushed)
        {
            self.entries.pop_front();
        }
    }

    /// The kept entries from `start` to `end`, and the first index kept (`None`: none kept).
    fn range(&self, start: u64, end: u64) -> (Vec<Entry<TypeConfig>>, Option<u64>) {
        let entries = self
            .entries
            .iter()
            .filter(|e| (start..=end).contains(&e.log_id.index))
            .cloned()
            .collect();
        (entries, self.first_index())
    }
}

/// What the store's thread does, in the order asked.
enum Write {
    Append {
        entries: Vec<Entry<TypeConfig>>,
        callback: LogFlushed<TypeConfig>,
    },
    /// Any other use of the connection that must come after the writes asked before it.
    Run(Box<dyn FnOnce(&mut Connection) + Send>),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A thread that panicked holding the lock left SQLite's transaction rolled back (the
    // `Transaction` is dropped while unwinding) and `Recent` consistent (each change to it is
    // complete before the next statement), so what is behind the lock can still be used.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl LogStore {
    /// Starts the store's thread over `conn` (shared with the state machine).
    pub(crate) fn start(conn: Arc<Mutex<Connection>>) -> std::io::Result<LogStore> {
        let recent = Arc::new(Mutex::new(Recent::default()));
        let (writes, queue) = mpsc::channel();
        let thread_conn = conn.clone();
        let thread_recent = recent.clone();
        std::thread::Builder::new()
            .name("directory-log".to_owned())
            .spawn(move || write_in_order(&thread_conn, &thread_recent, &queue))?;
        Ok(LogStore {
            conn,
            recent,
            writes,
        })
    }

    /// Runs `work` on the store's thread after every write asked before it, and answers what it
    /// returns.
    #[allow(clippy::result_large_err)] // openraft's `StorageError`, see `super::blocking`
    async fn in_order<T, F>(&self, subject: ErrorSubject<NodeId>, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let run = Write::Run(Box::new(move |conn: &mut Connection| {
            let _ = answer.send(work(conn));
        }));
        let stopped = || failed(subject.clone(), ErrorVerb::Write, &Stopped);
        self.writes.send(run).map_err(|_| stopped())?;
        match answered.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(failed(subject.clone(), ErrorVerb::Write, &e)),
            Err(_) => Err(stopped()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the directory's log thread has stopped")]
struct Stopped;

/// The store's thread: takes the writes in the order they were asked, appends queued together
/// in one transaction.
fn write_in_order(conn: &Mutex<Connection>, recent: &Mutex<Recent>, queue: &mpsc::Receiver<Write>) {
    while let Ok(first) = queue.recv() {
        let mut waiting: VecDeque<Write> = std::iter::once(first).chain(queue.try_iter()).collect();
        while let Some(write) = waiting.pop_front() {
            match write {
                Write::Run(work) => work(&mut lock(conn)),
                Write::Append { entries, callback } => {
                    let mut appends = vec![(entries, callback)];
                    while let Some(Write::Append { .. }) = waiting.front() {
                        if let Some(Write::Append { entries, callback }) = waiting.pop_front() {
                            appends.push((entries, callback));
                        }
                    }
                    let written = append_all(&mut lock(conn), &appends);
                    if written.is_ok()
                        && let Some(last) = appends
                            .iter()
                            .filter_map(|(entries, _)| entries.last())
                            .map(|e| e.log_id.index)
                            .max()
                    {
                        lock(recent).flushed_to(last);
                    }
                    for (_, callback) in appends {
                        callback.log_io_completed(
                            written
                                .as_ref()
                                .map(|_| ())
                                .map_err(|e| std::io::Error::other(e.to_string())),
                        );
                    }
                }
            }
        }
    }
}

/// Writes every entry of `appends` in one transaction; returns once SQLite has synced the WAL
/// (`synchronous=FULL`).
fn append_all(
    conn: &mut Connection,
    appends: &[(Vec<Entry<TypeConfig>>, LogFlushed<TypeConfig>)],
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut statement =
            tx.prepare_cached("INSERT OR REPLACE INTO raft_log (idx, entry) VALUES (?1, ?2)")?;
        for entry in appends.iter().flat_map(|(entries, _)| entries) {
            let idx = i64::try_from(entry.log_id.index)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            statement.execute(rusqlite::params![idx, to_json(entry)?])?;
        }
    }
    tx.commit()
}

fn bound_to_sql(range: &impl RangeBounds<u64>) -> Option<(u64, u64)> {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e,
        Bound::Excluded(&e) => e.checked_sub(1)?,
        Bound::Unbounded => u64::MAX,
    };
    (start <= end).then_some((start, end))
}

fn sql_index(index: u64) -> i64 {
    i64::try_from(index).unwrap_or(i64::MAX)
}

fn read_entries(
    conn: &Connection,
    start: u64,
    end: u64,
) -> rusqlite::Result<Vec<Entry<TypeConfig>>> {
    let mut statement = conn
        .prepare_cached("SELECT entry FROM raft_log WHERE idx >= ?1 AND idx <= ?2 ORDER BY idx")?;
    let rows = statement.query_map([sql_index(start), sql_index(end)], |row| {
        row.get::<_, String>(0)
    })?;
    let mut entries = Vec::new();
    for row in rows {
        entries.push(from_json(&row?)?);
    }
    Ok(entries)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StoreResult<Vec<Entry<TypeConfig>>> {
        let Some((start, end)) = bound_to_sql(&range) else {
            return Ok(Vec::new());
        };
        // Memory first: an entry that is not there any more was flushed before it left, so
        // SQLite has everything below the first one kept when memory was read.
        let (kept, first_kept) = lock(&self.recent).range(start, end);
        let below = match first_kept {
            Some(first) if first <= start => return Ok(kept),
            Some(first) => first - 1,
            None => end,
        };
        let mut entries = super::blocking(&self.conn, ErrorSubject::Logs, move |conn| {
            read_entries(conn, start, below.min(end))
        })
        .await?;
        entries.extend(kept);
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StoreResult<LogState<TypeConfig>> {
        // In order: the last entry is one whose append came before this.
        self.in_order(ErrorSubject::Logs, |conn| {
            let purged: Option<LogId<NodeId>> = get_meta(conn, "raft_meta", "purged")?;
            let last: Option<String> = conn
                .query_row(
                    "SELECT entry FROM raft_log ORDER BY idx DESC LIMIT 1",
                    [],
                    |row| row.get(0),
                )
                .optional()?;
            let last = match last {
                Some(text) => Some(from_json::<Entry<TypeConfig>>(&text)?.log_id),
                None => purged,
            };
            Ok(LogState {
                last_purged_log_id: purged,
                last_log_id: last,
            })
        })
        .await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StoreResult<()> {
        let vote = *vote;
        self.in_order(ErrorSubject::Vote, move |conn| {
            put_meta(conn, "raft_meta", "vote", &vote)
        })
        .await
    }

    async fn read_vote(&mut self) -> StoreResult<Option<Vote<NodeId>>> {
        self.in_order(ErrorSubject::Vote, |conn| {
            get_meta(conn, "raft_meta", "vote")
        })
        .await
    }

    // `save_committed` is left out (openraft's default keeps nothing): `apply` commits the rows
    // with their position, so on restart the state machine is already where it was, and a
    // saved commit index would only cost one more fsync per commit.

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StoreResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        // Readable when this returns (openraft's contract), on disk when the callback runs.
        lock(&self.recent).push(&entries);
        self.writes
            .send(Write::Append { entries, callback })
            .map_err(|_| failed(ErrorSubject::Logs, ErrorVerb::Write, &Stopped))
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        lock(&self.recent).truncate(log_id.index);
        let from = sql_index(log_id.index);
        self.in_order(ErrorSubject::Logs, move |conn| {
            conn.prepare_cached("DELETE FROM raft_log WHERE idx >= ?1")?
                .execute([from])?;
            Ok(())
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        lock(&self.recent).purge(log_id.index);
        let upto = sql_index(log_id.index);
        self.in_order(ErrorSubject::Logs, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            put_meta(&tx, "raft_meta", "purged", &log_id)?;
            tx.prepare_cached("DELETE FROM raft_log WHERE idx <= ?1")?
                .execute([upto])?;
            tx.commit()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    fn indexes(recent: &Recent) -> Vec<u64> {
        recent.entries.iter().map(|e| e.log_id.index).collect()
    }

    #[test]
    fn recent_entries_stay_contiguous_and_unflushed_ones_are_never_dropped() {
        let mut recent = Recent::default();
        recent.push(&(1..=3).map(entry).collect::<Vec<_>>());
        // An overlap replaces the tail.
        recent.push(&[entry(3), entry(4)]);
        assert_eq!(indexes(&recent), vec![1, 2, 3, 4]);
        // A gap (a snapshot installed) starts over.
        recent.push(&[entry(10)]);
        assert_eq!(indexes(&recent), vec![10]);
        let many: Vec<_> = (11..=200).map(entry).collect();
        recent.push(&many);
        // Nothing flushed: everything stays.
        recent.flushed_to(9);
        assert_eq!(recent.entries.len(), 191);
        recent.flushed_to(150);
        assert_eq!(recent.first_index(), Some(200 - FLUSHED_KEPT as u64 + 1));
        recent.truncate(190);
        assert_eq!(recent.entries.back().map(|e| e.log_id.index), Some(189));
        recent.purge(180);
        assert_eq!(recent.first_index(), Some(181));
        let (range, first) = recent.range(185, 500);
        assert_eq!(range.len(), 5);
        assert_eq!(first, Some(181));
    }
}
