//! Pix keys: formats, ownership, limits, lookups that reveal little, removal.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn keys_of_every_type_and_their_rules() {
    let bank = spawn_bank().await;
    let ana = bank.individual("Ana Souza").await;
    let beto = bank.individual("Beto").await;
    let number = bank.open(&ana, "individual", "50.00").await;
    let account = json!({"bank": BANK, "number": number});
    let add = |kind: &str, value: Option<&str>| {
        let mut body = json!({"account": account, "type": kind});
        if let Some(value) = value {
            body["value"] = json!(value);
        }
        bank.post("/api/v1/pix-keys", body, Some(&ana.token))
    };
    let email = format!("Ana.{}@Example.com", unique());
    let created = add("email", Some(&email)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["key"], email.to_lowercase());
    assert_eq!(
        created.body["account"]["number"],
        number.as_str(),
        "its holder sees the account"
    );
    let phone = format!(
        "+55 (11) 9{:04}-{:04}",
        unique() % 10_000,
        unique() % 10_000
    );
    assert_eq!(add("phone", Some(&phone)).await.status, StatusCode::CREATED);
    let own = add("cpf", Some(&ana.document)).await;
    assert_eq!(own.status, StatusCode::CREATED, "{}", own.body);
    let random = add("random", None).await;
    assert_eq!(random.status, StatusCode::CREATED);
    let random_key = random.body["key"].as_str().unwrap().to_string();
    assert_eq!(random_key.len(), 36, "the bank generates a UUID");

    let refusals = [
        (
            add("cpf", Some(&beto.document)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "pix_key_not_your_document",
        ),
        (
            add("email", Some(&email)).await,
            StatusCode::CONFLICT,
            "duplicate_pix_key",
        ),
        (
            add("email", Some("not-an-email")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_pix_key",
        ),
        (
            add("phone", Some("+1 415 555 0100")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_pix_key",
        ),
        (
            add("cpf", Some("529.982.247-24")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_document",
        ),
        (
            add("random", Some("123e4567-e89b-42d3-a456-426614174000")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_pix_key",
        ),
        (
            add("email", None).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_pix_key",
        ),
        (
            add("iban", Some("x")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_pix_key_type",
        ),
    ];
    for (answer, status, code) in refusals {
        assert_eq!(
            (answer.status, answer.code()),
            (status, code),
            "{}",
            answer.body
        );
    }
    assert_eq!(
        add("email", Some(&format!("five.{}@example.com", unique())))
            .await
            .status,
        StatusCode::CREATED
    );
    let sixth = add("email", Some(&format!("six.{}@example.com", unique()))).await;
    assert_eq!(
        (sixth.status, sixth.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "pix_key_limit_reached"),
        "five keys per individual account"
    );
    let on_others = bank
        .post(
            "/api/v1/pix-keys",
            json!({"account": account, "type": "random"}),
            Some(&beto.token),
        )
        .await;
    assert_eq!(
        (on_others.status, on_others.code()),
        (StatusCode::NOT_FOUND, "account_not_found")
    );

    let listed = bank.get("/api/v1/pix-keys", Some(&ana.token)).await;
    assert_eq!(listed.body["keys"].as_array().unwrap().len(), 5);
    assert_eq!(
        bank.get("/api/v1/pix-keys", Some(&beto.token)).await.body["keys"],
        json!([])
    );

    let lookup = bank
        .get(
            &format!("/api/v1/pix-keys/{}", ana.document),
            Some(&beto.token),
        )
        .await;
    assert_eq!(lookup.status, StatusCode::OK, "{}", lookup.body);
    assert_eq!(lookup.body["holder_name"], "Ana Souza");
    assert_eq!(lookup.body["bank"], BANK);
    assert_eq!(
        lookup.body["document_masked"],
        format!("***.{}.{}-**", &ana.document[3..6], &ana.document[6..9])
    );
    assert!(
        lookup.body.get("account").is_none() && lookup.body.get("balance").is_none(),
        "a lookup shows no account: {}",
        lookup.body
    );
    let by_phone = bank
        .get(
            &format!("/api/v1/pix-keys/{}", urlencode(&phone)),
            Some(&beto.token),
        )
        .await;
    assert_eq!(
        by_phone.status,
        StatusCode::OK,
        "a phone key is found however it is typed: {}",
        by_phone.body
    );
    let missing = bank
        .get("/api/v1/pix-keys/nobody@example.com", Some(&beto.token))
        .await;
    assert_eq!(
        (missing.status, missing.code()),
        (StatusCode::NOT_FOUND, "pix_key_not_found")
    );

    let not_holder = bank
        .delete(&format!("/api/v1/pix-keys/{random_key}"), Some(&beto.token))
        .await;
    assert_eq!(
        (not_holder.status, not_holder.code()),
        (StatusCode::NOT_FOUND, "pix_key_not_found")
    );
    let removed = bank
        .delete(&format!("/api/v1/pix-keys/{random_key}"), Some(&ana.token))
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let gone = bank
        .get(&format!("/api/v1/pix-keys/{random_key}"), Some(&ana.token))
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(
        add("random", None).await.status,
        StatusCode::CREATED,
        "removing a key frees a place"
    );
}

#[tokio::test]
async fn companies_hold_twenty_keys_per_account() {
    let bank = spawn_bank().await;
    let company = bank.register("Padaria", &cnpj(unique())).await;
    let number = bank.open(&company, "company", "50.00").await;
    let account = json!({"bank": BANK, "number": number});
    let own = bank
        .post(
            "/api/v1/pix-keys",
            json!({"account": account, "type": "cnpj", "value": company.document}),
            Some(&company.token),
        )
        .await;
    assert_eq!(own.status, StatusCode::CREATED, "{}", own.body);
    assert!(
        own.body["document_masked"]
            .as_str()
            .unwrap()
            .starts_with("**.")
    );
    for _ in 1..20 {
        let answer = bank
            .post(
                "/api/v1/pix-keys",
                json!({"account": account, "type": "random"}),
                Some(&company.token),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED);
    }
    let over = bank
        .post(
            "/api/v1/pix-keys",
            json!({"account": account, "type": "random"}),
            Some(&company.token),
        )
        .await;
    assert_eq!(over.code(), "pix_key_limit_reached");
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'.' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
