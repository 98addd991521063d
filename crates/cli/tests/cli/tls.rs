//! `bank` against a bank serving HTTPS under a CA of its own: refused without the CA (a
//! certificate error, exit 4), answered with `--ca FILE` or `$BANK_CA`, and a `--ca` that is no
//! certificate is a usage error.

use crate::helpers::{EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, OPERATOR_TOKEN, Person};

#[tokio::test(flavor = "multi_thread")]
async fn an_https_bank_needs_its_ca_given_by_flag_or_environment() {
    let dir = tempfile::tempdir().unwrap();
    let ca = node::tls::make_ca("Test CA").unwrap();
    let issued = node::tls::make_bank_cert("Test CA", &ca.key_pem, "Banco Teste").unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, &ca.cert_pem).unwrap();
    let files = node::tls::ServerTls {
        cert_chain: dir.path().join("tls.crt"),
        private_key: dir.path().join("tls.key"),
    };
    std::fs::write(&files.cert_chain, &issued.cert_pem).unwrap();
    std::fs::write(&files.private_key, &issued.key_pem).unwrap();
    let mut config = node::config::Config::local(
        ledger::BankCode::parse("10000001").unwrap(),
        "Banco Teste",
        &dir.path().join("bank"),
        OPERATOR_TOKEN,
    );
    config.tls = Some(files);
    let bank = node::start(config).await.unwrap();
    let url = bank.url();
    assert!(url.starts_with("https://"), "{url}");
    let ca_arg = ca_path.to_str().unwrap();
    let person = Person::new();

    person
        .bank(&["--bank", &url, "health"])
        .run()
        .await
        .code(EXIT_UNAVAILABLE)
        .stderr_has("certificate");
    person
        .bank(&["--bank", &url, "--ca", ca_arg, "health"])
        .run()
        .await
        .code(EXIT_OK)
        .stdout_has("10000001");
    person
        .bank(&["--bank", &url, "health"])
        .env("BANK_CA", ca_arg)
        .run()
        .await
        .code(EXIT_OK);
    let not_pem = dir.path().join("tls.crt.txt");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    person
        .bank(&["--bank", &url, "--ca", not_pem.to_str().unwrap(), "health"])
        .run()
        .await
        .code(EXIT_USAGE)
        .stderr_has("--ca");
    bank.stop().await.unwrap();
}

/// `bank audit --consortium` on `bankd demo`'s folder: every bank is https under the demo's
/// CA, which the audit takes from demo.json without any --ca.
#[tokio::test(flavor = "multi_thread")]
async fn the_consortium_audit_reads_the_demos_ca_from_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let (running, file) = node::demo::start(dir.path(), None).await.unwrap();
    assert!(file.banks.iter().all(|b| b.url.starts_with("https://")));
    let person = Person::new();
    let folder = dir.path().to_str().unwrap();
    let run = person
        .bank(&["--json", "audit", "--consortium", folder])
        .run()
        .await
        .ok();
    assert_eq!(run.json()["ok"], true, "{}", run.stdout);
    // Without the demo's CA, the same banks are not trusted.
    let url = &file.banks[0].url;
    person
        .bank(&["--bank", url, "health"])
        .run()
        .await
        .code(EXIT_UNAVAILABLE)
        .stderr_has("certificate");
    for bank in running {
        bank.stop().await.unwrap();
    }
}
