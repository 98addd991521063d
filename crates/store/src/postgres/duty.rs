//! The bank's duties held by one process at a time: a lease row in the bank's database.
//!
//! Several `bankd` of one bank serve customers at once, but some work must be done by one of
//! them only: interbank recovery at start, heartbeats and resends, the bank's member of the
//! directory's Raft group. The process that holds the lease does it. The lease is a row
//! (`duty_leases`) with its holder and an expiry in the database's own clock; the holder renews
//! it every [`RENEW_EVERY`] for [`LEASE_TTL`]. A process that dies stops renewing, and another
//! takes the lease once it has expired: within [`LEASE_TTL`] plus one renewal. One that stops
//! cleanly gives it up ([`DutyLease::release`]), and another takes it at its next try.
//!
//! A lease row rather than an advisory lock: it is plain SQL (`INSERT … ON CONFLICT … WHERE`),
//! which PostgreSQL-compatible distributed databases run too, and a holder that lost its
//! connection but not its life cannot go on believing it holds a lock the server dropped: it
//! counts itself a holder only until [`LEASE_TTL`] minus [`LEASE_MARGIN`] after the start of its
//! last renewal the database accepted, which ends before the row expires for anyone else.
//! Each new holder raises the row's `epoch`, so a holder can tell the lease changed hands.

use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a renewal keeps the lease, counted by the database's clock.
pub const LEASE_TTL: Duration = Duration::from_secs(3);
/// How often the holder renews it, and how often another process tries to take it.
pub const RENEW_EVERY: Duration = Duration::from_millis(500);
/// A holder stops counting itself one this long before its lease would expire, so two
/// processes never both act as holder even if their clocks run a little apart.
pub const LEASE_MARGIN: Duration = Duration::from_secs(1);
/// The lease's name: one per bank's database.
const DUTIES: &str = "bank-duties";

/// What this process knows of the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// Held, with this epoch, until this instant of the local clock unless renewed.
    Held { epoch: i64, until: Instant },
    /// Another process holds it, or the database cannot be reached.
    NotHeld,
}

/// Tries to take or renew the lease for `holder`: the epoch when this process holds it now.
pub async fn try_acquire(
    client: &tokio_postgres::Client,
    holder: &str,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let ttl_ms = i64::try_from(LEASE_TTL.as_millis()).unwrap_or(i64::MAX);
    let row = client
        .query_opt(
            "INSERT INTO duty_leases (name, holder, epoch, expires_at)
             VALUES ($1, $2, 1, now() + $3::BIGINT * INTERVAL '1 millisecond')
             ON CONFLICT (name) DO UPDATE
                SET epoch = CASE WHEN duty_leases.holder = EXCLUDED.holder
                                 THEN duty_leases.epoch ELSE duty_leases.epoch + 1 END,
                    holder = EXCLUDED.holder,
                    expires_at = EXCLUDED.expires_at
                WHERE duty_leases.holder = EXCLUDED.holder OR duty_leases.expires_at < now()
             RETURNING epoch",
            &[&DUTIES, &holder, &ttl_ms],
        )
        .await?;
    Ok(row.map(|row| row.get(0)))
}

/// Gives the lease up if `holder` has it, so another process takes it at its next try.
pub async fn release(
    client: &tokio_postgres::Client,
    holder: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM duty_leases WHERE name = $1 AND holder = $2",
            &[&DUTIES, &holder],
        )
        .await
        .map(drop)
}

/// The holder named in the database now, if the lease has not expired.
pub async fn current_holder(
    client: &tokio_postgres::Client,
) -> Result<Option<String>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT holder FROM duty_leases WHERE name = $1 AND expires_at >= now()",
            &[&DUTIES],
        )
        .await?;
    Ok(row.map(|row| row.get(0)))
}

/// This process's side of the lease: a task that takes it when it is free and renews it while
/// held, and a watch of what it knows.
pub struct DutyLease {
    holder: String,
    state: watch::Receiver<Lease>,
    /// The holder the database names, as this process last read it.
    current: watch::Receiver<Option<String>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl DutyLease {
    /// Starts trying for the lease as `holder` (unique per process), on a connection of its own
    /// made from `config` (made again whenever it breaks). Returns at once; [`DutyLease::held`]
    /// says whether the process holds it now, [`DutyLease::changes`] when that changes.
    pub fn start(config: tokio_postgres::Config, holder: String) -> DutyLease {
        let (tell, state) = watch::channel(Lease::NotHeld);
        let (name, current) = watch::channel(None);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(keep(config, holder.clone(), tell, name, stopped));
        DutyLease {
            holder,
            state,
            current,
            stop,
            task,
        }
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Whether this process holds the bank's duties at this instant.
    pub fn held(&self) -> bool {
        held_now(*self.state.borrow())
    }

    /// The process that holds the lease, by the name it took it under, as this process last
    /// read it from the database (at most [`RENEW_EVERY`] ago); itself while it holds it.
    pub fn current_holder(&self) -> Option<String> {
        self.current.borrow().clone()
    }

    /// The epoch of the lease while held.
    pub fn epoch(&self) -> Option<i64> {
        match *self.state.borrow() {
            Lease::Held { epoch, until } if Instant::now() < until => Some(epoch),
            _ => None,
        }
    }

    /// What the process knows of the lease, changed at each renewal or loss.
    pub fn changes(&self) -> watch::Receiver<Lease> {
        self.state.clone()
    }

    /// Stops renewing and gives the lease up, so another process takes it at once. Waits for
    /// the database's answer at most [`RENEW_EVERY`] twice.
    pub async fn release(&self) {
        let _ = self.stop.send(true);
        let asked = Instant::now();
        while !self.task.is_finished() && asked.elapsed() < RENEW_EVERY * 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for DutyLease {
    /// Dropped without [`DutyLease::release`]: stops renewing (the lease then expires).
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether a lease state means held at this instant.
pub fn held_now(lease: Lease) -> bool {
    matches!(lease, Lease::Held { until, .. } if Instant::now() < until)
}

/// The lease's task: connects, then tries every [`RENEW_EVERY`] until told to stop, when it
/// releases the lease.
async fn keep(
    config: tokio_postgres::Config,
    holder: String,
    tell: watch::Sender<Lease>,
    name: watch::Sender<Option<String>>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut client: Option<tokio_postgres::Client> = None;
    let mut ticks = tokio::time::interval(RENEW_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            _ = ticks.tick() => {}
        }
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            client = match tokio::time::timeout(RENEW_EVERY * 2, super::connect(&config)).await {
                Ok(Ok(connected)) => Some(connected),
                Ok(Err(error)) => {
                    tracing::warn!(%error, "the duty lease cannot reach the database");
                    None
                }
                Err(_) => None,
            };
        }
        let Some(connected) = client.as_ref() else {
            expire(&tell);
            continue;
        };
        // Counted from before the request: the row's expiry is later than this by the database's
        // clock, so the local `until` comes first.
        let asked = Instant::now();
        let answer = tokio::time::timeout(RENEW_EVERY, try_acquire(connected, &holder)).await;
        match answer {
            Ok(Ok(Some(epoch))) => {
                let until = asked + LEASE_TTL - LEASE_MARGIN;
                let was = *tell.borrow();
                if !held_now(was) {
                    tracing::info!(holder, epoch, "this process holds the bank's duties");
                }
                tell.send_replace(Lease::Held { epoch, until });
                name.send_replace(Some(holder.clone()));
            }
            Ok(Ok(None)) => {
                lose(&tell);
                if let Ok(Ok(current)) =
                    tokio::time::timeout(RENEW_EVERY, current_holder(connected)).await
                {
                    name.send_replace(current);
                }
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "the duty lease could not be renewed");
                expire(&tell);
            }
            Err(_) => {
                // A renewal that hangs may still land; the connection is made anew.
                client = None;
                expire(&tell);
            }
        }
    }
    if held_now(*tell.borrow()) {
        tell.send_replace(Lease::NotHeld);
        if let Some(connected) = client.as_ref() {
            let _ = tokio::time::timeout(RENEW_EVERY, release(connected, &holder)).await;
        }
    }
}

/// Another process holds the lease: this one no longer does (said once in the log).
fn lose(tell: &watch::Sender<Lease>) {
    if matches!(*tell.borrow(), Lease::Held { .. }) {
        tracing::warn!("another process holds the bank's duties now");
    }
    tell.send_replace(Lease::NotHeld);
}

/// The renewal failed: the lease stays this process's until its local end, then no longer.
fn expire(tell: &watch::Sender<Lease>) {
    let lapsed = matches!(*tell.borrow(), Lease::Held { until, .. } if Instant::now() >= until);
    if lapsed {
        tracing::warn!("this process no longer holds the bank's duties: its lease lapsed");
        tell.send_replace(Lease::NotHeld);
    }
}
