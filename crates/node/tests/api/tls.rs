//! HTTPS at the edge: a bank with a certificate serves TLS only, each connection's handshake in
//! its own task and bounded in time.

use crate::helpers::spawn_bank_with;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A CA and a certificate for 127.0.0.1 signed by it, written under `dir`: the CA's path and the
/// bank's files.
fn certificates(dir: &Path) -> (PathBuf, node::tls::ServerTls) {
    let ca = node::tls::make_ca("Test CA").unwrap();
    let issued = node::tls::make_bank_cert("Test CA", &ca.key_pem, "Banco Teste").unwrap();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, &ca.cert_pem).unwrap();
    let files = node::tls::ServerTls {
        cert_chain: dir.join("tls.crt"),
        private_key: dir.join("tls.key"),
    };
    std::fs::write(&files.cert_chain, &issued.cert_pem).unwrap();
    std::fs::write(&files.private_key, &issued.key_pem).unwrap();
    (ca_path, files)
}

fn trusting(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).unwrap();
    reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
        .build()
        .unwrap()
}

/// A client that connects and never starts the handshake holds up no one and is closed once the
/// handshake's time is up; a client that trusts the CA is answered meanwhile, one that does not
/// is refused, and plain HTTP gets no answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_only_with_the_handshake_bounded_in_time() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, files) = certificates(certs.path());
    let bank = spawn_bank_with(|config| {
        config.tls = Some(files);
        config.edge.handshake_timeout = Duration::from_millis(300);
    })
    .await;
    assert!(bank.url.starts_with("https://127.0.0.1:"), "{}", bank.url);
    let address = bank.url.trim_start_matches("https://").to_string();
    let silent = std::net::TcpStream::connect(&address).unwrap();

    let health = trusting(&ca)
        .get(format!("{}/health", bank.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let stranger = reqwest::Client::new()
        .get(format!("{}/health", bank.url))
        .send()
        .await
        .unwrap_err();
    let reason = format!("{stranger:?}");
    assert!(reason.contains("UnknownIssuer"), "{reason}");
    let plain = reqwest::Client::new()
        .get(format!("http://{address}/health"))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");

    let closed = tokio::task::spawn_blocking(move || {
        let mut silent = silent;
        silent
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buffer = [0u8; 64];
        match silent.read(&mut buffer) {
            Ok(0) => Ok(()),
            Ok(n) => Err(format!("{n} bytes came")),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
    .unwrap();
    assert_eq!(closed, Ok(()), "the silent connection is closed");
}
