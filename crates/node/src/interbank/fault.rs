//! Kill points for crash tests: `BANKD_FAULT=<point>` (or `<point>@<n>` for the n-th time it is
//! reached) makes a debug build of `bankd` abort at that point of the protocol, as `kill -9`
//! would. Release builds ignore the variable.

#[cfg(debug_assertions)]
static HITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The points a test can stop a bank at.
#[derive(Debug, Clone, Copy)]
pub enum Point {
    /// Coordinator: the decision is durable, nobody has heard it.
    AfterDecision,
    /// Coordinator: the payment is recorded as pending (a transfer's with the coordinator's own
    /// part held; the other banks may have been asked), nothing is decided.
    AfterBegin,
    /// Participant: the holds and vote are durable, the vote is not sent.
    AfterPrepare,
    /// Participant: the holds are posted or voided, the acknowledgement is not sent.
    AfterFinish,
    /// Directory migration: the ledger's customers are loaded, its accounts and keys are not.
    MigrationCustomersLoaded,
    /// Coordinator: every vote is in and the decision made, not yet proposed to the log.
    BeforeLogDecision,
    /// Coordinator: the log holds the decision, this bank's store does not yet.
    AfterLogDecision,
}

impl Point {
    #[cfg(debug_assertions)]
    fn name(self) -> &'static str {
        match self {
            Point::AfterDecision => "after_decision",
            Point::AfterBegin => "after_begin",
            Point::AfterPrepare => "after_prepare",
            Point::AfterFinish => "after_finish",
            Point::MigrationCustomersLoaded => "migration_customers_loaded",
            Point::BeforeLogDecision => "before_log_decision",
            Point::AfterLogDecision => "after_log_decision",
        }
    }
}

#[cfg(debug_assertions)]
pub fn hit(point: Point) {
    use std::sync::atomic::Ordering;
    let Ok(wanted) = std::env::var("BANKD_FAULT") else {
        return;
    };
    let (name, nth) = match wanted.split_once('@') {
        Some((name, nth)) => (name.to_string(), nth.parse().unwrap_or(1)),
        None => (wanted, 1),
    };
    if name == point.name() && HITS.fetch_add(1, Ordering::SeqCst) + 1 == nth {
        eprintln!("bankd: BANKD_FAULT={} reached; aborting", point.name());
        std::process::abort();
    }
}

#[cfg(not(debug_assertions))]
pub fn hit(_point: Point) {}
