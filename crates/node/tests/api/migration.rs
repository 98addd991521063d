//! A ledger without its directory file, on one bank (a group of its own): refused when the
//! folder says the ledger was loaded into a directory (its migration report), loaded at start
//! when it was made before the directory (no report either).

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_ledger_that_lost_its_directory_is_refused_and_one_made_before_it_is_loaded() {
    let mut bank = spawn_bank().await;
    let ana = bank.individual("Ana").await;
    let number = bank.open(&ana, "individual", "100.00").await;
    let key = format!("ana{}@example.com", unique());
    let added = bank
        .post(
            "/api/v1/pix-keys",
            json!({"account": {"bank": BANK, "number": number}, "type": "email", "value": key}),
            Some(&ana.token),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    bank.running.take().unwrap().stop().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let dir = bank.dir.path().to_path_buf();
    let dir = dir.as_path();
    std::fs::remove_file(dir.join("directory.db")).unwrap();

    // The report says this ledger was in a directory: without it, no start.
    let refused = node::start(config(dir)).await.err().expect("refused");
    assert!(refused.contains("directory.db"), "{refused}");

    // Without the report too, it is a ledger made before the directory: loaded at start.
    std::fs::remove_file(dir.join(node::listing::REPORT_FILE)).unwrap();
    let running = node::start(config(dir)).await.unwrap();
    bank.url = running.url();
    bank.running = Some(running);
    let deadline = Instant::now() + Duration::from_secs(20);
    let check = loop {
        let audit = bank.get("/api/v1/audit", Some(OPERATOR_TOKEN)).await;
        let check = audit.body["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "directory_migration")
            .cloned()
            .unwrap();
        if check["ok"] == json!(true) {
            break check;
        }
        assert!(Instant::now() < deadline, "never loaded: {check}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        check["detail"],
        "finished: 1 customers, 1 accounts, 1 Pix keys loaded, no conflict"
    );
    // Ana logs in again (through the directory's record) and her key resolves to her, here.
    let login = bank
        .post(
            "/api/v1/sessions",
            json!({"username": ana.username, "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(login.status, StatusCode::CREATED, "{}", login.body);
    let token = login.body["token"].as_str().unwrap();
    let found = bank
        .get(&format!("/api/v1/pix-keys/{key}"), Some(token))
        .await;
    assert_eq!(
        (
            found.status,
            &found.body["bank"],
            &found.body["holder_name"]
        ),
        (StatusCode::OK, &json!(BANK), &json!("Ana")),
        "{}",
        found.body
    );
    // A further start does not load again.
    let report = std::fs::read(dir.join(node::listing::REPORT_FILE)).unwrap();
    bank.restart().await;
    bank.audit().await;
    assert_eq!(
        std::fs::read(dir.join(node::listing::REPORT_FILE)).unwrap(),
        report
    );
}
