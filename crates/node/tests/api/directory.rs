//! Registration and login through the consortium's directory, on one bank (a group of its own):
//! a registration whose directory write committed but whose answer was lost is completed by the
//! retry, and a person the directory registered at another bank logs in here.

use crate::helpers::*;
use argon2::password_hash::{PasswordHasher, SaltString};
use reqwest::StatusCode;
use serde_json::json;

fn hash(password: &str) -> String {
    let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

/// Writes a registration to the bank's directory directly, as if a bank had proposed it.
async fn in_directory(bank: &TestBank, document: &str, username: &str, home: &str) {
    let directory = &bank.running.as_ref().unwrap().state.interbank.directory;
    directory
        .write(directory::Command::RegisterCustomer {
            document: ledger::Document::parse(document).unwrap(),
            name: "Ana Lima".into(),
            username: username.into(),
            password_hash: hash(PASSWORD),
            home_bank: ledger::BankCode::parse(home).unwrap(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_registration_the_directory_took_but_this_bank_never_recorded_is_completed_by_its_retry()
{
    let bank = spawn_bank().await;
    let (document, username) = (cpf(unique()), format!("u{}", unique()));
    in_directory(&bank, &document, &username, BANK).await;
    let body = |password: &str| json!({"name": "Ana Lima", "document": document, "username": username, "password": password});

    let other = bank
        .post("/api/v1/customers", body("another-password-1"), None)
        .await;
    assert_eq!(
        (other.status, other.code()),
        (StatusCode::CONFLICT, "duplicate_document"),
        "a different password is someone else"
    );
    let retry = bank.post("/api/v1/customers", body(PASSWORD), None).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.body);
    assert_eq!(retry.body["home_bank"], BANK);
    let login = bank
        .post(
            "/api/v1/sessions",
            json!({"username": username, "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(login.status, StatusCode::CREATED, "{}", login.body);
}

#[tokio::test]
async fn a_person_registered_at_another_bank_logs_in_here_and_cannot_register_again() {
    let bank = spawn_bank().await;
    let (document, username) = (cpf(unique()), format!("u{}", unique()));
    in_directory(&bank, &document, &username, "20000002").await;

    let again = bank
        .post(
            "/api/v1/customers",
            json!({"name": "Ana Lima", "document": document, "username": format!("x{}", unique()), "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "duplicate_document")
    );
    let wrong = bank
        .post(
            "/api/v1/sessions",
            json!({"username": username, "password": "not-the-password"}),
            None,
        )
        .await;
    assert_eq!(
        (wrong.status, wrong.code()),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
    for _ in 0..2 {
        let login = bank
            .post(
                "/api/v1/sessions",
                json!({"username": username.to_uppercase(), "password": PASSWORD}),
                None,
            )
            .await;
        assert_eq!(login.status, StatusCode::CREATED, "{}", login.body);
        let token = login.body["token"].as_str().unwrap();
        let me = bank.get("/api/v1/me", Some(token)).await;
        assert_eq!(
            (me.status, &me.body["username"], &me.body["home_bank"]),
            (StatusCode::OK, &json!(username), &json!("20000002")),
            "{}",
            me.body
        );
    }
}
