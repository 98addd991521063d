//! Whether this process holds its bank's duties: the work one process of a bank does for all of
//! them. A bank on SQLite is one process, which always holds them; several `bankd` of one bank
//! on one PostgreSQL database share them through a lease row (`store::postgres::duty`): one
//! holds them, and another takes them over within seconds when it dies.
//!
//! The duties today: finishing the interbank work left open (at start, and when taking over
//! from a process that died: `interbank::engine::Event::TakeOver`), and running the bank's
//! member of the directory (`directory::follow_duties`). Each process keeps driving the
//! transactions it began itself (their resends and timeouts), and sends its own heartbeats. In
//! a consortium every interbank transaction is begun at the holder: the others are fronts of it
//! (`front.rs`), and a holder that loses the duties stops (`RunningBank::wait`).

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
    /// to learn whether this process holds it. The process is known to the others by its
    /// `address` (where it serves HTTP: a front of the directory sends its writes there) and its
    /// directory's file (`directory`: the others must share it).
    pub async fn shared(
        config: store::postgres::PgConfig,
        address: &str,
        directory: &std::path::Path,
    ) -> Duties {
        let holder = format!(
            "{}-{} {address} {}",
            std::process::id(),
            uuid::Uuid::new_v4(),
            directory.display()
        );
        let duties = Duties::Shared(DutyLease::start(config, holder));
        duties.held_within(START_WAIT).await;
        duties
    }

    /// Waits up to `within` for this process to hold the duties; whether it does.
    pub async fn held_within(&self, within: Duration) -> bool {
        match self {
            Duties::Sole => true,
            Duties::Shared(lease) => {
                let mut changes = lease.changes();
                tokio::time::timeout(
                    within,
                    changes.wait_for(|lease| matches!(lease, Lease::Held { .. })),
                )
                .await
                .is_ok_and(|held| held.is_ok())
            }
        }
    }

    /// Resolves once this process does not hold the duties (at once if it does not now); never
    /// for the sole process.
    pub async fn lost(&self) {
        match self {
            Duties::Sole => std::future::pending().await,
            Duties::Shared(lease) => {
                let _ = lease
                    .changes()
                    .wait_for(|lease| *lease == Lease::NotHeld)
                    .await;
            }
        }
    }

    /// Where the process holding the duties serves HTTP, as this one last read it (never for the
    /// sole process, which is that process).
    pub fn holder_address(&self) -> Option<String> {
        self.holder().map(|(address, _)| address)
    }

    /// The directory's file of the process holding the duties, as it was given it.
    pub fn holder_directory(&self) -> Option<String> {
        self.holder().map(|(_, file)| file)
    }

    /// The holder's address and directory file, from the name it took the lease under.
    fn holder(&self) -> Option<(String, String)> {
        match self {
            Duties::Sole => None,
            Duties::Shared(lease) => {
                let name = lease.current_holder()?;
                let (_, rest) = name.split_once(' ')?;
                let (address, file) = rest.split_once(' ')?;
                Some((address.to_owned(), file.to_owned()))
            }
        }
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
