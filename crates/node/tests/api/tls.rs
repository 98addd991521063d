//! HTTPS at the edge: a bank with a certificate serves TLS only, each connection's handshake in
//! its own task and bounded in time; the demo makes its own CA and serves every bank over it.

use crate::helpers::spawn_bank_with;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A CA and a certificate for 127.0.0.1 signed by it, written under `dir`: the CA's path and the
/// bank's files.
fn certificates(dir: &Path) -> (PathBuf, node::tls::ServerTls) {
    node::tls::write_ca_and_cert(dir, "Test CA", "Banco Teste").unwrap()
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

/// Over TLS the connection cap still holds: a connection beyond it is closed at once (no plain
/// 503 a TLS client could not read), and a place freed is taken again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_holds_over_tls() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, files) = certificates(certs.path());
    let bank = spawn_bank_with(|config| {
        config.tls = Some(files);
        config.edge.connections_max = 1;
    })
    .await;
    let address = bank.url.trim_start_matches("https://").to_string();
    // Holds the one place: connected, handshake not begun.
    let silent = std::net::TcpStream::connect(&address).unwrap();
    let http = trusting(&ca);
    let health = format!("{}/health", bank.url);
    let beyond = http.get(&health).send().await;
    assert!(beyond.is_err(), "a connection beyond the cap: {beyond:?}");
    drop(silent);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(answer) = http.get(&health).send().await {
            assert_eq!(answer.status(), 200);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the place was never freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `bankd demo` makes its CA and a certificate per bank on first start (the CA's certificate
/// readable, every private key 0600), serves the three banks over HTTPS under it, lists https
/// URLs and the CA, and starts again with the same files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_https_under_its_own_ca_and_keeps_it() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let (banks, file) = node::demo::start(&demo, None).await.unwrap();
    let ca = demo.join("ca.pem");
    assert_eq!(file.ca.as_deref(), Some(ca.to_str().unwrap()));
    assert_eq!(mode(&ca) & 0o400, 0o400, "the CA's certificate is readable");
    assert_eq!(mode(&demo.join("ca.key")), 0o600, "the CA's key");
    let consortium = std::fs::read_to_string(demo.join("consortium.toml")).unwrap();
    let http = trusting(&ca);
    for bank in &file.banks {
        assert!(bank.url.starts_with("https://127.0.0.1:"), "{}", bank.url);
        assert!(consortium.contains(&bank.url), "{consortium}");
        assert_eq!(mode(&demo.join(&bank.code).join("tls.key")), 0o600);
        // It sees the other two up: their heartbeats went over TLS, checked against the CA.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let view: serde_json::Value = http
                .get(format!("{}/api/v1/consortium", bank.url))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let others: Vec<&serde_json::Value> = view["banks"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|b| b["code"] != bank.code.as_str())
                .collect();
            if others.len() == 2 && others.iter().all(|b| b["status"] == "up") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} never saw its peers up: {view}",
                bank.code
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let ca_text = std::fs::read_to_string(&ca).unwrap();
    let cert_text = std::fs::read_to_string(demo.join("10000001").join("tls.crt")).unwrap();
    for bank in banks {
        bank.stop().await.unwrap();
    }

    let (banks, again) = node::demo::start(&demo, None).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&ca).unwrap(),
        ca_text,
        "the same CA"
    );
    assert_eq!(
        std::fs::read_to_string(demo.join("10000001").join("tls.crt")).unwrap(),
        cert_text,
        "the same certificate"
    );
    let health = trusting(&ca)
        .get(format!("{}/health", again.banks[0].url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    for bank in banks {
        bank.stop().await.unwrap();
    }
}

/// A plain-HTTP bank on a system without any CA certificate (a bare container: here, the
/// variables that point rustls at the system's certificates name none) still starts: its peer
/// client then trusts no https peer instead of failing to build.
#[test]
fn a_bank_starts_on_a_system_without_ca_certificates() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("no-certificates");
    std::fs::create_dir(&empty).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bankd"))
        .arg("serve")
        .env("BANKD_CODE", "10000001")
        .env("BANKD_LISTEN", "127.0.0.1:0")
        .env("BANKD_DATA_DIR", dir.path().join("data"))
        .env("BANKD_OPERATOR_TOKEN", "operator-token-for-tests")
        .env("SSL_CERT_FILE", dir.path().join("none.pem"))
        .env("SSL_CERT_DIR", &empty)
        .env("RUST_LOG", "off")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    assert!(
        line.contains("serving on http://127.0.0.1:"),
        "bankd said {line:?}; stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
