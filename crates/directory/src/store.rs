//! The Raft log, the vote and the state machine in one SQLite file per bank (`directory.db`),
//! as openraft's storage-v2 traits want them. The log (`log`) is written in order by a thread of
//! its own, each append fsynced (`synchronous=FULL`) before openraft is called back, a vote before
//! it is granted; a snapshot is fsynced before it is reported built or installed. The state
//! machine's applies are not fsynced: they are derived from committed entries the log still holds
//! (see `StateMachine::apply`). SQLite calls block, so the state machine's run on tokio's
//! blocking pool, never on a thread that serves HTTP or drives Raft.

mod log;

pub use log::LogStore;

use crate::model::{Effect, Response};
use crate::state::{self, Dump};
use crate::{NodeId, TypeConfig};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use std::fmt::Debug;
use std::io::Cursor;
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
    #[error("cannot start the directory's log thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Opens (creating if needed) the file at `path` and returns its log store and state machine.
/// They share one connection: SQLite lets one writer in at a time anyway, and two connections
/// would meet at its file lock, where the loser sleeps in SQLite's busy handler (up to 100 ms a
/// try) instead of queueing on a mutex.
pub fn open_store(path: &Path) -> Result<(LogStore, StateMachine), OpenError> {
    let conn = open_tables(path)?;
    let conn = Arc::new(Mutex::new(conn));
    let log = LogStore::start(conn.clone())?;
    let machine = StateMachine { conn };
    Ok((log, machine))
}

/// Opens (creating if needed) the file at `path` with the directory's tables, for reading: a
/// member's reader, or a front's (see [`crate::Directory::front`]).
pub(crate) fn open_tables(path: &Path) -> Result<Connection, OpenError> {
    let conn = open(path)?;
    state::migrate(&conn)?.map_err(OpenError::Version)?;
    state::create_decisions(&conn)?;
    Ok(conn)
}

/// The vote stored in `conn`'s file (by whichever process runs the member).
pub(crate) fn stored_vote(conn: &Connection) -> rusqlite::Result<Option<openraft::Vote<NodeId>>> {
    get_meta(conn, "raft_meta", "vote")
}

/// The index of the last entry applied to the tables of `conn`'s file (by whichever process
/// runs the member).
pub(crate) fn applied_index(conn: &Connection) -> rusqlite::Result<Option<u64>> {
    Ok(
        get_meta::<Option<LogId<NodeId>>>(conn, "machine", "applied")?
            .flatten()
            .map(|applied| applied.index),
    )
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

/// Applies `entries` in one transaction; answers each entry's response.
fn apply_entries(
    conn: &mut Connection,
    entries: &[Entry<TypeConfig>],
) -> rusqlite::Result<Vec<Response>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut responses = Vec::with_capacity(entries.len());
    let mut last = None;
    for entry in entries {
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
            // One transaction for the whole batch, and the position in the log moves with the
            // rows it describes. Not fsynced: what it applies is committed in the log, which
            // keeps every entry after the last snapshot; the log's next append (or a snapshot)
            // syncs the WAL, this commit with it, and a crash before that leaves the tables at
            // an earlier position, from which openraft applies the same entries again.
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            let applied = apply_entries(conn, &entries);
            conn.pragma_update(None, "synchronous", "FULL")?;
            applied
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
