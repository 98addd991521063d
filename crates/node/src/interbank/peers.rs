//! The other banks as this bank sees them: where they are, whether they answer (a heartbeat
//! each second; suspect after 2 s of silence, down after 5 s, up again at the first answer), and
//! a per-peer outbox that sends protocol messages in batches over kept-alive connections.
//!
//! The outbox may drop messages (a full queue, a bank that does not answer): the protocol resends
//! whatever is not acknowledged, so nothing here needs to be reliable.

use super::signing;
use super::{Envelope, Part, Shared};
use ledger::BankCode;
use protocol::Message;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use store::wall_ms;
use tokio::sync::{mpsc, watch};

pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// Silence after which a bank is suspect.
pub const SUSPECT_AFTER_MS: u64 = 2_000;
/// Silence after which a bank is down (the seed systems' figure).
pub const DOWN_AFTER_MS: u64 = 5_000;
/// Messages in one envelope.
pub const BATCH_MAX: usize = 1_024;
/// Messages waiting for one peer; more are dropped (and resent by the protocol).
const OUTBOX_MAX: usize = 65_536;
/// How many times an outbox lets the other ready tasks run before it seals an envelope.
const GATHER_YIELDS: usize = 4;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Up,
    Suspect,
    Down,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Up => "up",
            Status::Suspect => "suspect",
            Status::Down => "down",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Health {
    pub status: Status,
    /// When the status last changed (Unix ms).
    pub since_ms: u64,
    /// The last heartbeat's round trip.
    pub rtt_ms: Option<u64>,
    heard_ms: Option<u64>,
    started_ms: u64,
}

impl Health {
    fn new(now_ms: u64) -> Health {
        Health {
            status: Status::Suspect,
            since_ms: now_ms,
            rtt_ms: None,
            heard_ms: None,
            started_ms: now_ms,
        }
    }

    /// Worth asking: not down, and heard from at least once since this bank started.
    pub fn reachable(&self) -> bool {
        self.status != Status::Down && self.heard_ms.is_some()
    }

    fn refresh(&mut self, bank: BankCode, now_ms: u64) {
        let silence = now_ms.saturating_sub(self.heard_ms.unwrap_or(self.started_ms));
        let status = if self.heard_ms.is_some() && silence < SUSPECT_AFTER_MS {
            Status::Up
        } else if silence < DOWN_AFTER_MS {
            Status::Suspect
        } else {
            Status::Down
        };
        if status != self.status {
            tracing::info!(
                %bank,
                from = self.status.as_str(),
                to = status.as_str(),
                "peer status"
            );
            self.status = status;
            self.since_ms = now_ms;
        }
    }
}

pub struct PeerLink {
    pub code: BankCode,
    pub name: String,
    /// The bank's addresses (one per `bankd` process of it); requests go to the one that
    /// answered last, and on to the next when it does not answer.
    urls: Vec<String>,
    current: AtomicUsize,
    health: Mutex<Health>,
    outbox: mpsc::Sender<Message<Part>>,
}

impl PeerLink {
    pub fn new(
        code: BankCode,
        name: String,
        urls: Vec<String>,
    ) -> (Arc<PeerLink>, mpsc::Receiver<Message<Part>>) {
        let (outbox, queue) = mpsc::channel(OUTBOX_MAX);
        let link = PeerLink {
            code,
            name,
            urls: urls
                .iter()
                .map(|url| url.trim_end_matches('/').to_string())
                .collect(),
            current: AtomicUsize::new(0),
            health: Mutex::new(Health::new(wall_ms())),
            outbox,
        };
        (Arc::new(link), queue)
    }

    pub fn health(&self) -> Health {
        let mut health = self.health.lock().expect("health lock");
        health.refresh(self.code, wall_ms());
        *health
    }

    /// The bank answered, or sent a valid signed request.
    pub fn heard(&self, rtt_ms: Option<u64>) {
        let mut health = self.health.lock().expect("health lock");
        let now = wall_ms();
        health.heard_ms = Some(now);
        if rtt_ms.is_some() {
            health.rtt_ms = rtt_ms;
        }
        health.refresh(self.code, now);
    }

    /// Queues a message; a full queue drops it (the protocol resends).
    pub fn send(&self, message: Message<Part>) {
        if self.outbox.try_send(message).is_err() {
            tracing::debug!(bank = %self.code, "outbox full; message dropped");
        }
    }
}

/// Posts a signed request to a peer.
pub async fn post(
    shared: &Shared,
    link: &PeerLink,
    path: &str,
    body: Vec<u8>,
) -> Result<reqwest::Response, String> {
    let (response, rtt_ms) = signed(shared, link, reqwest::Method::POST, path, body).await?;
    if response.status().is_success() {
        link.heard(Some(rtt_ms));
        Ok(response)
    } else {
        Err(format!("{} answered {}", link.code, response.status()))
    }
}

/// A signed GET to a peer.
pub async fn get(
    shared: &Shared,
    link: &PeerLink,
    path: &str,
) -> Result<reqwest::Response, String> {
    let (response, _) = signed(shared, link, reqwest::Method::GET, path, Vec::new()).await?;
    link.heard(None);
    Ok(response)
}

/// Sends a request signed by this bank for `link`'s bank, and says how long the round trip took.
/// The answer's `X-Clock` is not observed: an answer is not signed, so anyone between the banks
/// could write any clock there; the clock moves only on the stamps of signed envelopes.
async fn signed(
    shared: &Shared,
    link: &PeerLink,
    method: reqwest::Method,
    path: &str,
    body: Vec<u8>,
) -> Result<(reqwest::Response, u64), String> {
    let headers = signing::sign(
        &shared.key,
        shared.me,
        link.code,
        method.as_str(),
        path,
        &body,
        wall_ms(),
    );
    let body = axum::body::Bytes::from(body);
    let first = link.current.load(Ordering::Relaxed);
    let mut failed = String::new();
    // Each address once, from the one that answered last; only a request that reached no
    // process (refused, reset, timed out) goes on to the next: any answer is the bank's.
    for step in 0..link.urls.len() {
        let at = (first + step) % link.urls.len();
        let mut request = shared
            .http
            .request(method.clone(), format!("{}{path}", link.urls[at]))
            .timeout(REQUEST_TIMEOUT);
        if !body.is_empty() {
            request = request
                .header("content-type", "application/json")
                .body(body.clone());
        }
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        let started = Instant::now();
        match request.send().await {
            Ok(response) => {
                if at != first {
                    link.current.store(at, Ordering::Relaxed);
                }
                return Ok((response, started.elapsed().as_millis() as u64));
            }
            Err(error) => failed = error.to_string(),
        }
    }
    Err(failed)
}

/// Sends the peer's queued messages, one envelope at a time: while an envelope is on its way,
/// the messages that follow gather for the next one. (Eight envelopes in flight at once carried
/// under three messages each and cost a fifth of the interbank throughput, each paying its own
/// request, signature and check.) Before sealing one, it yields to the tasks that are ready
/// (the engine, handing over the rest of what a write's outcome sent) a few times, taking what
/// they queue: no timer, so no wait when nothing else is ready, and fewer, fuller envelopes under
/// load (interbank throughput 1.16×, BENCHMARKS.md).
pub async fn run_outbox(
    shared: Arc<Shared>,
    link: Arc<PeerLink>,
    mut queue: mpsc::Receiver<Message<Part>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let first = tokio::select! {
            message = queue.recv() => match message {
                Some(message) => message,
                None => return,
            },
            _ = stop.changed() => return,
        };
        let mut messages = vec![first];
        for round in 0..=GATHER_YIELDS {
            if round > 0 {
                tokio::task::yield_now().await;
            }
            while messages.len() < BATCH_MAX {
                match queue.try_recv() {
                    Ok(message) => messages.push(message),
                    Err(_) => break,
                }
            }
        }
        let envelope = Envelope {
            from: shared.me,
            clock: shared.clock.tick(),
            messages,
        };
        let body = serde_json::to_vec(&envelope).expect("envelopes serialise");
        tokio::select! {
            sent = post(&shared, &link, super::MESSAGES_PATH, body) => if let Err(error) = sent {
                tracing::debug!(bank = %link.code, %error, "interbank messages not delivered; the protocol resends");
            },
            _ = stop.changed() => return,
        }
    }
}

/// Sends a heartbeat every second and keeps the peer's status current.
pub async fn run_heartbeats(
    shared: Arc<Shared>,
    link: Arc<PeerLink>,
    mut stop: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(HEARTBEAT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        let envelope = Envelope {
            from: shared.me,
            clock: shared.clock.tick(),
            messages: Vec::new(),
        };
        let body = serde_json::to_vec(&envelope).expect("envelopes serialise");
        if let Err(error) = post(&shared, &link, super::HEARTBEAT_PATH, body).await {
            tracing::debug!(bank = %link.code, %error, "heartbeat unanswered");
        }
        link.health();
    }
}
