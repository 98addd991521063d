//! Standing adversarial tests of what a stranger, or a customer, could make the bank do or tell
//! them: login and registration abuse, enumeration, joining people to accounts without their
//! consent, and what is left lying around (sessions, files).
//!
//! Every client here is 127.0.0.1: the limits that tell clients apart are tested as units in
//! `node::limits`; these tests check what one client meets.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;

async fn login(bank: &TestBank, username: &str, password: &str) -> Answer {
    bank.post(
        "/api/v1/sessions",
        json!({"username": username, "password": password}),
        None,
    )
    .await
}

#[tokio::test]
async fn a_username_no_registration_would_take_is_refused_before_it_is_counted() {
    let bank = spawn_bank().await;
    // Near the body limit: the throttle once kept each such name as a key.
    for name in ["x".repeat(60_000), "Ana Maria".into(), "ab".into()] {
        let answer = login(&bank, &name, PASSWORD).await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_username")
        );
    }
    // Upper case is folded, as registration folds it.
    let ana = bank.individual("Ana").await;
    let answer = login(&bank, &ana.username.to_uppercase(), PASSWORD).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
}

#[tokio::test]
async fn spraying_a_password_over_many_usernames_from_one_client_is_throttled() {
    let bank = spawn_bank().await;
    let ana = bank.individual("Ana").await;
    let free = node::limits::CLIENT_LOGIN_FAILURES_FREE_MAX;
    // Each username fails once, far below the per-username limit.
    for i in 0..free {
        let answer = login(&bank, &format!("sprayed-{i}"), "Password123").await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            "attempt {i}"
        );
    }
    let throttled = login(&bank, "sprayed-next", "Password123").await;
    assert_eq!(
        (throttled.status, throttled.code()),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_login_attempts")
    );
    let wait: u64 = throttled.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=node::limits::LOGIN_LOCK_SECONDS_MAX).contains(&wait));
    // The client waits whatever the username, even a right one.
    let own = login(&bank, &ana.username, PASSWORD).await;
    assert_eq!(own.status, StatusCode::TOO_MANY_REQUESTS, "{}", own.body);
}

#[tokio::test]
async fn wrong_passwords_hold_back_that_username_from_that_client_only() {
    let bank = spawn_bank().await;
    let ana = bank.individual("Ana").await;
    let bia = bank.individual("Bia").await;
    for _ in 0..node::limits::LOGIN_FAILURES_FREE_MAX {
        let wrong = login(&bank, &ana.username, "wrong-password").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
    }
    let throttled = login(&bank, &ana.username, PASSWORD).await;
    assert_eq!(
        (throttled.status, throttled.code()),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_login_attempts")
    );
    let other = login(&bank, &bia.username, PASSWORD).await;
    assert_eq!(
        other.status,
        StatusCode::CREATED,
        "another username from the same client is not held back: {}",
        other.body
    );
}

/// A login or registration straight through reqwest: the helpers refuse any 5xx but
/// `bank_unavailable`, and this test expects `overloaded`.
async fn raw_post(bank: &TestBank, path: &str, body: serde_json::Value) -> (StatusCode, String) {
    let response = bank
        .http
        .post(format!("{}{path}", bank.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap();
    (
        status,
        body["code"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn a_full_password_hashing_pool_answers_overloaded_at_once() {
    let bank = spawn_bank().await;
    let ana = bank.individual("Ana").await;
    let state = bank.running.as_ref().unwrap().state.clone();
    let places = node::limits::HASHING_THREADS_MAX + node::limits::HASHING_QUEUE_MAX;
    let held: Vec<_> = (0..places)
        .map(|_| state.limits.hashing.admit().expect("a free place"))
        .collect();
    assert!(state.limits.hashing.admit().is_none());
    let credentials = json!({"username": ana.username, "password": PASSWORD});
    assert_eq!(
        raw_post(&bank, "/api/v1/sessions", credentials.clone()).await,
        (StatusCode::SERVICE_UNAVAILABLE, "overloaded".into())
    );
    let registration = json!({"name": "Bia", "document": cpf(unique()), "username": format!("u{}", unique()), "password": PASSWORD});
    assert_eq!(
        raw_post(&bank, "/api/v1/customers", registration).await,
        (StatusCode::SERVICE_UNAVAILABLE, "overloaded".into())
    );
    drop(held);
    assert_eq!(
        raw_post(&bank, "/api/v1/sessions", credentials).await.0,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn pix_key_lookups_are_limited_per_customer() {
    let bank = spawn_bank().await;
    let ana = bank.individual("Ana").await;
    let bia = bank.individual("Bia").await;
    let burst = node::limits::PIX_LOOKUPS_BURST_MAX as usize;
    // One lookup a second comes back, so the bound leaves room for a slow machine (the test
    // would have to take over a minute for the bucket to refill this far).
    let mut refused = None;
    for i in 0..burst * 3 {
        let answer = bank
            .get(
                &format!("/api/v1/pix-keys/{}", cpf(unique())),
                Some(&ana.token),
            )
            .await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some((i, answer));
            break;
        }
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::NOT_FOUND, "pix_key_not_found")
        );
    }
    let (at, refused) = refused.expect("lookups are limited");
    assert!(at >= burst, "refused after {at} lookups");
    assert_eq!(refused.code(), "too_many_requests");
    assert!(refused.headers.contains_key("retry-after"));
    let other = bank
        .get(
            &format!("/api/v1/pix-keys/{}", cpf(unique())),
            Some(&bia.token),
        )
        .await;
    assert_eq!(
        other.code(),
        "pix_key_not_found",
        "another customer is not held back"
    );
}

#[tokio::test]
async fn probing_documents_by_registering_them_is_throttled() {
    let bank = spawn_bank().await;
    let ana = bank.individual("Ana").await;
    let free = node::limits::REGISTRATION_REFUSALS_FREE_MAX;
    for i in 0..free {
        let answer = bank
            .post(
                "/api/v1/customers",
                json!({"name": "Eve", "document": ana.document, "username": format!("eve{}", unique()), "password": PASSWORD}),
                None,
            )
            .await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::CONFLICT, "duplicate_document"),
            "attempt {i}"
        );
    }
    let throttled = bank
        .post(
            "/api/v1/customers",
            json!({"name": "Eve", "document": cpf(unique()), "username": format!("eve{}", unique()), "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(
        (throttled.status, throttled.code()),
        (
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_registration_attempts"
        )
    );
    assert!(throttled.headers.contains_key("retry-after"));
}

/// How many sessions the bank's ledger file holds.
fn sessions_on_disk(bank: &TestBank) -> i64 {
    let db = rusqlite::Connection::open_with_flags(
        bank.dir.path().join("ledger.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    db.query_row("SELECT COUNT(*) FROM sessions", [], |row| row.get(0))
        .unwrap()
}

#[tokio::test]
async fn expired_sessions_are_purged_as_customers_log_in() {
    let bank =
        spawn_bank_with(|config| config.session_ttl = std::time::Duration::from_secs(1)).await;
    let ana = bank.individual("Ana").await;
    let _bia = bank.individual("Bia").await;
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    let again = login(&bank, &ana.username, PASSWORD).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_eq!(
        sessions_on_disk(&bank),
        1,
        "both expired sessions are gone, the new one stays"
    );
    let token = again.body["token"].as_str().unwrap();
    assert_eq!(
        bank.get("/api/v1/me", Some(token)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn live_sessions_are_not_purged() {
    let bank = spawn_bank().await;
    let ana = bank.individual("Ana").await;
    let again = login(&bank, &ana.username, PASSWORD).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_eq!(sessions_on_disk(&bank), 2);
    assert_eq!(
        bank.get("/api/v1/me", Some(&ana.token)).await.status,
        StatusCode::OK
    );
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn the_ledger_and_the_demo_tokens_are_readable_only_by_their_owner() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bank").join("data");
    let running = node::start(config(&data)).await.unwrap();
    let bank = TestBank {
        url: running.url(),
        running: Some(running),
        http: reqwest::Client::new(),
        dir: tempfile::tempdir().unwrap(),
    };
    // A write, so the write-ahead log exists too.
    bank.individual("Ana").await;
    assert_eq!(mode(&data), 0o700, "the data folder");
    assert_eq!(
        mode(&dir.path().join("bank")),
        0o700,
        "a folder made for it"
    );
    for file in ["ledger.db", "ledger.db-wal", "ledger.db-shm"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    let TestBank { running, .. } = bank;
    running.unwrap().stop().await.unwrap();

    let demo = dir.path().join("demo");
    let (banks, _) = node::demo::start(&demo, None).await.unwrap();
    assert_eq!(mode(&demo), 0o700, "the demo folder");
    assert_eq!(
        mode(&demo.join("demo.json")),
        0o600,
        "demo.json holds operator tokens"
    );
    for bank in banks {
        let code = bank.state.bank.to_string();
        assert_eq!(mode(&demo.join(&code)), 0o700, "{code}'s folder");
        assert_eq!(
            mode(&demo.join(&code).join("ledger.db")),
            0o600,
            "{code}'s ledger"
        );
        bank.stop().await.unwrap();
    }
}

/// Accepts every invitation `customer` has pending; the accounts they now hold, as answered.
pub async fn accept_invitations(bank: &TestBank, customer: &Customer) -> Vec<serde_json::Value> {
    let listed = bank.get("/api/v1/invitations", Some(&customer.token)).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let mut accepted = Vec::new();
    for invitation in listed.body["received"].as_array().unwrap() {
        if invitation["status"] != "pending" {
            continue;
        }
        let id = invitation["id"].as_str().unwrap();
        let answer = bank
            .post(
                &format!("/api/v1/invitations/{id}/accept"),
                json!({}),
                Some(&customer.token),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        accepted.push(answer.body);
    }
    accepted
}

fn usernames(holders: &serde_json::Value) -> Vec<String> {
    holders
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["username"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_joint_account_holds_a_co_holder_only_once_they_accept() {
    let bank = spawn_bank().await;
    let ana = bank.individual("Ana").await;
    let beto = bank.individual("Beto").await;
    let carla = bank.individual("Carla").await;
    let company = bank.register("Padaria", &cnpj(unique())).await;
    let open = |co_holders: Vec<&str>| {
        bank.post(
            "/api/v1/accounts",
            json!({"kind": "joint", "co_holders": co_holders, "opening_deposit": "100.00"}),
            Some(&ana.token),
        )
    };
    let opened = open(vec![&beto.username, &carla.username]).await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.body);
    assert_eq!(
        usernames(&opened.body["holders"]),
        [ana.username.as_str()],
        "no one is named a holder, nor shown, without consent"
    );
    assert!(!opened.body.to_string().contains("Beto"));
    let number = opened.body["number"].as_str().unwrap().to_string();
    let base = format!("/api/v1/accounts/{BANK}/{number}");

    // Before accepting, Beto neither holds nor sees it.
    let me = bank.get("/api/v1/me", Some(&beto.token)).await;
    assert_eq!(me.body["accounts"], json!([]));
    let read = bank.get(&base, Some(&beto.token)).await;
    assert_eq!(read.code(), "account_not_found");
    let withdraw = bank
        .post(
            &format!("{base}/withdrawals"),
            json!({"amount": "1.00"}),
            Some(&beto.token),
        )
        .await;
    assert_eq!(withdraw.code(), "account_not_found");

    // Unknown users and companies are invited alike: nothing tells them from customers.
    let unknown = open(vec!["nobody-registered"]).await;
    let known = open(vec![&beto.username]).await;
    let firm = open(vec![&company.username]).await;
    for answer in [&unknown, &known, &firm] {
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        assert_eq!(usernames(&answer.body["holders"]), [ana.username.as_str()]);
    }
    let sent = bank.get("/api/v1/invitations", Some(&ana.token)).await;
    let sent = sent.body["sent"].as_array().unwrap().clone();
    assert_eq!(sent.len(), 5);
    for invitation in &sent {
        assert_eq!(invitation["status"], "pending", "{invitation}");
        assert_eq!(invitation["from"]["username"], ana.username.as_str());
    }
    let fields = |i: &serde_json::Value| {
        let mut keys: Vec<String> = i.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(
        fields(&sent[2]),
        fields(&sent[3]),
        "same shape for nobody and somebody"
    );

    // Beto's invitations name Ana and the account; Carla cannot answer Beto's.
    let received = bank.get("/api/v1/invitations", Some(&beto.token)).await;
    let received = received.body["received"].as_array().unwrap().clone();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0]["from"]["name"], "Ana");
    assert_eq!(received[0]["account"]["number"], number.as_str());
    let first = received[0]["id"].as_str().unwrap();
    let stolen = bank
        .post(
            &format!("/api/v1/invitations/{first}/accept"),
            json!({}),
            Some(&carla.token),
        )
        .await;
    assert_eq!(
        (stolen.status, stolen.code()),
        (StatusCode::NOT_FOUND, "invitation_not_found")
    );
    let accepted = bank
        .post(
            &format!("/api/v1/invitations/{first}/accept"),
            json!({}),
            Some(&beto.token),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::CREATED, "{}", accepted.body);
    assert_eq!(
        usernames(&accepted.body["holders"]),
        [ana.username.as_str(), beto.username.as_str()]
    );
    let again = bank
        .post(
            &format!("/api/v1/invitations/{first}/accept"),
            json!({}),
            Some(&beto.token),
        )
        .await;
    assert_eq!(
        again.code(),
        "invitation_not_found",
        "an invitation is answered once"
    );
    let withdraw = bank
        .post(
            &format!("{base}/withdrawals"),
            json!({"amount": "1.00"}),
            Some(&beto.token),
        )
        .await;
    assert_eq!(withdraw.status, StatusCode::CREATED, "{}", withdraw.body);

    // Carla declines: she never holds it, and Ana sees the answer.
    let carla_received = bank.get("/api/v1/invitations", Some(&carla.token)).await;
    let carla_id = carla_received.body["received"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let declined = bank
        .post(
            &format!("/api/v1/invitations/{carla_id}/decline"),
            json!({}),
            Some(&carla.token),
        )
        .await;
    assert_eq!(declined.status, StatusCode::NO_CONTENT, "{}", declined.body);
    assert_eq!(
        bank.get(&base, Some(&carla.token)).await.code(),
        "account_not_found"
    );
    let account = bank.get(&base, Some(&ana.token)).await;
    assert_eq!(
        usernames(&account.body["holders"]),
        [ana.username.as_str(), beto.username.as_str()]
    );
    let sent = bank.get("/api/v1/invitations", Some(&ana.token)).await;
    let statuses: Vec<&str> = sent.body["sent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["accepted", "declined", "pending", "pending", "pending"]
    );
    for bad in ["0", "-1", "abc", "99999"] {
        let answer = bank
            .post(
                &format!("/api/v1/invitations/{bad}/accept"),
                json!({}),
                Some(&beto.token),
            )
            .await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::NOT_FOUND, "invitation_not_found"),
            "{bad}"
        );
    }
    bank.audit().await;
}

async fn trail(bank: &TestBank, query: &str) -> Vec<serde_json::Value> {
    let answer = bank
        .get(
            &format!("/api/v1/audit/events{query}"),
            Some(OPERATOR_TOKEN),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body["events"].as_array().unwrap().clone()
}

fn kinds(events: &[serde_json::Value]) -> Vec<&str> {
    events.iter().map(|e| e["kind"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn the_operator_reads_a_trail_of_logins_refusals_and_calls() {
    let peer_key = node::config::generate_key();
    let public = node::config::public_key_hex(&peer_key);
    let mut bank = spawn_bank_with(|config| config.peers[0].public_key = public).await;
    let ana = bank.individual("Ana").await;
    let wrong = login(&bank, &ana.username, "wrong-password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let out = bank
        .delete("/api/v1/sessions/current", Some(&ana.token))
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let stale = bank.get("/api/v1/me", Some(&ana.token)).await;
    assert_eq!(stale.code(), "unauthenticated");
    let refused = bank.get("/api/v1/audit", Some("not-the-operator")).await;
    assert_eq!(refused.code(), "operator_only");
    bank.audit().await;

    // Another bank's signed request, and one signed by nobody.
    let path = format!("/interbank/v1/pix-keys/{}", cpf(unique()));
    let peer = ledger::BankCode::parse("20000002").unwrap();
    let mut signed = bank.http.get(format!("{}{path}", bank.url));
    let me = ledger::BankCode::parse(BANK).unwrap();
    for (name, value) in
        node::interbank::signing::sign(&peer_key, peer, me, "GET", &path, b"", store::wall_ms())
    {
        signed = signed.header(name, value);
    }
    assert_ne!(
        signed.send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let forged = bank
        .http
        .get(format!("{}{path}", bank.url))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);

    let events = trail(&bank, "?limit=1000").await;
    assert_eq!(
        kinds(&events),
        [
            "login",
            "login_failed",
            "logout",
            "session_refused",
            "operator_refused",
            "operator_call",
            "interbank_request",
            "interbank_refused",
            "operator_call",
        ],
        "{events:#?}"
    );
    for event in &events[..3] {
        assert_eq!(event["actor"], ana.username.as_str());
        assert_eq!(event["client"], "127.0.0.1");
    }
    assert_eq!(events[3]["detail"], "GET /api/v1/me");
    assert_eq!(events[3]["client"], "127.0.0.1");
    assert_eq!(events[4]["detail"], "GET /api/v1/audit");
    assert_eq!(events[6]["actor"], "20000002", "the signer");
    assert!(
        events[7]["detail"]
            .as_str()
            .unwrap()
            .contains("/interbank/v1/pix-keys/")
    );
    assert!(
        events
            .iter()
            .all(|e| e["at"].as_str().is_some_and(|at| at.ends_with('Z')))
    );

    // Customers cannot read it; limits are checked; it is kept across restarts, 0600.
    let customer = bank
        .get(
            "/api/v1/audit/events",
            Some(&bank.individual("Bia").await.token),
        )
        .await;
    assert_eq!(customer.code(), "operator_only");
    for bad in ["0", "1001", "x"] {
        let answer = bank
            .get(
                &format!("/api/v1/audit/events?limit={bad}"),
                Some(OPERATOR_TOKEN),
            )
            .await;
        assert_eq!(answer.code(), "invalid_limit", "{bad}");
    }
    // A read of the trail is an operator call too, recorded before it reads.
    let last_two = trail(&bank, "?limit=2").await;
    assert_eq!(kinds(&last_two), ["operator_call", "operator_call"]);
    assert_eq!(last_two[1]["detail"], "GET /api/v1/audit/events");
    let all = trail(&bank, "?limit=1000").await;
    let customer_read = &all[all.len() - 6];
    assert_eq!(
        (
            customer_read["kind"].as_str(),
            customer_read["detail"].as_str()
        ),
        (Some("operator_refused"), Some("GET /api/v1/audit/events"))
    );
    let before = trail(&bank, "?limit=1000").await.len();
    bank.restart().await;
    let after = trail(&bank, "?limit=1000").await;
    assert_eq!(kinds(&after[..3]), ["login", "login_failed", "logout"]);
    assert!(after.len() > before, "appended to, never rewritten");
    assert_eq!(mode(&bank.dir.path().join("security.log")), 0o600);
}

#[tokio::test]
async fn the_openapi_document_describes_invitations_and_the_trail() {
    let bank = spawn_bank().await;
    let openapi = bank.get("/api/v1/openapi.json", None).await;
    for path in [
        "/api/v1/invitations",
        "/api/v1/invitations/{id}/accept",
        "/api/v1/invitations/{id}/decline",
        "/api/v1/audit/events",
    ] {
        assert!(openapi.body["paths"].get(path).is_some(), "{path}");
    }
    for schema in [
        "Invitations",
        "Invitation",
        "SecurityEvents",
        "SecurityEvent",
    ] {
        assert!(
            openapi.body["components"]["schemas"].get(schema).is_some(),
            "{schema}"
        );
    }
}

#[tokio::test]
async fn wrong_passwords_sent_at_once_are_checked_no_more_than_the_free_failures() {
    let bank = spawn_bank().await;
    let ana = bank.individual("Ana").await;
    let free = node::limits::LOGIN_FAILURES_FREE_MAX as usize;
    // Each attempt counts while it is checked, so whatever the timing at most `free` wrong
    // passwords are tried before the pair waits.
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..free * 3 {
        let (url, username) = (bank.url.clone(), ana.username.clone());
        attempts.spawn(async move {
            reqwest::Client::new()
                .post(format!("{url}/api/v1/sessions"))
                .json(&json!({"username": username, "password": "wrong-password"}))
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    let mut checked = 0;
    while let Some(status) = attempts.join_next().await {
        match status.unwrap() {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        (1..=free).contains(&checked),
        "{checked} wrong passwords were checked"
    );
}
