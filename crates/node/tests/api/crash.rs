//! Crash safety with the real binary: `kill -9` a `bankd` while clients deposit, transfer and
//! submit packages, restart it on the same data, and check that every acknowledged operation is
//! there, that retrying the unacknowledged ones under their keys executes each exactly once, that
//! no package is half applied, and that the audit is clean.

use crate::helpers::{BANK, OPERATOR_TOKEN, PASSWORD, cpf, start_bankd, unique};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENTS: usize = 8;
/// Kill the node once this many operations were acknowledged (or after the time below).
const ACKS_BEFORE_KILL: usize = 150;
const KILL_AFTER_MAX: Duration = Duration::from_secs(10);

/// One money-moving request, its key, and the answer if one came back.
#[derive(Clone)]
struct Sent {
    path: String,
    body: Value,
    key: String,
    answer: Option<Value>,
}

async fn send(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    sent: &Sent,
) -> Result<(StatusCode, Value), reqwest::Error> {
    let response = http
        .post(format!("{url}{}", sent.path))
        .bearer_auth(token)
        .header("Idempotency-Key", &sent.key)
        .json(&sent.body)
        .send()
        .await?;
    let status = response.status();
    Ok((status, response.json().await?))
}

fn account(number: &str) -> Value {
    json!({"bank": BANK, "number": number})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_dash_nine_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_bankd(dir.path(), &[]);
    // reqwest's TLS has no provider of its own (ring is installed; `node::tls`).
    node::tls::install_provider();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let username = format!("crash{}", unique());
    let register = json!({"name": "Ana Crash", "document": cpf(unique()), "username": username, "password": PASSWORD});
    assert_eq!(
        http.post(format!("{}/api/v1/customers", node.url))
            .json(&register)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );
    let login: Value = http
        .post(format!("{}/api/v1/sessions", node.url))
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap().to_string();
    let mut numbers = Vec::new();
    for _ in 0..2 {
        let opened: Value = http
            .post(format!("{}/api/v1/accounts", node.url))
            .bearer_auth(&token)
            .json(&json!({"kind": "individual", "opening_deposit": "1000.00"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        numbers.push(opened["number"].as_str().unwrap().to_string());
    }
    let (a, b) = (numbers[0].clone(), numbers[1].clone());

    let log: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let acks = Arc::new(AtomicUsize::new(0));
    let dead = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (http, url, token, log, acks, dead) = (http.clone(), node.url.clone(), token.clone(), log.clone(), acks.clone(), dead.clone());
            let (a, b) = (a.clone(), b.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    let cents = 1 + (client * 37 + i * 11) % 5_000;
                    let amount = format!("{}.{:02}", cents / 100, cents % 100);
                    let (path, body) = match i % 3 {
                        0 => (format!("/api/v1/accounts/{BANK}/{a}/deposits"), json!({"amount": amount})),
                        1 => ("/api/v1/transfers".to_string(), json!({"from": account(&a), "to": account(&b), "amount": amount})),
                        _ => (
                            "/api/v1/packages".to_string(),
                            json!({"operations": [
                                {"type": "deposit", "account": account(&a), "amount": amount},
                                {"type": "transfer", "account": account(&a), "amount": amount, "to": account(&b)},
                            ]}),
                        ),
                    };
                    let mut sent = Sent { path, body, key: format!("crash-{client}-{i}"), answer: None };
                    match send(&http, &url, &token, &sent).await {
                        Ok((status, answer)) => {
                            assert_eq!(status, StatusCode::CREATED, "{answer}");
                            sent.answer = Some(answer);
                            acks.fetch_add(1, Ordering::Relaxed);
                            log.lock().unwrap().push(sent);
                        }
                        Err(_) => {
                            log.lock().unwrap().push(sent);
                            dead.store(true, Ordering::Relaxed);
                            return;
                        }
                    }
                }
            })
        })
        .collect();

    let started = Instant::now();
    while acks.load(Ordering::Relaxed) < ACKS_BEFORE_KILL && started.elapsed() < KILL_AFTER_MAX {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(node); // SIGKILL: no chance to flush or say goodbye.
    for task in tasks {
        task.await.unwrap();
    }
    assert!(
        dead.load(Ordering::Relaxed),
        "every client saw the node die"
    );
    let log = log.lock().unwrap().clone();
    let acknowledged = log.iter().filter(|s| s.answer.is_some()).count();
    assert!(
        acknowledged >= ACKS_BEFORE_KILL.min(50),
        "the clients made progress before the kill ({acknowledged})"
    );

    eprintln!(
        "killed after {acknowledged} acknowledged operations; {} were in flight",
        log.len() - acknowledged
    );
    let node = start_bankd(dir.path(), &[]);
    let mut finals = Vec::new();
    for sent in &log {
        let (status, answer) = send(&http, &node.url, &token, sent).await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        if let Some(first) = &sent.answer {
            assert_eq!(
                &answer, first,
                "an acknowledged operation survives the crash and replays as it was answered"
            );
        }
        finals.push(answer);
    }
    // Every request has now executed exactly once: recompute the balances from the answers.
    let (mut balance_a, mut balance_b) = (100_000i64, 100_000i64);
    let mut ids: HashMap<String, usize> = HashMap::new();
    for (sent, answer) in log.iter().zip(&finals) {
        let cents = |v: &Value| ledger::Amount::parse(v.as_str().unwrap()).unwrap().cents();
        match sent.path.as_str() {
            "/api/v1/transfers" if answer["status"] == "committed" => {
                balance_a -= cents(&sent.body["amount"]);
                balance_b += cents(&sent.body["amount"]);
            }
            "/api/v1/transfers" => assert_eq!(answer["reason"], "insufficient_funds"),
            "/api/v1/packages" => {
                assert_eq!(answer["status"], "committed", "{answer}");
                balance_b += cents(&sent.body["operations"][0]["amount"]);
            }
            _ => balance_a += cents(&sent.body["amount"]),
        }
        let id = answer
            .get("e2e_id")
            .or(answer.get("id"))
            .and_then(Value::as_str)
            .unwrap()
            .to_string();
        *ids.entry(id).or_default() += 1;
    }
    assert!(
        ids.values().all(|n| *n == 1),
        "every operation has its own end-to-end id"
    );

    let get = |path: String| {
        let (http, url, token) = (http.clone(), node.url.clone(), token.clone());
        async move {
            http.get(format!("{url}{path}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    for (number, expected) in [(&a, balance_a), (&b, balance_b)] {
        let account = get(format!("/api/v1/accounts/{BANK}/{number}")).await;
        assert_eq!(
            ledger::Amount::parse(account["balance"].as_str().unwrap())
                .unwrap()
                .cents(),
            expected,
            "{number}"
        );
    }
    // No package is half applied: each package's id is on exactly two lines of A (its deposit and
    // its transfer out) and one of B.
    let mut lines: HashMap<String, (usize, usize)> = HashMap::new();
    for (side, number) in [(0, &a), (1, &b)] {
        let mut cursor = String::new();
        loop {
            let page = get(format!(
                "/api/v1/accounts/{BANK}/{number}/statement?limit=100{cursor}"
            ))
            .await;
            for entry in page["entries"].as_array().unwrap() {
                let counts = lines
                    .entry(entry["e2e_id"].as_str().unwrap().to_string())
                    .or_default();
                if side == 0 {
                    counts.0 += 1
                } else {
                    counts.1 += 1
                }
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => break,
            }
        }
    }
    for (sent, answer) in log.iter().zip(&finals) {
        if sent.path == "/api/v1/packages" {
            assert_eq!(
                lines.get(answer["id"].as_str().unwrap()),
                Some(&(2, 1)),
                "package {answer}"
            );
        }
    }
    let audit: Value = http
        .get(format!("{}/api/v1/audit", node.url))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(audit["ok"], true, "{audit}");
}

/// `bankd [args] serve` with `env` on top of a minimal configuration: its exit code and stderr.
fn bankd_serve(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_bankd"))
        .args(args)
        .arg("serve")
        .envs(env.iter().copied())
        .env("BANKD_CODE", BANK)
        .env("BANKD_LISTEN", "127.0.0.1:0")
        .env("BANKD_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .output()
        .expect("bankd runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bankd_refuses_to_serve_on_no_workers() {
    for (args, env) in [
        (&["--workers", "0"][..], &[][..]),
        (&[], &[("BANKD_WORKERS", "0")]),
        (&["--workers", "x"], &[]),
    ] {
        let (code, stderr) = bankd_serve(args, env);
        assert_eq!(code, Some(2), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains("--workers"), "{stderr}");
    }
}

#[test]
fn bankd_refuses_an_unknown_sqlite_tuning() {
    for (args, env) in [
        (&["--sqlite-tuning", "fastest"][..], &[][..]),
        (&["--sqlite-tuning", "vfs,turbo"][..], &[][..]),
        (&[], &[("BANKD_SQLITE_TUNING", "high")]),
    ] {
        let (code, stderr) = bankd_serve(args, env);
        assert_eq!(code, Some(2), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains("--sqlite-tuning"), "{stderr}");
    }
}
