//! The typed client against a real bank: every call decodes the bank's answer, carries the
//! bank's clock, replays by `Idempotency-Key`, and tells a refusal from an unavailable bank.

use client::{Client, ClientError, Payment};

const BANK: &str = "10000001";
const OPERATOR_TOKEN: &str = "operator-token-for-tests-0001";
const PASSWORD: &str = "correct-horse-9";

async fn spawn_bank(dir: &std::path::Path) -> node::RunningBank {
    let config = node::config::Config::local(
        ledger::BankCode::parse(BANK).unwrap(),
        "Banco Teste",
        dir,
        OPERATOR_TOKEN,
    );
    node::start(config).await.unwrap()
}

/// A valid CPF built from `seed` (its first nine digits), with its two check digits.
fn cpf(seed: u64) -> String {
    let mut digits: Vec<u32> = format!("{:09}", seed % 1_000_000_000)
        .chars()
        .map(|c| c.to_digit(10).unwrap())
        .collect();
    for n in [10u32, 11] {
        let sum: u32 = digits.iter().zip((2..=n).rev()).map(|(d, w)| d * w).sum();
        let rest = sum * 10 % 11;
        digits.push(if rest == 10 { 0 } else { rest });
    }
    digits
        .iter()
        .map(|d| char::from_digit(*d, 10).unwrap())
        .collect()
}

/// Registers and logs in `username`, opening one account with `deposit`.
async fn customer(
    url: &str,
    username: &str,
    seed: u64,
    deposit: &str,
) -> (Client, wire::AccountRef) {
    let anonymous = Client::new(url).unwrap();
    let registered = anonymous
        .register(
            &wire::RegisterCustomer {
                name: format!("Cliente {username}"),
                document: cpf(seed),
                username: username.into(),
                password: PASSWORD.into(),
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(registered.status, 201);
    assert_eq!(registered.value.home_bank, BANK);
    let session = anonymous
        .login(&wire::Credentials {
            username: username.into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap();
    let client = anonymous.with_token(session.value.token);
    let account = client
        .open_account(
            &wire::OpenAccount {
                kind: "individual".into(),
                co_holders: Vec::new(),
                opening_deposit: deposit.into(),
            },
            None,
        )
        .await
        .unwrap()
        .value;
    (
        client,
        wire::AccountRef {
            bank: account.bank,
            number: account.number,
        },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_decode_carry_the_clock_and_replay_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let bank = spawn_bank(dir.path()).await;
    let (ana, a) = customer(&bank.url(), "ana", 123_123_123, "100.00").await;
    let (beto, b) = customer(&bank.url(), "beto", 321_321_321, "50.00").await;

    let me = ana.me().await.unwrap();
    assert_eq!(me.value.customer.username, "ana");
    assert_eq!(me.value.accounts.len(), 1);
    assert!(me.clock.is_some(), "every answer carries X-Clock");
    assert_eq!(
        me.json["username"], "ana",
        "the bank's JSON is kept as sent"
    );

    // The same key twice: the first outcome, replayed; with another body: refused.
    let key = client::new_idempotency_key();
    let body = wire::MoneyRequest {
        amount: "10.00".into(),
        description: None,
    };
    let first = ana.deposit(&a, &body, Some(&key)).await.unwrap();
    let again = ana.deposit(&a, &body, Some(&key)).await.unwrap();
    assert!(!first.replayed && again.replayed);
    assert_eq!(first.value.id, again.value.id);
    assert_eq!(again.idempotency_key.as_deref(), Some(key.as_str()));
    assert_eq!(ana.account(&a).await.unwrap().value.balance, "110.00");
    let other = wire::MoneyRequest {
        amount: "11.00".into(),
        description: None,
    };
    let reused = ana.deposit(&a, &other, Some(&key)).await.unwrap_err();
    assert_eq!(reused.code(), Some("idempotency_key_reused"));
    // Without a key of the caller's, every call is a new one.
    ana.deposit(&a, &body, None).await.unwrap();
    ana.deposit(&a, &body, None).await.unwrap();
    assert_eq!(ana.account(&a).await.unwrap().value.balance, "130.00");

    // A refusal is a problem with its code, status and clock.
    let too_much = wire::MoneyRequest {
        amount: "1000.00".into(),
        description: None,
    };
    let refused = ana.withdraw(&a, &too_much, None).await.unwrap_err();
    assert_eq!(refused.code(), Some("insufficient_funds"));
    assert_eq!(refused.status(), Some(422));
    assert!(refused.is_refusal() && !refused.is_unavailable());
    assert!(refused.clock().is_some());
    assert!(!refused.problem().unwrap().detail.is_empty());

    // Keys with characters that must be encoded in a path.
    for (kind, value) in [
        ("email", "beto+pix@example.com"),
        ("phone", "+5511999998888"),
    ] {
        beto.add_pix_key(
            &wire::AddPixKey {
                account: b.clone(),
                kind: kind.into(),
                value: Some(value.into()),
            },
            None,
        )
        .await
        .unwrap();
        let found = ana.lookup_pix_key(value).await.unwrap().value;
        assert_eq!(found.holder_name, "Cliente beto");
        assert_eq!(found.account, None, "only holders see the account");
    }
    assert_eq!(beto.pix_keys().await.unwrap().value.keys.len(), 2);

    // A transfer and a package, each found again by its end-to-end id.
    let paid = ana
        .transfer(
            &wire::TransferRequest {
                from: a.clone(),
                to: wire::Destination {
                    pix_key: Some("beto+pix@example.com".into()),
                    bank: None,
                    number: None,
                },
                amount: "5.00".into(),
                description: Some("café".into()),
            },
            None,
        )
        .await
        .unwrap()
        .value;
    assert_eq!(paid.status, "committed");
    match beto.payment(&paid.id).await.unwrap().value {
        Payment::Transfer(t) => assert_eq!((t.amount.as_str(), t.to), ("5.00", b.clone())),
        other => panic!("a transfer: {other:?}"),
    }
    let package = ana
        .package(
            &wire::PackageRequest {
                operations: vec![wire::OperationRequest {
                    kind: "deposit".into(),
                    account: a.clone(),
                    amount: "1.00".into(),
                    to: None,
                    description: None,
                }],
            },
            None,
        )
        .await
        .unwrap()
        .value;
    assert_eq!(package.status, "committed");
    match ana.payment(&package.id).await.unwrap().value {
        Payment::Package(p) => assert_eq!(p.results.len(), 1),
        other => panic!("a package: {other:?}"),
    }

    let statement = ana.statement(&a, Some(2), None).await.unwrap().value;
    assert_eq!(statement.entries.len(), 2);
    let older = ana
        .statement(&a, Some(2), statement.next_cursor.as_deref())
        .await
        .unwrap()
        .value;
    assert_ne!(older.entries[0].id, statement.entries[0].id);

    beto.remove_pix_key("+5511999998888", None).await.unwrap();
    assert_eq!(
        ana.lookup_pix_key("+5511999998888")
            .await
            .unwrap_err()
            .code(),
        Some("pix_key_not_found")
    );

    // The operator's audit, the consortium view, health.
    let operator = Client::new(&bank.url()).unwrap().with_token(OPERATOR_TOKEN);
    let audit = operator.audit().await.unwrap().value;
    assert!(audit.ok, "{audit:?}");
    assert_eq!(audit.bank, BANK);
    let forbidden = ana.audit().await.unwrap_err();
    assert!(forbidden.is_refusal(), "{forbidden:?}");
    assert_eq!(ana.consortium().await.unwrap().value.bank, BANK);
    assert_eq!(ana.health().await.unwrap().value.status, "ok");

    ana.logout().await.unwrap();
    assert_eq!(ana.me().await.unwrap_err().status(), Some(401));
    bank.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_bank_is_unavailable_not_a_refusal() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let error = Client::new(&url).unwrap().health().await.unwrap_err();
    assert!(
        matches!(error, ClientError::Unavailable { .. }),
        "{error:?}"
    );
    assert!(error.is_unavailable() && !error.is_refusal());
    assert!(error.to_string().contains(&url), "{error}");
}

/// A lane posts straight onto one kept-alive connection: each call is a new payment under a
/// fresh key, a refusal is the same problem as through the client, and a bank that went away is
/// unavailable.
#[tokio::test(flavor = "multi_thread")]
async fn a_lane_posts_payments_on_its_own_connection() {
    let dir = tempfile::tempdir().unwrap();
    let bank = spawn_bank(dir.path()).await;
    let (ana, a) = customer(&bank.url(), "ana", 123_123_123, "100.00").await;
    let (beto, b) = customer(&bank.url(), "beto", 321_321_321, "50.00").await;
    let mut lane = client::Lane::new(&ana).unwrap();
    let pay = |amount: &str, to: &wire::AccountRef| wire::TransferRequest {
        from: a.clone(),
        to: wire::Destination {
            pix_key: None,
            bank: Some(to.bank.clone()),
            number: Some(to.number.clone()),
        },
        amount: amount.into(),
        description: None,
    };

    for _ in 0..2 {
        let paid: wire::Transfer = lane.post("transfers", &pay("7.50", &b)).await.unwrap();
        assert_eq!(paid.status, "committed", "{paid:?}");
        assert_eq!(paid.amount, "7.50");
    }
    assert_eq!(ana.account(&a).await.unwrap().value.balance, "85.00");
    assert_eq!(beto.account(&b).await.unwrap().value.balance, "65.00");

    let nobody = wire::AccountRef {
        bank: BANK.into(),
        number: ledger::AccountNumber::from_base(999_999)
            .unwrap()
            .to_string(),
    };
    let refused = lane
        .post::<wire::Transfer>("transfers", &pay("1.00", &nobody))
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(404), "{refused:?}");
    assert_eq!(refused.code(), Some("account_not_found"));
    assert!(refused.clock().is_some(), "the problem carries the clock");
    assert_eq!(ana.account(&a).await.unwrap().value.balance, "85.00");

    bank.stop().await.unwrap();
    let gone = lane
        .post::<wire::Transfer>("transfers", &pay("1.00", &b))
        .await
        .unwrap_err();
    assert!(gone.is_unavailable() && !gone.is_refusal(), "{gone:?}");
    // A lane to an https bank speaks TLS (an_https_bank_is_reached_only_by_a_client_that_trusts_its_ca).
    assert!(client::Lane::new(&Client::new("https://bank.example").unwrap()).is_ok());
}

/// A bank serving HTTPS under a CA of its own (as `bankd demo` makes): the CA's certificate
/// path, and the bank.
async fn spawn_tls_bank(dir: &std::path::Path) -> (std::path::PathBuf, node::RunningBank) {
    let (ca_path, files) = node::tls::write_ca_and_cert(dir, "Test CA", "Banco Teste").unwrap();
    let mut config = node::config::Config::local(
        ledger::BankCode::parse(BANK).unwrap(),
        "Banco Teste",
        &dir.join("bank"),
        OPERATOR_TOKEN,
    );
    config.tls = Some(files);
    (ca_path, node::start(config).await.unwrap())
}

/// Over HTTPS, a client that does not trust the bank's CA is refused at the handshake (a
/// certificate error, as unavailable), and so is its lane; one given the CA talks to the bank,
/// through the pool and through a lane.
#[tokio::test(flavor = "multi_thread")]
async fn an_https_bank_is_reached_only_by_a_client_that_trusts_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, bank) = spawn_tls_bank(dir.path()).await;
    let url = bank.url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let stranger = Client::new(&url).unwrap();
    let refused = stranger.health().await.unwrap_err();
    assert!(
        matches!(refused, ClientError::Unavailable { .. }),
        "{refused:?}"
    );
    assert!(
        refused.to_string().contains("certificate"),
        "a certificate error: {refused}"
    );
    let mut stranger_lane = client::Lane::new(&stranger).unwrap();
    let lane_refused = stranger_lane
        .post::<wire::Customer>("customers", &serde_json::json!({}))
        .await
        .unwrap_err();
    assert!(
        lane_refused.to_string().contains("certificate"),
        "a certificate error: {lane_refused}"
    );

    let trust = client::Trust::with_ca_file(&ca).unwrap();
    let trusting = Client::with_trust(&url, &trust).unwrap();
    let health = trusting.health().await.unwrap();
    assert_eq!(health.value.bank, BANK);
    let mut lane = client::Lane::new(&trusting).unwrap();
    let registered: wire::Customer = lane
        .post(
            "customers",
            &wire::RegisterCustomer {
                name: "Cliente Ana".into(),
                document: cpf(456_456_456),
                username: "ana".into(),
                password: PASSWORD.into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(registered.home_bank, BANK);
    bank.stop().await.unwrap();
}
