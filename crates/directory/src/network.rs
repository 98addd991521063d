//! How the directory talks to the other banks: a [`Transport`] the caller supplies (bankd's
//! signed interbank HTTP; [`crate::mesh`] in tests) carries a [`Message`] to one bank and brings
//! back its [`Reply`]. Both are plain serde types, so a transport may send them as JSON. The
//! receiving side hands each message to [`crate::Directory::handle`].

use crate::model::{Applied, Command, Conflict, Decision};
use crate::{NodeId, TypeConfig};
use openraft::EmptyNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// A message from one bank's directory to another's.
// Externally tagged, like `Reply`: serde buffers an internally tagged enum's content, and
// then cannot read openraft's membership maps (JSON object keys) back as the u64 node ids they
// are. The mesh's JSON round trip caught it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Message {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A write a follower forwards to the leader it knows of.
    Write(Command),
    /// Interbank decisions a follower forwards to the leader, answered with the decision that
    /// stands for each (`Reply::Decided`), and finished transactions whose decisions the log may
    /// forget.
    Decide {
        decisions: Vec<Decision>,
        #[serde(default)]
        forget: Vec<ledger::EndToEndId>,
    },
}

impl Message {
    /// The bank this message speaks for: the candidate of a vote request, the leader of an
    /// append or a snapshot. `None` for a forwarded write, which any member may send.
    pub fn speaks_for(&self) -> Option<NodeId> {
        match self {
            Message::AppendEntries(rpc) => rpc.vote.leader_id().voted_for(),
            Message::Vote(rpc) => rpc.vote.leader_id().voted_for(),
            Message::InstallSnapshot(rpc) => rpc.vote.leader_id().voted_for(),
            Message::Write(_) | Message::Decide { .. } => None,
        }
    }
}

/// A message refused by [`crate::Directory::handle_from`]: its sender is not a member, or it
/// speaks for another bank than the one that signed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bank {from} may not send a directory message that speaks for {speaks_for:?}")]
pub struct Forged {
    pub from: NodeId,
    pub speaks_for: Option<NodeId>,
}

/// The answer to a [`Message`], of the matching kind.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    Write(Result<Applied, Refused>),
    Decided(Result<Vec<bool>, Refused>),
}

/// Why a forwarded write was not done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refused {
    /// The log refused it (every replica gives the same answer).
    Conflict(Conflict),
    /// The receiver is not the leader; it names the one it knows of, if any.
    NotLeader(Option<NodeId>),
    /// The receiver could not get it committed in time (no quorum, shutting down).
    Unavailable,
    /// A field is over its limit (`model::FIELD_BYTES_MAX`).
    Invalid(String),
}

/// The message did not reach the other bank, or its reply did not come back. Either way the
/// caller does not know whether the other bank acted on it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("bank {target} unreachable: {reason}")]
pub struct TransportError {
    pub target: NodeId,
    pub reason: String,
}

/// Carries directory messages between banks. bankd implements it over its signed interbank
/// HTTP; the receiving bank passes the message to [`crate::Directory::handle`] and sends back
/// its reply.
#[async_trait::async_trait]
pub trait Transport: Send + Sync + 'static {
    async fn call(&self, target: NodeId, message: Message) -> Result<Reply, TransportError>;
}

/// After a bank is found unreachable, how long openraft waits before trying it again.
const UNREACHABLE_BACKOFF: Duration = Duration::from_millis(200);

/// openraft's network factory over a [`Transport`].
#[derive(Clone)]
pub(crate) struct Network {
    pub(crate) transport: Arc<dyn Transport>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, _node: &EmptyNode) -> Peer {
        Peer {
            target,
            transport: self.transport.clone(),
        }
    }
}

/// The connection to one other bank.
pub(crate) struct Peer {
    target: NodeId,
    transport: Arc<dyn Transport>,
}

#[derive(Debug, thiserror::Error)]
#[error("bank {0} answered a directory message with a reply of another kind")]
struct WrongReply(NodeId);

impl Peer {
    async fn call<E: std::error::Error>(
        &self,
        message: Message,
    ) -> Result<Reply, RPCError<NodeId, EmptyNode, E>> {
        self.transport
            .call(self.target, message)
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))
    }

    fn wrong<E: std::error::Error>(&self) -> RPCError<NodeId, EmptyNode, E> {
        RPCError::Network(NetworkError::new(&WrongReply(self.target)))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, EmptyNode, RaftError<NodeId>>> {
        match self.call(Message::AppendEntries(rpc)).await? {
            Reply::AppendEntries(result) => {
                result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(self.wrong()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, EmptyNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        match self.call(Message::InstallSnapshot(rpc)).await? {
            Reply::InstallSnapshot(result) => {
                result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(self.wrong()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, EmptyNode, RaftError<NodeId>>> {
        match self.call(Message::Vote(rpc)).await? {
            Reply::Vote(result) => {
                result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(self.wrong()),
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(UNREACHABLE_BACKOFF))
    }
}
