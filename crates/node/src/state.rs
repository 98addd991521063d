//! What every handler shares: the bank's identity, its store and clock, and the in-memory guards
//! (idempotency keys in flight; login throttling and the other limits are in `limits.rs`).

use crate::error::ApiError;
use crate::extract::Fingerprint;
use crate::metrics::Metrics;
use axum::http::{HeaderMap, StatusCode};
use ledger::{BankCode, EndToEndId};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::{
    Command, CustomerId, CustomerRecord, Executed, Request, SessionRecord, SharedClock, Store,
};

/// Longest accepted `Idempotency-Key`.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 255;
/// Live sessions remembered at once; beyond it, the memory starts again from empty.
const SESSIONS_REMEMBERED_MAX: usize = 100_000;

/// How long a process sharing its ledger with others trusts a session it read (see `Sessions`).
pub const SHARED_SESSION_RECHECK_MS: u64 = 1_000;

pub struct AppState {
    pub bank: BankCode,
    pub name: String,
    pub store: Arc<dyn Store>,
    pub clock: Arc<SharedClock>,
    pub operator_token: String,
    pub session_ttl: Duration,
    pub peers: Vec<crate::config::Peer>,
    pub interbank: Arc<crate::interbank::Interbank>,
    /// When this node started (Unix ms).
    pub started_ms: u64,
    pub metrics: Metrics,
    inflight: Mutex<HashSet<(CustomerId, String)>>,
    /// Login throttling, refused registrations, Pix lookups and the password-hashing pool.
    pub limits: crate::limits::Limits,
    /// The security trail (`trail.rs`).
    pub trail: crate::trail::Trail,
    /// The next end-to-end id's sequence number; see [`AppState::new_e2e`].
    e2e_sequence: AtomicU64,
    /// This process's slot among its bank's processes, which its ids carry (0 for a bank's
    /// only process; `store::postgres::process_slot`).
    e2e_slot: u64,
    sessions: Mutex<Sessions>,
    /// Directory writes owed after a local commit, and the migration of an older ledger.
    pub listing: crate::listing::Listing,
    /// One of several processes of a bank of a consortium (on PostgreSQL): while another holds
    /// the bank's duties, this one is a front of it (`front.rs`).
    pub may_be_front: bool,
}

/// Sessions already looked up, so a request does not read the database to know its caller. This
/// process is the only one that writes its store, so the one way a session ends early is a
/// logout here, which forgets it ([`AppState::forget_session`]); otherwise it ends at its expiry.
/// Several processes sharing a PostgreSQL ledger each log out their own sessions: there a
/// session read more than [`SHARED_SESSION_RECHECK_MS`] ago is read again, so a logout through
/// one process ends the session at the others within that time.
#[derive(Default)]
struct Sessions {
    /// Each session as read, and when (wall ms).
    live: HashMap<[u8; 32], (SessionRecord, u64)>,
    /// Bumped by each logout: a lookup that started before it does not remember what it read.
    logouts: u64,
}

/// Holds an idempotency key as in flight until dropped.
struct InFlight<'a> {
    state: &'a AppState,
    entry: (CustomerId, String),
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.state
            .inflight
            .lock()
            .expect("inflight lock")
            .remove(&self.entry);
    }
}

/// The first end-to-end id sequence of a bank that starts now: microseconds since the epoch,
/// past the last stamp the store recorded, so a restarted bank starts above every id it made
/// before (unless it had made more than a million a second). A recorded clock too far ahead for
/// an id to carry (a far-future stamp taken before such stamps were refused) is not followed:
/// the wall time's sequence is used instead, as the UTC minute in every id already keeps ids of
/// different minutes apart.
fn first_e2e_sequence(wall_ms: u64, clock_ms: u64) -> u64 {
    let micros = |ms: u64| {
        ms.checked_add(1)
            .and_then(|ms| ms.checked_mul(1_000))
            .filter(|sequence| *sequence < EndToEndId::SEQUENCE_END / 2)
    };
    micros(wall_ms.max(clock_ms))
        .or_else(|| micros(wall_ms))
        .unwrap_or(0)
}

impl AppState {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        bank: BankCode,
        name: String,
        store: Arc<dyn Store>,
        clock: Arc<SharedClock>,
        operator_token: String,
        session_ttl: Duration,
        peers: Vec<crate::config::Peer>,
        interbank: Arc<crate::interbank::Interbank>,
    ) -> AppState {
        let first_sequence = first_e2e_sequence(store::wall_ms(), clock.last().physical_ms);
        AppState {
            bank,
            name,
            store,
            clock,
            operator_token,
            session_ttl,
            peers,
            interbank,
            started_ms: store::wall_ms(),
            metrics: Metrics::default(),
            inflight: Mutex::new(HashSet::new()),
            limits: crate::limits::Limits::default(),
            trail: crate::trail::Trail::disabled(),
            e2e_sequence: AtomicU64::new(first_sequence),
            e2e_slot: 0,
            sessions: Mutex::new(Sessions::default()),
            listing: crate::listing::Listing::default(),
            may_be_front: false,
        }
    }

    /// This state, of a process that is a front while another holds the duties (`front.rs`).
    pub fn with_front(mut self, may_be_front: bool) -> AppState {
        self.may_be_front = may_be_front;
        self
    }

    /// This state, of a process whose end-to-end ids carry `slot` (see [`e2e_sequence`]).
    pub fn with_e2e_slot(mut self, slot: u64) -> AppState {
        self.e2e_slot = slot;
        self
    }

    /// This state, recording to `trail`.
    pub fn with_trail(mut self, trail: crate::trail::Trail) -> AppState {
        self.trail = trail;
        self
    }

    /// The customer whose live session token hashes to `token_hash`.
    pub async fn caller(&self, token_hash: [u8; 32]) -> Result<Option<CustomerRecord>, ApiError> {
        let now = store::wall_ms();
        let recheck_ms = match *self.interbank.duties {
            crate::duties::Duties::Sole => u64::MAX,
            crate::duties::Duties::Shared(_) => SHARED_SESSION_RECHECK_MS,
        };
        let logouts = {
            let mut sessions = self.sessions.lock().expect("sessions lock");
            match sessions.live.get(&token_hash) {
                Some((session, read_ms))
                    if session.expires_at_ms > now && now.saturating_sub(*read_ms) < recheck_ms =>
                {
                    return Ok(Some(session.customer.clone()));
                }
                Some(_) => {
                    sessions.live.remove(&token_hash);
                }
                None => {}
            }
            sessions.logouts
        };
        let Some(session) = self.store.session(token_hash, now).await? else {
            return Ok(None);
        };
        let customer = session.customer.clone();
        let mut sessions = self.sessions.lock().expect("sessions lock");
        if sessions.logouts == logouts {
            if sessions.live.len() >= SESSIONS_REMEMBERED_MAX {
                sessions.live.clear();
            }
            sessions.live.insert(token_hash, (session, now));
        }
        Ok(Some(customer))
    }

    /// Forgets a session that was just deleted from the store.
    pub fn forget_session(&self, token_hash: &[u8; 32]) {
        let mut sessions = self.sessions.lock().expect("sessions lock");
        sessions.logouts += 1;
        sessions.live.remove(token_hash);
    }

    /// A fresh Pix end-to-end id for a movement this bank starts: the UTC minute and a
    /// sequence number, unique at this bank and rising, so ids sort in the order they were made
    /// (they are not secret: who may see a payment is checked on every read).
    pub fn new_e2e(&self) -> EndToEndId {
        self.new_e2es(1).next().expect("one id")
    }

    /// `count` fresh end-to-end ids in one unbroken run of the sequence (a batch's, so its
    /// stored answer can name them all by the first).
    pub fn new_e2es(&self, count: usize) -> impl Iterator<Item = EndToEndId> + use<> {
        let now = time::OffsetDateTime::now_utc();
        let minute = format!(
            "{:04}{:02}{:02}{:02}{:02}",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute()
        );
        let count = count as u64;
        let first = self.e2e_sequence.fetch_add(count, Ordering::Relaxed);
        let (bank, slot) = (self.bank, self.e2e_slot);
        (0..count).map(move |i| {
            EndToEndId::sequenced(bank, &minute, e2e_sequence(slot, first.wrapping_add(i)))
        })
    }

    /// Runs a command through the store, honouring the request's `Idempotency-Key`: the same
    /// key replays the first outcome, a different request under it is 422, and while the first
    /// is still running a second is 409.
    pub async fn execute(
        &self,
        scope: CustomerId,
        headers: &HeaderMap,
        fingerprint: &Fingerprint,
        command: Command,
    ) -> Result<Executed, ApiError> {
        self.submit(scope, headers, fingerprint, command)?.await
    }

    /// [`AppState::execute`] in two steps: the command is queued when this returns (the store
    /// applies commands in the order it takes them), and the future answers once it is durable.
    pub fn submit(
        &self,
        scope: CustomerId,
        headers: &HeaderMap,
        fingerprint: &Fingerprint,
        command: Command,
    ) -> Result<impl Future<Output = Result<Executed, ApiError>> + '_, ApiError> {
        let key = idempotency_key(headers)?;
        let guard = match &key {
            Some(key) => {
                let entry = (scope, key.clone());
                if !self
                    .inflight
                    .lock()
                    .expect("inflight lock")
                    .insert(entry.clone())
                {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "idempotency_key_in_flight",
                        "a request with this Idempotency-Key is still running; retry when it has answered",
                    ));
                }
                Some(InFlight { state: self, entry })
            }
            None => None,
        };
        let idempotency = key.map(|key| fingerprint.idempotency(scope, key));
        let started = Instant::now();
        let submitted = self.store.submit(Request {
            command,
            idempotency,
        })?;
        Ok(async move {
            // The key stays in flight until the outcome is durable.
            let _guard = guard;
            let executed = submitted.await?;
            self.metrics.observe_command(started.elapsed(), &executed);
            Ok(executed)
        })
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().ok().filter(|k| {
        !k.is_empty()
            && k.len() <= IDEMPOTENCY_KEY_LEN_MAX
            && k.bytes().all(|b| b.is_ascii_graphic())
    });
    key.map(|k| Some(k.to_string())).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_idempotency_key",
            format!("Idempotency-Key is 1 to {IDEMPOTENCY_KEY_LEN_MAX} visible ASCII characters"),
        )
    })
}

/// Where a slot's sequences start: the first of the 11 base-36 digits is the slot.
const E2E_SLOT_SPAN: u64 = EndToEndId::SEQUENCE_END / 36;

/// The sequence of the `counter`th id of a process in `slot`. Ten base-36 digits hold 3.7e15
/// counters, ~55 years of a million ids a second from today's first one (microseconds since the
/// epoch); one past the end wraps within the slot (with the minute beside it, still unique)
/// rather than panic. Processes of one bank (on PostgreSQL) have different slots, so their ids
/// differ even when their counters meet; a bank's only process has slot 0, and its ids are
/// the counter itself.
fn e2e_sequence(slot: u64, counter: u64) -> u64 {
    slot % 36 * E2E_SLOT_SPAN + counter % E2E_SLOT_SPAN
}

#[cfg(test)]
mod e2e_sequence_tests {
    use super::*;

    #[test]
    fn processes_of_one_bank_make_different_ids_from_the_same_counter() {
        let counter = 1_796_000_000_000_000;
        assert_eq!(e2e_sequence(0, counter), counter);
        let bank = BankCode::parse("10000001").unwrap();
        let ids: Vec<EndToEndId> = (0..=store::postgres::PROCESS_SLOTS)
            .map(|slot| EndToEndId::sequenced(bank, "202612071430", e2e_sequence(slot, counter)))
            .collect();
        let distinct: std::collections::HashSet<&EndToEndId> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        // Within a slot, consecutive counters make consecutive sequences (a batch's ids are
        // named by the first).
        assert_eq!(e2e_sequence(7, counter + 1), e2e_sequence(7, counter) + 1);
        // The end wraps within the slot.
        assert_eq!(e2e_sequence(3, E2E_SLOT_SPAN), e2e_sequence(3, 0));
        assert!(e2e_sequence(35, u64::MAX) < EndToEndId::SEQUENCE_END);
    }

    #[test]
    fn a_clock_from_the_far_future_does_not_overflow_the_id_sequence() {
        let wall = 1_764_000_000_000;
        assert_eq!(first_e2e_sequence(wall, wall - 5), (wall + 1) * 1_000);
        assert_eq!(first_e2e_sequence(wall, wall + 7), (wall + 8) * 1_000);
        // The year 8307 (the stamp of the clock-poisoning report) and the end of time.
        for clock in [200_000_000_000_000, u64::MAX] {
            assert_eq!(first_e2e_sequence(wall, clock), (wall + 1) * 1_000);
        }
        let bank = BankCode::parse("10000001").unwrap();
        let last = EndToEndId::SEQUENCE_END - 1;
        assert_eq!(
            EndToEndId::sequenced(bank, "202612010000", last).sequence(),
            last
        );
    }
}
