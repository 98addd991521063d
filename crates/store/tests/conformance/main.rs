//! One conformance suite for every backend of the store: the cases (`cases.rs`) are written once
//! against the [`store::Store`] boundary and a [`Harness`] that opens fresh stores, and
//! [`conformance!`] instantiates all of them for one backend. A backend joins the suite with one
//! line below (`conformance!(postgres, PgHarness::new())`) and a harness of its own.

mod cases;

use ledger::BankCode;
use std::sync::Arc;
use store::{SharedClock, SqliteStore, Store};

/// A store the suite opened, and whatever must outlive it (a temporary folder, a database to
/// drop).
pub struct Opened {
    pub store: Arc<dyn Store>,
    pub keep: Box<dyn std::any::Any + Send + Sync>,
}

/// What a backend gives the suite.
pub trait Harness: Sync {
    /// A fresh, empty store of bank `bank`, whose consortium also lists `peers`.
    fn open(&self, bank: BankCode, peers: &[BankCode]) -> impl Future<Output = Opened> + Send;
}

/// The SQLite backend: a file in a temporary folder, untuned (the default).
pub struct SqliteHarness;

impl Harness for SqliteHarness {
    async fn open(&self, bank: BankCode, peers: &[BankCode]) -> Opened {
        SqliteTunedHarness(store::sqlite::SqliteTuning::default())
            .open(bank, peers)
            .await
    }
}

/// The SQLite backend with its own tuning (`SqliteTuning`), which must change nothing the suite
/// can see.
pub struct SqliteTunedHarness(pub store::sqlite::SqliteTuning);

impl Harness for SqliteTunedHarness {
    async fn open(&self, bank: BankCode, peers: &[BankCode]) -> Opened {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_tuned(
            &dir.path().join("ledger.db"),
            bank,
            peers,
            Arc::new(SharedClock::default()),
            self.0,
        )
        .unwrap();
        Opened {
            store: Arc::new(store),
            keep: Box::new(dir),
        }
    }
}

/// Every case of `cases.rs`, as tests of a module `$backend` run against `$harness`.
macro_rules! conformance {
    ($backend:ident, $harness:expr) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;
            conformance!(@cases $harness;
                customers_are_unique_and_sessions_expire,
                accounts_open_with_a_deposit_and_show_in_statements,
                cash_moves_within_its_limits,
                local_transfers_commit_or_abort_with_a_record,
                a_retry_answers_the_first_outcome,
                pix_keys_follow_their_rules,
                a_package_commits_whole_or_not_at_all,
                a_batch_answers_each_transfer,
                joint_accounts_take_holders_by_invitation,
                a_participant_holds_votes_and_finishes_once,
                a_coordinator_records_the_first_decision,
                an_interbank_package_is_settled_by_its_decision,
                concurrent_transfers_conserve_money,
            );
        }
    };
    (@cases $harness:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::cases::$case(&$harness).await;
            }
        )*
    };
}

conformance!(sqlite, super::SqliteHarness);
conformance!(
    sqlite_tuned,
    super::SqliteTunedHarness(store::sqlite::SqliteTuning::ALL)
);

/// The PostgreSQL backend: a database of its own on the tests' server (`INTERBANK_TEST_PG`),
/// dropped after the case. Without a server the case is skipped loudly (a failure under CI).
pub struct PgHarness;

impl Harness for PgHarness {
    async fn open(&self, bank: BankCode, peers: &[BankCode]) -> Opened {
        let Some(db) = store::postgres::testing::TestDatabase::create("conformance") else {
            // No server: the case runs on SQLite instead, having said it skips PostgreSQL.
            return SqliteHarness.open(bank, peers).await;
        };
        let store = store::postgres::open(db.url(), bank, peers, Arc::new(SharedClock::default()))
            .await
            .unwrap();
        Opened {
            store: Arc::new(store),
            keep: Box::new(db),
        }
    }
}

conformance!(postgres, super::PgHarness);
