//! Registering, logging in and out, throttling, and who am I.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn register_individuals_and_companies_and_refuse_duplicates() {
    let bank = spawn_bank().await;
    let document = cpf(unique());
    let formatted = format!(
        "{}.{}.{}-{}",
        &document[..3],
        &document[3..6],
        &document[6..9],
        &document[9..]
    );
    let username = format!("ana{}", unique());
    let answer = bank.post("/api/v1/customers", json!({"name": "  Ana   Silva ", "document": formatted, "username": username.to_uppercase(), "password": PASSWORD}), None).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(answer.body["kind"], "individual");
    assert_eq!(answer.body["name"], "Ana Silva", "names are trimmed");
    assert_eq!(
        answer.body["username"], username,
        "usernames are lower-cased"
    );
    assert_eq!(answer.body["home_bank"], BANK);
    assert_eq!(answer.body["id"].as_str().unwrap().len(), 36);

    let company = bank.post("/api/v1/customers", json!({"name": "Padaria Ltda", "document": cnpj(unique()), "username": format!("pad{}", unique()), "password": PASSWORD}), None).await;
    assert_eq!(company.status, StatusCode::CREATED, "{}", company.body);
    assert_eq!(
        company.body["kind"], "company",
        "an alphanumeric CNPJ makes a company"
    );

    let same_document = bank.post("/api/v1/customers", json!({"name": "Ana", "document": document, "username": format!("x{}", unique()), "password": PASSWORD}), None).await;
    assert_eq!(
        (same_document.status, same_document.code()),
        (StatusCode::CONFLICT, "duplicate_document")
    );
    let same_username = bank.post("/api/v1/customers", json!({"name": "Ana", "document": cpf(unique()), "username": username, "password": PASSWORD}), None).await;
    assert_eq!(
        (same_username.status, same_username.code()),
        (StatusCode::CONFLICT, "duplicate_username")
    );
}

#[tokio::test]
async fn registration_refuses_bad_input_with_stable_codes() {
    let bank = spawn_bank().await;
    let good = || json!({"name": "Ana", "document": cpf(unique()), "username": format!("a{}", unique()), "password": PASSWORD});
    let cases = [
        ("document", json!("529.982.247-24"), "invalid_document"),
        ("document", json!("111.111.111-11"), "invalid_document"),
        ("document", json!("12.ABC.345/01DE-36"), "invalid_document"),
        ("document", json!("123"), "invalid_document"),
        ("password", json!("short"), "invalid_password"),
        ("password", json!("x".repeat(129)), "invalid_password"),
        ("username", json!("a"), "invalid_username"),
        ("username", json!("ana silva"), "invalid_username"),
        ("username", json!("-ana"), "invalid_username"),
        ("name", json!("   "), "invalid_name"),
        ("name", json!("x".repeat(121)), "invalid_name"),
        ("name", json!(42), "invalid_request"),
    ];
    for (field, value, code) in cases {
        let mut body = good();
        body[field] = value.clone();
        let answer = bank.post("/api/v1/customers", body, None).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}={value}: {}",
            answer.body
        );
        assert_eq!(answer.code(), code, "{field}={value}");
    }
    let mut missing = good();
    missing.as_object_mut().unwrap().remove("password");
    let answer = bank.post("/api/v1/customers", missing, None).await;
    assert_eq!(answer.code(), "invalid_request");
    assert!(
        answer.body["detail"].as_str().unwrap().contains("password"),
        "the detail names the missing field: {}",
        answer.body
    );
}

#[tokio::test]
async fn a_session_ends_at_its_expiry_even_once_remembered() {
    let bank = spawn_bank_with(|config| config.session_ttl = Duration::from_secs(2)).await;
    let ana = bank.individual("Ana").await;
    // Used once, the session is remembered in the bank's memory; it must still expire.
    let me = bank.get("/api/v1/me", Some(&ana.token)).await;
    assert_eq!(me.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let after = bank.get("/api/v1/me", Some(&ana.token)).await;
    assert_eq!(
        (after.status, after.code()),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
}

#[tokio::test]
async fn login_logout_and_me() {
    let bank = spawn_bank().await;
    let ana = bank.individual("Ana").await;
    let me = bank.get("/api/v1/me", Some(&ana.token)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["username"], ana.username.as_str());
    assert_eq!(me.body["accounts"], json!([]));
    let number = bank.open(&ana, "individual", "50.00").await;
    let me = bank.get("/api/v1/me", Some(&ana.token)).await;
    assert_eq!(me.body["accounts"][0]["number"], number.as_str());
    assert_eq!(me.body["accounts"][0]["balance"], "50.00");

    let second = bank
        .post(
            "/api/v1/sessions",
            json!({"username": ana.username, "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(second.body["token"].as_str().unwrap().len(), 64);
    assert!(second.body["expires_at"].as_str().unwrap().ends_with('Z'));

    let out = bank
        .delete("/api/v1/sessions/current", Some(&ana.token))
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let after = bank.get("/api/v1/me", Some(&ana.token)).await;
    assert_eq!(
        (after.status, after.code()),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
    assert_eq!(after.headers["www-authenticate"], "Bearer");
    let other = bank
        .get("/api/v1/me", Some(second.body["token"].as_str().unwrap()))
        .await;
    assert_eq!(
        other.status,
        StatusCode::OK,
        "logging out ends only that session"
    );

    for token in [None, Some("not-a-token")] {
        let answer = bank.get("/api/v1/me", token).await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::UNAUTHORIZED, "unauthenticated")
        );
    }
}

#[tokio::test]
async fn failed_logins_are_refused_alike_and_then_throttled() {
    let bank = spawn_bank().await;
    let ana = bank.individual("Ana").await;
    let unknown = bank
        .post(
            "/api/v1/sessions",
            json!({"username": "nobody-here", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
    for _ in 0..5 {
        let wrong = bank
            .post(
                "/api/v1/sessions",
                json!({"username": ana.username, "password": "wrong-password"}),
                None,
            )
            .await;
        assert_eq!(
            (wrong.status, wrong.code()),
            (StatusCode::UNAUTHORIZED, "invalid_credentials")
        );
    }
    let throttled = bank
        .post(
            "/api/v1/sessions",
            json!({"username": ana.username, "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(
        (throttled.status, throttled.code()),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_login_attempts")
    );
    let wait: u64 = throttled.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&wait));
    tokio::time::sleep(std::time::Duration::from_millis(wait * 1000 + 100)).await;
    let after = bank
        .post(
            "/api/v1/sessions",
            json!({"username": ana.username, "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(
        after.status,
        StatusCode::CREATED,
        "after the wait the right password works"
    );
}

#[tokio::test]
async fn malformed_requests_get_problems_never_5xx() {
    let bank = spawn_bank().await;
    let raw = |body: &'static str| {
        bank.http
            .post(format!("{}/api/v1/customers", bank.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let response = raw("{not json").await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "malformed_json");

    let huge = "x".repeat(node::BODY_BYTES_MAX + 1);
    let response = bank
        .http
        .post(format!("{}/api/v1/customers", bank.url))
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "body_too_large");

    let array = raw("[1, 2]").await.unwrap();
    assert_eq!(array.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let answer = bank.get("/api/v1/nothing-here", None).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let answer = bank
        .send(Method::PUT, "/api/v1/customers", None, None, None)
        .await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
}

/// Customers' requests stop at `BODY_BYTES_MAX`; a bank's envelope of messages may be larger, up
/// to its own limit (a back office's batch has its own too, which
/// `payments::a_batch_of_transfers_answers_each_one_independently` fills).
#[tokio::test]
async fn each_route_takes_bodies_up_to_its_own_limit() {
    let bank = spawn_bank().await;
    let post = |path: &str, size: usize| {
        bank.http
            .post(format!("{}{path}", bank.url))
            .header("content-type", "application/json")
            .body("x".repeat(size))
            .send()
    };
    let over_customers = node::BODY_BYTES_MAX + 1;
    let response = post("/api/v1/customers", over_customers).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Between banks, a request's signed headers are checked before its body is read: one
    // without a signature is refused as such, whatever its size (the body limit for signed
    // envelopes is tested in the consortium's adversarial tests).
    for size in [over_customers, node::INTERBANK_BODY_BYTES_MAX + 1] {
        let response = post(node::interbank::MESSAGES_PATH, size).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{size} bytes");
    }
}

#[tokio::test]
async fn the_node_describes_itself() {
    let bank = spawn_bank().await;
    let health = bank.get("/health", None).await;
    assert_eq!(
        (health.status, health.body["bank"].as_str()),
        (StatusCode::OK, Some(BANK))
    );
    let openapi = bank.get("/api/v1/openapi.json", None).await;
    assert_eq!(
        openapi.body["openapi"]
            .as_str()
            .map(|v| v.starts_with("3.")),
        Some(true)
    );
    for path in [
        "/api/v1/customers",
        "/api/v1/transfers",
        "/api/v1/packages",
        "/api/v1/accounts/{bank}/{number}/statement",
        "/api/v1/audit",
    ] {
        assert!(
            openapi.body["paths"].get(path).is_some(),
            "OpenAPI documents {path}"
        );
    }
    let metrics = bank
        .http
        .get(format!("{}/metrics", bank.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("bankd_http_requests_total{method=\"GET\",status=\"200\"}"),
        "{metrics}"
    );

    let first: ledger::Stamp =
        ledger::Stamp::parse(health.headers["x-clock"].to_str().unwrap()).unwrap();
    let second: ledger::Stamp =
        ledger::Stamp::parse(openapi.headers["x-clock"].to_str().unwrap()).unwrap();
    assert!(second > first, "the clock moves forward between answers");

    let ana = bank.individual("Ana").await;
    let forbidden = bank.get("/api/v1/audit", Some(&ana.token)).await;
    assert_eq!(
        (forbidden.status, forbidden.code()),
        (StatusCode::FORBIDDEN, "operator_only")
    );
    let anonymous = bank.get("/api/v1/audit", None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let audit = bank.audit().await;
    let checks: Vec<&str> = audit["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|check| {
            assert_eq!(check["ok"], true, "{check}");
            check["name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(checks.len(), 10, "{checks:?}");
    for name in [
        "statements_chain_every_entry",
        "every_reference_resolves",
        // A new bank's ledger has nothing to load into the directory.
        "directory_migration",
    ] {
        assert!(checks.contains(&name), "{checks:?}");
    }
    let consortium = bank.get("/api/v1/consortium", Some(OPERATOR_TOKEN)).await;
    assert_eq!(
        consortium.body["settlement"][0]["bank"], "20000002",
        "a settlement account exists for each peer"
    );
}
