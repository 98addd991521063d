//! Every subcommand against a real bank, in human and `--json` output.

use crate::helpers::*;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;

/// Every line of a table whose last column is right-aligned has the same width.
#[track_caller]
fn assert_aligned(lines: &[&str]) {
    let widths: Vec<usize> = lines.iter().map(|l| l.chars().count()).collect();
    assert!(
        widths.windows(2).all(|w| w[0] == w[1]),
        "not aligned:\n{}",
        lines.join("\n")
    );
}

/// An RFC 3339 instant as the terminal shows it in [`TZ`] (UTC-03:00).
fn local(rfc3339: &str) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .to_offset(time::UtcOffset::from_hms(-3, 0, 0).unwrap())
        .format(&format)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn register_login_me_accounts_open_logout() {
    let bank = spawn_bank().await;
    let ana = Person::new();
    let document = cpf(111_222_333);

    let registered = ana
        .bank(&[
            "--bank",
            &bank.url,
            "register",
            "--name",
            "Ana Lima",
            "--document",
            &document,
            "--username",
            "ana",
        ])
        .password(PASSWORD)
        .run()
        .await
        .ok();
    registered.stdout_has("Registered Ana Lima as ana (individual) at bank 10000001");

    // --json prints the API's customer; the password may come on standard input.
    let beto = Person::new();
    let registered = beto
        .bank(&[
            "--bank",
            &bank.url,
            "--json",
            "register",
            "--name",
            "Beto Souza",
            "--document",
            &cpf(444_555_666),
            "--username",
            "beto",
        ])
        .stdin(&format!("{PASSWORD}\n"))
        .run()
        .await
        .ok();
    let customer = registered.json();
    assert_eq!(customer["username"], "beto");
    assert_eq!(customer["kind"], "individual");
    assert_eq!(customer["home_bank"], BANK);

    // Login keeps the token in a file only its owner can read.
    let login = ana
        .bank(&["--bank", &bank.url, "login", "ana"])
        .stdin(&format!("{PASSWORD}\n"))
        .run()
        .await
        .ok();
    login.stdout_has("Logged in at");
    login.stdout_has("(UTC-03:00)");
    let session = ana.config_dir().join("session.json");
    let mode = std::fs::metadata(&session).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the session file is the owner's only");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&session).unwrap()).unwrap();
    assert_eq!(saved["url"], bank.url.as_str());
    assert!(saved["token"].as_str().is_some_and(|t| t.len() > 16));
    beto.bank(&["--bank", &bank.url, "--json", "login", "beto"])
        .password(PASSWORD)
        .run()
        .await
        .ok()
        .json()["token"]
        .as_str()
        .expect("the session's token");

    // From here on, no --bank: the session says which bank.
    ana.bank(&["me"])
        .run()
        .await
        .ok()
        .stdout_has("Ana Lima (ana), individual customer of bank 10000001")
        .stdout_has("No accounts yet");

    let opened = ana
        .bank(&["open", "--deposit", "R$ 1.234,56"])
        .run()
        .await
        .ok();
    opened.stdout_has("Opened individual account 10000001/");
    opened.stdout_has("with R$ 1.234,56.");
    let joint = ana
        .bank(&["--json", "open", "--co-holder", "beto", "--deposit", "50"])
        .run()
        .await
        .ok()
        .json();
    assert_eq!(joint["kind"], "joint");
    assert_eq!(joint["balance"], "50.00");
    assert_eq!(
        joint["holders"].as_array().unwrap().len(),
        1,
        "Beto holds it once he accepts"
    );
    ana.bank(&["invitations"])
        .run()
        .await
        .ok()
        .stdout_has("beto")
        .stdout_has("pending");
    let invited = beto
        .bank(&["--json", "invitations"])
        .run()
        .await
        .ok()
        .json();
    let id = invited["received"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(invited["received"][0]["from"]["username"], "ana");
    beto.bank(&["invitations"])
        .run()
        .await
        .ok()
        .stdout_has("Ana Lima (ana)")
        .stdout_has("bank invitations accept ID");
    beto.bank(&["invitations", "accept", &id])
        .run()
        .await
        .ok()
        .stdout_has("You now hold joint account")
        .stdout_has("ana, beto");

    let accounts = ana.bank(&["accounts"]).run().await.ok();
    let lines: Vec<&str> = accounts.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", accounts.stdout);
    assert!(lines[0].starts_with("account"), "{}", accounts.stdout);
    assert!(lines[0].ends_with("available"), "{}", accounts.stdout);
    assert!(accounts.stdout.contains("R$ 1.234,56"));
    assert!(accounts.stdout.contains("ana, beto"));
    assert_aligned(&lines);

    let listed = ana.bank(&["--json", "accounts"]).run().await.ok().json();
    let balances: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["balance"].as_str().unwrap())
        .collect();
    assert_eq!(balances.len(), 2);
    assert!(balances.contains(&"1234.56") && balances.contains(&"50.00"));
    let me = ana.bank(&["--json", "me"]).run().await.ok().json();
    assert_eq!(me["username"], "ana");
    assert_eq!(me["accounts"].as_array().unwrap().len(), 2);
    // Beto sees the joint account too.
    beto.bank(&["me"])
        .run()
        .await
        .ok()
        .stdout_has("joint")
        .stdout_has("R$ 50,00");

    ana.bank(&["logout"])
        .run()
        .await
        .ok()
        .stdout_has("Logged out of");
    assert!(!session.exists(), "logout forgets the token");
    ana.bank(&["me"])
        .run()
        .await
        .code(EXIT_OTHER)
        .stderr_has("not logged in");
    ana.bank(&["logout"])
        .run()
        .await
        .ok()
        .stdout_has("Not logged in.");

    // The bank of the last login is the default for the next one.
    ana.bank(&["login", "ana"])
        .password(PASSWORD)
        .run()
        .await
        .ok();
    ana.bank(&["--json", "logout"]).run().await.ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn deposit_withdraw_and_statement() {
    let bank = spawn_bank().await;
    let ana = Person::new();
    ana.register_and_login(&bank.url, "ana", "Ana Lima", 123_456_789)
        .await;
    let account = ana.open("50").await;

    ana.bank(&["deposit", "10,50", "--description", "mesada"])
        .run()
        .await
        .ok()
        .stdout_has(&format!(
            "Deposited R$ 10,50 into {account}; balance R$ 60,50."
        ));
    ana.bank(&["deposit", "1.234,56", "--account", &account])
        .run()
        .await
        .ok()
        .stdout_has("balance R$ 1.295,06.");
    // A number alone is an account at the customer's bank.
    let number = account.split_once('/').unwrap().1;
    let withdrawn = ana
        .bank(&["--json", "withdraw", "R$ 0.06", "-a", number])
        .run()
        .await
        .ok()
        .json();
    assert_eq!(withdrawn["kind"], "withdrawal");
    assert_eq!(withdrawn["amount"], "-0.06");
    assert_eq!(withdrawn["balance_after"], "1295.00");
    ana.bank(&["withdraw", "95"])
        .run()
        .await
        .ok()
        .stdout_has(&format!(
            "Withdrew R$ 95,00 from {account}; balance R$ 1.200,00."
        ));

    let statement = ana.bank(&["--json", "statement"]).run().await.ok().json();
    let entries = statement["entries"].as_array().unwrap();
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "withdrawal",
            "withdrawal",
            "deposit",
            "deposit",
            "opening_deposit"
        ],
        "newest first"
    );
    assert_eq!(entries[3]["description"], "mesada");
    assert_eq!(statement["next_cursor"], Value::Null);

    let human = ana.bank(&["statement"]).run().await.ok();
    human.stdout_has(&format!("Statement of {account}, newest first"));
    human.stdout_has("date (UTC-03:00)");
    human.stdout_has("opening deposit");
    human.stdout_has("-R$ 95,00");
    human.stdout_has("R$ 1.234,56");
    human.stdout_has("mesada");
    // Dates are shown in local time (the test's TZ is UTC-03:00).
    for entry in entries {
        human.stdout_has(&local(entry["at"].as_str().unwrap()));
    }
    // The amount and balance columns are right-aligned: they end in the same column.
    let lines: Vec<&str> = human
        .stdout
        .lines()
        .skip(1)
        .take(1 + entries.len())
        .collect();
    let header = lines[0];
    let balance_end = header[..header.find("balance").unwrap() + "balance".len()]
        .chars()
        .count();
    for row in &lines[1..] {
        let cut: String = row.chars().take(balance_end).collect();
        assert!(
            cut.len() > 3 && cut[cut.len() - 3..].starts_with(','),
            "balance not aligned in {row:?}\n{}",
            human.stdout
        );
    }

    // Pages: two entries, then a cursor; --all follows every page.
    let first = ana.bank(&["statement", "--limit", "2"]).run().await.ok();
    first.stdout_has("Older entries: bank statement --account");
    let page = ana
        .bank(&["--json", "statement", "--limit", "2"])
        .run()
        .await
        .ok()
        .json();
    assert_eq!(page["entries"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let second = ana
        .bank(&["--json", "statement", "--limit", "2", "--cursor", cursor])
        .run()
        .await
        .ok()
        .json();
    assert_eq!(second["entries"][0]["kind"], "deposit");
    let all = ana
        .bank(&["--json", "statement", "--all", "--limit", "2"])
        .run()
        .await
        .ok()
        .json();
    assert_eq!(all["entries"].as_array().unwrap().len(), 5);
    assert_eq!(all["next_cursor"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_pay_and_transfer_show() {
    let bank = spawn_bank().await;
    let (ana, beto) = (Person::new(), Person::new());
    ana.register_and_login(&bank.url, "ana", "Ana Lima", 200_000_001)
        .await;
    beto.register_and_login(&bank.url, "beto", "Beto Souza", 300_000_002)
        .await;
    let a = ana.open("100").await;
    let b = beto.open("50").await;

    beto.bank(&["keys", "add", "email", "beto@example.com"])
        .run()
        .await
        .ok()
        .stdout_has(&format!("Added email key beto@example.com on {b}."));
    let random = beto
        .bank(&["--json", "keys", "add", "random", "--account", &b])
        .run()
        .await
        .ok()
        .json();
    assert_eq!(random["type"], "random");
    let random_key = random["key"].as_str().unwrap().to_string();
    let listed = beto.bank(&["keys", "list"]).run().await.ok();
    listed.stdout_has("beto@example.com");
    listed.stdout_has(&random_key);
    assert!(listed.stdout.lines().next().unwrap().starts_with("key"));
    let listed = beto
        .bank(&["--json", "keys", "list"])
        .run()
        .await
        .ok()
        .json();
    assert_eq!(listed["keys"].as_array().unwrap().len(), 2);
    ana.bank(&["keys", "list"])
        .run()
        .await
        .ok()
        .stdout_has("No Pix keys yet");

    // Anyone logged in can see whom a key pays, never the account or its balance.
    ana.bank(&["keys", "lookup", "beto@example.com"])
        .run()
        .await
        .ok()
        .stdout_has("beto@example.com (email key) pays Beto Souza");
    let looked = ana
        .bank(&["--json", "keys", "lookup", "beto@example.com"])
        .run()
        .await
        .ok()
        .json();
    assert_eq!(looked["holder_name"], "Beto Souza");
    assert_eq!(looked["bank"], BANK);
    assert!(looked.get("account").is_none() && looked.get("balance").is_none());

    // By key, human output.
    let paid = ana
        .bank(&["pay", "beto@example.com", "20", "--description", "almoço"])
        .run()
        .await
        .ok();
    paid.stdout_has(&format!(
        "Paid R$ 20,00 from {a} to Pix key beto@example.com ({b})."
    ));
    let id = paid
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("end-to-end id "))
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 32);
    assert!(id.starts_with(&format!("E{BANK}")));

    // By account, JSON output.
    let by_account = ana
        .bank(&["--json", "pay", &b, "0,01", "--from", &a])
        .run()
        .await
        .ok()
        .json();
    assert_eq!(by_account["status"], "committed");
    assert_eq!(by_account["amount"], "0.01");
    assert_eq!(ana.balance(&a).await, "79.99");
    assert_eq!(beto.balance(&b).await, "70.01");

    let shown = ana.bank(&["transfer", "show", &id]).run().await.ok();
    shown.stdout_has(&format!("Transfer {id}"));
    shown.stdout_has("committed");
    shown.stdout_has("R$ 20,00");
    shown.stdout_has("almoço");
    let shown = beto
        .bank(&["--json", "transfer", "show", &id])
        .run()
        .await
        .ok()
        .json();
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["amount"], "20.00");

    beto.bank(&["keys", "remove", "beto@example.com"])
        .run()
        .await
        .ok()
        .stdout_has("Removed Pix key beto@example.com.");
    beto.bank(&["--json", "keys", "remove", &random_key])
        .run()
        .await
        .ok();
    ana.bank(&["keys", "lookup", "beto@example.com"])
        .run()
        .await
        .code(EXIT_REFUSED)
        .stderr_has("pix_key_not_found");
    ana.bank(&["pay", "beto@example.com", "1"])
        .run()
        .await
        .code(EXIT_REFUSED);
    assert_eq!(
        ana.balance(&a).await,
        "79.99",
        "a refused payment moves nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn packages_from_flags_and_from_a_file() {
    let bank = spawn_bank().await;
    let (ana, beto) = (Person::new(), Person::new());
    ana.register_and_login(&bank.url, "ana", "Ana Lima", 210_000_001)
        .await;
    beto.register_and_login(&bank.url, "beto", "Beto Souza", 310_000_002)
        .await;
    let a = ana.open("100").await;
    let b = beto.open("50").await;
    beto.bank(&["keys", "add", "email", "beto@example.com"])
        .run()
        .await
        .ok();

    let flags = ana
        .bank(&[
            "package",
            "--op",
            "deposit:1.000,00",
            "--op",
            "withdraw:20",
            "--op",
            "transfer:10,50:beto@example.com",
        ])
        .run()
        .await
        .ok();
    flags.stdout_has("committed");
    flags.stdout_has("R$ 1.000,00");
    flags.stdout_has("Pix key beto@example.com");
    let table: Vec<&str> = flags.stdout.lines().skip(1).collect();
    assert_eq!(
        table.len(),
        4,
        "a header and three operations:\n{}",
        flags.stdout
    );
    assert!(table[0].starts_with('#'), "{}", flags.stdout);
    assert_eq!(ana.balance(&a).await, "1069.50");
    assert_eq!(beto.balance(&b).await, "60.50");

    // From a file: the API's body, amounts as people type them, `to` as text or as the API's.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ops.json");
    let number = b.split_once('/').unwrap().1;
    std::fs::write(
        &file,
        serde_json::json!({"operations": [
            {"type": "withdraw", "amount": "R$ 9,50", "account": a},
            {"type": "transfer", "amount": "60", "to": {"bank": BANK, "number": number},
             "description": "aluguel"},
        ]})
        .to_string(),
    )
    .unwrap();
    let from_file = ana
        .bank(&["--json", "package", "--file", file.to_str().unwrap()])
        .run()
        .await
        .ok()
        .json();
    assert_eq!(from_file["status"], "committed");
    assert_eq!(from_file["results"].as_array().unwrap().len(), 2);
    assert_eq!(ana.balance(&a).await, "1000.00");
    assert_eq!(beto.balance(&b).await, "120.50");

    // All or nothing: the overdraft fails, so the deposit before it is not made either.
    let refused = ana
        .bank(&["package", "--op", "deposit:5", "--op", "withdraw:2000"])
        .run()
        .await
        .code(EXIT_REFUSED);
    refused.stdout_has("aborted");
    refused.stdout_has("insufficient_funds");
    refused.stderr_has("refused by the bank");
    assert_eq!(ana.balance(&a).await, "1000.00");

    // A bare list on standard input.
    let list = r#"[{"type": "deposit", "amount": "0,50"}]"#;
    ana.bank(&["package", "--file", "-"])
        .stdin(list)
        .run()
        .await
        .ok()
        .stdout_has("committed");
    assert_eq!(ana.balance(&a).await, "1000.50");
}

#[tokio::test(flavor = "multi_thread")]
async fn consortium_health_and_one_bank_audit() {
    let bank = spawn_bank().await;
    let ana = Person::new();
    ana.register_and_login(&bank.url, "ana", "Ana Lima", 220_000_001)
        .await;
    ana.open("75").await;

    let view = ana
        .bank(&["--bank", &bank.url, "consortium"])
        .run()
        .await
        .ok();
    view.stdout_has("Consortium seen from bank 10000001");
    let view = ana
        .bank(&["--bank", &bank.url, "--json", "consortium"])
        .run()
        .await
        .ok()
        .json();
    assert_eq!(view["bank"], BANK);
    assert!(
        view.get("settlement").is_none(),
        "settlement positions are the operator's: {view}"
    );
    let operator = ana
        .bank(&[
            "--bank",
            &bank.url,
            "--json",
            "consortium",
            "--operator-token",
            OPERATOR_TOKEN,
        ])
        .run()
        .await
        .ok()
        .json();
    assert!(operator["settlement"].is_array(), "{operator}");

    ana.bank(&["--bank", &bank.url, "health"])
        .run()
        .await
        .ok()
        .stdout_has("Bank 10000001 (Banco Teste)")
        .stdout_has(": ok");
    let health = ana
        .bank(&["--bank", &bank.url, "--json", "health"])
        .run()
        .await
        .ok()
        .json();
    assert_eq!(health["status"], "ok");

    // One bank, its operator token from the environment.
    let audit = ana
        .bank(&["--bank", &bank.url, "audit"])
        .env("BANK_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .run()
        .await
        .ok();
    audit.stdout_has("Audit of bank 10000001");
    audit.stdout_has("R$ 75,00");
    audit.stdout_has("All ");
    let audit = ana
        .bank(&[
            "--bank",
            &bank.url,
            "--json",
            "audit",
            "--operator-token",
            OPERATOR_TOKEN,
        ])
        .run()
        .await
        .ok()
        .json();
    assert_eq!(audit["ok"], true);
    assert_eq!(audit["banks"][0]["customer_balances"], "75.00");
    assert!(
        audit["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true)
    );

    // A customer's token is not the operator's.
    ana.bank(&[
        "--bank",
        &bank.url,
        "audit",
        "--operator-token",
        "not-the-token",
    ])
    .run()
    .await
    .code(EXIT_REFUSED);
    // The bank's security trail: the login, the audits and the refused token above.
    let trail = ana
        .bank(&["--bank", &bank.url, "audit", "events", "--limit", "50"])
        .env("BANK_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .run()
        .await
        .ok();
    trail
        .stdout_has("login")
        .stdout_has("operator_call")
        .stdout_has("operator_refused")
        .stdout_has("GET /api/v1/audit");
    let events = ana
        .bank(&[
            "--bank",
            &bank.url,
            "--json",
            "audit",
            "events",
            "--operator-token",
            OPERATOR_TOKEN,
        ])
        .run()
        .await
        .ok()
        .json();
    assert!(events["events"].as_array().unwrap().len() >= 5);
    ana.bank(&[
        "--bank",
        &bank.url,
        "audit",
        "events",
        "--operator-token",
        "not-the-token",
    ])
    .run()
    .await
    .code(EXIT_REFUSED);
}
