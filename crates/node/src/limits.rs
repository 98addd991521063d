//! What a caller may make the bank do before it knows who they are, or ask it to reveal: failed
//! logins (per username and client, per client, per username), refused registrations per client,
//! Pix key lookups per customer, and the pool that hashes passwords.
//!
//! Why three login throttles: keyed by username alone (as it was), anyone could lock a customer
//! out with a few wrong passwords, and one client could spray a password over every username
//! unhindered. So a (username, client) pair waits after a few failures (the old rule, now only
//! for the client that failed), a client waits after failing for many usernames, and a username
//! failing from everywhere waits a little (capped at [`USERNAME_LOCK_SECONDS_MAX`], and never for
//! a client that logged in as it before), which slows a guesser with many addresses without
//! letting strangers lock the customer out.
//!
//! Everything here lives in this process's memory (one process owns one bank's store), each map
//! bounded by a named `*_MAX`; every rule takes the time as an argument, so it is tested as a unit.

use crate::error::ApiError;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use store::CustomerId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Failed logins for one username from one client before that pair waits (1 s, doubling).
pub const LOGIN_FAILURES_FREE_MAX: u32 = 5;
/// The longest wait a throttled (username, client) pair, or client, is given.
pub const LOGIN_LOCK_SECONDS_MAX: u64 = 300;
/// Failed logins from one client, whatever the usernames, before the client waits (1 s,
/// doubling): a password sprayed over many usernames.
pub const CLIENT_LOGIN_FAILURES_FREE_MAX: u32 = 20;
/// Failed logins for one username from all clients together before the username waits.
pub const USERNAME_LOGIN_FAILURES_FREE_MAX: u32 = 100;
/// The longest wait of a username failing from everywhere: short, since strangers cause it.
pub const USERNAME_LOCK_SECONDS_MAX: u64 = 30;
/// Registrations refused (document or username taken) for one client before it waits: each
/// refusal says the document or username is known here.
pub const REGISTRATION_REFUSALS_FREE_MAX: u32 = 10;
/// The longest wait of a client whose registrations keep being refused.
pub const REGISTRATION_LOCK_SECONDS_MAX: u64 = 300;
/// Failures not followed by another for this long are forgotten.
pub const FAILURES_FORGOTTEN_AFTER: Duration = Duration::from_secs(15 * 60);
/// Entries of each throttle map; beyond it the forgotten entries are dropped, then the oldest.
pub const THROTTLE_ENTRIES_MAX: usize = 100_000;
/// A client that logged in as a username stays exempt from that username's wait this long.
pub const KNOWN_CLIENT_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
/// Pix key lookups one customer may make at once; then one more per [`PIX_LOOKUP_REFILL`]. Each
/// answer names a person, so an unlimited lookup would list the bank's customers.
pub const PIX_LOOKUPS_BURST_MAX: u32 = 60;
/// How often a customer earns one more Pix key lookup.
pub const PIX_LOOKUP_REFILL: Duration = Duration::from_secs(1);
/// Customers whose Pix lookups are counted at once.
pub const PIX_LOOKUP_CUSTOMERS_MAX: usize = 100_000;
/// Passwords hashed at once (Argon2id takes 19 MiB and tens of milliseconds of a core each; the
/// routes that hash are open to anyone).
pub const HASHING_THREADS_MAX: usize = 2;
/// Passwords waiting for a hashing thread; beyond it a login or registration is 503 `overloaded`
/// at once rather than after waiting out the request's time limit (at some 50 ms a hash, the
/// last of them waits about 3 s).
pub const HASHING_QUEUE_MAX: usize = 128;

/// Who a request came from, as the limits key it: its TCP peer's address (no forwarding header
/// is believed), an IPv6 address by its /64 (one host usually has a whole /64).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Client(IpAddr);

impl Client {
    /// The key of requests whose peer is not known (a router served without connection info).
    pub const UNKNOWN: Client = Client(IpAddr::V4(Ipv4Addr::UNSPECIFIED));

    pub fn of(ip: IpAddr) -> Client {
        match ip {
            IpAddr::V4(_) => Client(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client(IpAddr::V4(v4)),
                None => {
                    let mut segments = v6.segments();
                    segments[4..].fill(0);
                    Client(IpAddr::V6(segments.into()))
                }
            },
        }
    }
}

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Client {
    /// The client of a request, from its connection's peer address.
    pub fn of_parts(parts: &Parts) -> Client {
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(Client::UNKNOWN, |info| Client::of(info.0.ip()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(Client::of_parts(parts))
    }
}

struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

impl Failures {
    fn forgotten(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last) > FAILURES_FORGOTTEN_AFTER
            && self.locked_until.is_none_or(|until| until <= now)
    }
}

/// Failures per key: from the `free`-th on, the key waits 1, 2, 4 … up to `cap_seconds`.
struct Backoff<K> {
    free: u32,
    cap_seconds: u64,
    entries: HashMap<K, Failures>,
}

impl<K: Hash + Eq> Backoff<K> {
    fn new(free: u32, cap_seconds: u64) -> Backoff<K> {
        Backoff {
            free,
            cap_seconds,
            entries: HashMap::new(),
        }
    }

    /// Whole seconds (at least one) `key` must still wait.
    fn wait(&self, key: &K, now: Instant) -> Option<u64> {
        let until = self.entries.get(key)?.locked_until?;
        (until > now).then(|| ((until - now).as_millis().div_ceil(1000) as u64).max(1))
    }

    fn fail(&mut self, key: K, now: Instant) {
        if !self.entries.contains_key(&key) {
            make_room(
                &mut self.entries,
                |f| f.forgotten(now),
                |f| f.locked_until.map_or(f.last, |until| until.max(f.last)),
            );
        }
        let failures = self.entries.entry(key).or_insert(Failures {
            count: 0,
            last: now,
            locked_until: None,
        });
        if failures.forgotten(now) {
            failures.count = 0;
        }
        failures.count = failures.count.saturating_add(1);
        failures.last = now;
        if failures.count >= self.free {
            let exponent = (failures.count - self.free).min(16);
            let seconds = (1u64 << exponent).min(self.cap_seconds);
            failures.locked_until = Some(now + Duration::from_secs(seconds));
        }
    }

    /// Failures counted for `key` (none once forgotten).
    fn count(&self, key: &K, now: Instant) -> u32 {
        self.entries
            .get(key)
            .filter(|f| !f.forgotten(now))
            .map_or(0, |f| f.count)
    }

    fn clear(&mut self, key: &K) {
        self.entries.remove(key);
    }
}

/// Keeps `map` below [`THROTTLE_ENTRIES_MAX`] before an insertion: drops what is `stale`, and if
/// that is not enough, the oldest eighth by `age` (so a map full of live entries pays this once
/// per many insertions, not on each).
fn make_room<K, V>(
    map: &mut HashMap<K, V>,
    stale: impl Fn(&V) -> bool,
    age: impl Fn(&V) -> Instant,
) {
    if map.len() < THROTTLE_ENTRIES_MAX {
        return;
    }
    map.retain(|_, value| !stale(value));
    if map.len() < THROTTLE_ENTRIES_MAX {
        return;
    }
    let mut ages: Vec<Instant> = map.values().map(&age).collect();
    let cut = ages.len() / 8;
    let (_, threshold, _) = ages.select_nth_unstable(cut);
    let threshold = *threshold;
    map.retain(|_, value| age(value) > threshold);
}

struct Logins {
    pairs: Backoff<(String, Client)>,
    clients: Backoff<Client>,
    usernames: Backoff<String>,
    /// When each (username, client) pair last logged in.
    known: HashMap<(String, Client), Instant>,
    /// Attempts of each pair still being checked: without them, many attempts sent at once
    /// would all pass before the first failure counted. An entry lives only while its requests
    /// do, so the map is bounded by the requests in progress.
    inflight: HashMap<(String, Client), u32>,
}

/// A login attempt in progress, from [`Limits::check_login`] until dropped.
pub struct Attempt<'a> {
    limits: &'a Limits,
    pair: (String, Client),
}

impl std::fmt::Debug for Attempt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Attempt").field(&self.pair).finish()
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let mut logins = locked(&self.limits.logins);
        if let Some(count) = logins.inflight.get_mut(&self.pair) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                logins.inflight.remove(&self.pair);
            }
        }
    }
}

struct Bucket {
    tokens: u32,
    since: Instant,
}

/// The bank's limits; see the module's documentation.
pub struct Limits {
    logins: Mutex<Logins>,
    registrations: Mutex<Backoff<Client>>,
    lookups: Mutex<HashMap<CustomerId, Bucket>>,
    pub hashing: Hashing,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            logins: Mutex::new(Logins {
                pairs: Backoff::new(LOGIN_FAILURES_FREE_MAX, LOGIN_LOCK_SECONDS_MAX),
                clients: Backoff::new(CLIENT_LOGIN_FAILURES_FREE_MAX, LOGIN_LOCK_SECONDS_MAX),
                usernames: Backoff::new(
                    USERNAME_LOGIN_FAILURES_FREE_MAX,
                    USERNAME_LOCK_SECONDS_MAX,
                ),
                known: HashMap::new(),
                inflight: HashMap::new(),
            }),
            registrations: Mutex::new(Backoff::new(
                REGISTRATION_REFUSALS_FREE_MAX,
                REGISTRATION_LOCK_SECONDS_MAX,
            )),
            lookups: Mutex::new(HashMap::new()),
            hashing: Hashing::new(HASHING_THREADS_MAX, HASHING_QUEUE_MAX),
        }
    }
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn too_many(code: &'static str, what: &str, wait: u64) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        code,
        format!("{what}; try again in {wait} s"),
    )
    .with_retry_after(wait)
}

impl Limits {
    /// Refuses a login attempt while its pair, its client or (for a client that never logged in
    /// as it) its username waits, or while the pair already has as many attempts in progress as
    /// it has failures left before it waits (at least one); otherwise the attempt is in progress
    /// until the answer is dropped. `username` is already a valid one, lower case.
    pub fn check_login(
        &self,
        username: &str,
        client: Client,
        now: Instant,
    ) -> Result<Attempt<'_>, ApiError> {
        let mut logins = locked(&self.logins);
        let pair = (username.to_string(), client);
        let known = logins
            .known
            .get(&pair)
            .is_some_and(|at| now.saturating_duration_since(*at) < KNOWN_CLIENT_FOR);
        let wait = [
            logins.pairs.wait(&pair, now),
            logins.clients.wait(&client, now),
            if known {
                None
            } else {
                logins.usernames.wait(&pair.0, now)
            },
        ]
        .into_iter()
        .flatten()
        .max();
        if let Some(wait) = wait {
            return Err(too_many(
                "too_many_login_attempts",
                "too many failed logins",
                wait,
            ));
        }
        let left = LOGIN_FAILURES_FREE_MAX
            .saturating_sub(logins.pairs.count(&pair, now))
            .max(1);
        let inflight = logins.inflight.entry(pair.clone()).or_insert(0);
        if *inflight >= left {
            return Err(too_many(
                "too_many_login_attempts",
                "too many logins at once for this username",
                1,
            ));
        }
        *inflight += 1;
        Ok(Attempt { limits: self, pair })
    }

    pub fn login_failed(&self, username: &str, client: Client, now: Instant) {
        let mut logins = locked(&self.logins);
        logins.pairs.fail((username.to_string(), client), now);
        logins.clients.fail(client, now);
        logins.usernames.fail(username.to_string(), now);
    }

    /// A login worked: its pair starts again and is known from now on. The client's and the
    /// username's failures stay (a sprayer holding one account of its own must not wipe them).
    pub fn login_succeeded(&self, username: &str, client: Client, now: Instant) {
        let mut logins = locked(&self.logins);
        let pair = (username.to_string(), client);
        logins.pairs.clear(&pair);
        if !logins.known.contains_key(&pair) {
            make_room(
                &mut logins.known,
                |at| now.saturating_duration_since(*at) >= KNOWN_CLIENT_FOR,
                |at| *at,
            );
        }
        logins.known.insert(pair, now);
    }

    /// Refuses a registration while its client waits for too many refused ones.
    pub fn check_registration(&self, client: Client, now: Instant) -> Result<(), ApiError> {
        match locked(&self.registrations).wait(&client, now) {
            Some(wait) => Err(too_many(
                "too_many_registration_attempts",
                "too many refused registrations",
                wait,
            )),
            None => Ok(()),
        }
    }

    pub fn registration_refused(&self, client: Client, now: Instant) {
        locked(&self.registrations).fail(client, now);
    }

    /// Takes one of `customer`'s Pix lookups, or says how long until the next.
    pub fn pix_lookup(&self, customer: CustomerId, now: Instant) -> Result<(), ApiError> {
        let mut lookups = locked(&self.lookups);
        if !lookups.contains_key(&customer) {
            make_room(
                &mut lookups,
                |bucket| {
                    now.saturating_duration_since(bucket.since)
                        >= PIX_LOOKUP_REFILL * PIX_LOOKUPS_BURST_MAX
                },
                |bucket| bucket.since,
            );
        }
        let bucket = lookups.entry(customer).or_insert(Bucket {
            tokens: PIX_LOOKUPS_BURST_MAX,
            since: now,
        });
        let earned =
            now.saturating_duration_since(bucket.since).as_nanos() / PIX_LOOKUP_REFILL.as_nanos();
        if earned > 0 {
            let earned = u32::try_from(earned).unwrap_or(u32::MAX);
            bucket.tokens = bucket
                .tokens
                .saturating_add(earned)
                .min(PIX_LOOKUPS_BURST_MAX);
            bucket.since = if bucket.tokens == PIX_LOOKUPS_BURST_MAX {
                now
            } else {
                bucket.since + PIX_LOOKUP_REFILL * earned
            };
        }
        if bucket.tokens == 0 {
            let next = (bucket.since + PIX_LOOKUP_REFILL).saturating_duration_since(now);
            let wait = (next.as_millis().div_ceil(1000) as u64).max(1);
            return Err(too_many(
                "too_many_requests",
                "too many Pix key lookups",
                wait,
            ));
        }
        bucket.tokens -= 1;
        Ok(())
    }
}

/// The pool that hashes and checks passwords: at most `threads` at once on blocking threads,
/// at most `queue` more waiting; anything beyond is refused at once with 503 `overloaded`,
/// instead of piling up blocking threads and memory.
pub struct Hashing {
    admitted: Arc<Semaphore>,
    running: Arc<Semaphore>,
}

impl Hashing {
    pub fn new(threads: usize, queue: usize) -> Hashing {
        Hashing {
            admitted: Arc::new(Semaphore::new(threads + queue)),
            running: Arc::new(Semaphore::new(threads)),
        }
    }

    /// A place in the pool (running or waiting), if one is free; held until dropped.
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        self.admitted.clone().try_acquire_owned().ok()
    }

    /// Runs `work` on a blocking thread once one of the pool's threads is free.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let ticket = self.admit().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "the bank is checking too many passwords at once; retry shortly",
            )
            .with_retry_after(1)
        })?;
        let permit = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(ApiError::internal)?;
        // The permits go with the work: a request that times out while it runs does not free
        // its thread's place before the thread is done.
        tokio::task::spawn_blocking(move || {
            let _held = (ticket, permit);
            work()
        })
        .await
        .map_err(ApiError::internal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Client {
        Client::of(text.parse().unwrap())
    }

    #[test]
    fn a_stranger_failing_does_not_lock_the_customer_out_from_elsewhere() {
        let limits = Limits::default();
        let now = Instant::now();
        let (stranger, customer) = (ip("203.0.113.7"), ip("198.51.100.9"));
        for _ in 0..LOGIN_FAILURES_FREE_MAX {
            limits.check_login("ana", stranger, now).unwrap();
            limits.login_failed("ana", stranger, now);
        }
        let refused = limits.check_login("ana", stranger, now).unwrap_err();
        assert_eq!(refused.code, "too_many_login_attempts");
        assert!(refused.retry_after.is_some());
        limits
            .check_login("ana", customer, now)
            .expect("the customer's own address is not throttled");
        limits
            .check_login("bia", stranger, now)
            .expect("the stranger's pair alone waits, not the client yet");
    }

    #[test]
    fn a_username_failing_from_everywhere_waits_briefly_but_not_for_its_known_client() {
        let limits = Limits::default();
        let now = Instant::now();
        let customer = ip("198.51.100.9");
        limits.login_succeeded("ana", customer, now);
        for i in 0..USERNAME_LOGIN_FAILURES_FREE_MAX {
            let stranger = Client::of(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)));
            limits.login_failed("ana", stranger, now);
        }
        let refused = limits.check_login("ana", ip("192.0.2.1"), now).unwrap_err();
        assert_eq!(refused.code, "too_many_login_attempts");
        assert!(refused.retry_after.unwrap() <= USERNAME_LOCK_SECONDS_MAX);
        limits
            .check_login("ana", customer, now)
            .expect("a client that logged in as the username before is not held back");
        let later = now + Duration::from_secs(USERNAME_LOCK_SECONDS_MAX);
        limits
            .check_login("ana", ip("192.0.2.1"), later)
            .expect("the username's wait is short");
    }

    #[test]
    fn attempts_sent_at_once_cannot_outrun_the_failures_left() {
        let limits = Limits::default();
        let now = Instant::now();
        let client = ip("203.0.113.7");
        let held: Vec<_> = (0..LOGIN_FAILURES_FREE_MAX)
            .map(|_| limits.check_login("ana", client, now).unwrap())
            .collect();
        assert!(
            limits.check_login("ana", client, now).is_err(),
            "no more attempts in progress than failures left"
        );
        limits
            .check_login("ana", ip("198.51.100.9"), now)
            .expect("another client's pair is apart");
        drop(held);
        for _ in 0..2 {
            limits.login_failed("ana", client, now);
        }
        let three: Vec<_> = (0..3)
            .map(|_| limits.check_login("ana", client, now).unwrap())
            .collect();
        assert!(limits.check_login("ana", client, now).is_err());
        drop(three);
        assert!(
            locked(&limits.logins).inflight.is_empty(),
            "finished attempts are forgotten"
        );
    }

    #[test]
    fn a_client_spraying_usernames_waits() {
        let limits = Limits::default();
        let now = Instant::now();
        let sprayer = ip("203.0.113.7");
        for i in 0..CLIENT_LOGIN_FAILURES_FREE_MAX {
            let name = format!("user{i}");
            limits.check_login(&name, sprayer, now).unwrap();
            limits.login_failed(&name, sprayer, now);
        }
        let refused = limits.check_login("fresh", sprayer, now).unwrap_err();
        assert_eq!(refused.code, "too_many_login_attempts");
        limits
            .check_login("fresh", ip("203.0.113.8"), now)
            .expect("other clients are not held back");
        limits.login_succeeded("own-account", sprayer, now);
        assert!(
            limits.check_login("fresh", sprayer, now).is_err(),
            "a login of its own does not wipe the client's failures"
        );
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(ip("2001:db8:1:2:aaaa::1"), ip("2001:db8:1:2:bbbb::2"));
        assert_ne!(ip("2001:db8:1:2::1"), ip("2001:db8:1:3::1"));
        assert_eq!(ip("::ffff:192.0.2.1"), ip("192.0.2.1"));
    }

    #[test]
    fn throttle_maps_stay_bounded() {
        let limits = Limits::default();
        let now = Instant::now();
        let sprayer = ip("203.0.113.7");
        for i in 0..THROTTLE_ENTRIES_MAX + 1_000 {
            let name = format!("user{i}");
            limits.login_failed(&name, sprayer, now + Duration::from_millis(i as u64));
        }
        let logins = locked(&limits.logins);
        assert!(logins.pairs.entries.len() <= THROTTLE_ENTRIES_MAX);
        assert!(logins.usernames.entries.len() <= THROTTLE_ENTRIES_MAX);
        let newest = format!("user{}", THROTTLE_ENTRIES_MAX + 999);
        assert!(logins.usernames.entries.contains_key(&newest));
        assert!(
            logins.clients.wait(&sprayer, now).is_some(),
            "the client is still held"
        );
    }

    #[test]
    fn pix_lookups_are_limited_per_customer_and_come_back() {
        let limits = Limits::default();
        let now = Instant::now();
        for _ in 0..PIX_LOOKUPS_BURST_MAX {
            limits.pix_lookup(1, now).unwrap();
        }
        let refused = limits.pix_lookup(1, now).unwrap_err();
        assert_eq!(refused.code, "too_many_requests");
        assert_eq!(refused.retry_after, Some(1));
        limits
            .pix_lookup(2, now)
            .expect("other customers are not held back");
        limits.pix_lookup(1, now + PIX_LOOKUP_REFILL).unwrap();
        assert!(limits.pix_lookup(1, now + PIX_LOOKUP_REFILL).is_err());
        let rested = now + PIX_LOOKUP_REFILL * (PIX_LOOKUPS_BURST_MAX + 5);
        for _ in 0..PIX_LOOKUPS_BURST_MAX {
            limits.pix_lookup(1, rested).unwrap();
        }
        assert!(limits.pix_lookup(1, rested).is_err(), "the burst is capped");
    }

    #[test]
    fn refused_registrations_are_limited_per_client() {
        let limits = Limits::default();
        let now = Instant::now();
        let client = ip("203.0.113.7");
        for _ in 0..REGISTRATION_REFUSALS_FREE_MAX {
            limits.check_registration(client, now).unwrap();
            limits.registration_refused(client, now);
        }
        let refused = limits.check_registration(client, now).unwrap_err();
        assert_eq!(refused.code, "too_many_registration_attempts");
        limits.check_registration(ip("203.0.113.8"), now).unwrap();
    }

    #[tokio::test]
    async fn the_hashing_pool_refuses_beyond_its_queue() {
        let pool = Hashing::new(1, 1);
        let held: Vec<_> = (0..2).map(|_| pool.admit().unwrap()).collect();
        let refused = pool.run(|| 1).await.unwrap_err();
        assert_eq!(
            (refused.status, refused.code),
            (StatusCode::SERVICE_UNAVAILABLE, "overloaded")
        );
        drop(held);
        assert_eq!(pool.run(|| 2).await.unwrap(), 2);
    }
}
