//! What the SQLite store costs per transfer, without HTTP: `cargo bench -p store`. Every
//! iteration is durable (WAL, `synchronous=FULL`); compare the group-committed rows with the
//! one-commit-per-transfer row, and with `cargo bench -p ledger` for the pure rules.

use divan::Bencher;
use ledger::{AccountKind, AccountNumber, Amount, BankCode, Document, EndToEndId};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use store::*;

fn main() {
    divan::main();
}

const ACCOUNTS: usize = 1_000;
const TRANSFERS: usize = 1_000;

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
        let store = Arc::new(
            SqliteStore::open(
                &dir.path().join("bank.db"),
                bank,
                &[],
                Arc::new(SharedClock::default()),
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

/// One bulk command of 1,000 transfers: one transaction, one fsync.
#[divan::bench(sample_count = 20, counter = divan::counter::ItemsCount::new(TRANSFERS))]
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
        .bench_local_values(|commands| {
            bank.runtime.block_on(async {
                let tasks: Vec<_> = commands
                    .into_iter()
                    .map(|command| {
                        let store = bank.store.clone();
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
                    task.await.unwrap().unwrap();
                }
            });
        });
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
