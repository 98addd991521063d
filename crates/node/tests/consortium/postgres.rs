//! A bank of the consortium on PostgreSQL served by two `bankd` sharing its database and
//! directory file (the server is the tests' own: `cargo xtask test` starts it; without it this
//! skips loudly, and fails under CI). The consortium file lists both of its addresses; the
//! process holding the bank's duties runs its interbank engine and its member of the directory,
//! the other is a front of it. Killing the holder during a stream of interbank payments and
//! packages: the front takes the duties over, every payment begun finishes at every bank, and
//! the consortium's invariants 1–4 hold.

use crate::cluster::{CODES, Cluster, Customer, Shape, unique};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use store::postgres::testing::TestDatabase;

/// The bank on PostgreSQL.
const BANK: usize = 1;
const CLIENTS: usize = 6;
const PAYMENTS_PER_CLIENT: usize = 25;
/// The duty holder is killed once this many payments have been answered.
const KILL_AFTER: usize = 30;
/// Bound on anything that should take seconds: a takeover, a payment after it.
const SETTLE: Duration = Duration::from_secs(45);

async fn holds_duties(cluster: &Cluster, url: &str) -> Option<bool> {
    let response = cluster
        .http
        .get(format!("{url}/health"))
        .send()
        .await
        .ok()?;
    let health: Value = response.json().await.ok()?;
    health["duties"].as_bool()
}

/// Waits (at most [`SETTLE`]) until the process at `url` holds its bank's duties.
async fn wait_holder(cluster: &Cluster, url: &str) {
    let deadline = Instant::now() + SETTLE;
    while holds_duties(cluster, url).await != Some(true) {
        assert!(Instant::now() < deadline, "{url} never held the duties");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Pays until a payment commits, for at most [`SETTLE`]: the same key again while the banks
/// answer 503 or leave it pending, a new one after an abort because a bank was unreachable;
/// panics on any other answer.
async fn pay_committed(cluster: &Cluster, from: &Customer, to: &Customer, amount: &str) {
    let mut key = unique("after");
    let deadline = Instant::now() + SETTLE;
    loop {
        let (status, body) = cluster.pay(from, to, amount, &key).await;
        if status == 201 && body["status"] == "committed" {
            return;
        }
        let unreachable = status == 201
            && body["status"] == "aborted"
            && matches!(
                body["reason"].as_str(),
                Some("bank_timeout" | "bank_unavailable")
            );
        assert!(
            (unreachable || matches!(status, 0 | 202 | 503)) && Instant::now() < deadline,
            "paying {amount} from bank {} to bank {}: {status} {body}",
            from.bank,
            to.bank
        );
        if unreachable {
            key = unique("after");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bank_served_by_two_bankd_finishes_its_interbank_work_when_the_duty_holder_is_killed() {
    let Some(db) = TestDatabase::create("consortium_two_bankd") else {
        return;
    };
    let mut cluster = Cluster::configured_as(Shape::THREE);
    cluster.on_postgres(BANK, db.url());
    for i in 0..3 {
        cluster.start(i, None);
    }
    let holder = cluster.banks[BANK].url.clone();
    wait_holder(&cluster, &holder).await;
    cluster.start_second(BANK);
    cluster.wait_all_up().await;
    cluster.wait_directory_leader().await;
    // Two customers at each bank (those of the bank on PostgreSQL registered through the
    // holder), in bank order.
    let mut customers = Vec::new();
    for bank in 0..3 {
        for _ in 0..2 {
            customers.push(cluster.customer(bank, "500.00").await);
        }
    }
    // From now on the bank's customers (and the test) use the second process, a front.
    assert_eq!(cluster.use_second(BANK), holder);
    let front = cluster.banks[BANK].url.clone();
    assert_eq!(holds_duties(&cluster, &front).await, Some(false));
    let cluster = Arc::new(cluster);
    let customers = Arc::new(customers);

    // Clients paying between banks (every payment crosses banks: the payee is two to four
    // places on in the list, so at another bank), while the holder is killed.
    let answered = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (cluster, customers, answered, killed) = (
                cluster.clone(),
                customers.clone(),
                answered.clone(),
                killed.clone(),
            );
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for n in 0..PAYMENTS_PER_CLIENT {
                    let from = &customers[(client + n) % customers.len()];
                    let to = &customers[(client + n + 2 + n % 3) % customers.len()];
                    assert_ne!(from.bank, to.bank);
                    let amount = format!("1.{:02}", (client * 7 + n) % 100);
                    let (status, body) = if n % 5 == 4 {
                        // Now and then a package: a payment across banks and a withdrawal,
                        // all or nothing.
                        let at = |c: &Customer| json!({"bank": CODES[c.bank], "number": c.number});
                        let operations = json!([
                            {"type": "transfer", "account": at(from), "to": at(to), "amount": amount},
                            {"type": "withdrawal", "account": at(from), "amount": "0.50"},
                        ]);
                        cluster.package(from, operations, &unique("p")).await
                    } else {
                        cluster.pay(from, to, &amount, &unique("k")).await
                    };
                    answered.fetch_add(1, Ordering::Relaxed);
                    let before_the_kill = !killed.load(Ordering::Relaxed);
                    match status {
                        201 | 202 => {
                            answers.push((from.bank, from.token.clone(), body, before_the_kill))
                        }
                        // The holder died under the request, or the front has no holder yet.
                        0 | 503 => tokio::time::sleep(Duration::from_millis(100)).await,
                        _ => panic!("{status} {body}"),
                    }
                }
                answers
            })
        })
        .collect();
    let deadline = Instant::now() + SETTLE;
    while answered.load(Ordering::Relaxed) < KILL_AFTER {
        assert!(Instant::now() < deadline, "the clients are not paying");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    killed.store(true, Ordering::Relaxed);
    cluster.kill(BANK); // kill -9 of the holder, payments in flight
    let mut answers = Vec::new();
    for client in clients {
        answers.extend(client.await.unwrap());
    }
    // The front passed its customers' payments on to the holder, which committed them.
    assert!(
        answers
            .iter()
            .any(|(bank, _, body, before_the_kill)| *bank == BANK
                && *before_the_kill
                && body["status"] == "committed"),
        "no payment through the front committed before the kill"
    );

    // The front takes the duties over and serves interbank payments both ways.
    wait_holder(&cluster, &front).await;
    pay_committed(&cluster, &customers[2], &customers[0], "2.00").await;
    pay_committed(&cluster, &customers[1], &customers[3], "3.00").await;

    // Every payment begun finishes at every bank (nothing held), and invariants 1–4 hold.
    cluster.settle_and_audit().await;
    // Every answered payment is final where it was made, and one answered committed stays so.
    for (bank, token, answer, _) in &answers {
        let (status, now) = cluster
            .call(
                *bank,
                Method::GET,
                &format!("/api/v1/transfers/{}", answer["id"].as_str().unwrap()),
                None,
                Some(token),
                None,
            )
            .await;
        assert_eq!(status, 200, "{now}");
        assert_ne!(now["status"], "pending", "{answer} is still {now}");
        if answer["status"] == "committed" {
            assert_eq!(now["status"], "committed", "{answer} became {now}");
        }
    }
}
