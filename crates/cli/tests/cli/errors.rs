//! Every way a command fails, each with its own exit code: 2 usage, 3 refused by the bank,
//! 4 bank unavailable, 1 anything else (such as not being logged in).

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn usage_errors_exit_2_before_anything_is_sent() {
    // Nothing listens there: a usage error must be found before any request.
    let url = closed_url();
    let person = Person::new();
    let table: &[(&[&str], &str)] = &[
        (&[], "Usage"),
        (&["deposit", "1.234"], "ambiguous"),
        (&["deposit", "10,505"], "ambiguous"),
        (&["withdraw", "-5"], "positive"),
        (&["deposit", "0"], "greater than zero"),
        (&["deposit", "1,234.56"], "separates centavos"),
        (&["deposit", "dez"], "only digits"),
        (&["pay", "ana@example.com"], "required"),
        (&["open"], "--deposit"),
        (&["statement", "--limit", "0"], "limit"),
        (&["keys", "add", "telepathy", "x"], "invalid value"),
        (&["package"], "a package needs operations"),
        (&["package", "--op", "deposit:1.234"], "ambiguous"),
        (
            &["package", "--op", "refund:10"],
            "not deposit, withdraw or transfer",
        ),
        (&["audit"], "audit needs --consortium FILE"),
        (&["atm", "--lang", "fr"], "invalid value"),
        (&["no-such-command"], "unrecognized subcommand"),
    ];
    for (args, message) in table {
        let mut all = vec!["--bank", url.as_str()];
        all.extend_from_slice(args);
        let run = person.bank(&all).run().await;
        assert_eq!(run.code, EXIT_USAGE, "{args:?}: {run:?}");
        assert!(
            run.stderr.contains(message),
            "{args:?}: stderr lacks {message:?}: {}",
            run.stderr
        );
    }

    // No bank anywhere: not on the command line, the environment, a session or config.json.
    person
        .bank(&["health"])
        .run()
        .await
        .code(EXIT_USAGE)
        .stderr_has("which bank?");
    person
        .bank(&["--bank", "ftp://example", "health"])
        .run()
        .await
        .code(EXIT_USAGE)
        .stderr_has("not a bank URL");

    // A package file that is not one.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ops.json");
    std::fs::write(&file, r#"{"operations": [{"type": "deposit"}]}"#).unwrap();
    person
        .bank(&["--bank", &url, "package", "--file", file.to_str().unwrap()])
        .run()
        .await
        .code(EXIT_USAGE)
        .stderr_has("not a package");
    std::fs::write(&file, r#"[{"type": "deposit", "amount": "1.234"}]"#).unwrap();
    person
        .bank(&["--bank", &url, "package", "--file", file.to_str().unwrap()])
        .run()
        .await
        .code(EXIT_USAGE)
        .stderr_has("ambiguous");
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_exit_3_with_the_problems_title_and_detail() {
    let bank = spawn_bank().await;
    let ana = Person::new();
    ana.register_and_login(&bank.url, "ana", "Ana Lima", 230_000_001)
        .await;
    let account = ana.open("50").await;

    // Wrong password.
    let stranger = Person::new();
    let wrong = stranger
        .bank(&["--bank", &bank.url, "login", "ana"])
        .password("not-the-password")
        .run()
        .await
        .code(EXIT_REFUSED);
    wrong.stderr_has("refused by the bank");
    wrong.stderr_has("invalid_credentials");
    assert!(!stranger.config_dir().join("session.json").exists());
    // With --json, the problem document is printed as the API sent it.
    let problem = stranger
        .bank(&["--bank", &bank.url, "--json", "login", "ana"])
        .password("not-the-password")
        .run()
        .await
        .code(EXIT_REFUSED)
        .json();
    assert_eq!(problem["code"], "invalid_credentials");
    assert_eq!(problem["status"], 401);

    // Insufficient funds: title, code and detail on standard error.
    let overdraft = ana
        .bank(&["withdraw", "50,01"])
        .run()
        .await
        .code(EXIT_REFUSED);
    overdraft.stderr_has("insufficient_funds");
    overdraft.stderr_has("(422, insufficient_funds)");
    let problem = ana
        .bank(&["--json", "withdraw", "1000"])
        .run()
        .await
        .code(EXIT_REFUSED)
        .json();
    assert_eq!(problem["code"], "insufficient_funds");
    assert!(!problem["title"].as_str().unwrap().is_empty());
    assert!(!problem["detail"].as_str().unwrap().is_empty());
    let title = problem["title"].as_str().unwrap().to_string();
    let detail = problem["detail"].as_str().unwrap().to_string();
    let human = ana
        .bank(&["withdraw", "1000"])
        .run()
        .await
        .code(EXIT_REFUSED);
    human.stderr_has(&title);
    human.stderr_has(&detail);

    // A payment the bank aborts is a refusal too.
    let beto = Person::new();
    beto.register_and_login(&bank.url, "beto", "Beto Souza", 330_000_002)
        .await;
    let b = beto.open("50").await;
    let aborted = ana.bank(&["pay", &b, "500"]).run().await.code(EXIT_REFUSED);
    aborted.stderr_has("aborted (insufficient_funds)");
    let aborted = ana
        .bank(&["--json", "pay", &b, "500"])
        .run()
        .await
        .code(EXIT_REFUSED)
        .json();
    assert_eq!(aborted["status"], "aborted");
    assert_eq!(ana.balance(&account).await, "50.00");

    // Another bank's account (this bank has no consortium), a duplicate username, an account
    // that is not hers (not found: existence is not leaked).
    ana.bank(&["pay", "20000002/100001-2", "1"])
        .run()
        .await
        .code(EXIT_REFUSED)
        .stderr_has("unknown_bank");
    let again = Person::new();
    again
        .bank(&[
            "--bank",
            &bank.url,
            "register",
            "--name",
            "Outra Ana",
            "--document",
            &cpf(530_000_009),
            "--username",
            "ana",
        ])
        .password(PASSWORD)
        .run()
        .await
        .code(EXIT_REFUSED)
        .stderr_has("duplicate_username");
    ana.bank(&["deposit", "1", "--account", &b])
        .run()
        .await
        .code(EXIT_REFUSED)
        .stderr_has("account_not_found");
    ana.bank(&["transfer", "show", "E10000001202611031200abcdefghijk"])
        .run()
        .await
        .code(EXIT_REFUSED);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_bank_exits_4() {
    let url = closed_url();
    let person = Person::new();
    for args in [
        vec!["health"],
        vec!["consortium"],
        vec!["login", "ana"],
        vec!["audit", "--operator-token", "t"],
    ] {
        let mut all = vec!["--bank", url.as_str()];
        all.extend(args.iter().copied());
        let run = person.bank(&all).password(PASSWORD).run().await;
        assert_eq!(run.code, EXIT_UNAVAILABLE, "{args:?}: {run:?}");
        assert!(
            run.stderr.contains("unavailable"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains(&url),
            "the bank is named: {}",
            run.stderr
        );
    }

    // A session whose bank went away.
    let mut bank = spawn_bank().await;
    let ana = Person::new();
    ana.register_and_login(&bank.url, "ana", "Ana Lima", 240_000_001)
        .await;
    ana.open("50").await;
    bank.stop().await;
    for args in [&["me"][..], &["deposit", "10"], &["statement"]] {
        ana.bank(args)
            .run()
            .await
            .code(EXIT_UNAVAILABLE)
            .stderr_has("bank unavailable");
    }
    // Logging out still forgets the token here, and says the bank could not be told.
    ana.bank(&["logout"])
        .run()
        .await
        .code(EXIT_UNAVAILABLE)
        .stderr_has("could not be told");
    assert!(!ana.config_dir().join("session.json").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_session_commands_say_so() {
    let bank = spawn_bank().await;
    let person = Person::new();
    for args in [
        &["me"][..],
        &["accounts"],
        &["deposit", "10"],
        &["statement"],
        &["keys", "list"],
    ] {
        let mut all = vec!["--bank", bank.url.as_str()];
        all.extend_from_slice(args);
        person
            .bank(&all)
            .run()
            .await
            .code(EXIT_OTHER)
            .stderr_has("not logged in");
    }
    // A session at one bank is never sent to another.
    let ana = Person::new();
    ana.register_and_login(&bank.url, "ana", "Ana Lima", 250_000_001)
        .await;
    let other = spawn_bank_with("20000002", "Outro Banco").await;
    ana.bank(&["--bank", &other.url, "me"])
        .run()
        .await
        .code(EXIT_OTHER)
        .stderr_has("you are logged in at");
}
