//! Whether this process holds its bank's duties: the work one process of a bank does for all of
//! them. A bank on SQLite is one process, which always holds them; several `bankd` of one bank
//! on one PostgreSQL database share them through a lease row (`store::postgres::duty`): one
//! holds them, and another takes them over within seconds when it dies.
//!
//! The duties today: finishing the interbank work left open (at start, and when taking over
//! from a process that died: `interbank::engine::Event::TakeOver`). Each process keeps driving
//! the transactions it began itself (their resends and timeouts), and sends its own heartbeats.

use std::time::Duration;
use store::postgres::duty::{DutyLease, Lease};
use tokio::sync::watch;

/// How long a starting process waits to learn whether it holds the duties (a first process
/// takes the lease at its first try, within a round trip).
pub const START_WAIT: Duration = Duration::from_secs(2);

pub enum Duties {
    /// The bank's only process (SQLite).
    Sole,
    /// One of the processes sharing a PostgreSQL database.
    Shared(DutyLease),
}

impl Duties {
    /// Starts trying for the lease in the database of `config`, and waits up to [`START_WAIT`]
    /// to learn whether this process holds it.
    pub async fn shared(config: store::postgres::PgConfig) -> Duties {
        let holder = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4());
        let lease = DutyLease::start(config, holder);
        let mut changes = lease.changes();
        let _ = tokio::time::timeout(
            START_WAIT,
            changes.wait_for(|lease| matches!(lease, Lease::Held { .. })),
        )
        .await;
        Duties::Shared(lease)
    }

    /// Whether this process holds the duties now.
    pub fn held(&self) -> bool {
        match self {
            Duties::Sole => true,
            Duties::Shared(lease) => lease.held(),
        }
    }

    /// What changes when the duties move (never, for the sole process).
    pub fn changes(&self) -> Option<watch::Receiver<Lease>> {
        match self {
            Duties::Sole => None,
            Duties::Shared(lease) => Some(lease.changes()),
        }
    }

    /// Gives the duties up (a clean stop), so another process takes them at once.
    pub async fn release(&self) {
        if let Duties::Shared(lease) = self {
            lease.release().await;
        }
    }
}
