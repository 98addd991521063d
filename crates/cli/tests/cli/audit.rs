//! `bank audit --consortium`: passes on real banks after random traffic, and fails, naming the
//! broken invariant, on a consortium of fake banks whose audits do not add up.

use crate::helpers::*;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// A small deterministic generator (xorshift64*), so a failing run can be replayed from its
/// seed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// An amount from 0.01 to `max_cents` centavos, on the wire.
    fn amount(&mut self, max_cents: u64) -> String {
        let cents = 1 + self.below(max_cents);
        format!("{}.{:02}", cents / 100, cents % 100)
    }
}

/// Operations each customer makes in the random-traffic test.
const OPERATIONS_PER_CUSTOMER: usize = 25;
const CUSTOMERS_PER_BANK: u64 = 3;

fn demo_file(dir: &std::path::Path, banks: &[(&str, &str, String, &str)]) -> std::path::PathBuf {
    let listed: Vec<Value> = banks
        .iter()
        .map(|(code, name, url, token)| {
            json!({"code": code, "name": name, "url": url, "operator_token": token})
        })
        .collect();
    let path = dir.join("demo.json");
    std::fs::write(
        &path,
        json!({"banks": listed, "consortium": dir.join("consortium.toml")}).to_string(),
    )
    .unwrap();
    path
}

/// One customer's random session: deposits, withdrawals (some beyond the balance), payments to
/// the bank's other accounts (some beyond the balance), packages (some that must abort) and a
/// payment to another bank (refused: interbank payments are not open yet).
async fn random_customer(
    url: String,
    bank: &'static str,
    index: u64,
    seed: u64,
    others: Vec<String>,
) -> Vec<String> {
    let mut random = Random(seed | 1);
    let anonymous = client::Client::new(&url).unwrap();
    let username = format!("c{bank}x{index}");
    anonymous
        .register(
            &wire::RegisterCustomer {
                name: format!("Cliente {index}"),
                document: cpf(u64::from(bank.parse::<u32>().unwrap()) * 10 + index),
                username: username.clone(),
                password: PASSWORD.into(),
            },
            None,
        )
        .await
        .unwrap();
    let token = anonymous
        .login(&wire::Credentials {
            username,
            password: PASSWORD.into(),
        })
        .await
        .unwrap()
        .value
        .token;
    let client = anonymous.with_token(token);
    let mut mine = Vec::new();
    for _ in 0..1 + random.below(2) {
        let account = client
            .open_account(
                &wire::OpenAccount {
                    kind: "individual".into(),
                    co_holders: Vec::new(),
                    opening_deposit: random.amount(20_000),
                },
                None,
            )
            .await;
        // Opening deposits under 50.00 are refused: that is traffic too.
        if let Ok(reply) = account {
            mine.push(wire::AccountRef {
                bank: bank.into(),
                number: reply.value.number,
            });
        }
    }
    if mine.is_empty() {
        let reply = client
            .open_account(
                &wire::OpenAccount {
                    kind: "individual".into(),
                    co_holders: Vec::new(),
                    opening_deposit: "50.00".into(),
                },
                None,
            )
            .await
            .unwrap();
        mine.push(wire::AccountRef {
            bank: bank.into(),
            number: reply.value.number,
        });
    }
    for _ in 0..OPERATIONS_PER_CUSTOMER {
        let from = mine[random.below(mine.len() as u64) as usize].clone();
        let to = if others.is_empty() {
            mine[0].number.clone()
        } else {
            others[random.below(others.len() as u64) as usize].clone()
        };
        let money = wire::MoneyRequest {
            amount: random.amount(30_000),
            description: None,
        };
        match random.below(5) {
            0 => drop(client.deposit(&from, &money, None).await.unwrap()),
            1 => {
                let answer = client.withdraw(&from, &money, None).await;
                assert!(
                    answer.is_ok()
                        || answer.as_ref().unwrap_err().code() == Some("insufficient_funds"),
                    "{answer:?}"
                );
            }
            2 => {
                let body = wire::TransferRequest {
                    from,
                    to: wire::Destination {
                        pix_key: None,
                        bank: Some(bank.into()),
                        number: Some(to),
                    },
                    amount: money.amount,
                    description: None,
                };
                // Committed, or aborted for insufficient funds (or the same account).
                let _ = client.transfer(&body, None).await;
            }
            3 => {
                let operations = (0..1 + random.below(3))
                    .map(|_| wire::OperationRequest {
                        kind: ["deposit", "withdrawal", "transfer"][random.below(3) as usize]
                            .into(),
                        account: from.clone(),
                        amount: random.amount(20_000),
                        to: Some(wire::Destination {
                            pix_key: None,
                            bank: Some(bank.into()),
                            number: Some(to.clone()),
                        }),
                        description: None,
                    })
                    .map(|mut op| {
                        if op.kind != "transfer" {
                            op.to = None;
                        }
                        op
                    })
                    .collect();
                let _ = client
                    .package(&wire::PackageRequest { operations }, None)
                    .await;
            }
            _ => {
                let body = wire::TransferRequest {
                    from,
                    to: wire::Destination {
                        pix_key: None,
                        bank: Some("99999999".into()),
                        number: Some("100001-2".into()),
                    },
                    amount: money.amount,
                    description: None,
                };
                let refused = client.transfer(&body, None).await.unwrap_err();
                assert!(refused.is_refusal(), "{refused:?}");
            }
        }
    }
    mine.into_iter().map(|a| a.number).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_passes_on_banks_after_random_traffic() {
    let seed = std::env::var("AUDIT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("random traffic with AUDIT_SEED={seed}");
    let banks = [
        spawn_bank_with("10000001", "Banco Aurora").await,
        spawn_bank_with("20000002", "Banco Boreal").await,
    ];
    let codes: [&'static str; 2] = ["10000001", "20000002"];
    for (bank, code) in banks.iter().zip(codes) {
        // A first customer whose accounts the others pay, then the others, concurrently.
        let first = random_customer(bank.url.clone(), code, 0, seed, Vec::new()).await;
        let tasks: Vec<_> = (1..CUSTOMERS_PER_BANK)
            .map(|index| {
                tokio::spawn(random_customer(
                    bank.url.clone(),
                    code,
                    index,
                    seed.wrapping_add(index * 7919),
                    first.clone(),
                ))
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let file = demo_file(
        dir.path(),
        &[
            (
                "10000001",
                "Banco Aurora",
                banks[0].url.clone(),
                OPERATOR_TOKEN,
            ),
            (
                "20000002",
                "Banco Boreal",
                banks[1].url.clone(),
                OPERATOR_TOKEN,
            ),
        ],
    );
    let person = Person::new();
    let run = person
        .bank(&["audit", "--consortium", file.to_str().unwrap()])
        .run()
        .await
        .ok();
    run.stdout_has("Consortium audit of 2 banks");
    run.stdout_has("Banco Aurora");
    run.stdout_has("Banco Boreal");
    run.stdout_has("settlement 10000001 <-> 20000002 opposite");
    run.stdout_has("customer balances = cash in - cash out (consortium)");
    run.stdout_has(" checks passed.");
    assert!(!run.stdout.contains("FAIL"), "{}", run.stdout);

    // The demo's folder works as well as its file; --json tells every check.
    let run = person
        .bank(&[
            "--json",
            "audit",
            "--consortium",
            dir.path().to_str().unwrap(),
        ])
        .run()
        .await
        .ok();
    let report = run.json();
    assert_eq!(report["ok"], true);
    let checks = report["checks"].as_array().unwrap();
    for invariant in 1..=4 {
        assert!(
            checks
                .iter()
                .any(|c| c["invariant"] == invariant && c["ok"] == true),
            "invariant {invariant} is checked: {report}"
        );
    }
    for bank in report["banks"].as_array().unwrap() {
        let cash_in: f64 = bank["cash_in"].as_str().unwrap().parse().unwrap();
        assert!(cash_in > 0.0, "the traffic reached the bank: {bank}");
    }
}

/// Fake banks on one server: `/{fixture}/api/v1/audit` answers the fixture's audit to the
/// bearer of `token-{fixture}`, and 403 to anyone else.
async fn fake_banks(fixtures: HashMap<String, Value>) -> String {
    async fn audit(
        State(fixtures): State<Arc<HashMap<String, Value>>>,
        Path(fixture): Path<String>,
        headers: HeaderMap,
    ) -> Response {
        let expected = format!("Bearer token-{fixture}");
        if headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            != Some(&expected)
        {
            let problem = json!({"type": "about:blank", "title": "Forbidden", "status": 403,
                "detail": "only the bank's operator may audit it", "code": "operator_only"});
            return (
                StatusCode::FORBIDDEN,
                [(header::CONTENT_TYPE, "application/problem+json")],
                problem.to_string(),
            )
                .into_response();
        }
        match fixtures.get(&fixture) {
            Some(audit) => axum::Json(audit.clone()).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        }
    }
    let router = axum::Router::new()
        .route("/{fixture}/api/v1/audit", axum::routing::get(audit))
        .with_state(Arc::new(fixtures));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// An audit as a bank answers it, consistent on its own unless changed.
fn audit(bank: &str, customers: &str, cash_in: &str, settlement: &[(&str, &str)]) -> Value {
    json!({
        "bank": bank,
        "clock": "1762185909000.0",
        "accounts": 3,
        "totals": {"debits_pending": "0.00", "debits_posted": "500.00",
                   "credits_pending": "0.00", "credits_posted": "500.00"},
        "customer_balances": customers,
        "cash_in": cash_in,
        "cash_out": "0.00",
        "settlement": settlement.iter().map(|(b, p)| json!({"bank": b, "position": p})).collect::<Vec<_>>(),
        "checks": [{"name": "no_customer_account_negative", "ok": true, "detail": "0 accounts"}],
        "ok": true,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_fails_on_an_inconsistent_consortium() {
    const A: &str = "10000001";
    const B: &str = "20000002";
    let mut unbalanced = audit(A, "100.00", "100.00", &[]);
    unbalanced["totals"]["credits_posted"] = json!("499.99");
    let mut negative = audit(A, "100.00", "100.00", &[]);
    negative["checks"][0] =
        json!({"name": "no_customer_account_negative", "ok": false, "detail": "1 account"});
    // (name, A's audit, B's audit, the checks that must fail; none: the audit passes)
    let scenarios: Vec<(&str, Value, Value, Vec<String>)> = vec![
        (
            "consistent",
            // A's customers paid B's 30.00: A owes B, B is owed by A.
            audit(A, "70.00", "100.00", &[(B, "-30.00")]),
            audit(B, "130.00", "100.00", &[(A, "30.00")]),
            vec![],
        ),
        (
            "positions-not-opposite",
            audit(A, "70.00", "100.00", &[(B, "-30.00")]),
            audit(B, "130.00", "100.00", &[(A, "20.00")]),
            vec![format!("settlement {A} <-> {B} opposite")],
        ),
        (
            "money-created",
            audit(A, "100.00", "100.00", &[]),
            audit(B, "100.01", "100.00", &[]),
            vec!["customer balances = cash in - cash out (consortium)".to_string()],
        ),
        (
            "books-do-not-balance",
            unbalanced,
            audit(B, "100.00", "100.00", &[]),
            vec![format!("{A} posted debits = posted credits")],
        ),
        (
            "negative-account",
            negative,
            audit(B, "100.00", "100.00", &[]),
            vec![format!("{A} no_customer_account_negative")],
        ),
    ];
    let mut fixtures = HashMap::new();
    for (name, a, b, _) in &scenarios {
        fixtures.insert(format!("{name}-a"), a.clone());
        fixtures.insert(format!("{name}-b"), b.clone());
    }
    let server = fake_banks(fixtures).await;
    let person = Person::new();
    for (name, _, _, failing) in &scenarios {
        let dir = tempfile::tempdir().unwrap();
        let (token_a, token_b) = (format!("token-{name}-a"), format!("token-{name}-b"));
        let file = demo_file(
            dir.path(),
            &[
                (A, "Banco A", format!("{server}/{name}-a"), &token_a),
                (B, "Banco B", format!("{server}/{name}-b"), &token_b),
            ],
        );
        let file = file.to_str().unwrap();
        let expected_code = if failing.is_empty() {
            EXIT_OK
        } else {
            EXIT_AUDIT_FAILED
        };
        let human = person
            .bank(&["audit", "--consortium", file])
            .run()
            .await
            .code(expected_code);
        for check in failing {
            assert!(
                human
                    .stdout
                    .lines()
                    .any(|l| l.contains(check.as_str()) && l.contains("FAIL")),
                "{name}: {check} is shown failed:\n{}",
                human.stdout
            );
        }
        if !failing.is_empty() {
            human.stdout_has(&format!("{} of ", failing.len()));
            human.stderr_has("violated");
        }
        let report = person
            .bank(&["--json", "audit", "--consortium", file])
            .run()
            .await
            .code(expected_code)
            .json();
        let failed: Vec<String> = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["ok"] == false)
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(&failed, failing, "{name}: {report}");
        assert_eq!(report["ok"], failing.is_empty(), "{name}");
    }

    // A wrong operator token is a refusal, not a verdict.
    let dir = tempfile::tempdir().unwrap();
    let file = demo_file(
        dir.path(),
        &[(
            A,
            "Banco A",
            format!("{server}/consistent-a"),
            "not-the-token",
        )],
    );
    person
        .bank(&["audit", "--consortium", file.to_str().unwrap()])
        .run()
        .await
        .code(EXIT_REFUSED)
        .stderr_has("operator_only");
    // A file that is not a consortium.
    std::fs::write(&file, r#"{"banks": []}"#).unwrap();
    person
        .bank(&["audit", "--consortium", file.to_str().unwrap()])
        .run()
        .await
        .code(EXIT_USAGE)
        .stderr_has("lists no bank");
}
