//! What another bank may send that the store must refuse without harm: a part with a leg through
//! the settlement account with a third bank (refused, and caught by the audit should one ever be
//! on disk), and a part under an end-to-end id already used here (the database refuses it; that
//! is a refusal of the request, not a failure of the store).

use ledger::{AccountKind, AccountNumber, Amount, BankCode, Document, EndToEndId};
use protocol::{Endpoint, Leg, Memo};
use std::sync::Arc;
use store::*;

fn me() -> BankCode {
    BankCode::parse("10000001").unwrap()
}

/// The coordinator of the parts below.
fn coordinator() -> BankCode {
    BankCode::parse("20000002").unwrap()
}

/// A third bank of the consortium, not in the transactions below.
fn third() -> BankCode {
    BankCode::parse("30000003").unwrap()
}

fn id(bank: BankCode, serial: u64) -> EndToEndId {
    EndToEndId::sequenced(bank, "202612060000", serial)
}

async fn run(store: &SqliteStore, command: Command) -> Outcome {
    store
        .execute(Request {
            command,
            idempotency: None,
        })
        .await
        .unwrap()
        .outcome
}

/// A bank whose consortium has two other banks, with one customer and one account of R$ 50,00.
async fn bank() -> (
    tempfile::TempDir,
    Arc<SqliteStore>,
    CustomerId,
    AccountNumber,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(
            &dir.path().join("bank.db"),
            me(),
            &[coordinator(), third()],
            Arc::new(SharedClock::default()),
        )
        .unwrap(),
    );
    let registered = run(
        &store,
        Command::RegisterCustomer {
            public_id: "ana".into(),
            name: "Ana".into(),
            document: Document::parse("529.982.247-25").unwrap(),
            username: "ana".into(),
            password_hash: "not-a-real-hash".into(),
        },
    )
    .await;
    let Outcome::Customer(customer) = registered else {
        panic!("{registered:?}")
    };
    let opened = run(
        &store,
        Command::OpenAccount {
            actor: customer.id,
            kind: AccountKind::Individual,
            co_holders: vec![],
            opening_deposit: Amount::from_cents(5_000).unwrap(),
            e2e: id(me(), 0),
        },
    )
    .await;
    let Outcome::Account(account) = opened else {
        panic!("{opened:?}")
    };
    let number = AccountNumber::parse(&account.number).unwrap();
    (dir, store, customer.id, number)
}

fn credit(from: Endpoint, number: AccountNumber, cents: i64) -> Leg {
    Leg {
        from,
        to: Endpoint::Account(number),
        amount: Amount::from_cents(cents).unwrap(),
        memo: Memo::default(),
    }
}

async fn balance(store: &SqliteStore, customer: CustomerId, number: AccountNumber) -> (i64, i64) {
    let account = store.account(customer, number).await.unwrap().unwrap();
    (account.balance_cents, account.available_cents)
}

async fn audit_passes(store: &SqliteStore) {
    let audit = store.audit().await.unwrap();
    assert!(audit.checks.iter().all(|check| check.ok), "{audit:?}");
    assert!(
        audit
            .checks
            .iter()
            .any(|check| check.name == "interbank_legs_settle_with_their_coordinator"),
        "{audit:?}"
    );
}

/// A member cannot book money here as owed by a bank that is not in its transaction: a part
/// from bank B crediting a customer out of the settlement account with bank C is a no vote that
/// holds nothing. And a hold of that shape on disk (written by an older node) fails the audit, so
/// the bank does not start on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leg_through_a_third_banks_settlement_is_refused_and_fails_the_audit() {
    let (dir, store, customer, number) = bank().await;
    let forged = run(
        &store,
        Command::Prepare {
            e2e: id(coordinator(), 1),
            coordinator: coordinator(),
            legs: vec![credit(Endpoint::Settlement(third()), number, 1_000)],
            payment: None,
        },
    )
    .await;
    assert_eq!(
        forged,
        Outcome::Vote {
            yes: false,
            reason: Some("10000001/0/account_not_found".into())
        }
    );
    assert_eq!(balance(&store, customer, number).await, (5_000, 5_000));
    audit_passes(&store).await;

    // Through the settlement account with the coordinator itself, the same credit is held.
    let honest = run(
        &store,
        Command::Prepare {
            e2e: id(coordinator(), 2),
            coordinator: coordinator(),
            legs: vec![credit(Endpoint::Settlement(coordinator()), number, 1_000)],
            payment: None,
        },
    )
    .await;
    assert_eq!(
        honest,
        Outcome::Vote {
            yes: true,
            reason: None
        }
    );
    audit_passes(&store).await;
    drop(store);

    // The same hold, as if the third bank had been its coordinator: the audit catches it.
    let path = dir.path().join("bank.db");
    let db = rusqlite::Connection::open(&path).unwrap();
    db.execute(
        "UPDATE interbank_votes SET coordinator = ?1 WHERE e2e_id = ?2",
        [third().as_str(), id(coordinator(), 2).as_str()],
    )
    .unwrap();
    drop(db);
    let reopened = SqliteStore::open(
        &path,
        me(),
        &[coordinator(), third()],
        Arc::new(SharedClock::default()),
    );
    match reopened {
        Err(StoreError::Corrupt(why)) => assert!(
            why.starts_with("interbank_legs_settle_with_their_coordinator failed"),
            "{why}"
        ),
        Err(other) => panic!("refused for another reason: {other:?}"),
        Ok(_) => panic!("a ledger with a third bank's leg opened"),
    }
}

/// A part under the id of a payment already recorded here (a local transfer the ledger
/// aborted) is refused by the database: the error says it is a constraint, which the node turns
/// into a no vote instead of stopping, and the store changed nothing and goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_under_an_id_already_used_here_is_a_constraint_refusal() {
    let (_dir, store, customer, number) = bank().await;
    let used = id(me(), 7);
    let opened = run(
        &store,
        Command::OpenAccount {
            actor: customer,
            kind: AccountKind::Individual,
            co_holders: vec![],
            opening_deposit: Amount::from_cents(5_000).unwrap(),
            e2e: id(me(), 8),
        },
    )
    .await;
    let Outcome::Account(other) = opened else {
        panic!("{opened:?}")
    };
    let paid = run(
        &store,
        Command::Transfer {
            actor: customer,
            from: number,
            to: Target::Account(AccountNumber::parse(&other.number).unwrap()),
            amount: Amount::from_cents(1_000_000).unwrap(),
            description: String::new(),
            e2e: used.clone(),
        },
    )
    .await;
    let Outcome::Payment(aborted) = paid else {
        panic!("{paid:?}")
    };
    assert_eq!(aborted.status, PaymentStatus::Aborted);
    let refused = store
        .execute(Request {
            command: Command::Prepare {
                e2e: used,
                coordinator: coordinator(),
                legs: vec![credit(Endpoint::Settlement(coordinator()), number, 100)],
                payment: Some(aborted),
            },
            idempotency: None,
        })
        .await;
    match refused {
        Err(error) => assert!(error.is_constraint(), "{error:?}"),
        Ok(executed) => panic!("a second payment under one id: {:?}", executed.outcome),
    }
    assert_eq!(balance(&store, customer, number).await, (5_000, 5_000));
    audit_passes(&store).await;
}
