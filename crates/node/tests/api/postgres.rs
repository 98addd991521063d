//! Several `bankd` of one bank on one PostgreSQL database, as real processes (the server is the
//! tests' own: `cargo xtask test` starts it; without it these tests skip loudly, and fail under
//! CI). They behave as one bank: money is conserved under concurrent transfers and packages sent
//! to either, no balance goes negative, an Idempotency-Key sent to both at once executes once,
//! the audit is clean at each; one process holds the bank's duties and another takes them over
//! when it is killed.

use crate::helpers::{
    BANK, Bankd, OPERATOR_TOKEN, PASSWORD, bankd_serve, cpf, listening, start_bankd, unique,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use store::postgres::testing::TestDatabase;

/// One bank's processes: the folder of the directory's file they share, the database, and
/// each process's own folder.
struct Bank {
    shared: tempfile::TempDir,
    database: TestDatabase,
    folders: std::sync::Mutex<Vec<tempfile::TempDir>>,
}

impl Bank {
    fn create(name: &str) -> Option<Bank> {
        Some(Bank {
            shared: tempfile::tempdir().unwrap(),
            database: TestDatabase::create(name)?,
            folders: Default::default(),
        })
    }

    /// A `bankd` of bank `BANK` with a folder of its own (its security trail), its ledger in
    /// the bank's database and the bank's directory file.
    fn start(&self) -> Bankd {
        let folder = tempfile::tempdir().unwrap();
        let directory = self.shared.path().join("directory.db");
        let bankd = start_bankd(
            folder.path(),
            &[
                ("BANKD_DATABASE_URL", self.database.url()),
                ("BANKD_DIRECTORY_FILE", directory.to_str().unwrap()),
                ("BANKD_WORKERS", "2"),
            ],
        );
        self.folders.lock().unwrap().push(folder);
        bankd
    }
}

fn http() -> reqwest::Client {
    node::tls::install_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn account(number: &str) -> Value {
    json!({"bank": BANK, "number": number})
}

fn cents(amount: &Value) -> i64 {
    let text = amount
        .as_str()
        .unwrap_or_else(|| panic!("not an amount: {amount}"));
    let (units, hundredths) = text.split_once('.').unwrap();
    units.parse::<i64>().unwrap() * 100 + hundredths.parse::<i64>().unwrap()
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    path: &str,
    body: Value,
    token: Option<&str>,
    key: &str,
) -> (StatusCode, Value) {
    let mut request = http
        .post(format!("{url}{path}"))
        .header("Idempotency-Key", key)
        .json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(http: &reqwest::Client, url: &str, path: &str, token: &str) -> Value {
    let response = http
        .get(format!("{url}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    response.json().await.unwrap()
}

/// A customer registered (at `url`) with one account opened with `deposit`: its token and the
/// account's number.
async fn customer(http: &reqwest::Client, url: &str, deposit: &str) -> (String, String) {
    let username = format!("pg{}", unique());
    let (status, body) = post(
        http,
        url,
        "/api/v1/customers",
        json!({"name": format!("Cliente {username}"), "document": cpf(unique()), "username": username, "password": PASSWORD}),
        None,
        &format!("reg-{username}"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, login) = post(
        http,
        url,
        "/api/v1/sessions",
        json!({"username": username, "password": PASSWORD}),
        None,
        &format!("login-{username}"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{login}");
    let token = login["token"].as_str().unwrap().to_string();
    let (status, opened) = post(
        http,
        url,
        "/api/v1/accounts",
        json!({"kind": "individual", "opening_deposit": deposit}),
        Some(&token),
        &format!("open-{username}"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{opened}");
    (token, opened["number"].as_str().unwrap().to_string())
}

async fn audit_is_clean(http: &reqwest::Client, url: &str) -> Value {
    let audit = get(http, url, "/api/v1/audit", OPERATOR_TOKEN).await;
    assert_eq!(audit["ok"], json!(true), "audit at {url}: {audit}");
    audit
}

const ACCOUNTS: usize = 8;
const CLIENTS: usize = 32;
const OPERATIONS_PER_CLIENT: usize = 25;
/// Each account's opening deposit, in centavos.
const OPENING: i64 = 100_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_bankd_on_one_database_behave_as_one_bank() {
    let Some(bank) = Bank::create("two_bankd_one_bank") else {
        return;
    };
    let (a, b) = (bank.start(), bank.start());
    let urls = [a.url.clone(), b.url.clone()];
    let http = http();
    // Customers come in through either process, all at once: two processes open accounts
    // together, and each account still gets a number of its own.
    let opening: Vec<_> = (0..ACCOUNTS)
        .map(|i| {
            let (http, url) = (http.clone(), urls[i % 2].clone());
            tokio::spawn(async move { customer(&http, &url, "1000.00").await })
        })
        .collect();
    let mut accounts = Vec::new();
    for opened in opening {
        accounts.push(opened.await.unwrap());
    }

    // 32 clients over both processes: transfers and packages between random accounts, money
    // the payer may not have (refused, changing nothing).
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (http, accounts, urls) = (http.clone(), accounts.clone(), urls.clone());
            tokio::spawn(async move {
                let mut moved = 0usize;
                for i in 0..OPERATIONS_PER_CLIENT {
                    let from = (client + i) % ACCOUNTS;
                    let to = (from + 1 + (client * 7 + i * 3) % (ACCOUNTS - 1)) % ACCOUNTS;
                    let (token, payer) = &accounts[from];
                    let payee = &accounts[to].1;
                    let amount_cents = 1 + (client * 7_919 + i * 104_729) % 40_000;
                    let amount = format!("{}.{:02}", amount_cents / 100, amount_cents % 100);
                    let (path, body) = if i % 4 == 3 {
                        (
                            "/api/v1/packages",
                            json!({"operations": [
                                {"type": "transfer", "account": account(payer), "amount": amount, "to": account(payee)},
                                {"type": "transfer", "account": account(payer), "amount": "0.01", "to": account(payee)},
                            ]}),
                        )
                    } else {
                        (
                            "/api/v1/transfers",
                            json!({"from": account(payer), "to": account(payee), "amount": amount}),
                        )
                    };
                    let url = &urls[(client + i) % 2];
                    let key = format!("load-{client}-{i}");
                    let (status, answer) = post(&http, url, path, body, Some(token), &key).await;
                    match status {
                        StatusCode::CREATED => moved += 1,
                        StatusCode::UNPROCESSABLE_ENTITY => {
                            assert_eq!(answer["code"], "insufficient_funds", "{answer}")
                        }
                        _ => panic!("{path} at {url}: {status} {answer}"),
                    }
                }
                moved
            })
        })
        .collect();
    let mut moved = 0;
    for task in tasks {
        moved += task.await.unwrap();
    }
    assert!(
        moved > CLIENTS,
        "the clients moved money ({moved} operations)"
    );

    // One Idempotency-Key sent to both processes at once: executed once, one answer.
    let (token, payer) = &accounts[0];
    let payee = &accounts[1].1;
    let body = json!({"from": account(payer), "to": account(payee), "amount": "0.50"});
    let (first, second) = tokio::join!(
        post(
            &http,
            &urls[0],
            "/api/v1/transfers",
            body.clone(),
            Some(token),
            "same-key-both"
        ),
        post(
            &http,
            &urls[1],
            "/api/v1/transfers",
            body.clone(),
            Some(token),
            "same-key-both"
        ),
    );
    assert_eq!(first.0, second.0, "{first:?} / {second:?}");
    if first.0 == StatusCode::CREATED {
        assert_eq!(first.1["id"], second.1["id"], "two transfers under one key");
    }

    // Each process makes its own end-to-end ids: they carry its slot (their first sequence
    // character), so two processes never make the same one.
    let mut slots = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let (status, made) = post(
            &http,
            url,
            "/api/v1/transfers",
            json!({"from": account(payer), "to": account(payee), "amount": "0.01"}),
            Some(token),
            &format!("slot-{i}"),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{made}");
        let id = made["id"].as_str().unwrap().to_owned();
        slots.push(id.as_bytes()[21]);
    }
    assert!(
        slots[0] != slots[1] && !slots.contains(&b'0'),
        "slots {slots:?}"
    );

    // Conservation: the customers hold what was deposited, none below zero, at either process.
    for url in &urls {
        let mut total = 0;
        for (token, number) in &accounts {
            let shown = get(
                &http,
                url,
                &format!("/api/v1/accounts/{BANK}/{number}"),
                token,
            )
            .await;
            let (balance, available) = (cents(&shown["balance"]), cents(&shown["available"]));
            assert!(balance >= 0 && available >= 0, "{shown}");
            total += balance;
        }
        assert_eq!(
            total,
            OPENING * ACCOUNTS as i64,
            "money was made or lost (at {url})"
        );
        audit_is_clean(&http, url).await;
    }
    drop((a, b));
}

async fn holds_duties(http: &reqwest::Client, url: &str) -> Option<bool> {
    let response = http.get(format!("{url}/health")).send().await.ok()?;
    let health: Value = response.json().await.ok()?;
    health["duties"].as_bool()
}

/// How long a takeover may take: the lease's life, a few tries, and a slow machine's delays.
const TAKEOVER_MAX: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_the_duty_holder_is_killed_another_bankd_takes_the_duties_over() {
    let Some(bank) = Bank::create("duty_takeover_bankd") else {
        return;
    };
    let a = bank.start();
    let http = http();
    // The first process takes the duties at start; the second finds them held.
    assert_eq!(holds_duties(&http, &a.url).await, Some(true));
    let b = bank.start();
    assert_eq!(holds_duties(&http, &b.url).await, Some(false));
    let (token, number) = customer(&http, &a.url, "50.00").await;
    let through_a = registered(&http, &a.url).await;
    let through_b = registered(&http, &b.url).await;
    drop(a); // kill -9
    let killed = Instant::now();
    while holds_duties(&http, &b.url).await != Some(true) {
        assert!(
            killed.elapsed() < TAKEOVER_MAX,
            "no process took the duties over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The survivor serves the bank: what was written through the dead one is there, and the
    // ledger is sound.
    let shown = get(
        &http,
        &b.url,
        &format!("/api/v1/accounts/{BANK}/{number}"),
        &token,
    )
    .await;
    assert_eq!(shown["balance"], "50.00");
    audit_is_clean(&http, &b.url).await;
    // It runs the bank's member of the directory now: the people registered through the dead
    // process and through it log in, and new people register.
    logs_in(&http, &b.url, &through_a).await;
    logs_in(&http, &b.url, &through_b).await;
    let newcomer = registered(&http, &b.url).await;
    // A process started now finds them held by the survivor, and knows who registered there.
    let c = bank.start();
    assert_eq!(holds_duties(&http, &c.url).await, Some(false));
    assert_eq!(holds_duties(&http, &b.url).await, Some(true));
    logs_in(&http, &c.url, &newcomer).await;
    drop((b, c));
}

/// Registers a new person at `url`; their username.
async fn registered(http: &reqwest::Client, url: &str) -> String {
    let username = format!("pg{}", unique());
    let registration = json!({"name": "Ana Duas", "document": cpf(unique()), "username": username, "password": PASSWORD});
    let key = format!("reg-{username}");
    let (status, body) = post(http, url, "/api/v1/customers", registration, None, &key).await;
    assert_eq!(status, StatusCode::CREATED, "registration at {url}: {body}");
    username
}

async fn logs_in(http: &reqwest::Client, url: &str, username: &str) {
    let credentials = json!({"username": username, "password": PASSWORD});
    let key = format!("login-{username}-{}", unique());
    let (status, login) = post(http, url, "/api/v1/sessions", credentials, None, &key).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{username} logging in at {url}: {login}"
    );
}

/// A person registered through one bankd of the bank is the same person at the other: they log
/// in there, and nobody registers their document or username again there, through either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_registered_through_one_bankd_is_known_at_the_other() {
    let Some(bank) = Bank::create("two_bankd_one_directory") else {
        return;
    };
    let (a, b) = (bank.start(), bank.start());
    let http = http();
    // Through the process that runs the directory's member, and through the other one.
    for (at, other) in [(&a.url, &b.url), (&b.url, &a.url)] {
        let username = format!("pg{}", unique());
        let document = cpf(unique());
        let registration = json!({"name": "Ana Duas", "document": document, "username": username, "password": PASSWORD});
        let key = format!("reg-{username}");
        let (status, body) = post(&http, at, "/api/v1/customers", registration, None, &key).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        logs_in(&http, other, &username).await;
        let same_document = json!({"name": "Ana Outra", "document": document, "username": format!("{username}x"), "password": PASSWORD});
        let (status, body) = post(
            &http,
            other,
            "/api/v1/customers",
            same_document,
            None,
            &format!("{key}-again"),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        let same_username = json!({"name": "Ana Outra", "document": cpf(unique()), "username": username, "password": PASSWORD});
        let (status, body) = post(
            &http,
            other,
            "/api/v1/customers",
            same_username,
            None,
            &format!("{key}-name"),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
    }
    drop((a, b));
}

/// A consortium file listing this bank (with a key made by `bankd keygen` in `dir`) and one
/// other bank that is not running: (the file, this bank's key file).
fn consortium_of_two(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let keygen = |name: &str| {
        let path = dir.join(name);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bankd"))
            .arg("keygen")
            .arg("--out")
            .arg(&path)
            .output()
            .expect("bankd keygen runs");
        assert!(out.status.success(), "{out:?}");
        (
            path,
            String::from_utf8(out.stdout).unwrap().trim().to_owned(),
        )
    };
    let (key, public) = keygen("bank.key");
    let (_, other) = keygen("other.key");
    let file = dir.join("consortium.toml");
    let text = format!(
        "[[bank]]\ncode = \"{BANK}\"\nname = \"Banco Um\"\nurl = \"http://127.0.0.1:9\"\npublic_key = \"{public}\"\n\n\
         [[bank]]\ncode = \"20000002\"\nname = \"Banco Dois\"\nurl = \"http://127.0.0.1:9\"\npublic_key = \"{other}\"\n"
    );
    std::fs::write(&file, text).unwrap();
    (file, key)
}

/// `bankd serve` of bank `BANK` in `dir`, and a thread gathering its standard error (read as
/// it comes, so the process never blocks on a full pipe).
fn serve(
    dir: &Path,
    env: &[(&str, &str)],
) -> (std::process::Child, std::thread::JoinHandle<String>) {
    let mut child = bankd_serve(dir, env)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("bankd starts");
    let mut stderr = child.stderr.take().unwrap();
    let said = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    (child, said)
}

/// Waits (at most 30 s) for a bankd started by [`serve`] to exit: whether it succeeded, and
/// what it wrote to its standard error. Panics, having killed it, if it is still running.
async fn exit_of(
    (mut child, said): (std::process::Child, std::thread::JoinHandle<String>),
    doing: &str,
) -> (bool, String) {
    let until = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{doing}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    (status.success(), said.join().unwrap())
}

/// In a consortium a second bankd of the bank on the same database starts as a front of the
/// first (which holds the bank's duties); a holder that loses the duties while running stops,
/// and a front that cannot reach a holder answers what only the holder serves with 503.
#[tokio::test]
async fn in_a_consortium_a_second_bankd_is_a_front_and_a_holder_that_loses_the_duties_stops() {
    let Some(bank) = Bank::create("fronts_in_a_consortium") else {
        return;
    };
    let files = tempfile::tempdir().unwrap();
    let (consortium, key) = consortium_of_two(files.path());
    let directory = bank.shared.path().join("directory.db");
    let env = [
        ("BANKD_DATABASE_URL", bank.database.url()),
        ("BANKD_DIRECTORY_FILE", directory.to_str().unwrap()),
        ("BANKD_CONSORTIUM", consortium.to_str().unwrap()),
        ("BANKD_KEY_FILE", key.to_str().unwrap()),
    ];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = serve(dir_a.path(), &env);
    let a_url = listening(&mut a.0);
    let http = http();
    assert_eq!(holds_duties(&http, &a_url).await, Some(true));
    let b = start_bankd(dir_b.path(), &env);
    assert_eq!(holds_duties(&http, &b.url).await, Some(false));
    // Another process takes the lease (as one would after the holder's database connection
    // was cut for longer than the lease): the holder stops; the front goes on.
    let settings = store::postgres::connect_config(bank.database.url()).unwrap();
    let client = store::postgres::connect(&settings).await.unwrap();
    client
        .execute(
            "UPDATE duty_leases SET holder = 'another', expires_at = now() + INTERVAL '1 hour'",
            &[],
        )
        .await
        .unwrap();
    let (ok, said) = exit_of(a, "a bankd that lost the duties went on running").await;
    assert!(!ok && said.contains("lost its bank's duties"), "{said}");
    assert_eq!(holds_duties(&http, &b.url).await, Some(false));
    let (status, body) = post(
        &http,
        &b.url,
        "/api/v1/transfers",
        json!({"from": account("1-0"), "to": account("2-0"), "amount": "1.00"}),
        None,
        "front-without-holder",
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "duty_holder_unavailable", "{body}");
}

/// The bank's processes share one directory file: one given another file than the holder's
/// (here each its own, in its own folder, as without `BANKD_DIRECTORY_FILE`) would read a copy
/// nobody writes, so it refuses to start and says why.
#[tokio::test]
async fn a_bankd_given_another_directory_file_than_the_holders_refuses_to_start() {
    let Some(db) = TestDatabase::create("two_directory_files") else {
        return;
    };
    let env = [("BANKD_DATABASE_URL", db.url())];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start_bankd(dir_a.path(), &env);
    assert_eq!(holds_duties(&http(), &a.url).await, Some(true));
    let second = serve(dir_b.path(), &env);
    let (ok, said) = exit_of(second, "a bankd with a directory file of its own started").await;
    assert!(!ok && said.contains("shares one directory file"), "{said}");
    drop(a);
}

/// A session ended through one bankd of the bank ends at the other too (within the second
/// that a process sharing its ledger trusts a session it read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_through_one_bankd_ends_the_session_at_the_other() {
    let Some(bank) = Bank::create("logout_across_bankd") else {
        return;
    };
    let (a, b) = (bank.start(), bank.start());
    let http = http();
    let (token, _) = customer(&http, &a.url, "50.00").await;
    // Both processes have read the session.
    for url in [&a.url, &b.url] {
        get(&http, url, "/api/v1/me", &token).await;
    }
    let response = http
        .delete(format!("{}/api/v1/sessions/current", b.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let ended = Instant::now();
    loop {
        let status = http
            .get(format!("{}/api/v1/me", a.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status();
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            ended.elapsed() < Duration::from_secs(10),
            "the session still works at the other bankd"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
