//! The memory of a bank holding a million accounts: `scripts/million.sh` runs this twice around
//! a real `bankd`.
//!
//! - `million seed <ledger.db> <accounts>` writes one customer holding `<accounts>` accounts
//!   straight into a bank's SQLite ledger (through the store's group commit, much faster than
//!   HTTP), plus a session, and prints the session's token.
//! - `million load <url> <token> <accounts> <count>` makes `<count>` transfers of R$ 0,01 between
//!   accounts picked at random among all of them, over HTTP, 64 at a time.

use ledger::{AccountKind, AccountNumber, Amount, BankCode, Document, EndToEndId};
use std::sync::Arc;
use std::time::Instant;
use store::{Command, Outcome, Request, SharedClock, SqliteStore, Store};

/// The first account number a bank gives (`COALESCE(MAX(number), 100000) + 1`).
const FIRST_BASE: u64 = 100_001;
const BANK: &str = "10000001";
/// Commands in flight while seeding: the writer's whole queue, minus some room.
const SEED_IN_FLIGHT: usize = 8_192;

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["seed", path, accounts] => seed(path, number(accounts)?).await,
        ["load", url, token, accounts, count] => {
            load(url, token, number(accounts)?, number(count)?).await
        }
        _ => Err("usage: million seed <ledger.db> <accounts> | million load <url> <token> <accounts> <count>".into()),
    }
}

fn number(text: &str) -> Result<u64, String> {
    text.replace('_', "")
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))
}

async fn execute(store: &SqliteStore, command: Command) -> Result<Outcome, String> {
    let request = Request {
        command,
        idempotency: None,
    };
    store
        .execute(request)
        .await
        .map(|executed| executed.outcome)
        .map_err(|e| e.to_string())
}

async fn seed(path: &str, accounts: u64) -> Result<(), String> {
    let bank = BankCode::parse(BANK).expect("a valid code");
    let store = Arc::new(
        SqliteStore::open(path.as_ref(), bank, &[], Arc::new(SharedClock::default()))
            .map_err(|e| e.to_string())?,
    );
    let registered = execute(
        &store,
        Command::RegisterCustomer {
            public_id: "million".into(),
            name: "Milena Milhão".into(),
            document: Document::parse("529.982.247-25").expect("a valid CPF"),
            username: "milena".into(),
            // Nobody logs in with a password: the session below is made directly.
            password_hash: "-".into(),
        },
    )
    .await?;
    let Outcome::Customer(customer) = registered else {
        return Err(format!("could not register: {registered:?}"));
    };
    let started = Instant::now();
    let mut next = 0;
    while next < accounts {
        let chunk = (accounts - next).min(SEED_IN_FLIGHT as u64);
        let opens: Vec<_> = (next..next + chunk)
            .map(|serial| {
                let store = store.clone();
                tokio::spawn(async move {
                    execute(
                        &store,
                        Command::OpenAccount {
                            actor: customer.id,
                            kind: AccountKind::Individual,
                            co_holders: vec![],
                            opening_deposit: Amount::from_cents(100_000).expect("positive"),
                            e2e: EndToEndId::sequenced(bank, "202611230000", serial),
                        },
                    )
                    .await
                })
            })
            .collect();
        for open in opens {
            match open.await.map_err(|e| e.to_string())?? {
                Outcome::Account(_) => {}
                other => return Err(format!("could not open an account: {other:?}")),
            }
        }
        next += chunk;
        if next % 100_000 < chunk || next == accounts {
            eprintln!(
                "{next} accounts in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    let token = format!("million-{}", client::new_idempotency_key());
    execute(
        &store,
        Command::CreateSession {
            customer: customer.id,
            token_hash: node::extract::sha256(token.as_bytes()),
            expires_at_ms: store::wall_ms() + 24 * 3_600_000,
        },
    )
    .await?;
    println!("{token}");
    Ok(())
}

async fn load(url: &str, token: &str, accounts: u64, count: u64) -> Result<(), String> {
    let client = client::Client::new(url)
        .map_err(|e| e.to_string())?
        .with_token(token);
    let started = Instant::now();
    let workers: Vec<_> = (0..64u64)
        .map(|worker| {
            let client = client.clone();
            tokio::spawn(async move {
                // A small generator per worker (xorshift): random enough to spread the accounts.
                let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (worker + 1);
                let mut pick = move || {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state % accounts
                };
                let mut failed = 0u64;
                for _ in (worker..count).step_by(64) {
                    let (from, to) = (pick(), pick());
                    if from == to {
                        continue;
                    }
                    let address = |n: u64| {
                        AccountNumber::from_base(FIRST_BASE + n)
                            .expect("in range")
                            .to_string()
                    };
                    let body = wire::TransferRequest {
                        from: wire::AccountRef {
                            bank: BANK.into(),
                            number: address(from),
                        },
                        to: wire::Destination {
                            bank: Some(BANK.into()),
                            number: Some(address(to)),
                            pix_key: None,
                        },
                        amount: "0.01".into(),
                        description: None,
                    };
                    if client.transfer(&body, None).await.is_err() {
                        failed += 1;
                    }
                }
                failed
            })
        })
        .collect();
    let mut failed = 0;
    for worker in workers {
        failed += worker.await.map_err(|e| e.to_string())?;
    }
    eprintln!(
        "{count} transfers over {accounts} accounts in {:.1} s, {failed} failed",
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        return Err(format!("{failed} transfers failed"));
    }
    Ok(())
}
