//! `bankd demo`: a local consortium of three banks on 127.0.0.1, each with its own SQLite
//! ledger and Ed25519 key under one folder. It writes `consortium.toml` (the banks' list) and `demo.json` (each
//! bank's code, name, URL and operator token) there; run again on the same folder, it resumes
//! with all data and the same tokens.
//!
//! Everything is encrypted: on first start the demo makes its own CA (`ca.pem`, readable, and
//! `ca.key`, 0600) and a certificate per bank for 127.0.0.1 and localhost (`<code>/tls.crt`,
//! `<code>/tls.key`, 0600), serves every bank over HTTPS and has the banks trust that CA for each
//! other; customers pass `ca.pem` to their client (`curl --cacert`, `bank --ca`).

use crate::config::{
    Config, Consortium, Peer, SESSION_TTL_DEFAULT, generate_key, public_key_hex, read_key,
    write_key,
};
use crate::tls::ServerTls;
use ledger::BankCode;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The demo's banks: codes in the shape of an ISPB, and names.
pub const DEMO_BANKS: [(&str, &str); 3] = [
    ("10000001", "Banco Aurora"),
    ("20000002", "Banco Boreal"),
    ("30000003", "Banco Cerrado"),
];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoBank {
    pub code: String,
    pub name: String,
    pub url: String,
    pub operator_token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoFile {
    pub banks: Vec<DemoBank>,
    pub consortium: String,
    /// The demo CA's certificate (PEM), which every bank's certificate is signed by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
}

/// The name of the demo's CA, in its certificate; bank certificates are issued under it.
const CA_NAME: &str = "Interbank demo CA";

/// The demo's CA and each bank's certificate under `dir`: made on first start, reused after
/// (a missing CA file makes a new CA and new certificates for every bank). Answers the CA
/// certificate's path and each bank's certificate and key paths.
fn certificates(dir: &Path) -> Result<(PathBuf, Vec<ServerTls>), String> {
    let ca_path = dir.join("ca.pem");
    let ca_key_path = dir.join("ca.key");
    let fresh_ca = !ca_path.exists() || !ca_key_path.exists();
    if fresh_ca {
        let ca = crate::tls::make_ca(CA_NAME)?;
        crate::config::write_private(&ca_key_path, &ca.key_pem)?;
        // The CA certificate is public: customers' clients read it.
        std::fs::write(&ca_path, &ca.cert_pem)
            .map_err(|e| format!("cannot write {}: {e}", ca_path.display()))?;
    }
    let ca_key = std::fs::read_to_string(&ca_key_path)
        .map_err(|e| format!("cannot read {}: {e}", ca_key_path.display()))?;
    let mut banks = Vec::new();
    for (code, name) in DEMO_BANKS {
        let files = ServerTls {
            cert_chain: dir.join(code).join("tls.crt"),
            private_key: dir.join(code).join("tls.key"),
        };
        if fresh_ca || !files.cert_chain.exists() || !files.private_key.exists() {
            let issued = crate::tls::make_bank_cert(CA_NAME, &ca_key, name)?;
            crate::config::write_private(&files.private_key, &issued.key_pem)?;
            std::fs::write(&files.cert_chain, &issued.cert_pem)
                .map_err(|e| format!("cannot write {}: {e}", files.cert_chain.display()))?;
        }
        banks.push(files);
    }
    Ok((ca_path, banks))
}

fn random_token() -> String {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts the three banks and runs until Ctrl-C.
pub async fn run(dir: &Path, base_port: u16) -> Result<(), String> {
    let (running, file) = start(dir, Some(base_port)).await?;
    println!(
        "Interbank demo: three banks on 127.0.0.1 (data in {})",
        dir.display()
    );
    println!("{:<10} {:<15} {:<25} operator token", "code", "name", "url");
    for bank in &file.banks {
        println!(
            "{:<10} {:<15} {:<25} {}",
            bank.code, bank.name, bank.url, bank.operator_token
        );
    }
    if let Some(ca) = &file.ca {
        println!(
            "every bank serves HTTPS under the demo's own CA: {ca} (curl --cacert, bank --ca)"
        );
    }
    println!(
        "written to {}; press Ctrl-C to stop",
        dir.join("demo.json").display()
    );
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    println!("stopping");
    for bank in running {
        bank.stop().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Free ports on 127.0.0.1, all held until every one is chosen so none repeats.
fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let held = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    held.iter()
        .map(|l| l.local_addr().map(|a| a.port()).map_err(|e| e.to_string()))
        .collect()
}

/// Starts the demo's three banks in this process on `base_port`, `+1`, `+2` (free ports when
/// `None`), over HTTPS under the demo's own CA, writes `consortium.toml` and `demo.json` under
/// `dir`, and returns them running (for `bankd demo`, and for tools such as `bank bench` that
/// bring their own consortium).
pub async fn start(
    dir: &Path,
    base_port: Option<u16>,
) -> Result<(Vec<crate::RunningBank>, DemoFile), String> {
    let ports: Vec<u16> = match base_port {
        Some(base) => (0..DEMO_BANKS.len() as u16).map(|i| base + i).collect(),
        None => free_ports(DEMO_BANKS.len())?,
    };
    crate::config::create_private_dir(dir)?;
    let demo_path = dir.join("demo.json");
    let previous: Option<DemoFile> = std::fs::read_to_string(&demo_path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    let token_of = |code: &str| {
        previous
            .as_ref()
            .and_then(|p| p.banks.iter().find(|b| b.code == code))
            .map(|b| b.operator_token.clone())
            .unwrap_or_else(random_token)
    };
    let mut keys = Vec::new();
    for (code, _) in DEMO_BANKS {
        let bank_dir = dir.join(code);
        crate::config::create_private_dir(&bank_dir)?;
        let key_path = bank_dir.join("bank.key");
        if !key_path.exists() {
            write_key(&key_path, &generate_key())?;
        }
        keys.push(read_key(&key_path)?);
    }
    let (ca_path, tls) = certificates(dir)?;
    let peers: Vec<Peer> = DEMO_BANKS
        .iter()
        .zip(&keys)
        .zip(0u16..)
        .map(|(((code, name), key), i)| Peer {
            code: code.to_string(),
            name: name.to_string(),
            url: format!("https://127.0.0.1:{}", ports[usize::from(i)]),
            public_key: public_key_hex(key),
            more_urls: Vec::new(),
            next_public_key: None,
        })
        .collect();
    let consortium_path = dir.join("consortium.toml");
    let consortium_text = toml::to_string(&Consortium {
        banks: peers.clone(),
    })
    .map_err(|e| format!("cannot write the consortium file: {e}"))?;
    std::fs::write(&consortium_path, consortium_text)
        .map_err(|e| format!("cannot write {}: {e}", consortium_path.display()))?;

    let mut running = Vec::new();
    let mut listed = Vec::new();
    for (((peer, key), tls), i) in peers.iter().zip(keys).zip(tls).zip(0u16..) {
        let config = Config {
            bank: BankCode::parse(&peer.code).expect("demo codes are valid"),
            name: peer.name.clone(),
            listen: ([127, 0, 0, 1], ports[usize::from(i)]).into(),
            data_dir: dir.join(&peer.code),
            database_url: None,
            directory_file: dir.join(&peer.code).join(directory::FILE_NAME),
            operator_token: token_of(&peer.code),
            peers: peers.clone(),
            session_ttl: SESSION_TTL_DEFAULT,
            key,
            store_faults: false,
            edge: Default::default(),
            directory_alone: false,
            tls: Some(tls),
            peer_ca: Some(ca_path.clone()),
        };
        listed.push(DemoBank {
            code: peer.code.clone(),
            name: peer.name.clone(),
            url: peer.url.clone(),
            operator_token: config.operator_token.clone(),
        });
        running.push(crate::start(config).await?);
    }
    let directories: Vec<_> = running
        .iter()
        .map(|bank| bank.state.interbank.directory.clone())
        .collect();
    if !crate::directory::leader_elected(&directories, std::time::Duration::from_secs(10)).await {
        tracing::warn!(
            "the demo's directory has no leader yet; registrations may answer 503 for a moment"
        );
    }
    let file = DemoFile {
        banks: listed,
        consortium: consortium_path.display().to_string(),
        ca: Some(ca_path.display().to_string()),
    };
    let text = serde_json::to_string_pretty(&file).expect("the demo file serialises");
    // It holds each bank's operator token.
    crate::config::write_private(&demo_path, &text)?;

    Ok((running, file))
}
