//! `Idempotency-Key`: a retry replays the first answer (also after a restart), a different
//! request under the same key is refused, and concurrent duplicates execute once.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn retries_replay_the_first_answer_even_after_a_restart() {
    let mut bank = spawn_bank().await;
    let ana = bank.individual("Ana").await;
    let number = bank.open(&ana, "individual", "50.00").await;
    let path = format!("/api/v1/accounts/{BANK}/{number}/deposits");
    let first = bank
        .send(
            Method::POST,
            &path,
            Some(json!({"amount": "10.00"})),
            Some(&ana.token),
            Some("deposit-1"),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert!(first.headers.get("idempotent-replayed").is_none());
    // Same body with other whitespace and key order: still the same request.
    let again = bank
        .send(
            Method::POST,
            &path,
            Some(json!({"amount": "10.00"})),
            Some(&ana.token),
            Some("deposit-1"),
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body, first.body, "the replay is the first answer");
    assert_eq!(
        bank.balance(&ana, &number).await.0,
        "60.00",
        "the deposit happened once"
    );

    let different = bank
        .send(
            Method::POST,
            &path,
            Some(json!({"amount": "11.00"})),
            Some(&ana.token),
            Some("deposit-1"),
        )
        .await;
    assert_eq!(
        (different.status, different.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
    );
    let elsewhere = bank
        .send(
            Method::POST,
            "/api/v1/accounts",
            Some(json!({"kind": "individual", "opening_deposit": "50.00"})),
            Some(&ana.token),
            Some("deposit-1"),
        )
        .await;
    assert_eq!(
        elsewhere.code(),
        "idempotency_key_reused",
        "a key names one request, path included"
    );

    let refused = bank
        .send(
            Method::POST,
            &format!("/api/v1/accounts/{BANK}/{number}/withdrawals"),
            Some(json!({"amount": "500.00"})),
            Some(&ana.token),
            Some("w-1"),
        )
        .await;
    assert_eq!(refused.code(), "insufficient_funds");
    bank.send(
        Method::POST,
        &path,
        Some(json!({"amount": "1000.00"})),
        Some(&ana.token),
        Some("deposit-2"),
    )
    .await;
    let refused_again = bank
        .send(
            Method::POST,
            &format!("/api/v1/accounts/{BANK}/{number}/withdrawals"),
            Some(json!({"amount": "500.00"})),
            Some(&ana.token),
            Some("w-1"),
        )
        .await;
    assert_eq!(
        refused_again.code(),
        "insufficient_funds",
        "a refusal is replayed too, not re-run against the new balance"
    );
    assert_eq!(refused_again.headers["idempotent-replayed"], "true");

    bank.restart().await;
    let after = bank
        .send(
            Method::POST,
            &path,
            Some(json!({"amount": "10.00"})),
            Some(&ana.token),
            Some("deposit-1"),
        )
        .await;
    assert_eq!(
        (
            after.status,
            after.headers["idempotent-replayed"].to_str().unwrap()
        ),
        (StatusCode::CREATED, "true")
    );
    assert_eq!(after.body, first.body);
    assert_eq!(bank.balance(&ana, &number).await.0, "1060.00");

    let beto = bank.individual("Beto").await;
    let beto_number = bank.open(&beto, "individual", "50.00").await;
    let other_customer = bank
        .send(
            Method::POST,
            &format!("/api/v1/accounts/{BANK}/{beto_number}/deposits"),
            Some(json!({"amount": "10.00"})),
            Some(&beto.token),
            Some("deposit-1"),
        )
        .await;
    assert_eq!(
        other_customer.status,
        StatusCode::CREATED,
        "keys are per customer"
    );
    assert!(other_customer.headers.get("idempotent-replayed").is_none());

    let bad = bank
        .send(
            Method::POST,
            &path,
            Some(json!({"amount": "1.00"})),
            Some(&ana.token),
            Some(&"k".repeat(256)),
        )
        .await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::BAD_REQUEST, "invalid_idempotency_key")
    );
    bank.audit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicates_execute_once() {
    let bank = std::sync::Arc::new(spawn_bank().await);
    let ana = bank.individual("Ana").await;
    let number = bank.open(&ana, "individual", "50.00").await;
    let path = format!("/api/v1/accounts/{BANK}/{number}/deposits");
    let mut statuses = Vec::new();
    for round in 0..10 {
        let key = format!("dup-{round}");
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (bank, path, token, key) =
                    (bank.clone(), path.clone(), ana.token.clone(), key.clone());
                tokio::spawn(async move {
                    bank.send(
                        Method::POST,
                        &path,
                        Some(json!({"amount": "1.00"})),
                        Some(&token),
                        Some(&key),
                    )
                    .await
                })
            })
            .collect();
        for task in tasks {
            let answer = task.await.unwrap();
            if answer.status == StatusCode::CONFLICT {
                assert_eq!(answer.code(), "idempotency_key_in_flight");
            } else {
                assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
            }
            statuses.push(answer.status);
        }
    }
    assert!(statuses.contains(&StatusCode::CREATED));
    assert_eq!(
        bank.balance(&ana, &number).await.0,
        "60.00",
        "ten keys, ten deposits, however many duplicates raced"
    );
}
