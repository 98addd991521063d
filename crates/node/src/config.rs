//! How one bank is configured: a TOML file, every setting overridable by a `BANKD_*`
//! environment variable, and the consortium file that lists every bank.

use ledger::BankCode;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub code: Option<String>,
    pub name: Option<String>,
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub operator_token: Option<String>,
    pub consortium: Option<PathBuf>,
    pub session_ttl_seconds: Option<u64>,
}

/// A bank of the consortium, as the consortium file lists it.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    pub code: String,
    pub name: String,
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consortium {
    #[serde(rename = "bank")]
    pub banks: Vec<Peer>,
}

/// A validated configuration, ready to start a bank.
#[derive(Debug, Clone)]
pub struct Config {
    pub bank: BankCode,
    pub name: String,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub operator_token: String,
    pub peers: Vec<Peer>,
    pub session_ttl: Duration,
}

pub const SESSION_TTL_DEFAULT: Duration = Duration::from_secs(8 * 3600);
const OPERATOR_TOKEN_LEN_MIN: usize = 16;

impl Config {
    /// A bank alone on 127.0.0.1 with a free port, no peers and default settings: for tests and
    /// tools that start their own banks.
    pub fn local(bank: BankCode, name: &str, data_dir: &Path, operator_token: &str) -> Config {
        Config {
            bank,
            name: name.to_string(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.to_path_buf(),
            operator_token: operator_token.to_string(),
            peers: Vec::new(),
            session_ttl: SESSION_TTL_DEFAULT,
        }
    }

    /// Reads `file` (if given), then lets `BANKD_CODE`, `BANKD_NAME`, `BANKD_LISTEN`,
    /// `BANKD_DATA_DIR`, `BANKD_OPERATOR_TOKEN`, `BANKD_CONSORTIUM` and
    /// `BANKD_SESSION_TTL_SECONDS` override it.
    pub fn load(file: Option<&Path>) -> Result<Config, String> {
        let mut raw = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => FileConfig {
                code: None,
                name: None,
                listen: None,
                data_dir: None,
                operator_token: None,
                consortium: None,
                session_ttl_seconds: None,
            },
        };
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        raw.code = env("BANKD_CODE").or(raw.code);
        raw.name = env("BANKD_NAME").or(raw.name);
        raw.listen = env("BANKD_LISTEN").or(raw.listen);
        raw.data_dir = env("BANKD_DATA_DIR").map(PathBuf::from).or(raw.data_dir);
        raw.operator_token = env("BANKD_OPERATOR_TOKEN").or(raw.operator_token);
        raw.consortium = env("BANKD_CONSORTIUM")
            .map(PathBuf::from)
            .or(raw.consortium);
        if let Some(ttl) = env("BANKD_SESSION_TTL_SECONDS") {
            raw.session_ttl_seconds = Some(ttl.parse().map_err(|_| {
                "BANKD_SESSION_TTL_SECONDS must be a number of seconds".to_string()
            })?);
        }
        Self::validate(raw, file.and_then(Path::parent))
    }

    fn validate(raw: FileConfig, base: Option<&Path>) -> Result<Config, String> {
        let code = raw
            .code
            .ok_or("the bank's code is missing (code = \"12345678\" or BANKD_CODE)")?;
        let bank = BankCode::parse(&code)
            .ok_or_else(|| format!("the bank code {code:?} is not 8 digits"))?;
        let listen = raw.listen.unwrap_or_else(|| "127.0.0.1:8081".into());
        let listen = listen
            .parse()
            .map_err(|_| format!("listen address {listen:?} is not host:port"))?;
        let resolve = |path: PathBuf| match base {
            Some(base) if path.is_relative() => base.join(path),
            _ => path,
        };
        let data_dir = resolve(
            raw.data_dir
                .ok_or("the data directory is missing (data_dir or BANKD_DATA_DIR)")?,
        );
        let operator_token = raw
            .operator_token
            .ok_or("the operator token is missing (operator_token or BANKD_OPERATOR_TOKEN)")?;
        if operator_token.len() < OPERATOR_TOKEN_LEN_MIN {
            return Err(format!(
                "the operator token must have at least {OPERATOR_TOKEN_LEN_MIN} characters"
            ));
        }
        let peers = match raw.consortium {
            Some(path) => load_consortium(&resolve(path))?,
            None => Vec::new(),
        };
        Ok(Config {
            bank,
            name: raw.name.unwrap_or_else(|| format!("Bank {code}")),
            listen,
            data_dir,
            operator_token,
            peers,
            session_ttl: raw
                .session_ttl_seconds
                .map(Duration::from_secs)
                .unwrap_or(SESSION_TTL_DEFAULT),
        })
    }
}

pub fn load_consortium(path: &Path) -> Result<Vec<Peer>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let consortium: Consortium =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    for peer in &consortium.banks {
        BankCode::parse(&peer.code).ok_or_else(|| {
            format!(
                "{}: bank code {:?} is not 8 digits",
                path.display(),
                peer.code
            )
        })?;
    }
    Ok(consortium.banks)
}
