//! `bank atm` driven through a real pseudo-terminal, as a person would use it: prompts are
//! awaited, answers typed, Ctrl-C pressed. rexpect turns the terminal's echo off, so the
//! screen holds only what the ATM printed.

use crate::helpers::*;
use rexpect::process::WaitStatus;
use rexpect::session::PtySession;

/// How long any prompt may take to appear.
const EXPECT_TIMEOUT_MS: u64 = 20_000;

/// A customer with one account at the bank, set up through the typed client.
async fn customer(
    url: &str,
    username: &str,
    name: &str,
    seed: u64,
    deposits: &[&str],
) -> Vec<String> {
    let anonymous = client::Client::new(url).unwrap();
    anonymous
        .register(
            &wire::RegisterCustomer {
                name: name.into(),
                document: cpf(seed),
                username: username.into(),
                password: PASSWORD.into(),
            },
            None,
        )
        .await
        .unwrap();
    let token = anonymous
        .login(&wire::Credentials {
            username: username.into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap()
        .value
        .token;
    let client = anonymous.with_token(token);
    let mut numbers = Vec::new();
    for deposit in deposits {
        let account = client
            .open_account(
                &wire::OpenAccount {
                    kind: "individual".into(),
                    co_holders: Vec::new(),
                    opening_deposit: deposit.to_string(),
                },
                None,
            )
            .await
            .unwrap()
            .value;
        numbers.push(account.number);
    }
    numbers
}

/// The balance of one of `username`'s accounts, through the typed client.
async fn balance(url: &str, username: &str, number: &str) -> String {
    let anonymous = client::Client::new(url).unwrap();
    let token = anonymous
        .login(&wire::Credentials {
            username: username.into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap()
        .value
        .token;
    anonymous
        .with_token(token)
        .account(&wire::AccountRef {
            bank: BANK.into(),
            number: number.into(),
        })
        .await
        .unwrap()
        .value
        .balance
}

fn atm(person: &Person, args: &[&str]) -> PtySession {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_bank"));
    command
        .arg("atm")
        .args(args)
        .env_remove("BANK_URL")
        .env_remove("BANK_PASSWORD")
        .env("BANK_CONFIG_DIR", person.config_dir())
        .env("TZ", TZ);
    rexpect::spawn_with_options(
        command,
        rexpect::reader::Options::new()
            .timeout_ms(Some(EXPECT_TIMEOUT_MS))
            .strip_ansi_escape_codes(true),
    )
    .unwrap()
}

/// rexpect reads the terminal byte by byte, each byte one `char`; text with accents (the ATM
/// speaks Portuguese) is looked for in that form.
fn as_read(text: &str) -> String {
    text.bytes().map(char::from).collect()
}

/// Waits for `needle` on the screen, then types `line`.
#[track_caller]
fn answer(session: &mut PtySession, needle: &str, line: &str) {
    expect(session, needle);
    session.send_line(line).unwrap();
}

/// Waits for `needle` on the screen.
#[track_caller]
fn expect(session: &mut PtySession, needle: &str) {
    session
        .exp_string(&as_read(needle))
        .unwrap_or_else(|e| panic!("waiting for {needle:?}: {e}"));
}

/// Waits for the ATM to end and answers its exit code.
#[track_caller]
fn exit_code(session: &mut PtySession) -> i32 {
    session.exp_eof().expect("the ATM ends");
    match session.process().wait().unwrap() {
        WaitStatus::Exited(_, code) => code,
        other => panic!("the ATM did not exit by itself: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_session_in_portuguese() {
    let bank = spawn_bank().await;
    let ana = customer(&bank.url, "ana", "Ana Lima", 260_000_001, &["100.00"]).await;
    let beto = customer(&bank.url, "beto", "Beto Souza", 360_000_002, &["50.00"]).await;
    let beto_client = {
        let anonymous = client::Client::new(&bank.url).unwrap();
        let token = anonymous
            .login(&wire::Credentials {
                username: "beto".into(),
                password: PASSWORD.into(),
            })
            .await
            .unwrap()
            .value
            .token;
        anonymous.with_token(token)
    };
    beto_client
        .add_pix_key(
            &wire::AddPixKey {
                account: wire::AccountRef {
                    bank: BANK.into(),
                    number: beto[0].clone(),
                },
                kind: "email".into(),
                value: Some("beto@example.com".into()),
            },
            None,
        )
        .await
        .unwrap();

    let person = Person::new();
    let url = bank.url.clone();
    let account = ana[0].clone();
    let code = tokio::task::spawn_blocking(move || {
        let mut s = atm(&person, &["--bank", &url]);
        expect(&mut s, "=== Caixa Eletrônico — Banco Teste (10000001) ===");
        // A wrong password first: said so, and asked again.
        answer(&mut s, "Usuário: ", "ana");
        answer(&mut s, "Senha: ", "not-the-password");
        expect(&mut s, "Usuário ou senha incorretos.");
        answer(&mut s, "Usuário: ", "ana");
        answer(&mut s, "Senha: ", PASSWORD);
        expect(&mut s, "Bem-vindo(a), Ana Lima.");
        expect(&mut s, &format!("Conta 10000001/{account}"));
        expect(&mut s, "6) Pacote de operações");
        expect(&mut s, "0) Sair");

        // Saldo.
        answer(&mut s, "Opção: ", "1");
        expect(&mut s, "Saldo: R$ 100,00   Disponível: R$ 100,00");

        // Depósito, with wrong amounts first: each explained, then asked again.
        answer(&mut s, "Opção: ", "3");
        answer(&mut s, "Valor (vazio cancela): ", "1.234");
        expect(&mut s, "Valor inválido: ambíguo");
        answer(&mut s, "Valor (vazio cancela): ", "dez reais");
        expect(&mut s, "Valor inválido: um valor tem só dígitos");
        answer(&mut s, "Valor (vazio cancela): ", "10,50");
        expect(&mut s, "Depósito realizado. Novo saldo: R$ 110,50");

        // Saque refused for insufficient funds.
        answer(&mut s, "Opção: ", "4");
        answer(&mut s, "Valor (vazio cancela): ", "R$ 500");
        expect(
            &mut s,
            "Recusado pelo banco: saldo insuficiente (insufficient_funds)",
        );

        // Transferência / Pix by key, with a bad confirmation answer first.
        answer(&mut s, "Opção: ", "5");
        answer(
            &mut s,
            "(banco/número; vazio cancela): ",
            "beto@example.com",
        );
        expect(&mut s, "Favorecido: Beto Souza");
        answer(&mut s, "Valor (vazio cancela): ", "20");
        answer(&mut s, "Descrição (opcional): ", "almoço");
        answer(&mut s, "Confirmar R$ 20,00? (s/n): ", "talvez");
        expect(&mut s, "Resposta inválida; digite s (sim) ou n (não).");
        answer(&mut s, "(s/n): ", "s");
        expect(&mut s, "Transferência concluída. Identificador: E10000001");

        // Extrato.
        answer(&mut s, "Opção: ", "2");
        expect(&mut s, &format!("Extrato da conta 10000001/{account}"));
        expect(&mut s, "data (UTC-03:00)");
        expect(&mut s, "saldo");
        expect(&mut s, "Pix enviado");
        expect(&mut s, "-R$ 20,00");
        expect(&mut s, "depósito");
        expect(&mut s, "depósito inicial");

        // Pacote: a deposit and a Pix, all or nothing.
        answer(&mut s, "Opção: ", "6");
        answer(&mut s, "vazio cancela): ", "x");
        expect(&mut s, "Operação inválida; digite d, s, t ou f.");
        answer(&mut s, "vazio cancela): ", "d");
        answer(&mut s, "Valor (vazio cancela): ", "5");
        answer(&mut s, "vazio cancela): ", "t");
        answer(
            &mut s,
            "(banco/número; vazio cancela): ",
            "beto@example.com",
        );
        answer(&mut s, "Valor (vazio cancela): ", "1,00");
        answer(&mut s, "vazio cancela): ", "f");
        expect(&mut s, "Operações do pacote:");
        expect(&mut s, "1. depósito R$ 5,00");
        expect(&mut s, "2. transferência R$ 1,00 — Favorecido: Beto Souza");
        answer(&mut s, "Confirmar? (s/n): ", "s");
        expect(&mut s, "Pacote concluído");

        // A menu choice that does not exist, then leave.
        answer(&mut s, "Opção: ", "9");
        expect(&mut s, "Opção inválida");
        answer(&mut s, "Opção: ", "1");
        expect(&mut s, "Saldo: R$ 94,50");
        answer(&mut s, "Opção: ", "0");
        expect(&mut s, "Sessão encerrada.");
        expect(&mut s, "Até logo!");
        exit_code(&mut s)
    })
    .await
    .unwrap();
    assert_eq!(code, EXIT_OK);
    assert_eq!(balance(&bank.url, "ana", &ana[0]).await, "94.50");
    assert_eq!(balance(&bank.url, "beto", &beto[0]).await, "71.00");
}

#[tokio::test(flavor = "multi_thread")]
async fn english_with_the_clock_and_ctrl_c() {
    let bank = spawn_bank().await;
    let ana = customer(
        &bank.url,
        "ana",
        "Ana Lima",
        270_000_001,
        &["100.00", "60.00"],
    )
    .await;
    let person = Person::new();
    let url = bank.url.clone();
    let second = ana[1].clone();
    let code = tokio::task::spawn_blocking(move || {
        // The bank comes from $BANK_URL this time.
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_bank"));
        command
            .args(["atm", "--lang", "en", "--show-clock"])
            .env("BANK_URL", &url)
            .env_remove("BANK_PASSWORD")
            .env("BANK_CONFIG_DIR", person.config_dir())
            .env("TZ", TZ);
        let mut s = rexpect::spawn_with_options(
            command,
            rexpect::reader::Options::new().timeout_ms(Some(EXPECT_TIMEOUT_MS)),
        )
        .unwrap();
        s.exp_regex(r"\[bank clock: [^\]\s]+\]").unwrap();
        expect(&mut s, "=== ATM — Banco Teste (10000001) ===");
        answer(&mut s, "Username: ", "ana");
        answer(&mut s, "Password: ", PASSWORD);
        expect(&mut s, "Welcome, Ana Lima.");
        // Two accounts here: which one?
        expect(&mut s, "Choose the account:");
        answer(&mut s, "Option: ", "3");
        expect(&mut s, "Invalid option");
        answer(&mut s, "Option: ", "2");
        expect(&mut s, &format!("Account 10000001/{second}"));
        answer(&mut s, "Option: ", "1");
        s.exp_regex(r"\[bank clock: [^\]\s]+\]").unwrap();
        expect(&mut s, "Balance: R$ 60,00   Available: R$ 60,00");
        // An empty amount cancels.
        answer(&mut s, "Option: ", "4");
        answer(&mut s, "Amount (empty cancels): ", "1,234");
        expect(&mut s, "Invalid amount: ambiguous");
        answer(&mut s, "Amount (empty cancels): ", "");
        expect(&mut s, "Cancelled.");
        // Ctrl-C at a prompt: the session is closed at the bank and the ATM says goodbye.
        expect(&mut s, "Option: ");
        s.send_control('c').unwrap();
        expect(&mut s, "Session closed.");
        expect(&mut s, "Goodbye!");
        exit_code(&mut s)
    })
    .await
    .unwrap();
    assert_eq!(code, EXIT_OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_connection_is_said_and_the_atm_leaves_cleanly() {
    let mut bank = spawn_bank().await;
    customer(&bank.url, "ana", "Ana Lima", 280_000_001, &["100.00"]).await;
    let person = Person::new();
    let url = bank.url.clone();
    let runtime = tokio::runtime::Handle::current();
    let code = tokio::task::spawn_blocking(move || {
        let mut s = atm(&person, &["--bank", &url]);
        answer(&mut s, "Usuário: ", "ana");
        answer(&mut s, "Senha: ", PASSWORD);
        expect(&mut s, "Bem-vindo(a), Ana Lima.");
        expect(&mut s, "Opção: ");
        // The bank goes away while the customer reads the menu.
        runtime.block_on(bank.stop());
        s.send_line("1").unwrap();
        expect(&mut s, "Sem conexão com o banco.");
        // Retrying while it is still down says so again; a wrong answer is asked again.
        answer(&mut s, "(t) tentar de novo ou (s) sair: ", "t");
        expect(&mut s, "Sem conexão com o banco.");
        answer(&mut s, "(t) tentar de novo ou (s) sair: ", "talvez");
        expect(
            &mut s,
            "Resposta inválida; digite t (tentar de novo) ou s (sair).",
        );
        answer(&mut s, "(t) tentar de novo ou (s) sair: ", "s");
        expect(&mut s, "Até logo!");
        exit_code(&mut s)
    })
    .await
    .unwrap();
    assert_eq!(code, EXIT_UNAVAILABLE);

    // No bank at all from the start: said, and left when the customer chooses to.
    let url = closed_url();
    let code = tokio::task::spawn_blocking(move || {
        let person = Person::new();
        let mut s = atm(&person, &["--bank", &url, "--lang", "en"]);
        expect(&mut s, "Lost the connection to the bank.");
        answer(&mut s, "(r) retry or (q) quit: ", "q");
        expect(&mut s, "Goodbye!");
        exit_code(&mut s)
    })
    .await
    .unwrap();
    assert_eq!(code, EXIT_UNAVAILABLE);
}
