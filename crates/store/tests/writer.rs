//! The writer under load: the write-ahead log stays bounded while it never rests, and a command
//! the database refuses fails alone in its batch; a retried transfer answers its first outcome;
//! an interbank part holds all of its legs or none.

use ledger::{AccountKind, AccountNumber, Amount, BankCode, Document, EndToEndId};
use std::sync::Arc;
use store::*;

fn peer() -> BankCode {
    BankCode::parse("20000002").unwrap()
}

fn e2e(serial: u64) -> EndToEndId {
    EndToEndId::sequenced(BankCode::parse("10000001").unwrap(), "202611230000", serial)
}

fn request(command: Command) -> Request {
    Request {
        command,
        idempotency: None,
    }
}

async fn run(store: &SqliteStore, command: Command) -> Outcome {
    store.execute(request(command)).await.unwrap().outcome
}

fn register(name: String, document: &str, username: &str) -> Command {
    Command::RegisterCustomer {
        public_id: username.into(),
        name,
        document: Document::parse(document).unwrap(),
        username: username.into(),
        password_hash: "not-a-real-hash".into(),
    }
}

/// An individual account for `actor`, opened with R$ 50,00.
fn open_account(actor: CustomerId, e2e: EndToEndId) -> Command {
    Command::OpenAccount {
        actor,
        kind: AccountKind::Individual,
        co_holders: vec![],
        opening_deposit: Amount::from_cents(5_000).unwrap(),
        e2e,
    }
}

/// A bank in a temporary folder, with one customer holding `accounts` accounts of R$ 50,00, and
/// one other bank in its consortium.
struct Bank {
    store: Arc<SqliteStore>,
    customer: CustomerRecord,
    numbers: Vec<AccountNumber>,
    dir: tempfile::TempDir,
}

async fn bank(name: &str, accounts: u64) -> Bank {
    let dir = tempfile::tempdir().unwrap();
    let code = BankCode::parse("10000001").unwrap();
    let store = Arc::new(
        SqliteStore::open(
            &dir.path().join("bank.db"),
            code,
            &[peer()],
            Arc::new(SharedClock::default()),
        )
        .unwrap(),
    );
    let registered = run(&store, register(name.into(), "529.982.247-25", "ana")).await;
    let Outcome::Customer(customer) = registered else {
        panic!("{registered:?}")
    };
    let mut numbers = Vec::new();
    for serial in 0..accounts {
        let outcome = run(&store, open_account(customer.id, e2e(serial))).await;
        let Outcome::Account(account) = outcome else {
            panic!("{outcome:?}")
        };
        numbers.push(AccountNumber::parse(&account.number).unwrap());
    }
    Bank {
        store,
        customer,
        numbers,
        dir,
    }
}

/// The number a counting query answers, read straight from the bank's ledger file.
fn count(dir: &tempfile::TempDir, sql: &str) -> i64 {
    rusqlite::Connection::open(dir.path().join("bank.db"))
        .unwrap()
        .query_row(sql, [], |row| row.get(0))
        .unwrap()
}

/// Why the bank refuses to open the ledger at `path` (it must refuse).
fn refused_to_open(path: &std::path::Path) -> String {
    let reopened = SqliteStore::open(
        path,
        BankCode::parse("10000001").unwrap(),
        &[peer()],
        Arc::new(SharedClock::default()),
    );
    match reopened {
        Err(StoreError::Corrupt(why)) => why,
        Err(other) => panic!("refused for another reason: {other:?}"),
        Ok(_) => panic!("a damaged ledger opened"),
    }
}

async fn audit_passes(store: &SqliteStore) {
    let audit = store.audit().await.unwrap();
    assert!(audit.checks.iter().all(|check| check.ok), "{audit:?}");
}

/// Clients depositing at once, and deposits each: enough that the writer has no idle moment.
const CLIENTS: u64 = 16;
const ROUNDS: u64 = 1_000;
/// Far above what the checkpointer lets the log reach (4,096 frames of 4 KiB, plus what arrives
/// while it works), far below what the deposits write without checkpoints (several frames each).
const WAL_BYTES_MAX: u64 = 48 << 20;

/// Checkpoints run beside the writer, and SQLite only starts the log over once all of it is
/// copied, which a writer that is always busy would never allow on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_stays_bounded_under_constant_writes() {
    let Bank {
        store,
        customer,
        numbers,
        dir,
    } = bank("Ana Log", 64).await;
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
    audit_passes(&store).await;
}

/// Here the database refuses a name longer than the schema's CHECK allows (the node never sends
/// one): the other commands of its batch are committed and answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_the_database_refuses_fails_alone() {
    let Bank {
        store,
        customer: ana,
        numbers,
        dir: _dir,
    } = bank("Ana Falha", 1).await;
    let number = numbers[0];
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
    audit_passes(&store).await;
}

/// A local transfer's idempotency record names its payment instead of copying the outcome; a
/// retry still answers exactly the first outcome, committed or refused by the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_transfer_answers_its_first_outcome_from_its_payment() {
    let Bank {
        store,
        customer: ana,
        numbers,
        dir,
    } = bank("Ana Retry", 2).await;
    let transfer = |key: &str, cents: i64, serial: u64| Request {
        command: Command::Transfer {
            actor: ana.id,
            from: numbers[0],
            to: Target::Account(numbers[1]),
            amount: Amount::from_cents(cents).unwrap(),
            description: "rent".into(),
            e2e: e2e(serial),
        },
        idempotency: Some(Idempotency {
            scope: ana.id,
            key: key.into(),
            fingerprint: [cents as u8; 32],
        }),
    };
    // One the ledger commits, one it refuses (more than the R$ 50,00 the account holds).
    for (key, cents, status) in [
        ("k-paid", 1_000, "committed"),
        ("k-refused", 900_000, "aborted"),
    ] {
        let first = store
            .execute(transfer(key, cents, 100 + cents as u64))
            .await
            .unwrap();
        let Outcome::Payment(payment) = &first.outcome else {
            panic!("{first:?}")
        };
        assert_eq!(payment.status.as_str(), status);
        assert!(!first.replayed);
        // The same key again, with a new end-to-end id as the node would make: the first answer.
        let again = store
            .execute(transfer(key, cents, 900 + cents as u64))
            .await
            .unwrap();
        assert!(again.replayed, "{again:?}");
        assert_eq!(
            serde_json::to_string(&again.outcome).unwrap(),
            serde_json::to_string(&first.outcome).unwrap()
        );
    }
    let account = store.account(ana.id, numbers[0]).await.unwrap().unwrap();
    assert_eq!(
        account.balance_cents,
        5_000 - 1_000,
        "each transfer ran once"
    );
    // Stored once: the record holds no outcome of its own, only the payment's id.
    let copies = count(
        &dir,
        "SELECT COUNT(*) FROM idempotency WHERE outcome IS NULL AND payment IS NOT NULL",
    );
    assert_eq!(copies, 2);
}

/// Balance and available balance of each account, in centavos.
async fn balances(bank: &Bank) -> Vec<(i64, i64)> {
    let mut all = Vec::new();
    for number in &bank.numbers {
        let account = bank
            .store
            .account(bank.customer.id, *number)
            .await
            .unwrap()
            .unwrap();
        all.push((account.balance_cents, account.available_cents));
    }
    all
}

/// A payment leaving `number` for the other bank.
fn outgoing(number: AccountNumber, cents: i64) -> protocol::Leg {
    protocol::Leg {
        from: protocol::Endpoint::Account(number),
        to: protocol::Endpoint::Settlement(peer()),
        amount: Amount::from_cents(cents).unwrap(),
        memo: protocol::Memo {
            description: "rent".into(),
            made_by: "ana".into(),
            from_label: "Ana".into(),
            to_label: "Bia".into(),
        },
    }
}

fn prepare(serial: u64, legs: Vec<protocol::Leg>) -> Command {
    Command::Prepare {
        e2e: e2e(serial),
        coordinator: peer(),
        legs,
        payment: None,
    }
}

/// Interbank steps write without a savepoint of their own unless they have several legs: a part
/// refused on its first leg or on a later one holds nothing, and one held on every leg finishes
/// every leg.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interbank_part_holds_every_leg_or_none() {
    let bank = bank("Ana Legs", 2).await;
    let (a, b) = (bank.numbers[0], bank.numbers[1]);
    let untouched = vec![(5_000, 5_000), (5_000, 5_000)];
    // Refused on its only leg, then on the second of two (the first would have fitted).
    for (serial, legs, leg) in [
        (10, vec![outgoing(a, 9_000)], 0),
        (11, vec![outgoing(a, 4_000), outgoing(b, 6_000)], 1),
    ] {
        let vote = run(&bank.store, prepare(serial, legs)).await;
        let Outcome::Vote { yes: false, reason } = &vote else {
            panic!("{vote:?}")
        };
        assert_eq!(
            reason.as_deref(),
            Some(format!("10000001/{leg}/insufficient_funds").as_str())
        );
        assert_eq!(balances(&bank).await, untouched, "nothing is held");
        audit_passes(&bank.store).await;
    }
    // Held on both legs, then posted on both.
    let vote = run(
        &bank.store,
        prepare(12, vec![outgoing(a, 4_000), outgoing(b, 1_500)]),
    )
    .await;
    assert_eq!(
        vote,
        Outcome::Vote {
            yes: true,
            reason: None
        }
    );
    assert_eq!(balances(&bank).await, vec![(5_000, 1_000), (5_000, 3_500)]);
    let finished = run(&bank.store, finish(12, true)).await;
    assert_eq!(finished, Outcome::Done);
    assert_eq!(balances(&bank).await, vec![(1_000, 1_000), (3_500, 3_500)]);
    audit_passes(&bank.store).await;
}

fn finish(serial: u64, commit: bool) -> Command {
    Command::Finish {
        e2e: e2e(serial),
        commit,
    }
}

fn decide(serial: u64, commit: bool, finish_here: bool) -> Command {
    Command::RecordDecision {
        e2e: e2e(serial),
        commit,
        participants: vec![BankCode::parse("10000001").unwrap(), peer()],
        reason: None,
        finish_here,
    }
}

/// A coordinator's decision finishes its own part in the same step when asked, by the decision
/// that stands: a later, contrary decision changes nothing and finishes nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_finishes_the_banks_own_part_in_the_same_step() {
    let bank = bank("Ana Decides", 2).await;
    let (a, b) = (bank.numbers[0], bank.numbers[1]);
    for (serial, number) in [(20, a), (21, b)] {
        let vote = run(&bank.store, prepare(serial, vec![outgoing(number, 1_000)])).await;
        assert!(matches!(vote, Outcome::Vote { yes: true, .. }), "{vote:?}");
    }
    let decided = run(&bank.store, decide(20, true, true)).await;
    assert_eq!(
        decided,
        Outcome::Decision {
            commit: true,
            finished_here: true,
            settled: None
        }
    );
    // Decided without its own part: the hold waits for its `Finish`.
    let decided = run(&bank.store, decide(21, false, false)).await;
    assert_eq!(
        decided,
        Outcome::Decision {
            commit: false,
            finished_here: false,
            settled: None
        }
    );
    assert_eq!(balances(&bank).await, vec![(4_000, 4_000), (5_000, 4_000)]);
    // The first decision stands, and the part it finished is not finished again.
    let again = run(&bank.store, decide(20, false, true)).await;
    assert_eq!(
        again,
        Outcome::Decision {
            commit: true,
            finished_here: true,
            settled: None
        }
    );
    let voided = run(&bank.store, finish(21, false)).await;
    assert_eq!(voided, Outcome::Done);
    assert_eq!(balances(&bank).await, vec![(4_000, 4_000), (5_000, 5_000)]);
    audit_passes(&bank.store).await;
}

/// A payment to another bank, as its coordinator begins it: `amount` cents out of the first
/// account, under the end-to-end id of `serial`.
fn begin_payment(bank: &Bank, serial: u64, cents: i64) -> Command {
    let from = bank.numbers[0];
    Command::BeginPayment {
        actor: bank.customer.id,
        from,
        payment: PaymentRecord {
            e2e_id: e2e(serial).to_string(),
            status: PaymentStatus::Pending,
            reason: None,
            from: AccountAddress {
                bank: "10000001".into(),
                number: from.to_string(),
            },
            to: AccountAddress {
                bank: peer().to_string(),
                number: "100001-2".into(),
            },
            amount_cents: cents,
            description: "rent".into(),
            clock: "1.0".into(),
        },
        legs: vec![outgoing(from, cents)],
    }
}

/// The coordinator's first write records the payment and holds its own part in one step; a part
/// it cannot hold leaves the payment aborted with the refusal's code and nothing held, and the
/// abort decision that follows finds nothing left to settle and finishes the part once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_begins_with_the_coordinators_own_part_held_or_refused() {
    let bank = bank("Ana Begins", 1).await;
    let begun = run(&bank.store, begin_payment(&bank, 50, 1_000)).await;
    assert!(matches!(begun, Outcome::Pending(_)), "{begun:?}");
    assert_eq!(balances(&bank).await, vec![(5_000, 4_000)], "held");
    let again = run(
        &bank.store,
        prepare(50, vec![outgoing(bank.numbers[0], 1_000)]),
    )
    .await;
    assert_eq!(
        again,
        Outcome::Vote {
            yes: true,
            reason: None
        },
        "the vote was recorded with the hold"
    );

    let refused = run(&bank.store, begin_payment(&bank, 51, 9_000)).await;
    let Outcome::Payment(payment) = &refused else {
        panic!("{refused:?}")
    };
    assert_eq!(
        (&payment.status, payment.reason.as_deref()),
        (&PaymentStatus::Aborted, Some("insufficient_funds"))
    );
    assert_eq!(
        balances(&bank).await,
        vec![(5_000, 4_000)],
        "nothing more held"
    );
    let stored = bank
        .store
        .payment(bank.customer.id, &e2e(51))
        .await
        .unwrap();
    assert_eq!(stored.as_ref(), Some(&refused), "recorded as answered");
    let decided = run(&bank.store, decide(51, false, true)).await;
    assert_eq!(
        decided,
        Outcome::Decision {
            commit: false,
            finished_here: true,
            settled: None
        }
    );
    assert_eq!(run(&bank.store, finish(51, false)).await, Outcome::Done);
    audit_passes(&bank.store).await;
}

/// An interbank transfer's idempotency record names the payment too: a retry while the banks
/// decide answers it pending, and once decided answers the decision, as the customer's first
/// answer does (the decision writes no copy of it into the record).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_interbank_transfer_answers_its_payment_as_it_stands() {
    let bank = bank("Ana Retries Abroad", 1).await;
    let with_key = |serial: u64| Request {
        command: begin_payment(&bank, serial, 1_000),
        idempotency: Some(Idempotency {
            scope: bank.customer.id,
            key: "k-abroad".into(),
            fingerprint: [7; 32],
        }),
    };
    let first = bank.store.execute(with_key(60)).await.unwrap();
    assert!(matches!(first.outcome, Outcome::Pending(_)), "{first:?}");
    let status = |executed: &Executed| match &executed.outcome {
        Outcome::Payment(payment) => (executed.replayed, payment.status.clone()),
        other => panic!("{other:?}"),
    };
    // Retried under a new end-to-end id, as the node would make: the first payment, pending.
    let pending = bank.store.execute(with_key(61)).await.unwrap();
    assert_eq!(status(&pending), (true, PaymentStatus::Pending));
    run(&bank.store, decide(60, true, true)).await;
    let decided = bank.store.execute(with_key(62)).await.unwrap();
    assert_eq!(status(&decided), (true, PaymentStatus::Committed));
    assert_eq!(balances(&bank).await, vec![(4_000, 4_000)], "paid once");
    let copies = count(
        &bank.dir,
        "SELECT COUNT(*) FROM idempotency WHERE outcome IS NULL AND payment IS NOT NULL",
    );
    assert_eq!(copies, 1, "the record names the payment");
    audit_passes(&bank.store).await;
}

/// The decision's write settles the customer's payment and answers it as stored, so the node can
/// answer the customer without reading it back; a decision that finds an earlier one answers none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_answers_the_payment_it_settled() {
    let bank = bank("Ana Settles", 1).await;
    let begun = run(&bank.store, begin_payment(&bank, 40, 1_000)).await;
    assert!(matches!(begun, Outcome::Pending(_)), "{begun:?}");
    let Outcome::Decision {
        commit: true,
        settled: Some(settled),
        ..
    } = run(&bank.store, decide(40, true, true)).await
    else {
        panic!("the decision settles the payment")
    };
    let Outcome::Payment(payment) = settled.as_ref() else {
        panic!("{settled:?}")
    };
    assert_eq!(payment.status, PaymentStatus::Committed);
    let stored = bank
        .store
        .payment(bank.customer.id, &e2e(40))
        .await
        .unwrap();
    assert_eq!(
        stored.as_ref(),
        Some(settled.as_ref()),
        "the answer is the stored record"
    );
    let again = run(&bank.store, decide(40, false, true)).await;
    assert!(
        matches!(
            again,
            Outcome::Decision {
                commit: true,
                settled: None,
                ..
            }
        ),
        "{again:?}"
    );
    audit_passes(&bank.store).await;
}

/// The writer does not have SQLite enforce foreign keys; the audit checks every reference, so a
/// row that refers to nothing keeps the ledger from opening.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_to_nothing_fails_the_audit() {
    let Bank {
        store,
        customer: ana,
        numbers,
        dir,
    } = bank("Ana Ref", 2).await;
    let paid = run(
        &store,
        Command::Transfer {
            actor: ana.id,
            from: numbers[0],
            to: Target::Account(numbers[1]),
            amount: Amount::from_cents(100).unwrap(),
            description: String::new(),
            e2e: e2e(30),
        },
    )
    .await;
    assert!(matches!(paid, Outcome::Payment(_)), "{paid:?}");
    audit_passes(&store).await;
    drop(store);
    let path = dir.path().join("bank.db");
    let db = rusqlite::Connection::open(&path).unwrap();
    db.pragma_update(None, "foreign_keys", false).unwrap();
    db.execute(
        "INSERT INTO payment_accounts (e2e_id, account_id) VALUES ('E-nowhere', 1)",
        [],
    )
    .unwrap();
    drop(db);
    let why = refused_to_open(&path);
    assert!(why.starts_with("every_reference_resolves failed"), "{why}");
}

/// A transfer between two accounts of this bank is one statement entry with a side for each
/// account, and its payment record is read back from that entry: by the payer and the payee
/// alike, as it was first answered, and by nobody else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_transfer_is_one_entry_read_by_both_sides() {
    let Bank {
        store,
        customer: ana,
        numbers,
        dir,
    } = bank("Ana Both", 1).await;
    let mut others = Vec::new();
    for (name, document, username) in [
        ("Bia Both", "111.444.777-35", "bia"),
        ("Caio Both", "390.533.447-05", "caio"),
    ] {
        let Outcome::Customer(customer) =
            run(&store, register(name.into(), document, username)).await
        else {
            panic!("register {username}")
        };
        others.push(customer);
    }
    let (bia, caio) = (&others[0], &others[1]);
    let Outcome::Account(account) = run(
        &store,
        Command::OpenAccount {
            actor: bia.id,
            kind: AccountKind::Individual,
            co_holders: vec![],
            opening_deposit: Amount::from_cents(5_000).unwrap(),
            e2e: e2e(10),
        },
    )
    .await
    else {
        panic!("open Bia's account")
    };
    let bias = AccountNumber::parse(&account.number).unwrap();
    let paid = run(
        &store,
        Command::Transfer {
            actor: ana.id,
            from: numbers[0],
            to: Target::Account(bias),
            amount: Amount::from_cents(1_234).unwrap(),
            description: "rent".into(),
            e2e: e2e(11),
        },
    )
    .await;
    let Outcome::Payment(payment) = &paid else {
        panic!("{paid:?}")
    };
    assert_eq!(payment.status, PaymentStatus::Committed);
    for viewer in [ana.id, bia.id] {
        let read = store.payment(viewer, &e2e(11)).await.unwrap();
        assert_eq!(
            serde_json::to_string(&read).unwrap(),
            serde_json::to_string(&Some(paid.clone())).unwrap(),
            "as read by customer {viewer}"
        );
    }
    assert!(store.payment(caio.id, &e2e(11)).await.unwrap().is_none());

    let anas = store
        .statement(ana.id, numbers[0], None, 10)
        .await
        .unwrap()
        .unwrap();
    let bias_lines = store
        .statement(bia.id, bias, None, 10)
        .await
        .unwrap()
        .unwrap();
    let (out, into) = (&anas[0], &bias_lines[0]);
    assert_eq!(
        (out.kind.as_str(), out.amount_cents, out.balance_after_cents),
        ("transfer_out", -1_234, 3_766)
    );
    assert_eq!(
        (
            into.kind.as_str(),
            into.amount_cents,
            into.balance_after_cents
        ),
        ("transfer_in", 1_234, 6_234)
    );
    assert!(
        out.counterparty.ends_with("Bia Both"),
        "{}",
        out.counterparty
    );
    assert!(
        into.counterparty.ends_with("Ana Both"),
        "{}",
        into.counterparty
    );
    assert_eq!(out.id, into.id, "one entry, two sides");
    // Each side's chain goes on to its own account's opening deposit, and a cursor on one
    // side's page starts the next page of that side.
    assert_eq!(anas[1].kind, "opening_deposit");
    assert_eq!(bias_lines[1].kind, "opening_deposit");
    let after = store
        .statement(bia.id, bias, Some(into.id), 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].id, bias_lines[1].id);
    audit_passes(&store).await;

    // The audit follows both sides: a payee's side linked to the wrong entry is a broken chain.
    drop(store);
    let path = dir.path().join("bank.db");
    let db = rusqlite::Connection::open(&path).unwrap();
    let stored: (i64, i64, i64, Option<i64>) = db
        .query_row(
            "SELECT COUNT(*), (SELECT COUNT(*) FROM payments WHERE e2e_id = ?1),
                    (SELECT COUNT(*) FROM transfers WHERE e2e_id = ?1), MAX(transfer_id)
             FROM entries WHERE e2e_id = ?1",
            [e2e(11).as_str()],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        stored,
        (1, 0, 0, None),
        "one entry, and no transfer or payment row beside it (schema migration 9)"
    );
    db.execute(
        "UPDATE entries SET other_prev_entry = (SELECT MIN(id) FROM entries) WHERE e2e_id = ?1",
        [e2e(11).as_str()],
    )
    .unwrap();
    drop(db);
    let why = refused_to_open(&path);
    assert!(
        why.starts_with("statements_chain_every_entry failed"),
        "{why}"
    );
}

/// A recipient's bank records the payment as pending when it votes yes and settles that record
/// when the decision comes: committed or aborted, as its customer reads it; the record is the
/// payment's one copy (the vote has none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipients_bank_settles_the_payment_it_held() {
    let bank = bank("Ana Receives", 2).await;
    for (serial, commit, status) in [
        (50, true, PaymentStatus::Committed),
        (51, false, PaymentStatus::Aborted),
    ] {
        let number = bank.numbers[(serial - 50) as usize];
        let incoming = protocol::Leg {
            from: protocol::Endpoint::Settlement(peer()),
            to: protocol::Endpoint::Account(number),
            amount: Amount::from_cents(700).unwrap(),
            memo: protocol::Memo {
                description: "rent".into(),
                made_by: "bia".into(),
                from_label: "Bia".into(),
                to_label: "Ana".into(),
            },
        };
        let record = PaymentRecord {
            e2e_id: e2e(serial).to_string(),
            status: PaymentStatus::Pending,
            reason: None,
            from: AccountAddress {
                bank: peer().to_string(),
                number: "100001-2".into(),
            },
            to: AccountAddress {
                bank: "10000001".into(),
                number: number.to_string(),
            },
            amount_cents: 700,
            description: "rent".into(),
            clock: "1.0".into(),
        };
        let vote = run(
            &bank.store,
            Command::Prepare {
                e2e: e2e(serial),
                coordinator: peer(),
                legs: vec![incoming],
                payment: Some(record),
            },
        )
        .await;
        assert!(matches!(vote, Outcome::Vote { yes: true, .. }), "{vote:?}");
        let seen = |outcome: Option<Outcome>| match outcome {
            Some(Outcome::Payment(payment)) => payment.status,
            other => panic!("{other:?}"),
        };
        let held = bank
            .store
            .payment(bank.customer.id, &e2e(serial))
            .await
            .unwrap();
        assert_eq!(seen(held), PaymentStatus::Pending);
        assert_eq!(
            run(&bank.store, finish(serial, commit)).await,
            Outcome::Done
        );
        let settled = bank
            .store
            .payment(bank.customer.id, &e2e(serial))
            .await
            .unwrap();
        assert_eq!(seen(settled), status);
    }
    assert_eq!(balances(&bank).await, vec![(5_700, 5_700), (5_000, 5_000)]);
    audit_passes(&bank.store).await;
    let records = count(
        &bank.dir,
        "SELECT COUNT(*) FROM payments WHERE e2e_id IN (SELECT e2e_id FROM interbank_votes)",
    );
    assert_eq!(records, 2, "one record per payment, beside its vote");
}

/// The scheduling policy of this process's thread named `name` (field 41 of its `stat`).
fn policy_of_thread(name: &str) -> Option<u32> {
    std::fs::read_dir("/proc/self/task").ok()?.find_map(|task| {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        if comm.trim_end() != name {
            return None;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        let after_name = &stat[stat.rfind(')')? + 2..];
        after_name.split(' ').nth(38)?.parse().ok()
    })
}

/// A writer commits at real-time priority only from its sync to its last answer (when the
/// process may at all): right after its answers it is back to the normal policy.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_is_back_to_normal_priority_after_each_commit() {
    // A bank code no other test here uses, so the thread's name is this writer's alone.
    let code = BankCode::parse("40000004").unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Real-time commits are opt-in tuning.
    let store = Arc::new(
        SqliteStore::open_tuned(
            &dir.path().join("bank.db"),
            code,
            &[],
            Arc::new(SharedClock::default()),
            store::sqlite::SqliteTuning::ALL,
        )
        .unwrap(),
    );
    let registered = run(
        &store,
        register("Ana Priority".into(), "529.982.247-25", "ana"),
    )
    .await;
    let Outcome::Customer(customer) = registered else {
        panic!("{registered:?}")
    };
    for round in 0..20 {
        // Commands sent together, so that commits answer many at once (the writer goes
        // real-time only for those).
        let opening: Vec<_> = (0..32)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let e2e = EndToEndId::sequenced(code, "202611230000", round * 32 + i);
                    run(&store, open_account(customer.id, e2e)).await
                })
            })
            .collect();
        for opened in opening {
            let opened = opened.await.unwrap();
            assert!(matches!(opened, Outcome::Account(_)), "{opened:?}");
        }
        // The answer goes out just before the writer lowers itself: give it a moment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while policy_of_thread("writer-40000004") != Some(0) {
            assert!(
                std::time::Instant::now() < deadline,
                "the writer stayed at policy {:?} after round {round}",
                policy_of_thread("writer-40000004")
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

/// Posted counters only grow: money going round between accounts takes them, and any sum of
/// them, towards `i64::MAX` (cash, the one way money comes in, is bounded per operation, but a
/// transfer of the largest amount is not). A ledger whose counters are near the limit, as a
/// hundred thousand transfers of the largest amount would leave it, still opens (its start-up
/// audit sums the counters exactly), and a transfer that would take a counter past the limit
/// nets the account's posted counters instead of failing: balances and the audit stay right.
#[tokio::test]
async fn counters_near_their_limit_net_and_the_ledger_still_opens() {
    let Bank {
        store,
        customer: ana,
        numbers,
        dir,
    } = bank("Ana Voltas", 2).await;
    drop(store);
    // The writer lets go of the file once its queue's last handle is gone.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let path = dir.path().join("bank.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        // Both accounts' posted counters grow by the same amount on both sides: their balances,
        // and Σ debits = Σ credits, stay as they were, but every sum passes i64::MAX.
        let grown = conn
            .execute(
                "UPDATE accounts SET debits_posted = debits_posted + ?1,
                                     credits_posted = credits_posted + ?1
                 WHERE kind = 'individual'",
                [i64::MAX - 10_000],
            )
            .unwrap();
        assert_eq!(grown, 2);
    }
    let store = SqliteStore::open(
        &path,
        BankCode::parse("10000001").unwrap(),
        &[peer()],
        Arc::new(SharedClock::default()),
    )
    .expect("a ledger whose sums pass i64::MAX opens");
    let audit = store.audit().await.unwrap();
    assert!(audit.ok(), "{audit:?}");
    assert!(audit.totals.debits_posted > i128::from(i64::MAX));
    assert_eq!(audit.totals.debits_posted, audit.totals.credits_posted);
    // Each account has 10,000 centavos of room on each counter; transfers of 3,000 back and
    // forth pass it.
    for serial in 0..10u64 {
        let (from, to) = if serial % 2 == 0 {
            (numbers[0], numbers[1])
        } else {
            (numbers[1], numbers[0])
        };
        let outcome = run(
            &store,
            Command::Transfer {
                actor: ana.id,
                from,
                to: Target::Account(to),
                amount: Amount::from_cents(3_000).unwrap(),
                description: String::new(),
                e2e: e2e(100 + serial),
            },
        )
        .await;
        let Outcome::Payment(payment) = &outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(payment.status, PaymentStatus::Committed, "{outcome:?}");
    }
    for number in &numbers {
        let account = store.account(ana.id, *number).await.unwrap().unwrap();
        assert_eq!(
            account.balance_cents, 5_000,
            "ten transfers each way and back"
        );
    }
    let audit = store.audit().await.unwrap();
    assert!(audit.ok(), "{audit:?}");
    assert_eq!(audit.totals.debits_posted, audit.totals.credits_posted);
    assert!(
        audit.totals.debits_posted < i128::from(i64::MAX),
        "the accounts' posted counters were netted"
    );
}
