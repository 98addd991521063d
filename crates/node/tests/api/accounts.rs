//! Opening accounts, cash in and out, amounts at the edge, statements, and privacy.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn open_accounts_of_every_kind_with_their_rules() {
    let bank = spawn_bank().await;
    let ana = bank.individual("Ana").await;
    let beto = bank.individual("Beto").await;
    let company = bank.register("Padaria", &cnpj(unique())).await;

    let number = bank.open(&ana, "individual", "50.00").await;
    assert!(
        ledger::AccountNumber::parse(&number).is_some(),
        "{number} carries a valid check digit"
    );
    assert_eq!(
        bank.balance(&ana, &number).await,
        ("50.00".into(), "50.00".into())
    );
    let other = bank.open(&ana, "individual", "75.25").await;
    assert_ne!(number, other, "account numbers are unique");
    bank.open(&company, "company", "1000.00").await;

    let refusals = [
        (
            &ana,
            json!({"kind": "individual", "opening_deposit": "49.99"}),
            "opening_deposit_too_small",
        ),
        (
            &ana,
            json!({"kind": "company", "opening_deposit": "50.00"}),
            "holder_kind_mismatch",
        ),
        (
            &company,
            json!({"kind": "individual", "opening_deposit": "50.00"}),
            "holder_kind_mismatch",
        ),
        (
            &ana,
            json!({"kind": "joint", "opening_deposit": "50.00"}),
            "holder_kind_mismatch",
        ),
        // A co-holder nobody registered, or a company, is invited like anyone else (and never
        // accepts): the opener is not told who is a customer (abuse.rs).
        (
            &ana,
            json!({"kind": "joint", "co_holders": [ana.username], "opening_deposit": "50.00"}),
            "holder_kind_mismatch",
        ),
        (
            &ana,
            json!({"kind": "individual", "co_holders": [beto.username], "opening_deposit": "50.00"}),
            "holder_kind_mismatch",
        ),
        (
            &ana,
            json!({"kind": "vault", "opening_deposit": "50.00"}),
            "invalid_account_kind",
        ),
        (
            &ana,
            json!({"kind": "individual", "opening_deposit": "50"}),
            "invalid_amount",
        ),
    ];
    for (who, body, code) in refusals {
        let answer = bank
            .post("/api/v1/accounts", body.clone(), Some(&who.token))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            answer.body
        );
        assert_eq!(answer.code(), code, "{body}");
    }
    let me = bank.get("/api/v1/me", Some(&ana.token)).await;
    assert_eq!(
        me.body["accounts"].as_array().unwrap().len(),
        2,
        "refusals opened nothing"
    );
    let audit = bank.audit().await;
    assert_eq!(
        audit["cash_in"], "1125.25",
        "only the three opening deposits came in"
    );
}

#[tokio::test]
async fn joint_holders_all_operate_and_strangers_see_nothing() {
    let bank = spawn_bank().await;
    let ana = bank.individual("Ana").await;
    let beto = bank.individual("Beto").await;
    let carla = bank.individual("Carla").await;
    let answer = bank
        .post(
            "/api/v1/accounts",
            json!({"kind": "joint", "co_holders": [beto.username], "opening_deposit": "100.00"}),
            Some(&ana.token),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let number = answer.body["number"].as_str().unwrap().to_string();
    // Beto holds it once he accepts (abuse.rs checks what happens before).
    let accepted = crate::abuse::accept_invitations(&bank, &beto).await;
    let holders: Vec<&str> = accepted[0]["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["username"].as_str().unwrap())
        .collect();
    assert_eq!(holders, [ana.username.as_str(), beto.username.as_str()]);

    let deposit = bank
        .post(
            &format!("/api/v1/accounts/{BANK}/{number}/withdrawals"),
            json!({"amount": "30.00"}),
            Some(&beto.token),
        )
        .await;
    assert_eq!(
        deposit.status,
        StatusCode::CREATED,
        "a co-holder withdraws: {}",
        deposit.body
    );
    assert_eq!(deposit.body["made_by"], beto.username.as_str());
    assert_eq!(bank.balance(&ana, &number).await.0, "70.00");
    let beto_me = bank.get("/api/v1/me", Some(&beto.token)).await;
    assert_eq!(beto_me.body["accounts"][0]["number"], number.as_str());

    let base = format!("/api/v1/accounts/{BANK}/{number}");
    for answer in [
        bank.get(&base, Some(&carla.token)).await,
        bank.get(&format!("{base}/statement"), Some(&carla.token))
            .await,
        bank.post(
            &format!("{base}/deposits"),
            json!({"amount": "1.00"}),
            Some(&carla.token),
        )
        .await,
        bank.post(
            &format!("{base}/withdrawals"),
            json!({"amount": "1.00"}),
            Some(&carla.token),
        )
        .await,
        bank.get(
            &format!("/api/v1/accounts/99999999/{number}"),
            Some(&ana.token),
        )
        .await,
        bank.get(
            &format!("/api/v1/accounts/{BANK}/999999-9"),
            Some(&ana.token),
        )
        .await,
    ] {
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::NOT_FOUND, "account_not_found"),
            "{}",
            answer.body
        );
    }
    let transfer = bank
        .post("/api/v1/transfers", json!({"from": {"bank": BANK, "number": number}, "to": {"bank": BANK, "number": number}, "amount": "1.00"}), Some(&carla.token))
        .await;
    assert_eq!(
        (transfer.status, transfer.code()),
        (StatusCode::NOT_FOUND, "account_not_found"),
        "nobody moves money out of others' accounts"
    );
    assert_eq!(bank.balance(&ana, &number).await.0, "70.00");
}

#[tokio::test]
async fn deposits_and_withdrawals_never_overdraw() {
    let bank = spawn_bank().await;
    let ana = bank.individual("Ana").await;
    let number = bank.open(&ana, "individual", "50.00").await;
    let base = format!("/api/v1/accounts/{BANK}/{number}");
    let deposit = bank
        .post(
            &format!("{base}/deposits"),
            json!({"amount": "10.50", "description": "salário"}),
            Some(&ana.token),
        )
        .await;
    assert_eq!(deposit.status, StatusCode::CREATED);
    assert_eq!(
        (
            deposit.body["amount"].as_str(),
            deposit.body["balance_after"].as_str()
        ),
        (Some("10.50"), Some("60.50"))
    );
    assert_eq!(deposit.body["e2e_id"].as_str().unwrap().len(), 32);
    let too_much = bank
        .post(
            &format!("{base}/withdrawals"),
            json!({"amount": "60.51"}),
            Some(&ana.token),
        )
        .await;
    assert_eq!(
        (too_much.status, too_much.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "insufficient_funds")
    );
    let all = bank
        .post(
            &format!("{base}/withdrawals"),
            json!({"amount": "60.50"}),
            Some(&ana.token),
        )
        .await;
    assert_eq!(
        (all.status, all.body["balance_after"].as_str()),
        (StatusCode::CREATED, Some("0.00"))
    );
    let one_more = bank
        .post(
            &format!("{base}/withdrawals"),
            json!({"amount": "0.01"}),
            Some(&ana.token),
        )
        .await;
    assert_eq!(one_more.code(), "insufficient_funds");
    assert_eq!(
        bank.balance(&ana, &number).await,
        ("0.00".into(), "0.00".into())
    );
    let audit = bank.audit().await;
    assert_eq!(
        (audit["cash_in"].as_str(), audit["cash_out"].as_str()),
        (Some("60.50"), Some("60.50"))
    );
}

#[tokio::test]
async fn bad_amounts_are_refused_and_change_nothing() {
    let bank = spawn_bank().await;
    let ana = bank.individual("Ana").await;
    let number = bank.open(&ana, "individual", "50.00").await;
    let path = format!("/api/v1/accounts/{BANK}/{number}/deposits");
    let cases = [
        (json!("10.5"), "invalid_amount"),
        (json!("10.505"), "invalid_amount"),
        (json!("10"), "invalid_amount"),
        (json!("1,000.00"), "invalid_amount"),
        (json!("1e3"), "invalid_amount"),
        (json!("NaN"), "invalid_amount"),
        (json!("Infinity"), "invalid_amount"),
        (json!(" 1.00"), "invalid_amount"),
        (json!("0.00"), "amount_not_positive"),
        (json!("-5.00"), "amount_not_positive"),
        (json!("1000000000000.00"), "amount_too_large"),
        (json!(10.5), "invalid_request"),
        (json!(null), "invalid_request"),
    ];
    for (amount, code) in cases {
        let answer = bank
            .post(&path, json!({"amount": amount}), Some(&ana.token))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{amount}: {}",
            answer.body
        );
        assert_eq!(answer.code(), code, "{amount}");
    }
    let long = bank
        .post(
            &path,
            json!({"amount": "1.00", "description": "x".repeat(141)}),
            Some(&ana.token),
        )
        .await;
    assert_eq!(long.code(), "invalid_description");
    assert_eq!(bank.balance(&ana, &number).await.0, "50.00");
    // Cash is at most R$ 1.000.000,00 an operation (CASH_OPERATION_MAX_CENTS), deposits and
    // withdrawals alike; the largest amount stays for transfers.
    let max = bank
        .post(&path, json!({"amount": "1000000.00"}), Some(&ana.token))
        .await;
    assert_eq!(max.status, StatusCode::CREATED, "{}", max.body);
    for (route, amount) in [
        ("deposits", "1000000.01"),
        ("deposits", "999999999999.99"),
        ("withdrawals", "1000000.01"),
    ] {
        let over = bank
            .post(
                &format!("/api/v1/accounts/{BANK}/{number}/{route}"),
                json!({"amount": amount}),
                Some(&ana.token),
            )
            .await;
        assert_eq!(
            (over.status, over.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "cash_limit_exceeded"),
            "{route} {amount}"
        );
    }
    let opening = bank
        .post(
            "/api/v1/accounts",
            json!({"kind": "individual", "opening_deposit": "1000000.01"}),
            Some(&ana.token),
        )
        .await;
    assert_eq!(opening.code(), "cash_limit_exceeded");
    assert_eq!(bank.balance(&ana, &number).await.0, "1000050.00");
    bank.audit().await;
}

#[tokio::test]
async fn statements_page_newest_first_with_running_balances() {
    let bank = spawn_bank().await;
    let ana = bank.individual("Ana").await;
    let number = bank.open(&ana, "individual", "50.00").await;
    let base = format!("/api/v1/accounts/{BANK}/{number}");
    for cents in 1..=5 {
        let answer = bank
            .post(
                &format!("{base}/deposits"),
                json!({"amount": format!("{cents}.00")}),
                Some(&ana.token),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED);
    }
    bank.post(
        &format!("{base}/withdrawals"),
        json!({"amount": "2.50"}),
        Some(&ana.token),
    )
    .await;
    // Balance: 50 + 15 - 2.50 = 62.50, over seven entries.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("{base}/statement?limit=3&cursor={c}"),
            None => format!("{base}/statement?limit=3"),
        };
        let page = bank.get(&query, Some(&ana.token)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let entries = page.body["entries"].as_array().unwrap().clone();
        assert!(entries.len() <= 3);
        seen.extend(entries);
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    let kinds: Vec<&str> = seen.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "withdrawal",
            "deposit",
            "deposit",
            "deposit",
            "deposit",
            "deposit",
            "opening_deposit"
        ]
    );
    assert_eq!(seen[0]["amount"], "-2.50");
    assert_eq!(seen[0]["balance_after"], "62.50");
    assert_eq!(seen[6]["balance_after"], "50.00");
    for pair in seen.windows(2) {
        let newer: ledger::Stamp =
            ledger::Stamp::parse(pair[0]["clock"].as_str().unwrap()).unwrap();
        let older: ledger::Stamp =
            ledger::Stamp::parse(pair[1]["clock"].as_str().unwrap()).unwrap();
        assert!(newer > older, "newest first by clock");
        assert!(pair[0]["at"].as_str().unwrap().ends_with('Z'));
    }
    for bad in [
        "limit=0",
        "limit=101",
        "limit=abc",
        "cursor=abc",
        "cursor=-1",
    ] {
        let answer = bank
            .get(&format!("{base}/statement?{bad}"), Some(&ana.token))
            .await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert!(answer.code().starts_with("invalid_"));
    }
}
