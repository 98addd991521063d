//! How one bank is configured: a TOML file, every setting overridable by a `BANKD_*`
//! environment variable, and the consortium file that lists every bank.

use ed25519_dalek::SigningKey;
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
    /// The ledger in a PostgreSQL database (`postgres://…`) instead of SQLite under `data_dir`;
    /// several `bankd` of one bank may share it.
    pub database_url: Option<String>,
    /// The directory's file (default `<data_dir>/directory.db`). Several `bankd` of one bank on
    /// one PostgreSQL ledger, on one machine, are given the same one.
    pub directory_file: Option<PathBuf>,
    pub operator_token: Option<String>,
    pub consortium: Option<PathBuf>,
    pub session_ttl_seconds: Option<u64>,
    /// This bank's Ed25519 secret key (`bankd keygen` writes one).
    pub key_file: Option<PathBuf>,
    /// This bank's TLS certificate chain and private key (PEM): with both, it serves HTTPS only.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The CA bundle (PEM) other banks' certificates are checked against; without it, the
    /// system's roots.
    pub tls_ca: Option<PathBuf>,
}

/// A bank of the consortium, as the consortium file lists it.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    pub code: String,
    pub name: String,
    pub url: String,
    /// Other `bankd` processes of the bank (several on one PostgreSQL ledger): a bank that does
    /// not answer at one address is tried at the next.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_urls: Vec<String>,
    /// The bank's Ed25519 public key, hex; every interbank request it signs is checked with it.
    pub public_key: String,
    /// The key the bank will sign with next, hex, listed ahead of a key change: requests signed
    /// with either are accepted (each names its key by id, `interbank::signing::key_id`), so the
    /// bank may switch keys before every other bank has the new file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_public_key: Option<String>,
}

impl Peer {
    /// Every address of the bank: `url`, then `more_urls`.
    pub fn urls(&self) -> Vec<String> {
        std::iter::once(&self.url)
            .chain(&self.more_urls)
            .cloned()
            .collect()
    }

    /// The keys this bank may sign with: its current one, and its next one when listed.
    pub fn public_keys(&self) -> Result<Vec<ed25519_dalek::VerifyingKey>, String> {
        std::iter::once(&self.public_key)
            .chain(&self.next_public_key)
            .map(|key| parse_public_key(key))
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
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
    /// Where the ledger is: SQLite in `data_dir` (`None`), or this PostgreSQL database.
    pub database_url: Option<String>,
    /// The directory's file: `<data_dir>/directory.db` unless set (`crate::directory`).
    pub directory_file: PathBuf,
    pub operator_token: String,
    /// Every bank of the consortium, this one included.
    pub peers: Vec<Peer>,
    pub session_ttl: Duration,
    /// Signs this bank's interbank requests.
    pub key: SigningKey,
    /// Tests only (debug builds; release builds ignore it): arms the store's faults
    /// (`SqliteStore::arm_faults`), so a test can make a command panic or the writer stop.
    pub store_faults: bool,
    /// Connections at once and the time a request's head may take (`serve.rs`).
    pub edge: crate::serve::EdgeLimits,
    /// Tests only: this bank's directory is a group of its own, whatever `peers` lists (the API
    /// tests' peer that never answers would otherwise leave it without a majority).
    pub directory_alone: bool,
    /// Serve HTTPS with this certificate and key (`tls.rs`); plain HTTP without.
    pub tls: Option<crate::tls::ServerTls>,
    /// The CA bundle other banks' certificates are checked against (the consortium's CA); the
    /// system's roots without.
    pub peer_ca: Option<PathBuf>,
}

/// `path` with its folder's absolute, symlink-free name (the file itself may not exist yet).
pub fn canonical_file(path: &Path) -> Result<PathBuf, String> {
    let (Some(folder), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(format!("{} is not a file's path", path.display()));
    };
    let folder = if folder.as_os_str().is_empty() {
        Path::new(".")
    } else {
        folder
    };
    let folder = std::fs::canonicalize(folder)
        .map_err(|e| format!("the folder of {}: {e}", path.display()))?;
    Ok(folder.join(name))
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
            database_url: None,
            directory_file: data_dir.join(directory::FILE_NAME),
            operator_token: operator_token.to_string(),
            peers: Vec::new(),
            session_ttl: SESSION_TTL_DEFAULT,
            key: generate_key(),
            store_faults: false,
            edge: Default::default(),
            directory_alone: false,
            tls: None,
            peer_ca: None,
        }
    }

    /// Reads `file` (if given), then lets `BANKD_CODE`, `BANKD_NAME`, `BANKD_LISTEN`,
    /// `BANKD_DATA_DIR`, `BANKD_DATABASE_URL`, `BANKD_DIRECTORY_FILE`, `BANKD_OPERATOR_TOKEN`, `BANKD_CONSORTIUM`,
    /// `BANKD_SESSION_TTL_SECONDS`, `BANKD_TLS_CERT`, `BANKD_TLS_KEY` and `BANKD_TLS_CA`
    /// override it.
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
                database_url: None,
                directory_file: None,
                operator_token: None,
                consortium: None,
                session_ttl_seconds: None,
                key_file: None,
                tls_cert: None,
                tls_key: None,
                tls_ca: None,
            },
        };
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        raw.code = env("BANKD_CODE").or(raw.code);
        raw.name = env("BANKD_NAME").or(raw.name);
        raw.listen = env("BANKD_LISTEN").or(raw.listen);
        raw.data_dir = env("BANKD_DATA_DIR").map(PathBuf::from).or(raw.data_dir);
        raw.database_url = env("BANKD_DATABASE_URL").or(raw.database_url);
        raw.directory_file = env("BANKD_DIRECTORY_FILE")
            .map(PathBuf::from)
            .or(raw.directory_file);
        raw.operator_token = env("BANKD_OPERATOR_TOKEN").or(raw.operator_token);
        raw.consortium = env("BANKD_CONSORTIUM")
            .map(PathBuf::from)
            .or(raw.consortium);
        raw.key_file = env("BANKD_KEY_FILE").map(PathBuf::from).or(raw.key_file);
        raw.tls_cert = env("BANKD_TLS_CERT").map(PathBuf::from).or(raw.tls_cert);
        raw.tls_key = env("BANKD_TLS_KEY").map(PathBuf::from).or(raw.tls_key);
        raw.tls_ca = env("BANKD_TLS_CA").map(PathBuf::from).or(raw.tls_ca);
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
        if let Some(url) = &raw.database_url
            && !store::postgres::is_url(url)
        {
            return Err(format!(
                "the database URL must be postgres://… or postgresql://… (got {:?})",
                store::postgres::redacted(url)
            ));
        }
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
        let key = match raw.key_file {
            Some(path) => read_key(&resolve(path))?,
            None if peers.iter().any(|p| p.code != code) => {
                return Err(
                    "a bank with peers needs its key (key_file or BANKD_KEY_FILE; `bankd keygen` makes one)"
                        .into(),
                );
            }
            None => generate_key(),
        };
        if let Some(me) = peers.iter().find(|p| p.code == code)
            && !me
                .public_keys()
                .is_ok_and(|keys| keys.contains(&key.verifying_key()))
        {
            return Err(format!(
                "the consortium file lists other public keys for bank {code} than its key file's"
            ));
        }
        let tls = match (raw.tls_cert, raw.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::ServerTls {
                cert_chain: resolve(cert),
                private_key: resolve(key),
            }),
            (None, None) => None,
            _ => {
                return Err(
                    "TLS needs both a certificate chain and its private key (tls_cert and tls_key, or BANKD_TLS_CERT and BANKD_TLS_KEY)"
                        .into(),
                );
            }
        };
        let directory_file = raw
            .directory_file
            .map(resolve)
            .unwrap_or_else(|| data_dir.join(directory::FILE_NAME));
        Ok(Config {
            bank,
            name: raw.name.unwrap_or_else(|| format!("Bank {code}")),
            listen,
            data_dir,
            database_url: raw.database_url,
            directory_file,
            operator_token,
            peers,
            session_ttl: raw
                .session_ttl_seconds
                .map(Duration::from_secs)
                .unwrap_or(SESSION_TTL_DEFAULT),
            key,
            store_faults: false,
            edge: Default::default(),
            directory_alone: false,
            tls,
            peer_ca: raw.tls_ca.map(resolve),
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
        peer.public_keys()
            .map_err(|e| format!("{}: bank {}: {e}", path.display(), peer.code))?;
    }
    Ok(consortium.banks)
}

/// A fresh Ed25519 key from the operating system's random source.
pub fn generate_key() -> SigningKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("the OS random source works");
    SigningKey::from_bytes(&seed)
}

/// Reads a key file: the 32-byte secret seed in hex, as `bankd keygen` writes it.
pub fn read_key(path: &Path) -> Result<SigningKey, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut seed)
        .map_err(|_| format!("{}: a key file holds 64 hex digits", path.display()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Writes a key file readable only by its owner.
pub fn write_key(path: &Path, key: &SigningKey) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    writeln!(file, "{}", hex::encode(key.to_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Creates `dir` and its missing parents readable only by this user (0700): a bank's folder
/// holds its ledger, its key and, for the demo, operator tokens. A folder already there is left
/// as it is (it may be one the operator chose and shares).
pub fn create_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

/// Makes `path` readable and writable only by this user (0600), creating it empty if missing:
/// before SQLite opens a ledger (its `-wal` and `-shm` files take the database's mode) or a
/// file of secrets is written.
pub fn make_private_file(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .and_then(|_| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)))
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
}

/// Writes `text` to `path`, readable only by this user (0600).
pub fn write_private(path: &Path, text: &str) -> Result<(), String> {
    make_private_file(path)?;
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub fn public_key_hex(key: &SigningKey) -> String {
    hex::encode(key.verifying_key().to_bytes())
}

pub fn parse_public_key(text: &str) -> Result<ed25519_dalek::VerifyingKey, String> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut bytes)
        .map_err(|_| "a public key is 64 hex digits".to_string())?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| "not an Ed25519 public key".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> FileConfig {
        FileConfig {
            code: Some("10000001".into()),
            name: None,
            listen: None,
            data_dir: Some("data".into()),
            database_url: None,
            directory_file: None,
            operator_token: Some("operator-token-for-tests".into()),
            consortium: None,
            session_ttl_seconds: None,
            key_file: None,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
        }
    }

    #[test]
    fn the_directory_file_is_in_the_data_folder_unless_given() {
        let default = Config::validate(raw(), Some(Path::new("/etc/bank"))).unwrap();
        assert_eq!(
            default.directory_file,
            Path::new("/etc/bank/data/directory.db")
        );
        let given = Config::validate(
            FileConfig {
                directory_file: Some("shared/directory.db".into()),
                ..raw()
            },
            Some(Path::new("/etc/bank")),
        )
        .unwrap();
        assert_eq!(
            given.directory_file,
            Path::new("/etc/bank/shared/directory.db")
        );
    }

    #[test]
    fn the_ledger_may_be_a_postgres_url_and_nothing_else() {
        let sqlite = Config::validate(raw(), None).unwrap();
        assert_eq!(sqlite.database_url, None);
        for url in [
            "postgres://bank@db:5432/ledger",
            "postgresql:///ledger?host=/run/pg",
        ] {
            let config = Config::validate(
                FileConfig {
                    database_url: Some(url.into()),
                    ..raw()
                },
                None,
            )
            .unwrap();
            assert_eq!(config.database_url.as_deref(), Some(url));
        }
        let refused = Config::validate(
            FileConfig {
                database_url: Some("mysql://bank:secret@db/ledger".into()),
                ..raw()
            },
            None,
        )
        .unwrap_err();
        assert!(refused.contains("postgres://"), "{refused}");
        assert!(
            !refused.contains("secret"),
            "the password is shown: {refused}"
        );
    }

    #[test]
    fn tls_takes_a_certificate_with_its_key_and_paths_resolve_beside_the_file() {
        let base = Path::new("/etc/bank");
        let plain = Config::validate(raw(), Some(base)).unwrap();
        assert!(plain.tls.is_none() && plain.peer_ca.is_none());

        let mut only_cert = raw();
        only_cert.tls_cert = Some("tls.crt".into());
        let refused = Config::validate(only_cert, Some(base)).unwrap_err();
        assert!(refused.contains("both"), "{refused}");
        let mut only_key = raw();
        only_key.tls_key = Some("tls.key".into());
        assert!(Config::validate(only_key, Some(base)).is_err());

        let mut both = raw();
        both.tls_cert = Some("tls.crt".into());
        both.tls_key = Some("/keys/tls.key".into());
        both.tls_ca = Some("ca.pem".into());
        let config = Config::validate(both, Some(base)).unwrap();
        assert_eq!(
            config.tls,
            Some(crate::tls::ServerTls {
                cert_chain: PathBuf::from("/etc/bank/tls.crt"),
                private_key: PathBuf::from("/keys/tls.key"),
            })
        );
        assert_eq!(config.peer_ca, Some(PathBuf::from("/etc/bank/ca.pem")));
    }
}
