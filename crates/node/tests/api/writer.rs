//! Adversarial: no request can take the store's writer down. A retry whose body the first
//! version of the idempotency check could not parse again, a command that trips a bug (a panic),
//! and a writer that stopped for good all leave the bank answering, and `/health` telling the
//! truth.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;

/// Posts `body` as raw bytes under `key`, and answers the status and the problem's code.
async fn post_raw(
    bank: &TestBank,
    path: &str,
    token: &str,
    key: &str,
    body: Vec<u8>,
) -> (StatusCode, serde_json::Value) {
    let response = bank
        .http
        .post(format!("{}{path}", bank.url))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

/// Bodies that parse into a deposit (the unknown field is skipped) but not as a generic JSON
/// value: the store's writer once parsed a reused key's body again that way and panicked.
fn hostile_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let deep = format!(
        r#"{{"amount": "2.00", "x": {}{}}}"#,
        "[".repeat(300),
        "]".repeat(300)
    );
    let mut bad_utf8 = br#"{"amount": "2.00", "x": ""#.to_vec();
    bad_utf8.extend_from_slice(&[0xff, 0xfe]);
    bad_utf8.extend_from_slice(br#""}"#);
    vec![
        (
            "a number too large for a float",
            br#"{"amount": "2.00", "x": 1e400}"#.to_vec(),
        ),
        ("an array 300 deep", deep.into_bytes()),
        ("invalid UTF-8 inside a string", bad_utf8),
    ]
}

#[tokio::test]
async fn a_reused_key_with_a_body_that_does_not_parse_twice_leaves_the_writer_up() {
    let bank = spawn_bank().await;
    let ana = bank.individual("Ana Hostil").await;
    let number = bank.open(&ana, "individual", "50.00").await;
    let path = format!("/api/v1/accounts/{BANK}/{number}/deposits");
    let (status, _) = post_raw(
        &bank,
        &path,
        &ana.token,
        "reused",
        br#"{"amount": "1.00"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    for (what, body) in hostile_bodies() {
        let (status, problem) = post_raw(&bank, &path, &ana.token, "reused", body).await;
        assert!(
            status.is_client_error(),
            "{what}: a client error, not {status} {problem}"
        );
        // Every later write still goes through: a fresh deposit and a login (which writes its
        // session).
        let deposit = bank
            .post(&path, json!({"amount": "1.00"}), Some(&ana.token))
            .await;
        assert_eq!(
            deposit.status,
            StatusCode::CREATED,
            "{what}: {}",
            deposit.body
        );
        let login = bank
            .post(
                "/api/v1/sessions",
                json!({"username": ana.username, "password": PASSWORD}),
                None,
            )
            .await;
        assert_eq!(login.status, StatusCode::CREATED, "{what}: {}", login.body);
    }
    assert_eq!(bank.balance(&ana, &number).await.0, "54.00");
    assert_eq!(bank.get("/health", None).await.status, StatusCode::OK);
    bank.audit().await;
}

#[tokio::test]
async fn a_command_that_panics_fails_alone_and_the_writer_goes_on() {
    let bank = spawn_bank_with(|config| config.store_faults = true).await;
    let ana = bank.individual("Ana Falha").await;
    let number = bank.open(&ana, "individual", "50.00").await;
    let path = format!("/api/v1/accounts/{BANK}/{number}/deposits");
    // The faulty deposit and good ones at once, so they may share the writer's batch.
    let faulty = async {
        let response = bank
            .http
            .post(format!("{}{path}", bank.url))
            .bearer_auth(&ana.token)
            .header("Idempotency-Key", "faulty")
            .json(&json!({"amount": "7.00", "description": store::sqlite::FAULT_PANIC}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let content_type = response.headers()["content-type"].clone();
        let body: serde_json::Value = response.json().await.unwrap();
        (status, content_type, body)
    };
    let good = async {
        let mut statuses = Vec::new();
        for _ in 0..8 {
            let answer = bank
                .post(&path, json!({"amount": "1.00"}), Some(&ana.token))
                .await;
            statuses.push(answer.status);
        }
        statuses
    };
    let ((status, content_type, problem), statuses) = tokio::join!(faulty, good);
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{problem}");
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(problem["code"], "internal_error");
    assert!(
        statuses.iter().all(|s| *s == StatusCode::CREATED),
        "{statuses:?}"
    );
    // Nothing of the faulty deposit was kept; everything else was, and the writer still writes.
    assert_eq!(bank.balance(&ana, &number).await.0, "58.00");
    let after = bank
        .post(&path, json!({"amount": "2.00"}), Some(&ana.token))
        .await;
    assert_eq!(after.status, StatusCode::CREATED, "{}", after.body);
    assert_eq!(bank.get("/health", None).await.status, StatusCode::OK);
    bank.audit().await;
}

#[tokio::test]
async fn a_stopped_writer_shows_in_health() {
    let bank = spawn_bank_with(|config| config.store_faults = true).await;
    let ana = bank.individual("Ana Parada").await;
    let number = bank.open(&ana, "individual", "50.00").await;
    assert_eq!(bank.get("/health", None).await.status, StatusCode::OK);
    let (status, _) = post_raw(
        &bank,
        &format!("/api/v1/accounts/{BANK}/{number}/deposits"),
        &ana.token,
        "stop",
        serde_json::to_vec(&json!({"amount": "1.00", "description": store::sqlite::FAULT_STOP}))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let response = bank
        .http
        .get(format!("{}/health", bank.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "writer_stopped");
}

/// The consortium view shows the banks to anyone, but settlement positions (what the bank owes
/// and is owed) only to its operator, and reads them without auditing the ledger.
#[tokio::test]
async fn settlement_positions_are_for_the_operator() {
    let bank = spawn_bank().await;
    let public = bank.get("/api/v1/consortium", None).await;
    assert_eq!(public.status, StatusCode::OK);
    assert!(
        public.body["banks"]
            .as_array()
            .is_some_and(|b| !b.is_empty())
    );
    assert!(public.body.get("settlement").is_none(), "{}", public.body);
    let ana = bank.individual("Ana Curiosa").await;
    let customer = bank.get("/api/v1/consortium", Some(&ana.token)).await;
    assert!(
        customer.body.get("settlement").is_none(),
        "{}",
        customer.body
    );
    let operator = bank.get("/api/v1/consortium", Some(OPERATOR_TOKEN)).await;
    assert_eq!(operator.body["settlement"][0]["position"], "0.00");
}
