//! The bench's set-up at each bank: customers registered and logged in once, accounts opened
//! with a large opening deposit and spread over the customers. Names are unique per run, so the
//! bench can run again and again against the same consortium.

use crate::args::BenchArgs;
use crate::audit::ListedBank;
use crate::error::CliError;
use client::{Client, ClientError};
use std::hash::{BuildHasher, Hasher};
use tokio::task::JoinSet;

/// Every account opens with this much (R$ 10.000.000,00): the bench moves R$ 0,01 to R$ 1,00 at a
/// time, so even millions of transfers leave no account near zero.
pub const OPENING_DEPOSIT: &str = "1000000.00";
/// Set-up requests in flight at once (account openings), per bank.
const SETUP_IN_FLIGHT_MAX: usize = 32;

/// One customer of the bench: a session at their bank and the accounts they hold there.
pub struct Customer {
    pub token: String,
    pub accounts: Vec<wire::AccountRef>,
}

/// One bank, ready for load.
pub struct Bank {
    pub code: String,
    pub url: String,
    /// What its https certificate is checked against.
    pub trust: client::Trust,
    pub customers: Vec<Customer>,
    /// Every account the bench opened here (the destinations).
    pub accounts: Vec<wire::AccountRef>,
}

/// A random number from the OS-seeded hasher keys: enough to make names unique per run.
pub fn random_u64() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// A valid CPF whose first nine digits come from `seed`.
pub fn cpf(seed: u64) -> String {
    let mut digits: Vec<u32> = format!("{:09}", seed % 1_000_000_000)
        .bytes()
        .map(|b| u32::from(b - b'0'))
        .collect();
    if digits.iter().all(|d| *d == digits[0]) {
        digits[8] = (digits[8] + 1) % 10;
    }
    for n in [10u32, 11] {
        let sum: u32 = digits.iter().zip((2..=n).rev()).map(|(d, w)| d * w).sum();
        let rest = sum * 10 % 11;
        digits.push(if rest == 10 { 0 } else { rest });
    }
    digits
        .iter()
        .map(|d| char::from_digit(*d, 10).expect("a digit"))
        .collect()
}

fn setup_error(what: &str, bank: &str, error: ClientError) -> CliError {
    eprintln!("bench set-up at bank {bank} failed: {what}");
    CliError::Client(error)
}

pub async fn prepare(args: &BenchArgs, listed: &[ListedBank]) -> Result<Vec<Bank>, CliError> {
    let run_id = format!("{:06x}", random_u64() & 0xff_ffff);
    let password = format!("bench-{:016x}", random_u64());
    let mut banks = Vec::with_capacity(listed.len());
    for (index, bank) in listed.iter().enumerate() {
        banks.push(prepare_bank(args, bank, index, &run_id, &password).await?);
    }
    Ok(banks)
}

async fn prepare_bank(
    args: &BenchArgs,
    listed: &ListedBank,
    index: usize,
    run_id: &str,
    password: &str,
) -> Result<Bank, CliError> {
    let anonymous = Client::with_trust(&listed.url, &listed.trust)?;
    let customers = args.customers.min(args.accounts) as usize;
    let mut sessions = JoinSet::new();
    let mut tokens = vec![String::new(); customers];
    for i in 0..customers {
        // A bank hashes only so many passwords at once and answers 503 beyond its queue.
        if sessions.len() >= SETUP_IN_FLIGHT_MAX {
            let (i, token) = next_session(&mut sessions, &listed.code).await?;
            tokens[i] = token;
        }
        let anonymous = anonymous.clone();
        let password = password.to_string();
        let username = format!("bench{run_id}b{index}c{i}");
        let document = cpf(random_u64());
        sessions.spawn(async move {
            anonymous
                .register(
                    &wire::RegisterCustomer {
                        name: format!("Bench Customer {i}"),
                        document,
                        username: username.clone(),
                        password: password.clone(),
                    },
                    None,
                )
                .await
                .map_err(|e| ("register", e))?;
            let session = anonymous
                .login(&wire::Credentials { username, password })
                .await
                .map_err(|e| ("log in", e))?;
            Registered::Ok((i, session.value.token))
        });
    }
    while !sessions.is_empty() {
        let (i, token) = next_session(&mut sessions, &listed.code).await?;
        tokens[i] = token;
    }

    let mut opened: Vec<Option<wire::AccountRef>> = vec![None; args.accounts as usize];
    let mut openings = JoinSet::new();
    for j in 0..args.accounts as usize {
        if openings.len() >= SETUP_IN_FLIGHT_MAX {
            let (j, account) = next_opening(&mut openings, &listed.code).await?;
            opened[j] = Some(account);
        }
        let holder = anonymous.clone().with_token(tokens[j % customers].clone());
        openings.spawn(async move {
            let reply = holder
                .open_account(
                    &wire::OpenAccount {
                        kind: "individual".into(),
                        co_holders: Vec::new(),
                        opening_deposit: OPENING_DEPOSIT.into(),
                    },
                    None,
                )
                .await?;
            Ok::<_, ClientError>((
                j,
                wire::AccountRef {
                    bank: reply.value.bank,
                    number: reply.value.number,
                },
            ))
        });
    }
    while !openings.is_empty() {
        let (j, account) = next_opening(&mut openings, &listed.code).await?;
        opened[j] = Some(account);
    }
    let accounts: Vec<wire::AccountRef> = opened
        .into_iter()
        .map(|a| a.expect("every opening was awaited"))
        .collect();
    let customers = tokens
        .into_iter()
        .enumerate()
        .map(|(i, token)| Customer {
            token,
            accounts: accounts
                .iter()
                .skip(i)
                .step_by(customers)
                .cloned()
                .collect(),
        })
        .collect();
    Ok(Bank {
        code: listed.code.clone(),
        url: listed.url.clone(),
        trust: listed.trust.clone(),
        customers,
        accounts,
    })
}

/// A customer registered and logged in: their index and session token.
type Registered = Result<(usize, String), (&'static str, ClientError)>;

async fn next_session(
    sessions: &mut JoinSet<Registered>,
    bank: &str,
) -> Result<(usize, String), CliError> {
    sessions
        .join_next()
        .await
        .expect("called with tasks in flight")
        .expect("a set-up task does not panic")
        .map_err(|(what, e)| setup_error(what, bank, e))
}

async fn next_opening(
    openings: &mut JoinSet<Result<(usize, wire::AccountRef), ClientError>>,
    bank: &str,
) -> Result<(usize, wire::AccountRef), CliError> {
    openings
        .join_next()
        .await
        .expect("called with tasks in flight")
        .expect("a set-up task does not panic")
        .map_err(|e| setup_error("open an account", bank, e))
}

/// One small batch before the load: a bank without the bulk endpoint is told apart from a
/// bank that refuses under load, with a clear message instead of thousands of 404s.
pub async fn probe_bulk(bank: &Bank) -> Result<(), CliError> {
    let customer = &bank.customers[0];
    let client = Client::with_trust(&bank.url, &bank.trust)?.with_token(customer.token.clone());
    let from = customer.accounts[0].clone();
    let to = bank
        .accounts
        .iter()
        .find(|a| a.number != from.number)
        .expect("a bank has two accounts or more")
        .clone();
    let body = wire::BatchRequest {
        transfers: vec![wire::BatchTransfer {
            id: "probe".into(),
            from,
            to: wire::Destination {
                pix_key: None,
                bank: Some(to.bank),
                number: Some(to.number),
            },
            amount: "0.01".into(),
            description: Some("bench probe".into()),
        }],
    };
    match client.transfer_batch(&body, None).await {
        Ok(_) => Ok(()),
        Err(error) if error.status() == Some(404) && error.code() == Some("not_found") => {
            Err(CliError::Other(format!(
                "the bank at {} does not offer POST /api/v1/transfers/batch (404 not_found): \
                 the bulk workload cannot run there",
                bank.url
            )))
        }
        Err(error) => Err(setup_error("probe the bulk endpoint", &bank.code, error)),
    }
}
