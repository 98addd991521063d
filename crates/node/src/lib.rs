//! `bankd`: one bank's node. It serves the public REST API over the bank's store; later issues
//! add the interbank protocol, the directory and the web app beside it.
//!
//! Architecture invariant: only this crate knows HTTP. Handlers parse input into the ledger's
//! validated types, run one store command, and render the outcome; they never touch SQL.

pub mod app;
pub mod config;
pub mod demo;
pub mod directory;
pub mod duties;
pub mod error;
pub mod extract;
pub mod front;
#[doc(hidden)]
pub mod fuzzing;
pub mod interbank;
pub mod limits;
pub mod listing;
pub mod metrics;
pub mod routes;
pub mod serve;
pub mod state;
pub mod tls;
pub mod trail;

use config::Config;
use state::AppState;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use store::{SharedClock, SqliteStore};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Request bodies larger than this are refused with 413.
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// A bulk transfer request may be larger: up to 8,189 transfers.
pub const BATCH_BODY_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Envelopes between banks may be larger: many protocol messages in one.
pub const INTERBANK_BODY_BYTES_MAX: usize = 8 * 1024 * 1024;
/// A request's body may pause at most this long between two of its pieces (408 beyond): a
/// client that announces a longer body than it sends is answered then.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(2);
/// Every request is answered within this time, but the audit.
pub const HANDLER_TIMEOUT: Duration = Duration::from_secs(10);
/// The audit reads the whole ledger (about 4.5 s per million entries on the machine of
/// BENCHMARKS.md), so it is answered within this longer time.
pub const AUDIT_TIMEOUT: Duration = Duration::from_secs(600);
/// The audit's path.
pub const AUDIT_PATH: &str = "/api/v1/audit";

/// A bank serving on its address until [`RunningBank::stop`].
pub struct RunningBank {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    /// Serving HTTPS.
    pub tls: bool,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    /// Stops once it loses the bank's duties after holding them (a bank of a consortium on
    /// PostgreSQL: [`RunningBank::wait`]).
    stops_without_duties: bool,
}

impl RunningBank {
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Stops taking connections, lets requests in progress finish, and waits for the server.
    pub async fn stop(mut self) -> std::io::Result<()> {
        self.state.interbank.stop();
        self.state.interbank.duties.release().await;
        self.state.interbank.directory.shutdown().await;
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.task
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }

    /// Waits until the server ends by itself (it does not, unless it fails), or until this
    /// process, which may hold its bank's duties only once (a bank of a consortium on
    /// PostgreSQL), loses them after holding them: then it must stop, as the engine that drove
    /// its bank's interbank work must not run beside the next holder's.
    pub async fn wait(&mut self) -> std::io::Result<()> {
        let duties = self.state.interbank.duties.clone();
        let stops_without_duties = self.stops_without_duties;
        let lost = async {
            if stops_without_duties {
                duties.held_within(Duration::MAX).await;
                duties.lost().await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            ended = &mut self.task => ended.unwrap_or_else(|e| Err(std::io::Error::other(e))),
            () = lost => Err(std::io::Error::other(
                "this bankd lost its bank's duties (the database unreachable, or the lease taken): a bank of a consortium runs only as their holder, so it stops",
            )),
        }
    }
}

/// Opens the bank's store under `config.data_dir` and serves it on `config.listen` (port 0 picks
/// a free port; the chosen address is in the result).
pub async fn start(mut config: Config) -> Result<RunningBank, String> {
    tls::install_provider();
    // A bad certificate or key stops the start before anything is opened.
    let server_tls = config.tls.as_ref().map(tls::server_config).transpose()?;
    config::create_private_dir(&config.data_dir)?;
    // Processes of one bank compare their directory files by this name.
    config.directory_file = config::canonical_file(&config.directory_file)?;
    let clock = Arc::new(SharedClock::default());
    let peers: Vec<ledger::BankCode> = config
        .peers
        .iter()
        .filter_map(|p| ledger::BankCode::parse(&p.code))
        .collect();
    // Bound first: a process sharing its bank's database is known to the others by its address.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (directory, (store, duties, ledger, e2e_slot)) = if config.database_url.is_some() {
        // A shared ledger first: whether this process holds the bank's duties decides whether
        // it runs the bank's member of the directory or is a front of the one that does.
        let address = own_address(addr, server_tls.is_some(), &config);
        let opened = open_ledger(&config, &peers, clock.clone(), &address).await?;
        (
            crate::directory::start(&config, clock.clone(), &opened.1).await?,
            opened,
        )
    } else {
        // Before the ledger is opened: it refuses a folder whose ledger lost its directory.
        let sole = Arc::new(duties::Duties::Sole);
        let directory = crate::directory::start(&config, clock.clone(), &sole).await?;
        (
            directory,
            open_ledger(&config, &peers, clock.clone(), "").await?,
        )
    };
    let interbank = interbank::Interbank::start(
        config.bank,
        config.key.clone(),
        &config.peers,
        config.peer_ca.as_deref(),
        store.clone(),
        clock.clone(),
        directory,
        duties,
    )
    .await?;
    let trail = trail::Trail::start(&config.data_dir)?;
    let state = Arc::new(
        AppState::new(
            config.bank,
            config.name.clone(),
            store,
            clock,
            config.operator_token.clone(),
            config.session_ttl,
            config.peers.clone(),
            interbank,
        )
        .with_trail(trail)
        .with_front(consortium_on_postgres(&config, &peers))
        .with_e2e_slot(e2e_slot),
    );
    let stops_without_duties = consortium_on_postgres(&config, &peers);
    let (shutdown, stopped) = oneshot::channel::<()>();
    // What the ledger holds that the directory lacks: an older ledger's customers and keys, and
    // listings a restart cut short.
    listing::start(state.clone(), config.data_dir.clone()).await?;
    let router = app::router(state.clone());
    let serving_tls = server_tls.is_some();
    let task = tokio::spawn(serve::serve(
        listener,
        router,
        state.clock.clone(),
        config.edge,
        server_tls,
        stopped,
    ));
    tracing::info!(bank = %config.bank, %addr, tls = serving_tls, ledger = %ledger, "bank serving");
    Ok(RunningBank {
        addr,
        state,
        tls: serving_tls,
        shutdown: Some(shutdown),
        task,
        stops_without_duties,
    })
}

/// Where this process serves, as the bank's other processes (on this machine: they share the
/// directory's file) reach it: its address in the consortium file when one of the bank's listed
/// addresses has its port (so a certificate made for that name verifies), else its IP address.
fn own_address(addr: std::net::SocketAddr, tls: bool, config: &Config) -> String {
    let listed = config
        .peers
        .iter()
        .filter(|peer| peer.code == config.bank.as_str())
        .flat_map(config::Peer::urls)
        .find(|url| {
            reqwest::Url::parse(url)
                .ok()
                .and_then(|url| url.port_or_known_default())
                == Some(addr.port())
        });
    if let Some(url) = listed {
        return url.trim_end_matches('/').to_owned();
    }
    let ip = if addr.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        addr.ip()
    };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{}", std::net::SocketAddr::new(ip, addr.port()))
}

/// Whether this process is one of a bank of a consortium on PostgreSQL: a front of the process
/// holding the bank's duties until it holds them itself (`front.rs`), and stopped when it loses
/// them (`RunningBank::wait`).
fn consortium_on_postgres(config: &Config, peers: &[ledger::BankCode]) -> bool {
    config.database_url.is_some() && peers.iter().any(|bank| *bank != config.bank)
}

/// Opens the bank's ledger: SQLite in `data_dir` (this process alone holds the bank's duties),
/// or the PostgreSQL database of `database_url`, which other processes of the bank may share
/// (the duties go to one of them, known to the others by its `address`: `duties.rs`). Also
/// says where the ledger is, for the log, and this process's slot for its end-to-end ids (0
/// alone on SQLite: `store::postgres::process_slot`).
async fn open_ledger(
    config: &Config,
    peers: &[ledger::BankCode],
    clock: Arc<SharedClock>,
    address: &str,
) -> Result<(Arc<dyn store::Store>, Arc<duties::Duties>, String, u64), String> {
    if let Some(url) = &config.database_url {
        let shown = store::postgres::redacted(url);
        let opened = store::postgres::open(url, config.bank, peers, clock)
            .await
            .map_err(|e| format!("cannot open the ledger at {shown}: {e}"))?;
        if config.store_faults {
            opened.arm_faults();
        }
        let settings = store::postgres::connect_config(url)?;
        // The ids this process makes differ from every other process's of the bank by it.
        let slot = store::postgres::process_slot(&settings)
            .await
            .map_err(|e| format!("cannot take a process slot in {shown}: {e}"))?;
        let duties = duties::Duties::shared(settings, address, &config.directory_file).await;
        return Ok((Arc::new(opened), Arc::new(duties), shown, slot));
    }
    let path = config.data_dir.join("ledger.db");
    // The ledger holds every customer's documents, sessions and password hashes.
    config::make_private_file(&path)?;
    let opened = SqliteStore::open(&path, config.bank, peers, clock)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    if config.store_faults {
        opened.arm_faults();
    }
    Ok((
        Arc::new(opened),
        Arc::new(duties::Duties::Sole),
        path.display().to_string(),
        0,
    ))
}

/// Structured logs to standard error; `RUST_LOG` takes `info`, `debug`, or targets such as
/// `node=debug,tower_http=debug`.
pub fn init_logging() {
    use tracing_subscriber::prelude::*;
    let filter: tracing_subscriber::filter::Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|text| text.parse().ok())
        // openraft logs an error for every call to a bank that is down: its own messages only
        // when asked for (`RUST_LOG=info,openraft=warn`).
        .unwrap_or_else(|| "info,openraft=off".parse().expect("a valid filter"));
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_known_by_its_listed_address_when_the_consortium_file_has_its_port() {
        let bank = ledger::BankCode::parse("10000001").unwrap();
        let mut config = Config::local(
            bank,
            "Aurora",
            std::path::Path::new("data"),
            "an-operator-token",
        );
        config.peers = vec![config::Peer {
            code: "10000001".into(),
            name: "Aurora".into(),
            url: "https://aurora.example:8443/".into(),
            more_urls: vec!["https://aurora.example:8444".into()],
            public_key: config::public_key_hex(&config.key),
            next_public_key: None,
        }];
        let at = |port: u16| std::net::SocketAddr::from(([0, 0, 0, 0], port));
        assert_eq!(
            own_address(at(8443), true, &config),
            "https://aurora.example:8443"
        );
        assert_eq!(
            own_address(at(8444), true, &config),
            "https://aurora.example:8444"
        );
        assert_eq!(
            own_address(at(9000), true, &config),
            "https://127.0.0.1:9000"
        );
        config.peers.clear();
        assert_eq!(
            own_address(at(8443), false, &config),
            "http://127.0.0.1:8443"
        );
    }
}
