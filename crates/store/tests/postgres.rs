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
