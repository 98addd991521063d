//! An in-process [`Transport`] for tests: every member of one [`Mesh`] reaches the others by a
//! direct call, each message and reply going through JSON as they would between banks. A
//! member can be cut off ([`Mesh::isolate`]): every message to or from it is then lost, as in a
//! network partition, until [`Mesh::heal`].

use crate::NodeId;
use crate::directory::{Directory, WeakDirectory};
use crate::network::{Message, Reply, Transport, TransportError};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

/// The members of one in-process consortium and which of them are cut off.
#[derive(Default)]
pub struct Mesh {
    members: Mutex<HashMap<NodeId, WeakDirectory>>,
    isolated: Mutex<HashSet<NodeId>>,
}

impl Mesh {
    pub fn new() -> Arc<Mesh> {
        Arc::new(Mesh::default())
    }

    /// The transport member `from` sends through.
    pub fn endpoint(self: &Arc<Self>, from: NodeId) -> Arc<dyn Transport> {
        Arc::new(Endpoint {
            mesh: self.clone(),
            from,
        })
    }

    /// Makes `directory` reachable under its id (replacing an earlier member of that id).
    pub fn join(&self, directory: &Directory) {
        self.members
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(directory.id(), directory.downgrade());
    }

    /// Removes a member: messages to it are lost from now on.
    pub fn leave(&self, id: NodeId) {
        self.members
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    /// Cuts `id` off: every message to or from it is lost.
    pub fn isolate(&self, id: NodeId) {
        self.isolated
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id);
    }

    pub fn heal(&self, id: NodeId) {
        self.isolated
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    fn cut(&self, from: NodeId, to: NodeId) -> bool {
        let isolated = self.isolated.lock().unwrap_or_else(PoisonError::into_inner);
        isolated.contains(&from) || isolated.contains(&to)
    }

    fn member(&self, id: NodeId) -> Option<Directory> {
        self.members
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .and_then(WeakDirectory::upgrade)
    }
}

struct Endpoint {
    mesh: Arc<Mesh>,
    from: NodeId,
}

fn lost(target: NodeId, reason: impl Into<String>) -> TransportError {
    TransportError {
        target,
        reason: reason.into(),
    }
}

/// Sends `value` through JSON, as a transport between banks would.
fn through_json<T: serde::Serialize + serde::de::DeserializeOwned>(
    target: NodeId,
    value: &T,
) -> Result<T, TransportError> {
    let text = serde_json::to_string(value).map_err(|e| lost(target, e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| lost(target, e.to_string()))
}

#[async_trait::async_trait]
impl Transport for Endpoint {
    async fn call(&self, target: NodeId, message: Message) -> Result<Reply, TransportError> {
        if self.mesh.cut(self.from, target) {
            return Err(lost(target, "partitioned"));
        }
        let Some(member) = self.mesh.member(target) else {
            return Err(lost(target, "not running"));
        };
        let message = through_json(target, &message)?;
        // Checked as bankd checks a signed message: the sender is a member, and speaks for itself.
        let reply = member
            .handle_from(self.from, message)
            .await
            .map_err(|e| lost(target, e.to_string()))?;
        // A partition that began while the call ran loses the reply.
        if self.mesh.cut(self.from, target) {
            return Err(lost(target, "partitioned"));
        }
        through_json(target, &reply)
    }
}
