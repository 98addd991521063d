//! A command the database refuses (here: a name longer than the schema's CHECK allows, which
//! the node never sends) fails alone: its batch neighbours are committed and answered.

use ledger::{AccountKind, AccountNumber, Amount, BankCode, Document, EndToEndId};
use std::sync::Arc;
use store::*;

fn e2e(serial: u64) -> EndToEndId {
    EndToEndId::sequenced(BankCode::parse("10000001").unwrap(), "202611230000", serial)
}

fn request(command: Command) -> Request {
    Request {
        command,
        idempotency: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_the_database_refuses_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let bank = BankCode::parse("10000001").unwrap();
    let store = Arc::new(
        SqliteStore::open(
            &dir.path().join("bank.db"),
            bank,
            &[],
            Arc::new(SharedClock::default()),
        )
        .unwrap(),
    );
    let register = |name: String, document: &str, username: &str| Command::RegisterCustomer {
        public_id: username.into(),
        name,
        document: Document::parse(document).unwrap(),
        username: username.into(),
        password_hash: "not-a-real-hash".into(),
    };
    let registered = store
        .execute(request(register(
            "Ana Falha".into(),
            "529.982.247-25",
            "ana",
        )))
        .await
        .unwrap();
    let Outcome::Customer(ana) = registered.outcome else {
        panic!("{registered:?}")
    };
    let opened = store
        .execute(request(Command::OpenAccount {
            actor: ana.id,
            kind: AccountKind::Individual,
            co_holders: vec![],
            opening_deposit: Amount::from_cents(5_000).unwrap(),
            e2e: e2e(0),
        }))
        .await
        .unwrap();
    let Outcome::Account(account) = opened.outcome else {
        panic!("{opened:?}")
    };
    let number = AccountNumber::parse(&account.number).unwrap();

    // Rounds of deposits with one bad command among them, all queued together so that they
    // meet in the writer's batches.
    let mut serial = 1;
    let mut deposited = 0;
    for round in 0..5 {
        let mut tasks = Vec::new();
        for index in 0..40 {
            let store = store.clone();
            let command = if index == 20 {
                register("x".repeat(500), "111.444.777-35", &format!("bad{round}"))
            } else {
                serial += 1;
                deposited += 100;
                Command::Deposit {
                    actor: ana.id,
                    account: number,
                    amount: Amount::from_cents(100).unwrap(),
                    description: String::new(),
                    e2e: e2e(serial),
                }
            };
            tasks.push(tokio::spawn(async move {
                store.execute(request(command)).await
            }));
        }
        for (index, task) in tasks.into_iter().enumerate() {
            let result = task.await.unwrap();
            if index == 20 {
                assert!(
                    matches!(result, Err(StoreError::Database(_))),
                    "the bad command fails: {result:?}"
                );
            } else {
                let executed = result.expect("a deposit beside the bad command succeeds");
                assert!(
                    matches!(executed.outcome, Outcome::Entry(_)),
                    "{executed:?}"
                );
            }
        }
    }
    let account = store.account(ana.id, number).await.unwrap().unwrap();
    assert_eq!(account.balance_cents, 5_000 + deposited);
    let audit = store.audit().await.unwrap();
    assert!(audit.checks.iter().all(|check| check.ok), "{audit:?}");
}
