//! The bank's security trail: an append-only record of logins (and failed ones), sessions ended,
//! refusals (throttled logins, registrations and lookups; session tokens naming no live session;
//! wrong operator tokens; interbank requests refused), the operator's calls, and the interbank requests received with the bank
//! that signed them (heartbeats aside: one a second per bank, they say nothing). The operator
//! reads it (`GET /api/v1/audit/events`, `bank audit events`).
//!
//! One JSON line per event in `security.log` beside the ledger (0600), opened for appending only.
//! Handlers hand events to one task over a bounded queue and never wait for the disk: when the
//! queue is full an event is dropped and counted (`dropped` in the answer), so a flood cannot
//! slow the bank. The file is not in the ledger's transactions: it records attempts, which
//! change nothing there. It is not rotated here (an operator may rotate it while the bank is
//! stopped).

use crate::limits::Client;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};

/// The trail's file, in the bank's data folder.
pub const TRAIL_FILE: &str = "security.log";
/// Events waiting to be written; beyond it they are dropped and counted.
pub const TRAIL_QUEUE_MAX: usize = 4_096;
/// Events one read of the trail answers at most.
pub const TRAIL_READ_MAX: usize = 1_000;
/// Longest detail kept for one event (a path, a code): the lines stay short whatever is sent.
const DETAIL_CHARS_MAX: usize = 200;

enum Job {
    Line(String),
    /// Answered once every line queued before it is written.
    Flush(oneshot::Sender<()>),
}

/// Where the node records events; a trail without a file records nothing.
#[derive(Clone)]
pub struct Trail {
    queue: Option<mpsc::Sender<Job>>,
    path: Option<PathBuf>,
    dropped: Arc<AtomicU64>,
}

impl Trail {
    /// A trail that records nothing (a node built without a data folder, as in unit tests).
    pub fn disabled() -> Trail {
        Trail {
            queue: None,
            path: None,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Opens (or creates, 0600) the trail in `dir` and starts the task that appends to it.
    pub fn start(dir: &Path) -> Result<Trail, String> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join(TRAIL_FILE);
        crate::config::make_private_file(&path)?;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let (queue, mut jobs) = mpsc::channel::<Job>(TRAIL_QUEUE_MAX);
        // A thread of its own rather than a blocking task: it ends when the last sender goes,
        // and a runtime shutting down does not wait for it.
        std::thread::Builder::new()
            .name("security-trail".into())
            .spawn(move || {
                let mut batch = String::new();
                while let Some(job) = jobs.blocking_recv() {
                    let mut flushes = Vec::new();
                    let mut next = Some(job);
                    // Everything already queued goes out in one write.
                    while let Some(job) = next {
                        match job {
                            Job::Line(line) => {
                                batch.push_str(&line);
                                batch.push('\n');
                            }
                            Job::Flush(done) => flushes.push(done),
                        }
                        next = jobs.try_recv().ok();
                    }
                    if !batch.is_empty() {
                        if let Err(error) = file.write_all(batch.as_bytes()) {
                            tracing::error!(%error, "cannot append to the security trail");
                        }
                        batch.clear();
                    }
                    for done in flushes {
                        let _ = done.send(());
                    }
                }
            })
            .map_err(|e| format!("cannot start the security trail: {e}"))?;
        Ok(Trail {
            queue: Some(queue),
            path: Some(path),
            dropped: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Records an event now: `kind` (a stable code), the client's address, who it concerns (a
    /// username, a bank's code, `operator`) and a short detail.
    pub fn record(&self, kind: &str, client: Option<Client>, actor: Option<&str>, detail: &str) {
        let Some(queue) = &self.queue else {
            return;
        };
        let detail: String = detail.chars().take(DETAIL_CHARS_MAX).collect();
        let event = wire::SecurityEvent {
            at: crate::routes::rfc3339(store::wall_ms()),
            kind: kind.to_string(),
            client: client.map(|c| c.to_string()),
            actor: actor.map(|a| a.chars().take(DETAIL_CHARS_MAX).collect()),
            detail,
        };
        let Ok(line) = serde_json::to_string(&event) else {
            return;
        };
        if queue.try_send(Job::Line(line)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The newest `limit` events, oldest first, once every event recorded before is written.
    pub async fn newest(&self, limit: usize) -> std::io::Result<wire::SecurityEvents> {
        let dropped = self.dropped.load(Ordering::Relaxed);
        let (Some(queue), Some(path)) = (&self.queue, self.path.clone()) else {
            return Ok(wire::SecurityEvents {
                events: Vec::new(),
                dropped,
            });
        };
        let (done, written) = oneshot::channel();
        if queue.send(Job::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
        let lines = tokio::task::spawn_blocking(move || tail(&path, limit))
            .await
            .map_err(std::io::Error::other)??;
        let events = lines
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect();
        Ok(wire::SecurityEvents { events, dropped })
    }
}

/// The last `limit` lines of the file, read backwards from its end in 64 KiB steps, so a long
/// trail costs a read only as long as the lines answered.
fn tail(path: &Path, limit: usize) -> std::io::Result<Vec<String>> {
    const STEP: u64 = 64 * 1024;
    let mut file = std::fs::File::open(path)?;
    let mut position = file.metadata()?.len();
    let mut buffer: Vec<u8> = Vec::new();
    while position > 0 && buffer.iter().filter(|b| **b == b'\n').count() <= limit {
        let step = STEP.min(position);
        position -= step;
        file.seek(SeekFrom::Start(position))?;
        let mut chunk = vec![0u8; step as usize];
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&buffer);
        buffer = chunk;
    }
    let text = String::from_utf8_lossy(&buffer);
    let mut lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    if position > 0 && !lines.is_empty() {
        // The first line may be cut.
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(limit);
    Ok(lines[skip..].iter().map(|l| l.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_reads_the_last_lines_across_steps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        let lines: Vec<String> = (0..5_000).map(|i| format!("{{\"n\":{i:040}}}")).collect();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let last = tail(&path, 1_000).unwrap();
        assert_eq!(last.len(), 1_000);
        assert_eq!(last[0], lines[4_000]);
        assert_eq!(last[999], lines[4_999]);
        assert_eq!(tail(&path, 10_000).unwrap().len(), 5_000);
    }
}
