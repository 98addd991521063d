//! The PostgreSQL backend's foundations against a real server (`cargo xtask test` starts one;
//! `cargo xtask with-pg cargo test -p store --test postgres` runs just these): migrations run
//! once whatever the number of processes starting at once, transactions are run again on a
//! serialization failure, and the duty lease is held by one process, taken over when it dies,
//! handed over at once when it stops cleanly. Each test makes its own database.

use std::time::{Duration, Instant};
use store::postgres::duty::{self, DutyLease, LEASE_TTL, RENEW_EVERY};
use store::postgres::testing::TestDatabase;
use store::postgres::{self as pg, MIGRATIONS};

/// Waits up to `limit` for `condition`, checking every 50 ms.
async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    condition()
}

async fn client(db: &TestDatabase) -> tokio_postgres::Client {
    let config = pg::connect_config(db.url()).unwrap();
    pg::connect(&config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_when_several_processes_start_together() {
    let Some(db) = TestDatabase::create("migrations_once") else {
        return;
    };
    // Eight starting at once, each on its own connection, as eight bankd would.
    let mut starts = Vec::new();
    for _ in 0..8 {
        let mut connection = client(&db).await;
        starts.push(tokio::spawn(
            async move { pg::migrate(&mut connection).await },
        ));
    }
    for start in starts {
        assert_eq!(start.await.unwrap(), Ok(MIGRATIONS.len() as u32));
    }
    let mut connection = client(&db).await;
    let versions: Vec<i32> = connection
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, (1..=MIGRATIONS.len() as i32).collect::<Vec<_>>());
    // Migration 1 ran once: one vault, not one per process.
    let vaults: i64 = connection
        .query_one("SELECT count(*) FROM accounts WHERE kind = 'vault'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(vaults, 1);
    // And again later: nothing to do.
    assert_eq!(
        pg::migrate(&mut connection).await,
        Ok(MIGRATIONS.len() as u32)
    );
}

#[tokio::test]
async fn a_database_newer_than_the_program_is_refused() {
    let Some(db) = TestDatabase::create("newer_refused") else {
        return;
    };
    let mut connection = client(&db).await;
    pg::migrate(&mut connection).await.unwrap();
    let future = MIGRATIONS.len() as i32 + 1;
    connection
        .execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&future],
        )
        .await
        .unwrap();
    let refused = pg::migrate(&mut connection).await.unwrap_err();
    assert!(refused.contains("newer"), "{refused}");
}

#[test]
fn the_schema_refuses_what_the_rules_forbid() {
    let Some(db) = TestDatabase::create("schema_rules") else {
        return;
    };
    let url = db.url().to_string();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let config = pg::connect_config(&url).unwrap();
            let mut connection = pg::connect(&config).await.unwrap();
            pg::migrate(&mut connection).await.unwrap();
        });
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client
            .batch_execute(
                "INSERT INTO accounts (number, kind, credits_posted, clock) VALUES (10, 'individual', 100, '0.0')",
            )
            .unwrap();
        // A customer account spending more than it has.
        let overdraft = client
            .batch_execute("UPDATE accounts SET debits_posted = 101 WHERE number = 10")
            .unwrap_err();
        assert!(pg::is_constraint(&overdraft), "{overdraft}");
        // Counters whose sum passes BIGINT are judged, not an arithmetic error.
        let huge = client
            .batch_execute(&format!(
                "UPDATE accounts SET debits_posted = {max}, debits_pending = {max} WHERE number = 10",
                max = i64::MAX
            ))
            .unwrap_err();
        assert!(pg::is_constraint(&huge), "{huge}");
        // A non-positive transfer.
        let zero = client
            .batch_execute(
                "INSERT INTO transfers (e2e_id, debit_account_id, credit_account_id, amount, flags, clock)
                 VALUES ('e', 1, 2, 0, 'posted', '0.0')",
            )
            .unwrap_err();
        assert!(pg::is_constraint(&zero), "{zero}");
        // The same idempotency key twice in one scope.
        client
            .batch_execute(
                "INSERT INTO idempotency (key, scope, fingerprint, outcome, clock) VALUES ('k', 1, '\\x00', '{}', '0.0')",
            )
            .unwrap();
        let again = client
            .batch_execute(
                "INSERT INTO idempotency (key, scope, fingerprint, outcome, clock) VALUES ('k', 1, '\\x01', '{}', '0.0')",
            )
            .unwrap_err();
        assert!(pg::is_unique_violation(&again), "{again}");
    })
    .join()
    .unwrap();
}

/// Two writers that both read a counter and write it plus one, at once, SERIALIZABLE: one of
/// them fails with 40001 at least once, is run again by `retrying`, and no increment is lost.
#[test]
fn a_serialization_failure_is_run_again_and_no_update_is_lost() {
    let Some(db) = TestDatabase::create("retry_40001") else {
        return;
    };
    let url = db.url().to_string();
    {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client
            .batch_execute("CREATE TABLE counter (id INT PRIMARY KEY, n BIGINT NOT NULL); INSERT INTO counter VALUES (1, 0)")
            .unwrap();
    }
    const WRITERS: usize = 4;
    const INCREMENTS: usize = 50;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(WRITERS));
    let tries = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let url = url.clone();
            let barrier = barrier.clone();
            let tries = tries.clone();
            std::thread::spawn(move || {
                let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                barrier.wait();
                for _ in 0..INCREMENTS {
                    pg::retrying(&mut client, |tx| {
                        tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let n: i64 = tx
                            .query_one("SELECT n FROM counter WHERE id = 1", &[])?
                            .get(0);
                        // Widen the window between the read and the write.
                        std::thread::sleep(Duration::from_micros(200));
                        tx.execute("UPDATE counter SET n = $1 WHERE id = 1", &[&(n + 1)])?;
                        Ok(())
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let n: i64 = client
        .query_one("SELECT n FROM counter WHERE id = 1", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, (WRITERS * INCREMENTS) as i64, "an increment was lost");
    let tries = tries.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        tries > WRITERS * INCREMENTS,
        "no transaction was run again ({tries} tries): the test did not collide"
    );
}

async fn migrated(name: &str) -> Option<(TestDatabase, tokio_postgres::Config)> {
    let db = TestDatabase::create(name)?;
    let config = pg::connect_config(db.url()).unwrap();
    let mut connection = pg::connect(&config).await.unwrap();
    pg::migrate(&mut connection).await.unwrap();
    Some((db, config))
}

/// How long a takeover may take: the lease's life and two tries, with room for a slow machine.
const TAKEOVER_MAX: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_holds_the_duties_and_another_takes_over_when_it_dies() {
    let Some((db, config)) = migrated("duty_takeover").await else {
        return;
    };
    let first = DutyLease::start(config.clone(), "first".into());
    assert!(eventually(TAKEOVER_MAX, || first.held()).await);
    let second = DutyLease::start(config.clone(), "second".into());
    // While the first renews, the second never holds: watched over several lease lives.
    let watch_until = Instant::now() + LEASE_TTL * 2;
    while Instant::now() < watch_until {
        assert!(first.held(), "the holder lost a lease it kept renewing");
        assert!(!second.held(), "two processes hold the duties at once");
        tokio::time::sleep(RENEW_EVERY / 2).await;
    }
    let epoch = first.epoch().unwrap();
    // The first dies: it stops renewing without giving the lease up.
    drop(first);
    let died = Instant::now();
    assert!(eventually(TAKEOVER_MAX, || second.held()).await);
    let took = died.elapsed();
    assert!(
        took >= LEASE_TTL - duty::LEASE_MARGIN,
        "taken over after {took:?}, before the dead holder's lease expired"
    );
    assert!(
        second.epoch().unwrap() > epoch,
        "a new holder raises the epoch"
    );
    let connection = client(&db).await;
    assert_eq!(
        duty::current_holder(&connection).await.unwrap().as_deref(),
        Some("second")
    );
    second.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_stops_cleanly_hands_the_duties_over_at_once() {
    let Some((db, config)) = migrated("duty_release").await else {
        return;
    };
    let first = DutyLease::start(config.clone(), "first".into());
    assert!(eventually(TAKEOVER_MAX, || first.held()).await);
    let second = DutyLease::start(config.clone(), "second".into());
    first.release().await;
    let connection = client(&db).await;
    assert_ne!(
        duty::current_holder(&connection).await.unwrap().as_deref(),
        Some("first")
    );
    // Taken at the second's next try, well before the released lease would have expired.
    assert!(eventually(TAKEOVER_MAX, || second.held()).await);
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_cut_off_from_the_database_stops_counting_itself_holder() {
    let Some((db, config)) = migrated("duty_cut_off").await else {
        return;
    };
    let first = DutyLease::start(config.clone(), "first".into());
    assert!(eventually(TAKEOVER_MAX, || first.held()).await);
    // The server ends every connection of this database (as a network cut would), and
    // refuses new ones for a while: the holder cannot renew.
    let admin = pg::connect(&pg::connect_config(db.admin_url()).unwrap())
        .await
        .unwrap();
    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = '{name}' AND pid <> pg_backend_pid()",
            name = db.name()
        ))
        .await
        .unwrap();
    // It counts itself holder only until the local end of its last renewal, which comes before
    // the row expires for anyone else (`until` is taken before the renewal was asked).
    let last_end = match *first.changes().borrow() {
        duty::Lease::Held { until, .. } => until,
        duty::Lease::NotHeld => panic!("the holder was not holding"),
    };
    assert!(eventually(TAKEOVER_MAX, || !first.held()).await);
    assert!(Instant::now() >= last_end);
    // Let the database be dropped.
    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" ALLOW_CONNECTIONS true",
            db.name()
        ))
        .await
        .unwrap();
    drop(first);
}

// ---- the row-level transaction (`LedgerTx` for PostgreSQL) ----

use ledger::rules::Counters;
use store::tx::{Backend, EntrySide, LedgerTx, NewCustomer, NewEntry, NewIdempotency};
use store::tx::{NewTransfer, NewTransferEntry, TransferFlags};
use store::{PgBackend, PgStore, Store, StoreError, Submitted};

/// The store's reads without a writer (these tests write rows through `LedgerTx` directly).
struct NoWriter;

impl pg::Writes for NoWriter {
    fn submit(&self, _: store::Request) -> Result<Submitted, StoreError> {
        Err(StoreError::Closed)
    }
    fn is_writing(&self) -> bool {
        false
    }
}

const BANK: &str = "10000001";

/// Runs `f` with a writer's backend on a thread of its own (the blocking client may not run on
/// the test's runtime).
fn on_writer<T: Send + 'static>(
    config: &tokio_postgres::Config,
    f: impl FnOnce(&mut PgBackend) -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let config = config.clone();
    std::thread::spawn(move || {
        let mut backend = PgBackend::connect(&config).unwrap();
        f(&mut backend)
    })
}

/// Two customers with an account each, the first paid 1000 in cash, then 300 from the first to
/// the second: what the rules would write, row by row.
fn seed(backend: &mut PgBackend) -> (i64, i64, i64, i64) {
    let mut tx = backend.begin().unwrap();
    let customer = |tx: &mut store::PgTx<'_>, n: u32, name: &str| {
        let document = ledger::Document::Cpf(ledger::Cpf::from_base(n).unwrap());
        tx.insert_customer(&NewCustomer {
            public_id: &format!("c{n}"),
            name,
            document: &document,
            username: &format!("user{n}"),
            password_hash: "x",
            home_bank: BANK,
            clock: "1.0",
        })
        .unwrap()
    };
    let ana = customer(&mut tx, 123_456_789, "Ana");
    let bia = customer(&mut tx, 987_654_321, "Bia");
    let first = tx.next_account_number().unwrap();
    let a = tx
        .insert_account(first, ledger::AccountKind::Individual, "1.0")
        .unwrap();
    tx.insert_holder(a, ana, 0).unwrap();
    let second = tx.next_account_number().unwrap();
    assert_eq!(second, first + 1);
    let b = tx
        .insert_account(second, ledger::AccountKind::Individual, "1.0")
        .unwrap();
    tx.insert_holder(b, bia, 0).unwrap();
    let vault = 1;
    let deposit = tx
        .insert_transfer(&NewTransfer {
            e2e: "E1",
            debit: vault,
            credit: a,
            amount_cents: 1000,
            flags: TransferFlags::Posted,
            pending_id: None,
            clock: "1.1",
        })
        .unwrap();
    let deposit_entry = tx
        .insert_entry(&NewEntry {
            account_id: a,
            transfer_id: deposit,
            kind: "deposit",
            amount_cents: 1000,
            balance_after_cents: 1000,
            counterparty: "cash",
            description: "",
            made_by: "user123456789",
            clock: "1.1",
            at_ms: 1,
            e2e: "E1",
            prev_entry: None,
        })
        .unwrap();
    let transfer = tx
        .insert_transfer_entry(&NewTransferEntry {
            payer: EntrySide {
                account_id: a,
                balance_after_cents: 700,
                prev_entry: Some(deposit_entry),
            },
            payee: EntrySide {
                account_id: b,
                balance_after_cents: 300,
                prev_entry: None,
            },
            amount_cents: 300,
            description: "rent",
            made_by: "user123456789",
            clock: "1.2",
            at_ms: 2,
            e2e: "E2",
        })
        .unwrap();
    let vault_row = tx.account_row(vault).unwrap();
    tx.update_account(
        vault,
        &Counters {
            debits_posted: 1000,
            ..vault_row.counters
        },
        None,
    )
    .unwrap();
    tx.update_account(
        a,
        &Counters {
            debits_posted: 300,
            credits_posted: 1000,
            ..Counters::default()
        },
        Some(transfer),
    )
    .unwrap();
    tx.update_account(
        b,
        &Counters {
            credits_posted: 300,
            ..Counters::default()
        },
        Some(transfer),
    )
    .unwrap();
    tx.insert_idempotency(&NewIdempotency {
        scope: ana,
        key: "k1",
        fingerprint: &[7; 32],
        outcome: None,
        payment: Some("E2"),
        clock: "1.2",
        pending_e2e: None,
    })
    .unwrap();
    tx.set_clock("1.2").unwrap();
    tx.commit(3).unwrap();
    (ana, bia, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_written_through_the_transaction_read_back_through_the_store() {
    let Some((_db, config)) = migrated("rows_read_back").await else {
        return;
    };
    let (ana, bia, a, _b) = on_writer(&config, seed).join().unwrap();
    let bank = ledger::BankCode::parse(BANK).unwrap();
    let clock = std::sync::Arc::new(store::SharedClock::default());
    pg::prepare(&config, bank, &[], &clock).await.unwrap();
    assert!(clock.last().to_string().as_str() >= "1.2");
    // `start` audits the ledger: it refuses one that fails.
    let store = PgStore::start(&config, bank, clock, NoWriter)
        .await
        .unwrap();
    let audit = store.audit().await.unwrap();
    assert!(audit.checks.iter().all(|c| c.ok), "{:?}", audit.checks);
    assert_eq!(audit.customer_balances_cents, 1000);
    let accounts = store.accounts_of(ana).await.unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].balance_cents, 700);
    let number = ledger::AccountNumber::parse(&accounts[0].number).unwrap();
    // Ana's statement: the transfer out, then the deposit.
    let lines = store
        .statement(ana, number, None, 10)
        .await
        .unwrap()
        .unwrap();
    let kinds: Vec<&str> = lines.iter().map(|l| l.kind.as_str()).collect();
    assert_eq!(kinds, ["transfer_out", "deposit"]);
    assert!(lines[0].counterparty.contains("Bia"), "{:?}", lines[0]);
    // Bia cannot read Ana's account.
    assert!(
        store
            .statement(bia, number, None, 10)
            .await
            .unwrap()
            .is_none()
    );
    // The transfer's record is read back from its entry, by either holder.
    let e2e = ledger::EndToEndId::parse("E2");
    if let Some(e2e) = e2e {
        assert!(store.payment(bia, &e2e).await.unwrap().is_some());
    }
    // The idempotency record names the payment; a retry reads the entry as its outcome.
    let found = on_writer(&config, move |backend| {
        let mut tx = backend.begin().unwrap();
        let stored = tx.idempotency(BANK, ana, "k1").unwrap();
        tx.commit(0).unwrap();
        stored.map(|s| (s.fingerprint, s.outcome.is_ok()))
    })
    .join()
    .unwrap();
    assert_eq!(found, Some((vec![7; 32], true)));
    let _ = a;
}

/// Two writers (two processes of one bank) change the same account at once: the second waits
/// for the first's commit and reads its counters, so neither update is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_of_an_account_waits_for_the_first_and_loses_no_update() {
    let Some((_db, config)) = migrated("rows_no_lost_update").await else {
        return;
    };
    let (_, _, a, _) = on_writer(&config, seed).join().unwrap();
    let locked = std::sync::Arc::new(std::sync::Barrier::new(2));
    let add_one = |config: &tokio_postgres::Config,
                   locked: std::sync::Arc<std::sync::Barrier>,
                   first: bool| {
        on_writer(config, move |backend| {
            if !first {
                locked.wait();
            }
            let mut tx = backend.begin().unwrap();
            let row = tx.account_row(a).unwrap();
            if first {
                locked.wait();
                // Hold the row while the other writer reads it.
                std::thread::sleep(Duration::from_millis(300));
            }
            let counters = Counters {
                credits_posted: row.counters.credits_posted + 1,
                ..row.counters
            };
            tx.update_account(a, &counters, row.last_entry).unwrap();
            tx.commit(1).unwrap();
        })
    };
    let first = add_one(&config, locked.clone(), true);
    let second = add_one(&config, locked, false);
    first.join().unwrap();
    second.join().unwrap();
    let credits = on_writer(&config, move |backend| {
        let mut tx = backend.begin().unwrap();
        let row = tx.account_row(a).unwrap();
        tx.commit(0).unwrap();
        row.counters.credits_posted
    })
    .join()
    .unwrap();
    assert_eq!(credits, 1002, "an update was lost");
}

/// Two processes record the same idempotency key at once: the second's insert fails as a
/// constraint once the first commits, and its next transaction finds the first's record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_idempotency_key_from_two_writers_is_recorded_once() {
    let Some((_db, config)) = migrated("rows_idempotency").await else {
        return;
    };
    let (ana, ..) = on_writer(&config, seed).join().unwrap();
    let started = std::sync::Arc::new(std::sync::Barrier::new(2));
    let record = |fingerprint: u8, started: std::sync::Arc<std::sync::Barrier>| {
        on_writer(&config, move |backend| {
            let mut tx = backend.begin().unwrap();
            started.wait();
            let inserted = tx.insert_idempotency(&NewIdempotency {
                scope: ana,
                key: "same-key",
                fingerprint: &[fingerprint; 32],
                outcome: Some("\"Done\""),
                payment: None,
                clock: "2.0",
                pending_e2e: None,
            });
            match inserted {
                Ok(()) => {
                    std::thread::sleep(Duration::from_millis(200));
                    tx.commit(1).map_err(|e| e.to_string())
                }
                Err(error) => {
                    assert!(pg::is_constraint(&error), "{error}");
                    backend.rollback().unwrap();
                    Err(error.to_string())
                }
            }
        })
    };
    let one = record(1, started.clone());
    let two = record(2, started);
    let results = [one.join().unwrap(), two.join().unwrap()];
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    let winner: u8 = if results[0].is_ok() { 1 } else { 2 };
    let stored = on_writer(&config, move |backend| {
        let mut tx = backend.begin().unwrap();
        let stored = tx.idempotency(BANK, ana, "same-key").unwrap();
        tx.commit(0).unwrap();
        stored.map(|s| s.fingerprint)
    })
    .join()
    .unwrap();
    assert_eq!(stored, Some(vec![winner; 32]));
}
