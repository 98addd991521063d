//! Many clients at once: 32 concurrent clients make bounded random transfers among a few
//! accounts; money is conserved, nobody goes below zero, and the audit is clean.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;
use std::sync::Arc;

const CLIENTS: usize = 32;
const TRANSFERS_PER_CLIENT: usize = 20;
const ACCOUNTS: usize = 4;

/// A small deterministic generator, so a failing run can be repeated from its seed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transfers_conserve_money() {
    let bank = Arc::new(spawn_bank().await);
    let mut holders = Vec::new();
    for i in 0..ACCOUNTS {
        let customer = bank.individual(&format!("Cliente {i}")).await;
        let number = bank.open(&customer, "individual", "1000.00").await;
        holders.push((customer.token, number));
    }
    let holders = Arc::new(holders);
    let seed = unique();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (bank, holders) = (bank.clone(), holders.clone());
            tokio::spawn(async move {
                let mut random = Lcg(seed ^ (client as u64 * 7919));
                let (mut committed, mut aborted) = (0, 0);
                for _ in 0..TRANSFERS_PER_CLIENT {
                    let from = random.next(ACCOUNTS as u64) as usize;
                    let to = (from + 1 + random.next(ACCOUNTS as u64 - 1) as usize) % ACCOUNTS;
                    let cents = 1 + random.next(60_000);
                    let body = json!({
                        "from": {"bank": BANK, "number": holders[from].1},
                        "to": {"bank": BANK, "number": holders[to].1},
                        "amount": format!("{}.{:02}", cents / 100, cents % 100),
                    });
                    let answer = bank
                        .post("/api/v1/transfers", body, Some(&holders[from].0))
                        .await;
                    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
                    match answer.body["status"].as_str() {
                        Some("committed") => committed += 1,
                        _ => {
                            assert_eq!(answer.body["reason"], "insufficient_funds");
                            aborted += 1;
                        }
                    }
                }
                (committed, aborted)
            })
        })
        .collect();
    let mut committed = 0;
    for task in tasks {
        committed += task.await.unwrap().0;
    }
    assert!(committed > 0, "seed {seed}: some transfers went through");
    let mut total = 0i64;
    for (token, number) in holders.iter() {
        let answer = bank
            .get(&format!("/api/v1/accounts/{BANK}/{number}"), Some(token))
            .await;
        let balance = ledger::Amount::parse(answer.body["balance"].as_str().unwrap())
            .map(|a| a.cents())
            .unwrap_or(0);
        assert!(
            !answer.body["balance"].as_str().unwrap().starts_with('-'),
            "seed {seed}: no negative balance"
        );
        total += balance;
    }
    assert_eq!(
        total,
        ACCOUNTS as i64 * 100_000,
        "seed {seed}: transfers only move money"
    );
    let audit = bank.audit().await;
    assert_eq!(audit["customer_balances"], "4000.00");
}
