//! The consortium side of a bank: signed messages to and from the other banks, their health,
//! and the engine that drives the interbank atomic commit (DESIGN §4).
//!
//! The protocol itself is the pure `protocol` crate. The engine is one task that owns this
//! bank's `Coordinator` and `Participant`, feeds them events (a customer's payment, a message
//! from a bank, a finished store write, the passing of time) and carries out what they ask:
//! durable writes through the store, then messages through the per-peer outboxes. A write that
//! must be durable before a message is sent is awaited first; a store that cannot write stops
//! the node (fail-stop) rather than let the protocol run on a lie.

pub mod decisions;
pub mod engine;
pub mod fault;
pub mod peers;
pub mod signing;

use crate::config::Peer;
use ed25519_dalek::SigningKey;
use ledger::{BankCode, Stamp};
use peers::PeerLink;
use protocol::{Leg, Message, TxnId};
use serde::{Deserialize, Serialize};
use signing::Verifier;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use store::{PaymentRecord, SharedClock, Store};
use tokio::sync::{mpsc, oneshot, watch};

pub const MESSAGES_PATH: &str = "/interbank/v1/messages";
pub const HEARTBEAT_PATH: &str = "/interbank/v1/heartbeat";
pub const PIX_KEYS_PATH: &str = "/interbank/v1/pix-keys";
/// `{CUSTOMERS_PATH}/{document}/accounts[/{number}[/statement]]`: a customer's accounts here, read
/// by another bank on that customer's behalf.
pub const CUSTOMERS_PATH: &str = "/interbank/v1/customers";
/// How long a read forwarded to another bank may take.
const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Events waiting for the engine; a bank that sends more is told to retry (503).
const EVENTS_MAX: usize = 65_536;

/// A participant's part of a transaction: its legs, and the payment it belongs to so its
/// customers can look it up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub legs: Vec<Leg>,
    pub payment: Option<PaymentRecord>,
    /// The document (bare CPF or CNPJ) of the customer the coordinating bank authenticated, when
    /// the part takes money out of, or puts cash into, that customer's accounts here. Banks of the
    /// consortium trust each other's logins; the signature on the envelope says which bank vouches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
}

/// What one bank posts to another: protocol messages (none for a heartbeat) and its clock.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    pub from: BankCode,
    pub clock: Stamp,
    pub messages: Vec<Message<Part>>,
}

/// A Pix key found at another bank.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteKey {
    pub key: String,
    pub key_type: String,
    pub bank: String,
    pub number: String,
    pub holder_name: String,
    pub document_masked: String,
}

/// The outcome of a transaction this bank coordinates, once it is durable.
#[derive(Debug, Clone)]
pub struct Decided {
    pub commit: bool,
    pub reason: Option<String>,
    /// The customer's payment or package as the decision's write settled it, when it did.
    pub settled: Option<store::Outcome>,
}

/// What the peer tasks and the engine share.
pub struct Shared {
    pub me: BankCode,
    pub key: SigningKey,
    pub clock: Arc<SharedClock>,
    pub http: reqwest::Client,
}

pub struct Interbank {
    shared: Arc<Shared>,
    links: BTreeMap<BankCode, Arc<PeerLink>>,
    pub verifier: Verifier,
    events: mpsc::Sender<engine::Event>,
    stop: watch::Sender<bool>,
    /// The consortium's directory: who is who, which Pix key goes where, who holds what.
    pub directory: directory::Directory,
    /// Whether this process holds the bank's duties (`crate::duties`).
    pub duties: Arc<crate::duties::Duties>,
}

impl Interbank {
    /// Reloads unfinished interbank work from the store (when this process holds the bank's
    /// duties) and starts the engine, the heartbeats and the outboxes.
    #[allow(clippy::too_many_arguments)] // Each is one of the bank's parts, named at the call.
    pub async fn start(
        me: BankCode,
        key: SigningKey,
        peers: &[Peer],
        ca: Option<&std::path::Path>,
        store: Arc<dyn Store>,
        clock: Arc<SharedClock>,
        directory: directory::Directory,
        duties: Arc<crate::duties::Duties>,
    ) -> Result<Arc<Interbank>, String> {
        // https peers are checked against the consortium's CA (`ca`) when given.
        let http = crate::tls::peer_client(ca, |builder| {
            builder.tcp_nodelay(true).pool_max_idle_per_host(16)
        })?;
        let shared = Arc::new(Shared {
            me,
            key,
            clock,
            http,
        });
        let (stop, stopped) = watch::channel(false);
        let mut keys = HashMap::new();
        let mut links = BTreeMap::new();
        for peer in peers {
            let code = BankCode::parse(&peer.code)
                .ok_or_else(|| format!("bank code {:?} is not 8 digits", peer.code))?;
            if code == me {
                continue;
            }
            keys.insert(
                code,
                peer.public_keys()
                    .map_err(|e| format!("bank {code}: {e}"))?,
            );
            let (link, queue) = PeerLink::new(code, peer.name.clone(), peer.urls());
            tokio::spawn(peers::run_outbox(
                shared.clone(),
                link.clone(),
                queue,
                stopped.clone(),
            ));
            tokio::spawn(peers::run_heartbeats(
                shared.clone(),
                link.clone(),
                stopped.clone(),
            ));
            links.insert(code, link);
        }
        let (events, queue) = mpsc::channel(EVENTS_MAX);
        let holds_duties = duties.held();
        let engine = engine::Engine::recover(
            me,
            store,
            events.clone(),
            links.clone(),
            directory.clone(),
            holds_duties,
        )
        .await?;
        tokio::spawn(engine.run(queue, stopped.clone()));
        if let Some(changes) = duties.changes() {
            tokio::spawn(take_over_when_held(
                changes,
                holds_duties,
                events.clone(),
                stopped,
            ));
        }
        Ok(Arc::new(Interbank {
            shared,
            links,
            verifier: Verifier::new(me, keys),
            events,
            stop,
            directory,
            duties,
        }))
    }

    /// The client this bank's requests to other banks (and a front's to its holder) go out on.
    pub fn http(&self) -> &reqwest::Client {
        &self.shared.http
    }

    pub fn link(&self, bank: BankCode) -> Option<&Arc<PeerLink>> {
        self.links.get(&bank)
    }

    pub fn links(&self) -> impl Iterator<Item = &Arc<PeerLink>> {
        self.links.values()
    }

    /// Starts a transaction this bank coordinates; the answer comes once the decision is durable.
    /// With `caller_prepares`, the caller prepares this bank's own part itself and reports it
    /// with [`Interbank::prepared`]; the other banks are asked at once.
    pub async fn begin(
        &self,
        txn: TxnId,
        parts: BTreeMap<BankCode, Part>,
        caller_prepares: bool,
    ) -> Option<oneshot::Receiver<Decided>> {
        let (done, decided) = oneshot::channel();
        self.events
            .send(engine::Event::Begin {
                txn,
                parts,
                done,
                caller_prepares,
            })
            .await
            .ok()?;
        Some(decided)
    }

    /// This bank's own part of a transaction begun with `caller_prepares` is durably held (`yes`),
    /// or it was refused or never prepared (`yes` false, with why: the coordinator aborts).
    pub async fn prepared(&self, txn: TxnId, yes: bool, reason: Option<String>) {
        let prepared = engine::Event::Prepared {
            txn,
            yes,
            reason,
            finished_before: false,
        };
        // A stopped engine has nobody left to tell; a restart aborts what it had begun.
        let _ = self.events.send(prepared).await;
    }

    /// Hands messages from a bank to the engine; `false` if the engine is too busy to take them.
    pub fn deliver(&self, from: BankCode, messages: Vec<Message<Part>>) -> bool {
        if self.events.capacity() < messages.len() {
            return false;
        }
        messages.into_iter().all(|message| {
            self.events
                .try_send(engine::Event::Inbound { from, message })
                .is_ok()
        })
    }

    /// A signed GET at another bank: `Some` on 200, `None` on 404, an error when the bank cannot
    /// answer (down, unreachable, or anything else).
    pub async fn forward_get<T: serde::de::DeserializeOwned>(
        &self,
        bank: BankCode,
        path: &str,
    ) -> Result<Option<T>, String> {
        let link = self
            .link(bank)
            .ok_or_else(|| format!("bank {bank} is not in the consortium"))?;
        if !link.health().reachable() {
            return Err(format!("bank {bank} is not answering"));
        }
        let response = tokio::time::timeout(FORWARD_TIMEOUT, peers::get(&self.shared, link, path))
            .await
            .map_err(|_| format!("bank {bank} did not answer in time"))??;
        match response.status().as_u16() {
            200 => response
                .json()
                .await
                .map(Some)
                .map_err(|e| format!("bank {bank} answered badly: {e}")),
            404 => Ok(None),
            status => Err(format!("bank {bank} answered {status}")),
        }
    }

    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Turns true when the bank stops, for background work to end with it.
    pub fn stopped(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }
}

/// The problem a customer gets when a bank their request needs cannot answer.
pub fn unavailable(
    state: &crate::state::AppState,
    bank: BankCode,
    why: &str,
) -> crate::error::ApiError {
    let name = state
        .interbank
        .link(bank)
        .map(|l| l.name.clone())
        .unwrap_or_default();
    tracing::debug!(%bank, why, "a bank a request needs is unavailable");
    crate::error::ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "bank_unavailable",
        format!("bank {bank} ({name}) is not answering; nothing was done, try again later"),
    )
    .with_retry_after(2)
}

/// Tells the engine to take over the interbank work left open each time this process comes to
/// hold the bank's duties (another process of the bank died or stopped).
async fn take_over_when_held(
    mut changes: watch::Receiver<store::postgres::duty::Lease>,
    mut held: bool,
    events: mpsc::Sender<engine::Event>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = stopped.changed() => return,
        }
        let now = store::postgres::duty::held_now(*changes.borrow_and_update());
        if now && !held {
            tracing::info!("taking over the bank's interbank work left open");
            if events.send(engine::Event::TakeOver).await.is_err() {
                return;
            }
        }
        held = now;
    }
}
