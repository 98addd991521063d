//! The Raft log, the vote and the state machine in one SQLite file per bank (`directory.db`),
//! as openraft's storage-v2 traits want them. Every write is one transaction committed with
//! `synchronous=FULL` before openraft hears of it: an appended entry is on disk before its
//! callback runs, a vote before it is granted, an applied entry before its answer goes out, a
//! snapshot before it is reported built or installed. SQLite calls block, so each runs on
//! tokio's blocking pool, never on a worker thread that serves HTTP.

use crate::model::{Effect, Response};
use crate::state::{self, Dump};
use crate::{NodeId, TypeConfig};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader,
    RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use std::fmt::Debug;
use std::io::Cursor;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a connection waits for another one's lock on the file before its statement fails
/// (the writer and the readers share the file; a checkpoint briefly locks readers out).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

type StoreResult<T> = Result<T, StorageError<NodeId>>;

/// Opens a connection with the settings every write relies on: WAL, and an fsync per commit.
pub(crate) fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// Why the directory's file cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the directory's database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the directory's database has schema version {0}; this build knows {v}", v = state::SCHEMA_VERSION)]
    Version(i64),
}

/// Opens (creating if needed) the file at `path` and returns its log store and state machine.
/// They share one connection: SQLite lets one writer in at a time anyway, and two connections
/// would meet at its file lock, where the loser sleeps in SQLite's busy handler (up to 100 ms a
/// try) instead of queueing on a mutex.
pub fn open_store(path: &Path) -> Result<(LogStore, StateMachine), OpenError> {
    let conn = open(path)?;
    state::migrate(&conn)?.map_err(OpenError::Version)?;
    state::create_decisions(&conn)?;
    let conn = Arc::new(Mutex::new(conn));
    let log = LogStore { conn: conn.clone() };
    let machine = StateMachine { conn };
    Ok((log, machine))
}

fn failed(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    e: &(dyn std::error::Error + 'static),
) -> StorageError<NodeId> {
    StorageIOError::new(subject, verb, openraft::AnyError::from_dyn(e, None)).into()
}

/// Runs `work` with the connection on the blocking pool.
// openraft's `StorageError` is large by its design; it is what every storage call returns.
#[allow(clippy::result_large_err)]
async fn blocking<T, F>(
    conn: &Arc<Mutex<Connection>>,
    subject: ErrorSubject<NodeId>,
    work: F,
) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
{
    let conn = conn.clone();
    let subject_inner = subject.clone();
    let joined = tokio::task::spawn_blocking(move || {
        let mut guard = conn
            .lock()
            .map_err(|_| failed(subject_inner.clone(), ErrorVerb::Write, &Poisoned))?;
        work(&mut guard).map_err(|e| failed(subject_inner, ErrorVerb::Write, &e))
    })
    .await;
    match joined {
        Ok(result) => result,
        Err(e) => Err(failed(subject, ErrorVerb::Write, &e)),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("a thread panicked while it held the directory's connection")]
struct Poisoned;

fn to_json<T: serde::Serialize>(value: &T) -> rusqlite::Result<String> {
    serde_json::to_string(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn get_meta<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    table: &'static str,
    name: &str,
) -> rusqlite::Result<Option<T>> {
    // `table` is one of two constants.
    let text: Option<String> = conn
        .prepare_cached(&format!("SELECT value FROM {table} WHERE name = ?1"))?
        .query_row([name], |row| row.get(0))
        .optional()?;
    text.map(|t| from_json(&t)).transpose()
}

fn put_meta<T: serde::Serialize>(
    conn: &Connection,
    table: &'static str,
    name: &str,
    value: &T,
) -> rusqlite::Result<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO {table} (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value"
    ))?
    .execute([name, &to_json(value)?])?;
    Ok(())
}

/// The log and the vote. Cloned as the log reader: replication tasks read through the same
/// connection, one at a time.
#[derive(Clone)]
pub struct LogStore {
    conn: Arc<Mutex<Connection>>,
}

fn bound_to_sql(range: &impl RangeBounds<u64>) -> (i64, i64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e,
        Bound::Excluded(&e) => match e.checked_sub(1) {
            Some(e) => e,
            None => return (1, 0),
        },
        Bound::Unbounded => u64::MAX,
    };
    (
        i64::try_from(start).unwrap_or(i64::MAX),
        i64::try_from(end).unwrap_or(i64::MAX),
    )
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StoreResult<Vec<Entry<TypeConfig>>> {
        let (start, end) = bound_to_sql(&range);
        blocking(&self.conn, ErrorSubject::Logs, move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT entry FROM raft_log WHERE idx >= ?1 AND idx <= ?2 ORDER BY idx",
            )?;
            let rows = statement.query_map([start, end], |row| row.get::<_, String>(0))?;
            let mut entries = Vec::new();
            for row in rows {
                entries.push(from_json(&row?)?);
            }
            Ok(entries)
        })
        .await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StoreResult<LogState<TypeConfig>> {
        blocking(&self.conn, ErrorSubject::Logs, |conn| {
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
        blocking(&self.conn, ErrorSubject::Vote, move |conn| {
            put_meta(conn, "raft_meta", "vote", &vote)
        })
        .await
    }

    async fn read_vote(&mut self) -> StoreResult<Option<Vote<NodeId>>> {
        blocking(&self.conn, ErrorSubject::Vote, |conn| {
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
        let written = blocking(&self.conn, ErrorSubject::Logs, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut statement = tx.prepare_cached(
                    "INSERT OR REPLACE INTO raft_log (idx, entry) VALUES (?1, ?2)",
                )?;
                for entry in &entries {
                    let idx = i64::try_from(entry.log_id.index)
                        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                    statement.execute(rusqlite::params![idx, to_json(entry)?])?;
                }
            }
            tx.commit()
        })
        .await;
        // The commit above returned only once SQLite had synced the WAL (synchronous=FULL).
        match &written {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => callback.log_io_completed(Err(std::io::Error::other(e.to_string()))),
        }
        written
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        let from = i64::try_from(log_id.index).unwrap_or(i64::MAX);
        blocking(&self.conn, ErrorSubject::Logs, move |conn| {
            conn.prepare_cached("DELETE FROM raft_log WHERE idx >= ?1")?
                .execute([from])?;
            Ok(())
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        let upto = i64::try_from(log_id.index).unwrap_or(i64::MAX);
        blocking(&self.conn, ErrorSubject::Logs, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            put_meta(&tx, "raft_meta", "purged", &log_id)?;
            tx.prepare_cached("DELETE FROM raft_log WHERE idx <= ?1")?
                .execute([upto])?;
            tx.commit()
        })
        .await
    }
}

/// The state machine: the directory's tables, their position in the log, and the newest
/// snapshot. Cloned as the snapshot builder, which reads the tables through the same
/// connection in one transaction, so a snapshot is one consistent state.
#[derive(Clone)]
pub struct StateMachine {
    conn: Arc<Mutex<Connection>>,
}

/// The stored form of a snapshot's metadata.
type Meta = SnapshotMeta<NodeId, openraft::EmptyNode>;

impl StateMachine {
    /// The snapshot of the tables as they stand, stored as the newest one.
    fn build(conn: &mut Connection) -> rusqlite::Result<(Meta, Vec<u8>)> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let last_applied: Option<LogId<NodeId>> =
            get_meta::<Option<LogId<NodeId>>>(&tx, "machine", "applied")?.flatten();
        let membership: StoredMembership<NodeId, openraft::EmptyNode> =
            get_meta(&tx, "machine", "membership")?.unwrap_or_default();
        let data = serde_json::to_vec(&state::dump(&tx)?)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        let snapshot_id = match last_applied {
            Some(id) => format!(
                "{}-{}-{}",
                id.leader_id.term, id.leader_id.node_id, id.index
            ),
            None => "empty".to_owned(),
        };
        let meta = Meta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        store_snapshot(&tx, &meta, &data)?;
        tx.commit()?;
        Ok((meta, data))
    }
}

fn store_snapshot(conn: &Connection, meta: &Meta, data: &[u8]) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO snapshot (only, meta, data) VALUES (1, ?1, ?2)
         ON CONFLICT (only) DO UPDATE SET meta = excluded.meta, data = excluded.data",
    )?
    .execute(rusqlite::params![to_json(meta)?, data])?;
    Ok(())
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> StoreResult<Snapshot<TypeConfig>> {
        let (meta, data) = blocking(
            &self.conn,
            ErrorSubject::Snapshot(None),
            StateMachine::build,
        )
        .await?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> StoreResult<(
        Option<LogId<NodeId>>,
        StoredMembership<NodeId, openraft::EmptyNode>,
    )> {
        blocking(&self.conn, ErrorSubject::StateMachine, |conn| {
            Ok((
                get_meta::<Option<LogId<NodeId>>>(conn, "machine", "applied")?.flatten(),
                get_meta(conn, "machine", "membership")?.unwrap_or_default(),
            ))
        })
        .await
    }

    async fn apply<I>(&mut self, entries: I) -> StoreResult<Vec<Response>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        blocking(&self.conn, ErrorSubject::StateMachine, move |conn| {
            // One transaction for the whole batch: one fsync, and the position in the log moves
            // with the rows it describes.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut responses = Vec::with_capacity(entries.len());
            let mut last = None;
            for entry in &entries {
                last = Some(entry.log_id);
                responses.push(match &entry.payload {
                    EntryPayload::Blank => Ok(Effect::Unchanged),
                    EntryPayload::Normal(command) => state::apply(&tx, command)?,
                    EntryPayload::Membership(membership) => {
                        let stored = StoredMembership::new(Some(entry.log_id), membership.clone());
                        put_meta(&tx, "machine", "membership", &stored)?;
                        Ok(Effect::Unchanged)
                    }
                });
            }
            if let Some(last) = last {
                put_meta(&tx, "machine", "applied", &last)?;
            }
            tx.commit()?;
            Ok(responses)
        })
        .await
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> StoreResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StoreResult<()> {
        let meta = meta.clone();
        let data = snapshot.into_inner();
        let signature = meta.signature();
        let dump: Dump = serde_json::from_slice(&data).map_err(|e| {
            failed(
                ErrorSubject::Snapshot(Some(signature.clone())),
                ErrorVerb::Read,
                &e,
            )
        })?;
        blocking(
            &self.conn,
            ErrorSubject::Snapshot(Some(signature)),
            move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                state::restore(&tx, &dump)?;
                put_meta(&tx, "machine", "applied", &meta.last_log_id)?;
                put_meta(&tx, "machine", "membership", &meta.last_membership)?;
                store_snapshot(&tx, &meta, &data)?;
                tx.commit()
            },
        )
        .await
    }

    async fn get_current_snapshot(&mut self) -> StoreResult<Option<Snapshot<TypeConfig>>> {
        blocking(&self.conn, ErrorSubject::Snapshot(None), |conn| {
            let row: Option<(String, Vec<u8>)> = conn
                .query_row(
                    "SELECT meta, data FROM snapshot WHERE only = 1",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            row.map(|(meta, data)| {
                Ok(Snapshot {
                    meta: from_json(&meta)?,
                    snapshot: Box::new(Cursor::new(data)),
                })
            })
            .transpose()
        })
        .await
    }
}
