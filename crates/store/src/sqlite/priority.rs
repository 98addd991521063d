//! The writer answers a batch at real-time priority.
//!
//! Every request waits for its batch's commit, and the writer is the one thread that can answer
//! them. On a busy machine it used to wait for a core once its `fsync` returned, and again between
//! its answers, while the HTTP workers and the clients it had just answered took the cores: over
//! 3 s of intra load the writer ran 1.1 s and sat runnable, without a core, another 1.1 s. So
//! from the moment a commit syncs the log until its last answer is sent, the writer runs under
//! `SCHED_FIFO` (priority 1): it has a core as soon as the `fsync` returns and keeps it while it
//! answers. It builds the commit, applies the next batch and waits for one at normal priority, so
//! the cores are shared while there is work to share and jobs still gather into batches (a writer
//! that is real-time throughout takes each job the moment it arrives and commits them one or two
//! at a time: half the transfers per second). Only a commit that answers at least
//! [`ANSWERS_MIN`] commands goes real-time: a bulk batch of a few big commands gains nothing from
//! it and lost throughput with it. BENCHMARKS.md has the numbers, including the cost: interbank
//! payments between the three banks of one `bankd demo` process, whose three writers then take
//! turns ahead of its one HTTP worker, about 6% fewer.
//!
//! Linux lets a thread take a real-time policy with `CAP_SYS_NICE` or a `RLIMIT_RTPRIO` of at
//! least 1 (`ulimit -r`, systemd's `LimitRTPRIO=1`). Without either the writer commits at normal
//! priority, as it did before, and says so once. It is opt-in tuning ([`super::SqliteTuning`],
//! `bankd --sqlite-tuning realtime`), off by default, and works through the `coalesce` VFS's
//! sync hook, so asking for it opens the writer through that VFS too.
//! The kernel keeps a share of every second for other threads however many are real-time
//! (`/proc/sys/kernel/sched_rt_runtime_us`).

use std::cell::Cell;

/// The fewest answers a commit must owe to be worth real-time priority.
pub(super) const ANSWERS_MIN: usize = 8;

thread_local! {
    /// On a writer's thread that may go real-time: from just before its `COMMIT` until its
    /// answers are sent.
    static ARMED: Cell<bool> = const { Cell::new(false) };
    /// Whether this thread runs real-time now.
    static RAISED: Cell<bool> = const { Cell::new(false) };
}

/// The writer thread's scheduling around each commit.
pub(super) struct Priority {
    permitted: bool,
}

impl Priority {
    /// For the calling thread (the writer's): when `wanted`, tries the real-time policy once,
    /// and goes back.
    pub(super) fn for_this_thread(bank: &str, wanted: bool) -> Priority {
        let permitted = wanted
            && match set(true).and_then(|()| set(false)) {
                Ok(()) => true,
                Err(error) => {
                    tracing::info!(
                        bank,
                        %error,
                        "the writer commits at normal priority: real-time scheduling needs \
                         CAP_SYS_NICE or a RLIMIT_RTPRIO of 1 or more"
                    );
                    false
                }
            };
        Priority { permitted }
    }

    /// Whether commits run at real-time priority.
    #[cfg(test)]
    fn realtime(&self) -> bool {
        self.permitted
    }

    /// Before a `COMMIT` that will answer `answers` commands: with at least [`ANSWERS_MIN`],
    /// the thread goes real-time when the commit syncs the log ([`before_sync`]), so building
    /// the commit's frames still shares the cores. A commit of a few big commands (bulk batches)
    /// stays at normal priority: there the cores' time goes to parsing the next ones.
    pub(super) fn arm(&self, answers: usize) {
        if self.permitted && answers >= ANSWERS_MIN {
            ARMED.set(true);
        }
    }

    /// After the commit's answers, or when it failed: normal priority again.
    pub(super) fn lower(&self) {
        ARMED.set(false);
        if RAISED.replace(false)
            && let Err(error) = set(false)
        {
            tracing::error!(%error, "the writer could not go back to normal priority");
        }
    }
}

/// Called by the log's `xSync` ([`super::vfs`]) on whichever thread syncs: an armed writer goes
/// real-time for the wait, so it has a core the moment the sync returns, and keeps it while it
/// answers.
pub(super) fn before_sync() {
    if ARMED.get() && !RAISED.get() {
        RAISED.set(set(true).is_ok());
    }
}

/// Sets the calling thread's policy: `SCHED_FIFO` at priority 1, or `SCHED_OTHER`.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn set(realtime: bool) -> std::io::Result<()> {
    let (policy, priority) = if realtime {
        (libc::SCHED_FIFO, 1)
    } else {
        (libc::SCHED_OTHER, 0)
    };
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` is a valid `sched_param` that outlives the call, which only reads it; pid 0
    // is the calling thread.
    if unsafe { libc::sched_setscheduler(0, policy, &param) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn set(_realtime: bool) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The calling thread's policy, from `/proc` (field 41 of its `stat`).
    fn policy() -> u32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(38).unwrap().parse().unwrap()
    }

    /// Armed, a permitted writer goes real-time at the log's sync and not before; lowered, it is
    /// back to normal; one that may not stays normal throughout. On a thread of its own.
    #[test]
    fn a_commit_is_real_time_from_its_sync_to_its_answers() {
        std::thread::spawn(|| {
            let priority = Priority::for_this_thread("10000001", true);
            assert_eq!(policy(), libc::SCHED_OTHER as u32);
            before_sync();
            assert_eq!(policy(), libc::SCHED_OTHER as u32, "not armed");
            priority.arm(ANSWERS_MIN - 1);
            before_sync();
            assert_eq!(policy(), libc::SCHED_OTHER as u32, "too few answers");
            priority.arm(ANSWERS_MIN);
            assert_eq!(policy(), libc::SCHED_OTHER as u32, "armed, not yet syncing");
            before_sync();
            before_sync();
            let expected = if priority.realtime() {
                libc::SCHED_FIFO
            } else {
                libc::SCHED_OTHER
            };
            assert_eq!(policy(), expected as u32);
            priority.lower();
            assert_eq!(policy(), libc::SCHED_OTHER as u32);
            before_sync();
            assert_eq!(policy(), libc::SCHED_OTHER as u32, "lowered disarms");
            if !priority.realtime() {
                eprintln!("real-time scheduling not permitted here: checked the fallback only");
            }
        })
        .join()
        .unwrap();
    }
}
