//! The write-ahead log stays bounded while the writer never rests: checkpoints run beside the
//! writer, and SQLite only starts the log over once all of it is copied, which a writer that is
//! always busy would never allow on its own.

use ledger::{AccountKind, AccountNumber, Amount, BankCode, Document, EndToEndId};
use std::sync::Arc;
use store::*;

/// Clients depositing at once, and deposits each: enough that the writer has no idle moment.
const CLIENTS: u64 = 16;
const ROUNDS: u64 = 1_000;
/// Far above what the checkpointer lets the log reach (4,096 frames of 4 KiB, plus what arrives
/// while it works), far below what the deposits write without checkpoints (several frames each).
const WAL_BYTES_MAX: u64 = 48 << 20;

fn e2e(serial: u64) -> EndToEndId {
    EndToEndId::sequenced(BankCode::parse("10000001").unwrap(), "202611230000", serial)
}

async fn run(store: &SqliteStore, command: Command) -> Outcome {
    let request = Request {
        command,
        idempotency: None,
    };
    store.execute(request).await.unwrap().outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_stays_bounded_under_constant_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bank.db");
    let bank = BankCode::parse("10000001").unwrap();
    let store =
        Arc::new(SqliteStore::open(&path, bank, &[], Arc::new(SharedClock::default())).unwrap());
    let Outcome::Customer(customer) = run(
        &store,
        Command::RegisterCustomer {
            public_id: "c1".into(),
            name: "Ana Log".into(),
            document: Document::parse("529.982.247-25").unwrap(),
            username: "ana".into(),
            password_hash: "not-a-real-hash".into(),
        },
    )
    .await
    else {
        panic!("register")
    };
    let mut numbers = Vec::new();
    for serial in 0..64 {
        let outcome = run(
            &store,
            Command::OpenAccount {
                actor: customer.id,
                kind: AccountKind::Individual,
                co_holders: vec![],
                opening_deposit: Amount::from_cents(5_000).unwrap(),
                e2e: e2e(serial),
            },
        )
        .await;
        let Outcome::Account(account) = outcome else {
            panic!("{outcome:?}")
        };
        numbers.push(AccountNumber::parse(&account.number).unwrap());
    }
    // Clients that each wait for their answer before asking again: small commits, one after
    // another, each writing its pages to the log again.
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let store = store.clone();
            let numbers = numbers.clone();
            let wal = dir.path().join("bank.db-wal");
            tokio::spawn(async move {
                let mut largest = 0;
                for round in 0..ROUNDS {
                    let serial = 1_000 + client * ROUNDS + round;
                    let command = Command::Deposit {
                        actor: customer.id,
                        account: numbers[(serial % numbers.len() as u64) as usize],
                        amount: Amount::from_cents(1).unwrap(),
                        description: String::new(),
                        e2e: e2e(serial),
                    };
                    let outcome = run(&store, command).await;
                    assert!(matches!(outcome, Outcome::Entry(_)), "{outcome:?}");
                    if round % 100 == 0 {
                        largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
                    }
                }
                largest
            })
        })
        .collect();
    let mut largest = 0;
    for client in clients {
        largest = largest.max(client.await.unwrap());
    }
    assert!(
        largest <= WAL_BYTES_MAX,
        "the WAL reached {largest} bytes (at most {WAL_BYTES_MAX})"
    );
    let audit = store.audit().await.unwrap();
    assert!(audit.checks.iter().all(|check| check.ok), "{audit:?}");
}
