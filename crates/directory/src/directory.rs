//! [`Directory`]: one bank's member of the Raft group. Writes go to the leader (a follower
//! forwards them over the [`Transport`]) and answer once the leader has applied them; reads are
//! local, from this bank's own copy.

use crate::model::{
    AccountRef, Applied, Command, Conflict, Customer, DECISIONS_PER_ENTRY_MAX, Decision, Effect,
    PixEntry,
};
use crate::network::{Forged, Message, Network, Refused, Reply, Transport};
use crate::state::{self, ReadError};
use crate::store::{self, OpenError};
use crate::thread::OwnThread;
use crate::{NodeId, TypeConfig};
use ledger::{Document, PixKey};
use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{Config, Raft, RaftMetrics, ServerState, SnapshotPolicy};
use rusqlite::Connection;
use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;
use tokio::time::Instant;

/// Largest piece of a snapshot sent in one message, in bytes. A chunk travels as a JSON array of
/// numbers (up to four bytes of text per byte), so this keeps a message well under bankd's
/// 8 MiB limit on interbank bodies.
pub const SNAPSHOT_CHUNK_BYTES: u64 = 512 * 1024;

/// How often a front looks whether the member has applied its write to the shared file.
const FRONT_POLL: Duration = Duration::from_millis(5);

/// How many times a write follows a "not the leader, try that one" answer before giving up.
pub const FORWARDS_MAX: usize = 3;

/// Timings and sizes of one bank's member; [`Settings::default`] is what bankd uses.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How often the leader tells followers it is there. openraft 0.9 also gives up on an
    /// append (entries or heartbeat) that has not answered within this time, and sends it again
    /// from scratch: an append to a bank that takes longer (a busy machine, a slow disk's flush,
    /// a long batch to a bank catching up) never gets through, so this must stay well above the
    /// slowest append a bank takes, not just above a round trip.
    pub heartbeat: Duration,
    /// A follower that hears nothing for a random time between these two stands for election.
    pub election_min: Duration,
    pub election_max: Duration,
    /// A snapshot is built after this many entries since the last one…
    pub snapshot_every: u64,
    /// …and the log before it purged, keeping this many entries so that a bank a little behind
    /// catches up from the log rather than a whole snapshot.
    pub logs_kept: u64,
    /// The longest a write waits for a leader and its commit before answering `Unavailable`.
    pub write_timeout: Duration,
    /// The longest a write waits for an election when no leader is known.
    pub leader_wait: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            // 150 ms left five debug bankd processes on a busy two-core machine unable to commit
            // anything: every append to a follower timed out (consortium test `raft::five_…`).
            heartbeat: Duration::from_millis(500),
            // A follower that knows a leader stands only after `election_max` (openraft's leader
            // lease) plus a random election timeout of silence: a killed leader is replaced in
            // 3–4 s, and a leader cut off stops taking writes after 2 s without a majority.
            election_min: Duration::from_millis(1000),
            election_max: Duration::from_millis(2000),
            snapshot_every: 5_000,
            logs_kept: 1_000,
            write_timeout: Duration::from_secs(3),
            leader_wait: Duration::from_secs(2),
        }
    }
}

impl Settings {
    fn config(&self) -> Result<Config, String> {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Config {
            cluster_name: "interbank-directory".to_owned(),
            heartbeat_interval: millis(self.heartbeat),
            election_timeout_min: millis(self.election_min),
            election_timeout_max: millis(self.election_max),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: self.logs_kept,
            snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
            ..Config::default()
        }
        .validate()
        .map_err(|e| e.to_string())
    }
}

/// What a directory call can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// No leader could commit the write in time: this bank is cut off from a majority, or an
    /// election is under way. The write may still take effect; retrying the same command is
    /// safe (a command already in effect answers `Unchanged`).
    #[error("the directory cannot reach a majority of the banks")]
    Unavailable,
    #[error(transparent)]
    Conflict(Conflict),
    /// A field over its limit (`FIELD_BYTES_MAX`); names the field.
    #[error("{0} is too long")]
    Invalid(String),
    /// This bank's own copy could not be read or opened.
    #[error("directory storage: {0}")]
    Storage(String),
}

impl DirectoryError {
    /// The stable code for the API's problem documents.
    pub fn code(&self) -> &'static str {
        match self {
            DirectoryError::Unavailable => "directory_unavailable",
            DirectoryError::Conflict(conflict) => conflict.code(),
            DirectoryError::Invalid(_) => "invalid_request",
            DirectoryError::Storage(_) => "directory_storage",
        }
    }
}

impl From<ReadError> for DirectoryError {
    fn from(e: ReadError) -> DirectoryError {
        DirectoryError::Storage(e.to_string())
    }
}

impl From<OpenError> for DirectoryError {
    fn from(e: OpenError) -> DirectoryError {
        DirectoryError::Storage(e.to_string())
    }
}

/// Where a bank's copy of the directory stands ([`Directory::standing`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Standing {
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    pub term: u64,
    /// The last entry applied to its tables.
    pub last_applied: Option<u64>,
}

/// One bank's member of the directory's Raft group. Cheap to clone.
#[derive(Clone)]
pub struct Directory {
    inner: Arc<Inner>,
}

/// A directory that does not keep the member running (the mesh's table of members).
#[derive(Clone)]
pub(crate) struct WeakDirectory(Weak<Inner>);

impl WeakDirectory {
    pub(crate) fn upgrade(&self) -> Option<Directory> {
        self.0.upgrade().map(|inner| Directory { inner })
    }
}

struct Inner {
    id: NodeId,
    /// The group this bank's member starts in when its file is new.
    members: BTreeSet<NodeId>,
    path: PathBuf,
    transport: Arc<dyn Transport>,
    /// Local reads; WAL lets them run beside the state machine's writes (another process's
    /// too, on the same machine).
    reader: Mutex<Connection>,
    settings: Settings,
    /// The bank's member, when this process runs it. Several processes of one bank may share
    /// the directory's file; one runs the member at a time (the one holding the bank's duties),
    /// and the others are *fronts*: they read the file and send writes to that one.
    member: RwLock<Option<Arc<Member>>>,
}

/// This process's run of the bank's member: openraft, the thread it runs on, and the lock on
/// the file that keeps any other process from running it at the same time.
struct Member {
    raft: Raft<TypeConfig>,
    /// Where openraft's tasks and this member's writes run (see `thread`).
    thread: OwnThread,
    /// Held while the member runs; the system drops it when the process dies.
    _lock: File,
}

/// How long starting a member waits for another process's member on the same file to stop.
pub const MEMBER_LOCK_WAIT: Duration = Duration::from_secs(5);

impl Directory {
    /// Starts this bank's member with [`Settings::default`]; see [`Directory::start_with`].
    pub async fn start(
        id: NodeId,
        members: impl IntoIterator<Item = NodeId>,
        path: &Path,
        transport: Arc<dyn Transport>,
    ) -> Result<Directory, DirectoryError> {
        Directory::start_with(id, members, path, transport, Settings::default()).await
    }

    /// Opens (or creates) the directory's file at `path` and starts this bank's member of the
    /// group of `members` (this bank is added if missing). A new file joins with that
    /// membership (every bank starting fresh with the same list is safe: they all write the
    /// same first entry); an existing one resumes where its log and state machine stand and
    /// catches up from the leader.
    pub async fn start_with(
        id: NodeId,
        members: impl IntoIterator<Item = NodeId>,
        path: &Path,
        transport: Arc<dyn Transport>,
        settings: Settings,
    ) -> Result<Directory, DirectoryError> {
        let directory = Directory::front(id, members, path, transport, settings)?;
        directory.run_member().await?;
        Ok(directory)
    }

    /// Opens (or creates) the directory's file at `path` without running the member: a front,
    /// for a process of a bank whose member another process runs on the same file. It reads
    /// the file, and sends writes to the bank's member over the transport (addressed to this
    /// bank's own id) until [`Directory::run_member`] makes it the member.
    pub fn front(
        id: NodeId,
        members: impl IntoIterator<Item = NodeId>,
        path: &Path,
        transport: Arc<dyn Transport>,
        settings: Settings,
    ) -> Result<Directory, DirectoryError> {
        settings
            .config()
            .map_err(|e| DirectoryError::Storage(format!("directory settings: {e}")))?;
        let reader = store::open_tables(path)?;
        let mut members: BTreeSet<NodeId> = members.into_iter().collect();
        members.insert(id);
        Ok(Directory {
            inner: Arc::new(Inner {
                id,
                members,
                path: path.to_owned(),
                transport,
                reader: Mutex::new(reader),
                settings,
                member: RwLock::new(None),
            }),
        })
    }

    /// Runs the bank's member in this process, once no other process runs it on the file
    /// (waiting up to [`MEMBER_LOCK_WAIT`] for one that is stopping): a front becomes the
    /// member. At once when this process runs it already.
    pub async fn run_member(&self) -> Result<(), DirectoryError> {
        if self.member().is_some() {
            return Ok(());
        }
        let lock = lock_file(&self.inner.path).await?;
        let (log, machine) = store::open_store(&self.inner.path)?;
        let config = self
            .inner
            .settings
            .config()
            .map_err(|e| DirectoryError::Storage(format!("directory settings: {e}")))?;
        let network = Network {
            transport: self.inner.transport.clone(),
        };
        let id = self.inner.id;
        let thread = OwnThread::start(&format!("directory-{id}"))
            .map_err(|e| DirectoryError::Storage(format!("cannot start its thread: {e}")))?;
        // openraft spawns its tasks where the member is made: on the member's thread.
        let raft = thread
            .run(Raft::new(id, Arc::new(config), network, log, machine))
            .await
            .ok_or_else(|| DirectoryError::Storage("its thread stopped".to_owned()))?
            .map_err(|e| DirectoryError::Storage(e.to_string()))?;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| DirectoryError::Storage(e.to_string()))?;
        if !initialized {
            match raft.initialize(self.inner.members.clone()).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(DirectoryError::Storage(e.to_string())),
            }
        }
        let member = Member {
            raft,
            thread,
            _lock: lock,
        };
        *self.inner.member.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(member));
        Ok(())
    }

    /// Whether this process runs the bank's member (or is a front).
    pub fn is_member(&self) -> bool {
        self.member().is_some()
    }

    fn member(&self) -> Option<Arc<Member>> {
        self.inner
            .member
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn downgrade(&self) -> WeakDirectory {
        WeakDirectory(Arc::downgrade(&self.inner))
    }

    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// Commits `command` through the leader and answers once it is applied there (and, when
    /// this bank is a follower, here too, or the write's deadline passed): so a read here right
    /// after a successful write sees it.
    pub async fn write(&self, command: Command) -> Result<Applied, DirectoryError> {
        let Some(member) = self.member() else {
            return self.write_on_thread(command).await;
        };
        let directory = self.clone();
        member
            .thread
            .run(async move { directory.write_on_thread(command).await })
            .await
            .unwrap_or(Err(DirectoryError::Unavailable))
    }

    async fn write_on_thread(&self, command: Command) -> Result<Applied, DirectoryError> {
        command
            .check()
            .map_err(|field| DirectoryError::Invalid(field.to_owned()))?;
        let deadline = Instant::now() + self.inner.settings.write_timeout;
        let mut hint = None;
        for _ in 0..FORWARDS_MAX {
            let leader = match hint.take() {
                Some(leader) => leader,
                None => self.leader_before(deadline).await?,
            };
            let result = if leader == self.inner.id && self.is_member() {
                self.write_here(command.clone(), deadline).await
            } else {
                self.forward(leader, command.clone(), deadline).await
            };
            match result {
                Ok(applied) => {
                    if leader != self.inner.id {
                        self.wait_applied(applied.index, deadline).await;
                    }
                    return Ok(applied);
                }
                Err(Refused::Conflict(conflict)) => return Err(DirectoryError::Conflict(conflict)),
                Err(Refused::Invalid(field)) => return Err(DirectoryError::Invalid(field)),
                Err(Refused::Unavailable) => return Err(DirectoryError::Unavailable),
                Err(Refused::NotLeader(next)) => hint = next.filter(|next| *next != leader),
            }
        }
        Err(DirectoryError::Unavailable)
    }

    /// The leader this bank knows of, waiting for an election (up to `leader_wait` and the
    /// deadline) when it knows none.
    /// A front starts with the bank's own member (its id), which forwards or answers where the
    /// leader is.
    async fn leader_before(&self, deadline: Instant) -> Result<NodeId, DirectoryError> {
        let Some(member) = self.member() else {
            return Ok(self.inner.id);
        };
        let until = deadline.min(Instant::now() + self.inner.settings.leader_wait);
        let mut metrics = member.raft.metrics();
        loop {
            if let Some(leader) = metrics.borrow_and_update().current_leader {
                return Ok(leader);
            }
            match tokio::time::timeout_at(until, metrics.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Err(DirectoryError::Unavailable),
            }
        }
    }

    /// Proposes `command` on this bank, which must be the leader.
    async fn write_here(&self, command: Command, deadline: Instant) -> Result<Applied, Refused> {
        let Some(member) = self.member() else {
            return Err(Refused::Unavailable);
        };
        let raft = &member.raft;
        {
            let metrics = raft.metrics();
            let metrics = metrics.borrow();
            if metrics.state != ServerState::Leader {
                return Err(Refused::NotLeader(
                    metrics.current_leader.filter(|l| *l != self.inner.id),
                ));
            }
            // A leader that has not heard from a majority for longer than an election takes is
            // probably cut off (and perhaps replaced): refuse at once rather than wait out the
            // deadline for a commit that cannot come.
            let lease = self.inner.settings.election_max;
            if metrics
                .millis_since_quorum_ack
                .is_some_and(|ms| u128::from(ms) > lease.as_millis())
            {
                return Err(Refused::Unavailable);
            }
        }
        match tokio::time::timeout_at(deadline, raft.client_write(command)).await {
            Err(_elapsed) => Err(Refused::Unavailable),
            Ok(Ok(response)) => match response.data {
                Ok(effect) => Ok(Applied {
                    index: response.log_id.index,
                    effect,
                }),
                Err(conflict) => Err(Refused::Conflict(conflict)),
            },
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
                Err(Refused::NotLeader(forward.leader_id))
            }
            Ok(Err(_)) => Err(Refused::Unavailable),
        }
    }

    async fn forward(
        &self,
        leader: NodeId,
        command: Command,
        deadline: Instant,
    ) -> Result<Applied, Refused> {
        let call = self.inner.transport.call(leader, Message::Write(command));
        match tokio::time::timeout_at(deadline, call).await {
            Ok(Ok(Reply::Write(result))) => result,
            // Unreachable, timed out or a reply of the wrong kind: fail fast, the caller may retry.
            Ok(Ok(_)) | Ok(Err(_)) | Err(_) => Err(Refused::Unavailable),
        }
    }

    /// Waits until this bank has applied the log up to `index`, at most until `deadline`;
    /// whether it got there.
    async fn wait_applied(&self, index: u64, deadline: Instant) -> bool {
        let Some(member) = self.member() else {
            return self.wait_applied_in_file(index, deadline).await;
        };
        let timeout = deadline.saturating_duration_since(Instant::now());
        member
            .raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "read your own write")
            .await
            .is_ok()
    }

    /// A front's wait for the member (another process) to apply the log up to `index` to the
    /// shared file.
    async fn wait_applied_in_file(&self, index: u64, deadline: Instant) -> bool {
        loop {
            let applied = self.read(|conn| Ok(store::applied_index(conn)?));
            if applied.is_ok_and(|applied| applied >= Some(index)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(FRONT_POLL).await;
        }
    }

    /// Waits up to `timeout` until this bank has applied the log up to `index`.
    pub async fn wait_for_index(&self, index: u64, timeout: Duration) -> bool {
        self.wait_applied(index, Instant::now() + timeout).await
    }

    /// Serves a message that bank `from` sent and signed: refused unless `from` is a member
    /// and the message speaks for `from` (a bank cannot stand for election, or lead, in
    /// another's name). The signature keeps outsiders out; Raft itself trusts its members to
    /// follow the protocol.
    pub async fn handle_from(&self, from: NodeId, message: Message) -> Result<Reply, Forged> {
        let speaks_for = message.speaks_for();
        let Some(running) = self.member() else {
            return Ok(Self::not_run_here(message));
        };
        let member = running
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&from)
            .is_some();
        if !member || speaks_for.is_some_and(|id| id != from) {
            return Err(Forged { from, speaks_for });
        }
        Ok(self.handle(message).await)
    }

    /// Serves a message another bank's directory sent this one, unchecked (see
    /// [`Directory::handle_from`]).
    pub async fn handle(&self, message: Message) -> Reply {
        let Some(member) = self.member() else {
            return Self::not_run_here(message);
        };
        let raft = &member.raft;
        match message {
            Message::AppendEntries(rpc) => Reply::AppendEntries(raft.append_entries(rpc).await),
            Message::Vote(rpc) => Reply::Vote(raft.vote(rpc).await),
            Message::InstallSnapshot(rpc) => {
                Reply::InstallSnapshot(raft.install_snapshot(rpc).await)
            }
            Message::Decide { decisions, forget } => Reply::Decided(
                if decisions.len() > DECISIONS_PER_ENTRY_MAX
                    || forget.len() > DECISIONS_PER_ENTRY_MAX
                {
                    Err(Refused::Invalid("decisions".to_owned()))
                } else {
                    let deadline = Instant::now() + self.inner.settings.write_timeout;
                    self.decide_here(decisions, forget, deadline).await
                },
            ),
            Message::Write(command) => Reply::Write(match command.check() {
                Err(field) => Err(Refused::Invalid(field.to_owned())),
                Ok(()) => {
                    let deadline = Instant::now() + self.inner.settings.write_timeout;
                    self.write_here(command, deadline).await
                }
            }),
        }
    }

    fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, ReadError>,
    ) -> Result<T, DirectoryError> {
        let conn = self
            .inner
            .reader
            .lock()
            .map_err(|_| DirectoryError::Storage("a reader panicked".to_owned()))?;
        Ok(read(&conn)?)
    }

    /// The customer with this (lower-cased, as bankd stores it) username, as this bank's copy
    /// has it.
    pub fn customer_by_username(&self, username: &str) -> Result<Option<Customer>, DirectoryError> {
        self.read(|conn| state::customer_by(conn, true, username))
    }

    pub fn customer_by_document(
        &self,
        document: &Document,
    ) -> Result<Option<Customer>, DirectoryError> {
        self.read(|conn| state::customer_by(conn, false, document.as_str()))
    }

    pub fn pix_key(&self, key: &PixKey) -> Result<Option<PixEntry>, DirectoryError> {
        self.read(|conn| state::pix_key(conn, key))
    }

    /// Every account the customer holds across the consortium, by bank and number.
    pub fn accounts_of(&self, document: &Document) -> Result<Vec<AccountRef>, DirectoryError> {
        self.read(|conn| state::accounts_of(conn, document))
    }

    /// openraft's view of this member: state, leader, term, log and snapshot positions.
    /// A front knows none of it: only the process running the member does.
    pub fn metrics(&self) -> RaftMetrics<NodeId, openraft::EmptyNode> {
        match self.member() {
            Some(member) => member.raft.metrics().borrow().clone(),
            None => RaftMetrics::new_initial(self.inner.id),
        }
    }

    /// Where this bank's copy stands. A front reads it from the file: the leader the member last
    /// voted for once elected, its term, and the entries applied.
    pub fn standing(&self) -> Result<Standing, DirectoryError> {
        if let Some(member) = self.member() {
            let metrics = member.raft.metrics();
            let metrics = metrics.borrow();
            return Ok(Standing {
                leader: metrics.current_leader,
                term: metrics.current_term,
                last_applied: metrics.last_applied.map(|applied| applied.index),
            });
        }
        self.read(|conn| {
            let vote = store::stored_vote(conn)?;
            Ok(Standing {
                leader: vote
                    .filter(|vote| vote.is_committed())
                    .and_then(|vote| vote.leader_id().voted_for()),
                term: vote.map_or(0, |vote| vote.leader_id().term),
                last_applied: store::applied_index(conn)?,
            })
        })
    }

    /// The leader this bank's member knows of (at a front, as [`Directory::standing`] reads it
    /// from the file).
    pub fn leader(&self) -> Option<NodeId> {
        self.standing().ok()?.leader
    }

    /// Builds a snapshot now (openraft builds them on its own every `snapshot_every` entries).
    pub async fn snapshot_now(&self) -> Result<(), DirectoryError> {
        self.member()
            .ok_or(DirectoryError::Unavailable)?
            .raft
            .trigger()
            .snapshot()
            .await
            .map_err(|_| DirectoryError::Unavailable)
    }

    /// Stops this process's run of the member (it becomes a front): it answers nothing more,
    /// and another process, or this one again, can run it on the file.
    pub async fn shutdown(&self) {
        let taken = self
            .inner
            .member
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(member) = taken {
            // An error here means it had already stopped.
            let _ = member.raft.shutdown().await;
        }
    }

    /// The answer of a process that does not run the bank's member: not available here.
    fn not_run_here(message: Message) -> Reply {
        use openraft::error::Fatal::Stopped;
        match message {
            Message::AppendEntries(_) => Reply::AppendEntries(Err(RaftError::Fatal(Stopped))),
            Message::Vote(_) => Reply::Vote(Err(RaftError::Fatal(Stopped))),
            Message::InstallSnapshot(_) => Reply::InstallSnapshot(Err(RaftError::Fatal(Stopped))),
            Message::Decide { .. } => Reply::Decided(Err(Refused::Unavailable)),
            Message::Write(_) => Reply::Write(Err(Refused::Unavailable)),
        }
    }

    /// The interbank decision this bank's copy of the log holds for `e2e`, if any.
    pub fn decision(&self, e2e: &ledger::EndToEndId) -> Result<Option<bool>, DirectoryError> {
        self.read(|conn| Ok(state::decision(conn, e2e.as_str())?))
    }

    /// The transactions coordinated by `bank` whose decisions this bank's copy of the log holds
    /// (in flight, or finished but not yet forgotten).
    pub fn decided_by(
        &self,
        bank: &ledger::BankCode,
    ) -> Result<Vec<ledger::EndToEndId>, DirectoryError> {
        let rows = self.read(|conn| Ok(state::decided(conn)?))?;
        Ok(rows
            .iter()
            .filter_map(|text| ledger::EndToEndId::parse(text))
            .filter(|e2e| e2e.bank() == *bank)
            .collect())
    }

    /// Records `decisions` in the log (one entry; at most `DECISIONS_PER_ENTRY_MAX`) through the
    /// leader and answers, in the same order, the decision that stands for each transaction: the
    /// proposed one, or the one the log recorded first (as the entry's apply at the leader found
    /// them, so a follower does not wait for its own copy). `Unavailable`
    /// (no majority, an election): the entry may still be committed later; proposing again is
    /// safe, the first decision wins.
    pub async fn decide(&self, decisions: Vec<Decision>) -> Result<Vec<bool>, DirectoryError> {
        self.decide_and_forget(decisions, Vec::new()).await
    }

    /// As [`Directory::decide`], and in the same entry drops the decisions of `forget`:
    /// transactions this bank coordinated and saw finished at every bank, whose decisions nobody
    /// will ask for again (at most `DECISIONS_PER_ENTRY_MAX`).
    pub async fn decide_and_forget(
        &self,
        decisions: Vec<Decision>,
        forget: Vec<ledger::EndToEndId>,
    ) -> Result<Vec<bool>, DirectoryError> {
        let Some(member) = self.member() else {
            return self.decide_on_thread(decisions, forget).await;
        };
        let directory = self.clone();
        member
            .thread
            .run(async move { directory.decide_on_thread(decisions, forget).await })
            .await
            .unwrap_or(Err(DirectoryError::Unavailable))
    }

    async fn decide_on_thread(
        &self,
        decisions: Vec<Decision>,
        forget: Vec<ledger::EndToEndId>,
    ) -> Result<Vec<bool>, DirectoryError> {
        if decisions.len() > DECISIONS_PER_ENTRY_MAX || forget.len() > DECISIONS_PER_ENTRY_MAX {
            return Err(DirectoryError::Invalid("decisions".to_owned()));
        }
        let deadline = Instant::now() + self.inner.settings.write_timeout;
        let mut hint = None;
        for _ in 0..FORWARDS_MAX {
            let leader = match hint.take() {
                Some(leader) => leader,
                None => self.leader_before(deadline).await?,
            };
            let result = if leader == self.inner.id && self.is_member() {
                self.decide_here(decisions.clone(), forget.clone(), deadline)
                    .await
            } else {
                self.forward_decisions(leader, decisions.clone(), forget.clone(), deadline)
                    .await
            };
            match result {
                Ok(winners) if winners.len() == decisions.len() => return Ok(winners),
                Ok(_) => return Err(DirectoryError::Unavailable),
                Err(Refused::Conflict(conflict)) => return Err(DirectoryError::Conflict(conflict)),
                Err(Refused::Invalid(field)) => return Err(DirectoryError::Invalid(field)),
                Err(Refused::Unavailable) => return Err(DirectoryError::Unavailable),
                Err(Refused::NotLeader(next)) => hint = next.filter(|next| *next != leader),
            }
        }
        Err(DirectoryError::Unavailable)
    }

    /// Proposes `decisions` on this bank, which must be the leader, and answers the winners the
    /// entry's apply here found.
    async fn decide_here(
        &self,
        decisions: Vec<Decision>,
        forget: Vec<ledger::EndToEndId>,
        deadline: Instant,
    ) -> Result<Vec<bool>, Refused> {
        let applied = self
            .write_here(Command::RecordDecisions { decisions, forget }, deadline)
            .await?;
        match applied.effect {
            Effect::Decided { winners, .. } => Ok(winners),
            Effect::Changed | Effect::Unchanged => Err(Refused::Unavailable),
        }
    }

    async fn forward_decisions(
        &self,
        leader: NodeId,
        decisions: Vec<Decision>,
        forget: Vec<ledger::EndToEndId>,
        deadline: Instant,
    ) -> Result<Vec<bool>, Refused> {
        let call = self
            .inner
            .transport
            .call(leader, Message::Decide { decisions, forget });
        match tokio::time::timeout_at(deadline, call).await {
            Ok(Ok(Reply::Decided(result))) => result,
            Ok(Ok(_)) | Ok(Err(_)) | Err(_) => Err(Refused::Unavailable),
        }
    }
}

/// Takes the lock that lets one process at a time run the member on the file at `path` (on a
/// file beside it: SQLite's own locks on the file must not be touched), waiting up to
/// [`MEMBER_LOCK_WAIT`] for another process's member to stop.
async fn lock_file(path: &Path) -> Result<File, DirectoryError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| DirectoryError::Storage(format!("{}: {e}", lock_path.display())))?;
    let deadline = Instant::now() + MEMBER_LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(DirectoryError::Storage(format!(
                    "another process runs the bank's member of the directory on {} (its lock {} is held)",
                    path.display(),
                    lock_path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(DirectoryError::Storage(format!(
                    "{}: {e}",
                    lock_path.display()
                )));
            }
        }
    }
}
