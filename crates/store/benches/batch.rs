//! What the SQLite store costs per transfer, without HTTP: `cargo bench -p store`. Every
//! iteration is durable (WAL, `synchronous=FULL`); compare the group-committed rows with the
//! one-commit-per-transfer row, and with `cargo bench -p ledger` for the pure rules.
//! `interbank_payments` runs every write a payment between two banks makes at both of them.

use divan::Bencher;
use ledger::{AccountKind, AccountNumber, Amount, BankCode, Document, EndToEndId};
use protocol::{Endpoint, Leg, Memo};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use store::*;

fn main() {
    divan::main();
}

const ACCOUNTS: usize = 1_000;
const TRANSFERS: usize = 1_000;
const PAYMENTS: usize = 200;

/// The bank at the other end of interbank payments.
fn peer() -> BankCode {
    BankCode::parse("20000002").unwrap()
}

struct Bank {
    store: Arc<SqliteStore>,
    customer: CustomerId,
    numbers: Vec<AccountNumber>,
    serial: AtomicU64,
    runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl Bank {
    fn new() -> Bank {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let bank = BankCode::parse("10000001").unwrap();
        // With the SQLite backend's tuning, as BENCHMARKS.md's store figures were measured.
        let store = Arc::new(
            SqliteStore::open_tuned(
                &dir.path().join("bank.db"),
                bank,
                &[bank, peer()],
                Arc::new(SharedClock::default()),
                store::sqlite::SqliteTuning::ALL,
            )
            .unwrap(),
        );
        let mut this = Bank {
            store,
            customer: 0,
            numbers: Vec::new(),
            serial: AtomicU64::new(0),
            runtime,
            _dir: dir,
        };
        let Outcome::Customer(customer) = this.run(Command::RegisterCustomer {
            public_id: "c1".into(),
            name: "Ana Bench".into(),
            document: Document::parse("529.982.247-25").unwrap(),
            username: "ana".into(),
            password_hash: "not-a-real-hash".into(),
        }) else {
            panic!("register")
        };
        this.customer = customer.id;
        for _ in 0..ACCOUNTS {
            let e2e = this.e2e();
            let Outcome::Account(account) = this.run(Command::OpenAccount {
                actor: customer.id,
                kind: AccountKind::Individual,
                co_holders: vec![],
                opening_deposit: Amount::from_cents(1_000_000_000).unwrap(),
                e2e,
            }) else {
                panic!("open account")
            };
            this.numbers
                .push(AccountNumber::parse(&account.number).unwrap());
        }
        this
    }

    fn e2e(&self) -> EndToEndId {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        EndToEndId::sequenced(BankCode::parse("10000001").unwrap(), "202611230000", serial)
    }

    fn run(&self, command: Command) -> Outcome {
        let request = Request {
            command,
            idempotency: None,
        };
        self.runtime
            .block_on(self.store.execute(request))
            .unwrap()
            .outcome
    }

    /// The n-th transfer of a run: one cent between two accounts picked without randomness.
    fn transfer(&self, n: usize) -> BatchItem {
        let serial = self.serial.load(Ordering::Relaxed) as usize + n;
        let from = (serial * 7_919) % ACCOUNTS;
        let to = (from + 1 + serial % (ACCOUNTS - 1)) % ACCOUNTS;
        BatchItem {
            from: self.numbers[from],
            to: Target::Account(self.numbers[to]),
            amount: Amount::from_cents(1).unwrap(),
            description: String::new(),
            e2e: self.e2e(),
        }
    }

    /// The n-th transfer of a run as a command of its own.
    fn transfer_command(&self, n: usize) -> Command {
        let item = self.transfer(n);
        Command::Transfer {
            actor: self.customer,
            from: item.from,
            to: item.to,
            amount: item.amount,
            description: item.description,
            e2e: item.e2e,
        }
    }
}

/// One bulk command of 1,000 transfers: one transaction, one fsync. Fixed work, like
/// `interbank_payments`, so callgrind counts compare builds.
#[divan::bench(sample_count = 20, sample_size = 1, counter = divan::counter::ItemsCount::new(TRANSFERS))]
fn one_batch_command(bencher: Bencher) {
    let bank = Bank::new();
    bencher
        .with_inputs(|| {
            let transfers = (0..TRANSFERS)
                .map(|n| BatchEntry {
                    id: n.to_string(),
                    transfer: Ok(bank.transfer(n)),
                })
                .collect();
            Command::TransferBatch {
                actor: bank.customer,
                transfers,
            }
        })
        .bench_local_values(|command| {
            let outcome = bank.run(command);
            assert!(matches!(outcome, Outcome::Batch(_)));
        });
}

/// 1,000 transfer commands submitted at once: the writer groups them into few commits.
#[divan::bench(sample_count = 20, counter = divan::counter::ItemsCount::new(TRANSFERS))]
fn concurrent_commands(bencher: Bencher) {
    let bank = Bank::new();
    bencher
        .with_inputs(|| {
            (0..TRANSFERS)
                .map(|n| bank.transfer_command(n))
                .collect::<Vec<_>>()
        })
        .bench_local_values(|commands| bank.run_all(commands));
}

/// The baseline: one transfer per commit, each waiting for the one before.
#[divan::bench(sample_count = 5, counter = divan::counter::ItemsCount::new(100usize))]
fn one_commit_each(bencher: Bencher) {
    let bank = Bank::new();
    bencher.bench_local(|| {
        for n in 0..100 {
            bank.run(bank.transfer_command(n));
        }
    });
}

impl Bank {
    /// Runs every command concurrently, as a loaded bank's requests arrive.
    fn run_all(&self, commands: Vec<Command>) {
        self.runtime.block_on(async {
            let tasks: Vec<_> = commands
                .into_iter()
                .map(|command| {
                    let store = self.store.clone();
                    tokio::spawn(async move {
                        store
                            .execute(Request {
                                command,
                                idempotency: None,
                            })
                            .await
                    })
                })
                .collect();
            for task in tasks {
                let outcome = task.await.unwrap().unwrap().outcome;
                assert!(!matches!(outcome, Outcome::Refused(_)), "{outcome:?}");
            }
        });
    }
}

/// One step of a payment: its index, the payer bank's end-to-end id and the payee bank's.
type Step<'a> = dyn Fn(usize, &EndToEndId, &EndToEndId) -> Command + 'a;

fn leg(from: Endpoint, to: Endpoint) -> Leg {
    Leg {
        from,
        to,
        amount: Amount::from_cents(1).unwrap(),
        memo: Memo {
            description: "rent".into(),
            made_by: "ana".into(),
            from_label: "Ana".into(),
            to_label: "Bia".into(),
        },
    }
}

/// Every write of `PAYMENTS` payments between two banks, both ends run by one store: as the
/// payer's bank (begin and hold its own part in one step, decide and post it in one step, mark
/// complete) and as the payee's (hold the credit with the pending record, post it). Each step's
/// commands arrive together, so the writer groups them as under load.
#[divan::bench(sample_count = 10, sample_size = 1, counter = divan::counter::ItemsCount::new(PAYMENTS))]
fn interbank_payments(bencher: Bencher) {
    let bank = Bank::new();
    bencher
        .with_inputs(|| {
            (0..PAYMENTS)
                .map(|n| {
                    // The payee bank's end has the id the payer's bank gave the payment; both
                    // ends live in this one store, so the payee's end is told apart by its bank.
                    let payer = bank.e2e();
                    let serial = bank.serial.load(Ordering::Relaxed);
                    let payee = EndToEndId::sequenced(peer(), "202611230000", serial);
                    (n, payer, payee)
                })
                .collect::<Vec<_>>()
        })
        .bench_local_values(|payments| {
            let account = |n: usize| bank.numbers[(n * 7_919) % ACCOUNTS];
            let steps: [&Step; 4] = [
                &|n, e2e, _| Command::BeginPayment {
                    actor: bank.customer,
                    from: account(n),
                    payment: PaymentRecord {
                        e2e_id: e2e.to_string(),
                        status: PaymentStatus::Pending,
                        reason: None,
                        from: AccountAddress {
                            bank: "10000001".into(),
                            number: account(n).to_string(),
                        },
                        to: AccountAddress {
                            bank: peer().to_string(),
                            number: "100001-2".into(),
                        },
                        amount_cents: 1,
                        description: "rent".into(),
                        clock: "1.0".into(),
                    },
                    legs: vec![leg(
                        Endpoint::Account(account(n)),
                        Endpoint::Settlement(peer()),
                    )],
                },
                &|_, e2e, _| Command::RecordDecision {
                    e2e: e2e.clone(),
                    commit: true,
                    participants: vec![BankCode::parse("10000001").unwrap(), peer()],
                    reason: None,
                    finish_here: true,
                },
                &|n, _, payee| Command::Prepare {
                    e2e: payee.clone(),
                    coordinator: peer(),
                    legs: vec![leg(
                        Endpoint::Settlement(peer()),
                        Endpoint::Account(account(n + 1)),
                    )],
                    payment: None,
                },
                &|_, _, payee| Command::Finish {
                    e2e: payee.clone(),
                    commit: true,
                },
            ];
            for step in steps {
                bank.run_all(
                    payments
                        .iter()
                        .map(|(n, payer, payee)| step(*n, payer, payee))
                        .collect(),
                );
            }
            bank.run_all(vec![Command::CompleteDecisions {
                e2es: payments.into_iter().map(|(_, payer, _)| payer).collect(),
            }]);
        });
}
