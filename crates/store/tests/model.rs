//! Random operation sequences against a small reference model: after every step the SQLite
//! store and the model agree on every balance, no account goes below zero, holds resolve once,
//! idempotent replays return the first outcome, and the audit is clean at the end.

use ledger::{AccountKind, AccountNumber, Amount, BankCode, Document, EndToEndId};
use proptest::prelude::*;
use protocol::{Endpoint, Leg, Memo};
use std::sync::Arc;
use store::*;

const ACCOUNTS: usize = 3;
const OPENING_CENTS: i64 = 5_000;

#[derive(Debug, Clone)]
enum Step {
    Deposit(usize, i64),
    Withdraw(usize, i64),
    Transfer(usize, usize, i64),
    Hold(usize, usize, i64),
    Resolve(usize, bool),
    Package(Vec<(u8, usize, usize, i64)>),
    /// Independent transfers in one bulk command (from, to, cents).
    Batch(Vec<(usize, usize, i64)>),
    Replay(usize),
}

fn step() -> impl Strategy<Value = Step> {
    let account = 0..ACCOUNTS;
    let cents = 1i64..9_000;
    prop_oneof![
        (account.clone(), cents.clone()).prop_map(|(a, c)| Step::Deposit(a, c)),
        (account.clone(), cents.clone()).prop_map(|(a, c)| Step::Withdraw(a, c)),
        (account.clone(), account.clone(), cents.clone())
            .prop_map(|(a, b, c)| Step::Transfer(a, b, c)),
        (account.clone(), account.clone(), cents.clone()).prop_map(|(a, b, c)| Step::Hold(a, b, c)),
        (0usize..8, any::<bool>()).prop_map(|(h, post)| Step::Resolve(h, post)),
        proptest::collection::vec(
            (0u8..3, account.clone(), account.clone(), cents.clone()),
            1..4
        )
        .prop_map(Step::Package),
        proptest::collection::vec((account.clone(), account, cents), 1..6).prop_map(Step::Batch),
        (0usize..16).prop_map(Step::Replay),
    ]
}

/// The reference: posted balances and what each account has on hold for others.
#[derive(Default)]
struct Model {
    balance: [i64; ACCOUNTS],
    held_out: [i64; ACCOUNTS],
    /// (from, to, cents, resolved)
    holds: Vec<(usize, usize, i64, bool)>,
}

impl Model {
    fn available(&self, account: usize) -> i64 {
        self.balance[account] - self.held_out[account]
    }

    /// Applies one simple operation (0 deposit, 1 withdrawal, 2 transfer); false if refused.
    fn apply(&mut self, kind: u8, from: usize, to: usize, cents: i64) -> bool {
        match kind {
            0 => self.balance[from] += cents,
            1 | 2 if self.available(from) < cents => return false,
            2 if from == to => return false,
            1 => self.balance[from] -= cents,
            _ => {
                self.balance[from] -= cents;
                self.balance[to] += cents;
            }
        }
        true
    }
}

struct Harness {
    store: SqliteStore,
    customer: CustomerId,
    numbers: Vec<AccountNumber>,
    keyed: Vec<(Request, Outcome)>,
    serial: u64,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let bank = BankCode::parse("10000001").unwrap();
        let store = SqliteStore::open(
            &dir.path().join("bank.db"),
            bank,
            &[],
            Arc::new(SharedClock::default()),
        )
        .unwrap();
        let mut harness = Harness {
            store,
            customer: 0,
            numbers: Vec::new(),
            keyed: Vec::new(),
            serial: 0,
            _dir: dir,
        };
        let registered = harness
            .run(Command::RegisterCustomer {
                public_id: "c1".into(),
                name: "Ana Model".into(),
                document: Document::parse("529.982.247-25").unwrap(),
                username: "ana".into(),
                password_hash: "not-a-real-hash".into(),
            })
            .await;
        let Outcome::Customer(customer) = registered else {
            panic!("{registered:?}")
        };
        harness.customer = customer.id;
        for _ in 0..ACCOUNTS {
            let e2e = harness.e2e();
            let command = Command::OpenAccount {
                actor: customer.id,
                kind: AccountKind::Individual,
                co_holders: vec![],
                opening_deposit: Amount::from_cents(OPENING_CENTS).unwrap(),
                e2e,
            };
            let Outcome::Account(account) = harness.run(command).await else {
                panic!("open account")
            };
            harness
                .numbers
                .push(AccountNumber::parse(&account.number).unwrap());
        }
        harness
    }

    fn e2e(&mut self) -> EndToEndId {
        self.serial += 1;
        let (mut random, mut rest) = ([0u8; 11], self.serial);
        for byte in random.iter_mut().rev() {
            *byte = (rest % 36) as u8;
            rest /= 36;
        }
        EndToEndId::new(BankCode::parse("10000001").unwrap(), "202611230000", random)
    }

    async fn run(&mut self, command: Command) -> Outcome {
        self.serial += 1;
        let key = format!("key-{}", self.serial);
        let mut fingerprint = [0u8; 32];
        fingerprint[..8].copy_from_slice(&self.serial.to_le_bytes());
        let request = Request {
            command,
            idempotency: Some(Idempotency {
                scope: self.customer,
                key,
                fingerprint,
            }),
        };
        let executed = self.store.execute(request.clone()).await.unwrap();
        assert!(!executed.replayed);
        self.keyed.push((request, executed.outcome.clone()));
        executed.outcome
    }

    async fn check(&self, model: &Model) {
        for (i, number) in self.numbers.iter().enumerate() {
            let account = self
                .store
                .account(self.customer, *number)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                account.balance_cents, model.balance[i],
                "balance of account {i}"
            );
            assert_eq!(
                account.available_cents,
                model.available(i),
                "available of account {i}"
            );
            assert!(account.available_cents >= 0);
            self.check_statement(i, *number, model.balance[i]).await;
        }
    }

    /// Reads the whole statement a few lines per page: newest first, each line's balance is
    /// the one below it plus its amount, from zero up to the account's balance.
    async fn check_statement(&self, i: usize, number: AccountNumber, balance: i64) {
        let (mut lines, mut cursor) = (Vec::new(), None);
        loop {
            let page = self
                .store
                .statement(self.customer, number, cursor, 3)
                .await
                .unwrap()
                .unwrap();
            let Some(last) = page.last() else { break };
            cursor = Some(last.id);
            lines.extend(page);
        }
        assert_eq!(
            lines[0].balance_after_cents, balance,
            "statement of account {i}"
        );
        for pair in lines.windows(2) {
            assert!(
                pair[0].id > pair[1].id,
                "statement of account {i} is newest first"
            );
            assert_eq!(
                pair[0].balance_after_cents - pair[0].amount_cents,
                pair[1].balance_after_cents,
                "statement of account {i} runs without a gap"
            );
        }
        let oldest = lines.last().unwrap();
        assert_eq!(oldest.kind, "opening_deposit");
        assert_eq!(oldest.balance_after_cents, oldest.amount_cents);
    }
}

fn amount(cents: i64) -> Amount {
    Amount::from_cents(cents).unwrap()
}

fn peer() -> BankCode {
    BankCode::parse("20000002").unwrap()
}

fn committed(outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Vote { yes, .. } => *yes,
        Outcome::Refused(_) => false,
        Outcome::Payment(p) => p.status == PaymentStatus::Committed,
        Outcome::Package(p) => p.status == PaymentStatus::Committed,
        _ => true,
    }
}

async fn run_steps(steps: Vec<Step>) {
    let mut h = Harness::new().await;
    let mut model = Model {
        balance: [OPENING_CENTS; ACCOUNTS],
        ..Model::default()
    };
    let mut hold_ids: Vec<EndToEndId> = Vec::new();
    for step in steps {
        match step {
            Step::Deposit(a, c) | Step::Withdraw(a, c) => {
                let (kind, e2e) = (
                    if matches!(step, Step::Deposit(..)) {
                        0
                    } else {
                        1
                    },
                    h.e2e(),
                );
                let command = if kind == 0 {
                    Command::Deposit {
                        actor: h.customer,
                        account: h.numbers[a],
                        amount: amount(c),
                        description: String::new(),
                        e2e,
                    }
                } else {
                    Command::Withdraw {
                        actor: h.customer,
                        account: h.numbers[a],
                        amount: amount(c),
                        description: String::new(),
                        e2e,
                    }
                };
                let outcome = h.run(command).await;
                assert_eq!(
                    committed(&outcome),
                    model.apply(kind, a, a, c),
                    "{step:?} -> {outcome:?}"
                );
            }
            Step::Transfer(a, b, c) => {
                let e2e = h.e2e();
                let to = Target::Account(h.numbers[b]);
                let command = Command::Transfer {
                    actor: h.customer,
                    from: h.numbers[a],
                    to,
                    amount: amount(c),
                    description: "t".into(),
                    e2e,
                };
                let outcome = h.run(command).await;
                assert_eq!(
                    committed(&outcome),
                    model.apply(2, a, b, c),
                    "{step:?} -> {outcome:?}"
                );
            }
            Step::Batch(ref transfers) => {
                let mut entries = Vec::new();
                for (index, &(a, b, c)) in transfers.iter().enumerate() {
                    entries.push(BatchEntry {
                        id: format!("t{index}"),
                        transfer: Ok(BatchItem {
                            from: h.numbers[a],
                            to: Target::Account(h.numbers[b]),
                            amount: amount(c),
                            description: String::new(),
                            e2e: h.e2e(),
                        }),
                    });
                }
                let outcome = h
                    .run(Command::TransferBatch {
                        actor: h.customer,
                        transfers: entries,
                    })
                    .await;
                let Outcome::Batch(records) = &outcome else {
                    panic!("{step:?} -> {outcome:?}")
                };
                assert_eq!(records.len(), transfers.len());
                for (record, &(a, b, c)) in records.iter().zip(transfers) {
                    assert_eq!(
                        record.status == "committed",
                        model.apply(2, a, b, c),
                        "{step:?} -> {outcome:?}"
                    );
                }
            }
            Step::Hold(a, b, c) => {
                // A hold is the prepare step of the interbank protocol: one leg between two
                // accounts of this bank, coordinated by another bank.
                let e2e = h.e2e();
                let leg = Leg {
                    from: Endpoint::Account(h.numbers[a]),
                    to: Endpoint::Account(h.numbers[b]),
                    amount: amount(c),
                    memo: Memo::default(),
                };
                let outcome = h
                    .run(Command::Prepare {
                        e2e: e2e.clone(),
                        coordinator: peer(),
                        legs: vec![leg],
                        payment: None,
                    })
                    .await;
                let expected = a != b && model.available(a) >= c;
                assert_eq!(committed(&outcome), expected, "{step:?} -> {outcome:?}");
                let replay = h
                    .run(Command::Prepare {
                        e2e: e2e.clone(),
                        coordinator: peer(),
                        legs: vec![],
                        payment: None,
                    })
                    .await;
                assert_eq!(
                    replay, outcome,
                    "a repeated prepare answers the recorded vote and holds nothing more"
                );
                if expected {
                    model.held_out[a] += c;
                    model.holds.push((a, b, c, false));
                    hold_ids.push(e2e);
                }
            }
            Step::Resolve(index, post) => {
                let Some(e2e) = hold_ids.get(index).cloned() else {
                    continue;
                };
                let outcome = h.run(Command::Finish { e2e, commit: post }).await;
                assert_eq!(outcome, Outcome::Done, "finishing is idempotent");
                let (from, to, cents, resolved) = model.holds[index];
                if !resolved {
                    model.holds[index].3 = true;
                    model.held_out[from] -= cents;
                    if post {
                        model.balance[from] -= cents;
                        model.balance[to] += cents;
                    }
                }
            }
            Step::Package(ops) => {
                let operations = ops
                    .iter()
                    .map(|&(kind, a, b, c)| Operation {
                        kind: match kind {
                            0 => OperationKind::Deposit,
                            1 => OperationKind::Withdrawal,
                            _ => OperationKind::Transfer(Target::Account(h.numbers[b])),
                        },
                        account: h.numbers[a],
                        amount: amount(c),
                        description: String::new(),
                    })
                    .collect();
                let e2e = h.e2e();
                let outcome = h
                    .run(Command::Package {
                        actor: h.customer,
                        operations,
                        e2e,
                    })
                    .await;
                let mut trial = Model {
                    balance: model.balance,
                    held_out: model.held_out,
                    holds: Vec::new(),
                };
                let all_ok = ops
                    .iter()
                    .all(|&(kind, a, b, c)| trial.apply(kind, a, b, c));
                assert_eq!(committed(&outcome), all_ok, "{ops:?} -> {outcome:?}");
                if all_ok {
                    model.balance = trial.balance;
                }
            }
            Step::Replay(index) => {
                let Some((request, first)) = h.keyed.get(index).cloned() else {
                    continue;
                };
                let executed = h.store.execute(request).await.unwrap();
                assert!(executed.replayed, "a reused key replays");
                assert_eq!(
                    executed.outcome, first,
                    "a replay answers the first outcome and changes nothing"
                );
            }
        }
        h.check(&model).await;
    }
    let audit = h.store.audit().await.unwrap();
    assert!(audit.ok(), "{:?}", audit.checks);
    let total: i64 = model.balance.iter().sum();
    assert_eq!(
        audit.customer_balances_cents,
        i128::from(total),
        "conservation: customers hold what the model says"
    );
    assert_eq!(
        audit.cash_in_cents - audit.cash_out_cents,
        total,
        "conservation: money comes only from cash"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn store_agrees_with_the_reference_model(steps in proptest::collection::vec(step(), 1..40)) {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run_steps(steps));
    }
}

#[tokio::test]
async fn a_reused_key_with_another_request_is_refused_and_changes_nothing() {
    let mut h = Harness::new().await;
    let (request, _) = h.keyed.last().cloned().unwrap();
    let mut other = request.clone();
    other.idempotency.as_mut().unwrap().fingerprint = [9; 32];
    let error = h.store.execute(other).await.unwrap_err();
    assert!(
        matches!(error, StoreError::IdempotencyKeyReused),
        "{error:?}"
    );
    h.check(&Model {
        balance: [OPENING_CENTS; ACCOUNTS],
        ..Model::default()
    })
    .await;
    let _ = h
        .run(Command::DeleteSession {
            token_hash: [0; 32],
        })
        .await;
}

#[tokio::test]
async fn replays_and_balances_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bank.db");
    let bank = BankCode::parse("10000001").unwrap();
    let first = {
        let store = SqliteStore::open(&path, bank, &[], Arc::new(SharedClock::default())).unwrap();
        let register = Command::RegisterCustomer {
            public_id: "c1".into(),
            name: "Ana".into(),
            document: Document::parse("52998224725").unwrap(),
            username: "ana".into(),
            password_hash: "h".into(),
        };
        let request = Request {
            command: register,
            idempotency: Some(Idempotency {
                scope: 0,
                key: "k".into(),
                fingerprint: [1; 32],
            }),
        };
        let executed = store.execute(request).await.unwrap();
        (executed.outcome, store.audit().await.unwrap().clock)
    };
    let clock = Arc::new(SharedClock::default());
    let store = SqliteStore::open(&path, bank, &[], clock.clone()).unwrap();
    assert!(
        clock.last() >= ledger::Stamp::parse(&first.1).unwrap(),
        "the clock restarts after the last stamp on disk"
    );
    let again = Command::RegisterCustomer {
        public_id: "c2".into(),
        name: "Ana".into(),
        document: Document::parse("52998224725").unwrap(),
        username: "ana".into(),
        password_hash: "h".into(),
    };
    let executed = store
        .execute(Request {
            command: again,
            idempotency: Some(Idempotency {
                scope: 0,
                key: "k".into(),
                fingerprint: [1; 32],
            }),
        })
        .await
        .unwrap();
    assert!(executed.replayed);
    assert_eq!(executed.outcome, first.0);
}
