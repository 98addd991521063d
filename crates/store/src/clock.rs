//! The node's one hybrid logical clock, shared by the writer (which stamps ledger entries) and
//! the HTTP layer (which stamps responses). The pure clock is `ledger::Hlc`; this adds the wall
//! time and a lock.

use ledger::{Hlc, Stamp, TooFarAhead};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Default)]
pub struct SharedClock {
    hlc: Mutex<Hlc>,
}

pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl SharedClock {
    /// A clock that never issues a stamp at or before `floor`, the last one recorded on disk.
    pub fn starting_after(floor: Stamp) -> SharedClock {
        SharedClock {
            hlc: Mutex::new(Hlc::starting_after(floor)),
        }
    }

    pub fn tick(&self) -> Stamp {
        self.hlc.lock().expect("clock lock").tick(wall_ms())
    }

    /// Moves the clock past a stamp received from another bank, unless that stamp is more than
    /// `max_ahead_ms` ahead of this machine's wall time (then nothing moves).
    pub fn observe(&self, remote: Stamp, max_ahead_ms: u64) -> Result<Stamp, TooFarAhead> {
        self.hlc
            .lock()
            .expect("clock lock")
            .observe(remote, wall_ms(), max_ahead_ms)
    }

    pub fn last(&self) -> Stamp {
        self.hlc.lock().expect("clock lock").last()
    }

    /// Moves the clock past `floor` (used when a store finds a later stamp on disk).
    pub fn advance_past(&self, floor: Stamp) {
        let mut hlc = self.hlc.lock().expect("clock lock");
        if hlc.last() < floor {
            *hlc = Hlc::starting_after(floor);
        }
    }
}
