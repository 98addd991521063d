//! Transfers by key and by account, aborted transfers, lookups, and all-or-nothing packages.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Pair {
    bank: TestBank,
    ana: Customer,
    beto: Customer,
    a: String,
    b: String,
}

async fn pair() -> Pair {
    let bank = spawn_bank().await;
    let ana = bank.individual("Ana").await;
    let beto = bank.individual("Beto").await;
    let a = bank.open(&ana, "individual", "100.00").await;
    let b = bank.open(&beto, "individual", "50.00").await;
    Pair {
        bank,
        ana,
        beto,
        a,
        b,
    }
}

fn account(number: &str) -> Value {
    json!({"bank": BANK, "number": number})
}

#[tokio::test]
async fn pay_by_key_and_by_account_with_both_statements() {
    let Pair {
        bank,
        ana,
        beto,
        a,
        b,
    } = pair().await;
    let email = format!("beto.{}@example.com", unique());
    bank.post(
        "/api/v1/pix-keys",
        json!({"account": account(&b), "type": "email", "value": email}),
        Some(&beto.token),
    )
    .await;

    let by_key = bank.post("/api/v1/transfers", json!({"from": account(&a), "to": {"pix_key": email}, "amount": "20.00", "description": "almoço"}), Some(&ana.token)).await;
    assert_eq!(by_key.status, StatusCode::CREATED, "{}", by_key.body);
    assert_eq!(by_key.body["status"], "committed");
    let id = by_key.body["id"].as_str().unwrap().to_string();
    assert!(
        ledger::EndToEndId::parse(&id).is_some_and(|e| e.bank().as_str() == BANK),
        "{id}"
    );
    let by_account = bank
        .post(
            "/api/v1/transfers",
            json!({"from": account(&a), "to": account(&b), "amount": "0.01"}),
            Some(&ana.token),
        )
        .await;
    assert_eq!(by_account.body["status"], "committed");
    assert_eq!(bank.balance(&ana, &a).await.0, "79.99");
    assert_eq!(bank.balance(&beto, &b).await.0, "70.01");

    let ana_statement = bank
        .get(
            &format!("/api/v1/accounts/{BANK}/{a}/statement"),
            Some(&ana.token),
        )
        .await;
    let out = &ana_statement.body["entries"][1];
    assert_eq!(
        (
            out["kind"].as_str(),
            out["amount"].as_str(),
            out["e2e_id"].as_str()
        ),
        (Some("transfer_out"), Some("-20.00"), Some(id.as_str()))
    );
    assert!(
        out["counterparty"].as_str().unwrap().contains("Beto"),
        "{out}"
    );
    assert_eq!(out["description"], "almoço");
    let beto_statement = bank
        .get(
            &format!("/api/v1/accounts/{BANK}/{b}/statement"),
            Some(&beto.token),
        )
        .await;
    let incoming = &beto_statement.body["entries"][1];
    assert_eq!(
        (
            incoming["kind"].as_str(),
            incoming["amount"].as_str(),
            incoming["balance_after"].as_str()
        ),
        (Some("transfer_in"), Some("20.00"), Some("70.00"))
    );
    assert!(
        incoming["counterparty"].as_str().unwrap().contains("Ana"),
        "{incoming}"
    );

    for who in [&ana, &beto] {
        let seen = bank
            .get(&format!("/api/v1/transfers/{id}"), Some(&who.token))
            .await;
        assert_eq!(
            (
                seen.status,
                seen.body["status"].as_str(),
                seen.body["amount"].as_str()
            ),
            (StatusCode::OK, Some("committed"), Some("20.00"))
        );
    }
    let carla = bank.individual("Carla").await;
    let stranger = bank
        .get(&format!("/api/v1/transfers/{id}"), Some(&carla.token))
        .await;
    assert_eq!(
        (stranger.status, stranger.code()),
        (StatusCode::NOT_FOUND, "transfer_not_found")
    );
    bank.audit().await;
}

#[tokio::test]
async fn refused_transfers_change_nothing() {
    let Pair {
        bank,
        ana,
        beto,
        a,
        b,
    } = pair().await;
    let short = bank
        .post(
            "/api/v1/transfers",
            json!({"from": account(&a), "to": account(&b), "amount": "100.01"}),
            Some(&ana.token),
        )
        .await;
    assert_eq!(
        short.status,
        StatusCode::CREATED,
        "an attempted payment is recorded: {}",
        short.body
    );
    assert_eq!(
        (short.body["status"].as_str(), short.body["reason"].as_str()),
        (Some("aborted"), Some("insufficient_funds"))
    );
    let looked = bank
        .get(
            &format!("/api/v1/transfers/{}", short.body["id"].as_str().unwrap()),
            Some(&ana.token),
        )
        .await;
    assert_eq!(looked.body["status"], "aborted");

    let cases = [
        (
            json!({"from": account(&a), "to": account(&a), "amount": "1.00"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "same_account",
        ),
        (
            json!({"from": account(&a), "to": {"pix_key": "nobody@example.com"}, "amount": "1.00"}),
            StatusCode::NOT_FOUND,
            "pix_key_not_found",
        ),
        (
            json!({"from": account(&a), "to": {"pix_key": "???"}, "amount": "1.00"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_pix_key",
        ),
        (
            json!({"from": account(&a), "to": {"bank": BANK, "number": "999999-0"}, "amount": "1.00"}),
            StatusCode::NOT_FOUND,
            "account_not_found",
        ),
        (
            json!({"from": account(&a), "to": {"bank": BANK, "number": "100001-3"}, "amount": "1.00"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_account_number",
        ),
        (
            json!({"from": account(&a), "to": {"bank": "99999999", "number": b}, "amount": "1.00"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_bank",
        ),
        (
            json!({"from": account(&a), "to": {"bank": "20000002", "number": b}, "amount": "1.00"}),
            StatusCode::SERVICE_UNAVAILABLE,
            "bank_unavailable",
        ),
        (
            json!({"from": account(&a), "to": {}, "amount": "1.00"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_destination",
        ),
        (
            json!({"from": account(&a), "to": {"pix_key": "a@b.co", "bank": BANK, "number": b}, "amount": "1.00"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_destination",
        ),
        (
            json!({"from": account(&b), "to": account(&a), "amount": "1.00"}),
            StatusCode::NOT_FOUND,
            "account_not_found",
        ),
        (
            json!({"from": account(&a), "to": account(&b), "amount": "1.0"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_amount",
        ),
        (
            json!({"from": account(&a), "to": account(&b), "amount": "0.00"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount_not_positive",
        ),
    ];
    for (body, status, code) in cases {
        let answer = bank
            .post("/api/v1/transfers", body.clone(), Some(&ana.token))
            .await;
        assert_eq!(
            (answer.status, answer.code()),
            (status, code),
            "{body}: {}",
            answer.body
        );
    }
    assert_eq!(bank.balance(&ana, &a).await.0, "100.00");
    assert_eq!(bank.balance(&beto, &b).await.0, "50.00");
    let unknown = bank
        .get("/api/v1/transfers/not-an-id", Some(&ana.token))
        .await;
    assert_eq!(unknown.code(), "transfer_not_found");
    bank.audit().await;
}

#[tokio::test]
async fn packages_commit_all_or_nothing() {
    let Pair {
        bank,
        ana,
        beto,
        a,
        b,
    } = pair().await;
    let second = bank.open(&ana, "individual", "50.00").await;
    let ok = bank
        .post(
            "/api/v1/packages",
            json!({"operations": [
                {"type": "withdrawal", "account": account(&a), "amount": "30.00"},
                {"type": "transfer", "account": account(&a), "amount": "60.00", "to": account(&b)},
                {"type": "deposit", "account": account(&second), "amount": "5.00"},
                {"type": "transfer", "account": account(&second), "amount": "55.00", "to": account(&a)},
            ]}),
            Some(&ana.token),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    assert_eq!(ok.body["status"], "committed");
    assert!(
        ok.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "committed")
    );
    assert_eq!(bank.balance(&ana, &a).await.0, "65.00");
    assert_eq!(bank.balance(&ana, &second).await.0, "0.00");
    assert_eq!(bank.balance(&beto, &b).await.0, "110.00");

    let failing = bank
        .post(
            "/api/v1/packages",
            json!({"operations": [
                {"type": "deposit", "account": account(&a), "amount": "1000.00"},
                {"type": "transfer", "account": account(&a), "amount": "10.00", "to": account(&b)},
                {"type": "withdrawal", "account": account(&second), "amount": "0.01"},
                {"type": "transfer", "account": account(&b), "amount": "1.00", "to": account(&a)},
            ]}),
            Some(&ana.token),
        )
        .await;
    assert_eq!(failing.status, StatusCode::CREATED, "{}", failing.body);
    assert_eq!(failing.body["status"], "aborted");
    let results: Vec<(String, String)> = failing.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap().to_string(),
                r["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let expected = [
        ("aborted", "package_aborted"),
        ("aborted", "package_aborted"),
        ("rejected", "insufficient_funds"),
        ("rejected", "account_not_found"),
    ];
    assert_eq!(
        results,
        expected.map(|(s, r)| (s.to_string(), r.to_string())),
        "each operation says what happened to it"
    );
    assert_eq!(
        bank.balance(&ana, &a).await.0,
        "65.00",
        "nothing of an aborted package stays"
    );
    assert_eq!(bank.balance(&beto, &b).await.0, "110.00");
    let looked = bank
        .get(
            &format!("/api/v1/transfers/{}", failing.body["id"].as_str().unwrap()),
            Some(&ana.token),
        )
        .await;
    assert_eq!(looked.body["status"], "aborted");

    let malformed = [
        (json!({"operations": []}), "package_empty"),
        (
            json!({"operations": [{"type": "refund", "account": account(&a), "amount": "1.00"}]}),
            "invalid_operation",
        ),
        (
            json!({"operations": [{"type": "transfer", "account": account(&a), "amount": "1.00"}]}),
            "invalid_destination",
        ),
        (
            json!({"operations": [{"type": "deposit", "account": account(&a), "amount": "1.00", "to": account(&b)}]}),
            "invalid_operation",
        ),
        (
            json!({"operations": [{"type": "deposit", "account": account(&a), "amount": "1,00"}]}),
            "invalid_amount",
        ),
    ];
    for (body, code) in malformed {
        let answer = bank
            .post("/api/v1/packages", body.clone(), Some(&ana.token))
            .await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, code),
            "{body}"
        );
    }
    let many: Vec<Value> = (0..101)
        .map(|_| json!({"type": "deposit", "account": account(&a), "amount": "1.00"}))
        .collect();
    let too_many = bank
        .post(
            "/api/v1/packages",
            json!({"operations": many}),
            Some(&ana.token),
        )
        .await;
    assert_eq!(too_many.code(), "package_too_large");
    let audit = bank.audit().await;
    assert_eq!(audit["customer_balances"], "175.00");
}

/// The bulk endpoint: each transfer gets its own result in order — committed, aborted by the
/// ledger, or rejected for an invalid request — independently of its neighbours; the whole answer
/// replays under its key; a batch of the largest size goes through in one request.
#[tokio::test]
async fn a_batch_of_transfers_answers_each_one_independently() {
    let Pair {
        bank,
        ana,
        beto,
        a,
        b,
    } = pair().await;
    let transfer = |id: &str, from: &str, to: &str, amount: &str| json!({"id": id, "from": account(from), "to": account(to), "amount": amount});
    let body = json!({"transfers": [
        transfer("t1", &a, &b, "10.00"),
        transfer("t2", &a, &b, "500.00"),
        transfer("t3", &a, "999999-0", "1.00"),
        transfer("t4", &a, &b, "1.234"),
        transfer("t5", &b, &a, "1.00"),
        transfer("t6", &a, &a, "1.00"),
        transfer("t7", &a, &b, "5.00"),
    ]});
    let key = format!("batch-{}", unique());
    let first = bank
        .send(
            reqwest::Method::POST,
            "/api/v1/transfers/batch",
            Some(body.clone()),
            Some(&ana.token),
            Some(&key),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let results = first.body["results"].as_array().unwrap();
    let seen: Vec<(&str, &str, &str)> = results
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
                r["reason"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("t1", "committed", ""),
            ("t2", "aborted", "insufficient_funds"),
            ("t3", "rejected", "account_not_found"),
            ("t4", "rejected", "invalid_amount"),
            ("t5", "rejected", "account_not_found"),
            ("t6", "rejected", "same_account"),
            ("t7", "committed", ""),
        ]
    );
    // A batch's ids are one run of the bank's sequence, by position (so its stored answer
    // names them all by the first).
    let e2e = |index: usize| ledger::EndToEndId::parse(results[index]["e2e_id"].as_str().unwrap());
    let (t1, t7) = (e2e(0).unwrap(), e2e(6).unwrap());
    assert_eq!(t1.with_sequence(t1.sequence() + 6), Some(t7));
    assert_eq!(
        results[2]["e2e_id"],
        Value::Null,
        "a rejected transfer has no id"
    );
    assert_eq!(bank.balance(&ana, &a).await.0, "85.00");
    assert_eq!(bank.balance(&beto, &b).await.0, "65.00");
    let replay = bank
        .send(
            reqwest::Method::POST,
            "/api/v1/transfers/batch",
            Some(body),
            Some(&ana.token),
            Some(&key),
        )
        .await;
    assert_eq!(
        (replay.status, &replay.body),
        (StatusCode::CREATED, &first.body)
    );
    assert_eq!(
        bank.balance(&ana, &a).await.0,
        "85.00",
        "a replay moves nothing"
    );

    for (refused, code) in [
        (json!({"transfers": []}), "batch_empty"),
        (
            json!({"transfers": [transfer("x", &a, &b, "1.00"), transfer("x", &a, &b, "1.00")]}),
            "duplicate_batch_id",
        ),
        (
            json!({"transfers": [transfer("", &a, &b, "1.00")]}),
            "invalid_batch_id",
        ),
    ] {
        let answer = bank
            .post("/api/v1/transfers/batch", refused, Some(&ana.token))
            .await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, code)
        );
    }
    let largest: Vec<Value> = (0..8_189)
        .map(|i| transfer(&format!("n{i}"), &a, &b, "0.01"))
        .collect();
    let answer = bank
        .post(
            "/api/v1/transfers/batch",
            json!({ "transfers": largest }),
            Some(&ana.token),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert!(
        answer.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "committed")
    );
    assert_eq!(bank.balance(&ana, &a).await.0, "3.11");
    let too_many: Vec<Value> = (0..8_190)
        .map(|i| transfer(&format!("m{i}"), &a, &b, "0.01"))
        .collect();
    let answer = bank
        .post(
            "/api/v1/transfers/batch",
            json!({ "transfers": too_many }),
            Some(&ana.token),
        )
        .await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "batch_too_large")
    );
    assert_eq!(bank.audit().await["ok"], true);
}
