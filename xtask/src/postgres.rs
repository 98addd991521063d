//! The tests' private PostgreSQL cluster: found (or installed from Debian's packages), created in
//! a fresh temporary folder, started on a free port of 127.0.0.1, and stopped and removed when
//! dropped. Nothing outside that folder is touched; a cluster someone else started is never used
//! unless its URL is given in [`URL_VAR`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The variable that gives the tests the server's URL (read by `store::postgres::testing`).
pub const URL_VAR: &str = "INTERBANK_TEST_PG";

/// The Debian package with the server binaries (`initdb`, `pg_ctl`, `postgres`, `pgbench`).
const PACKAGE: &str = "postgresql";
/// Where Debian keeps each major version's server binaries (they are not on the `PATH`).
const DEBIAN_LIBS: &str = "/usr/lib/postgresql";
/// The user the server runs as when xtask runs as root: PostgreSQL refuses to run as root, and
/// Debian's package creates this one.
const SERVER_USER: &str = "postgres";
/// Enough for several `bankd` of one bank, each with its writer's and readers' connections, and
/// the tests that run at once (cargo runs one test binary at a time, its tests on every core).
const CONNECTIONS_MAX: u32 = 400;

/// The server the tests use.
pub enum Server {
    /// Given by the caller in [`URL_VAR`].
    External(String),
    /// Started here, stopped when dropped.
    Private(Cluster),
}

impl Server {
    pub fn url(&self) -> String {
        match self {
            Server::External(url) => url.clone(),
            Server::Private(cluster) => cluster.url(),
        }
    }
}

/// A running cluster of our own.
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// Run through `runuser -u postgres` (xtask is root).
    as_server_user: bool,
}

impl Cluster {
    /// Installs PostgreSQL when missing (as root), then creates and starts a private cluster.
    pub fn start() -> Result<Cluster, String> {
        let bin = match server_binaries() {
            Some(bin) => bin,
            None => {
                install()?;
                server_binaries().ok_or_else(|| {
                    format!("no initdb and pg_ctl under {DEBIAN_LIBS}/*/bin after installing")
                })?
            }
        };
        let as_server_user = crate::is_root();
        let dir = std::env::temp_dir().join(format!("interbank-pg-{}", std::process::id()));
        // A folder left by an earlier run of the same process id (after a kill) is stale.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if as_server_user {
            ensure_server_user()?;
            let uid = user_id(SERVER_USER)?;
            std::os::unix::fs::chown(&dir, Some(uid), None)
                .map_err(|e| format!("cannot give {} to {SERVER_USER}: {e}", dir.display()))?;
        }
        let port = free_port()?;
        let cluster = Cluster {
            bin,
            dir,
            port,
            as_server_user,
        };
        cluster.init_and_run()?;
        println!(
            "xtask: PostgreSQL cluster of the tests at {} ({})",
            cluster.url(),
            cluster.dir.display()
        );
        Ok(cluster)
    }

    pub fn url(&self) -> String {
        format!("postgres://{SERVER_USER}@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A command for one of the server's programs, run as the server's user when we are root.
    fn program(&self, name: &str) -> Command {
        let path = self.bin.join(name);
        if self.as_server_user {
            let mut command = Command::new("runuser");
            command.args(["-u", SERVER_USER, "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn init_and_run(&self) -> Result<(), String> {
        let log = self.dir.join("initdb.log");
        run(
            self.program("initdb")
                .arg("-D")
                .arg(self.data())
                .args(["-U", SERVER_USER, "--auth=trust", "--encoding=UTF8"])
                .stdout(file(&log)?)
                .stderr(Stdio::inherit()),
            "initdb",
        )?;
        // Only 127.0.0.1 and a socket in the private folder. The tests kill `bankd` processes,
        // never this server, so its own fsyncs buy them nothing: off, to spare the shared disk
        // (the benchmarks start their own, durable, server: scripts/pgbench.sh).
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections={CONNECTIONS_MAX} \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.port,
            self.dir.display()
        );
        run(
            self.program("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.dir.join("server.log"))
                .args(["-w", "-o", &options, "start"])
                .stdout(Stdio::null()),
            "pg_ctl start",
        )
        .map_err(|e| {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            format!("{e}\n{log}")
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .program("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The newest major version's server binaries under Debian's folder, if installed.
fn server_binaries() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(DEBIAN_LIBS)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((major, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// Installs Debian's PostgreSQL as root; otherwise says exactly how.
fn install() -> Result<(), String> {
    let line = format!("apt-get update && apt-get install -y {PACKAGE}");
    if !crate::is_root() {
        return Err(format!(
            "the tests need PostgreSQL's server; install it with: sudo sh -c '{line}'"
        ));
    }
    println!("xtask: installing {PACKAGE}");
    run(
        Command::new("sh")
            .arg("-c")
            .arg(format!("DEBIAN_FRONTEND=noninteractive {line}")),
        &line,
    )
}

fn ensure_server_user() -> Result<(), String> {
    if user_id(SERVER_USER).is_ok() {
        return Ok(());
    }
    run(
        Command::new("useradd").args(["--system", "--no-create-home", SERVER_USER]),
        "useradd postgres",
    )
}

fn user_id(user: &str) -> Result<u32, String> {
    let output = Command::new("id")
        .args(["-u", user])
        .output()
        .map_err(|e| e.to_string())?;
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|_| format!("no user {user}"))
}

/// A port nobody listens on now (the server takes it a moment later).
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn file(path: &Path) -> Result<std::fs::File, String> {
    std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{what}` failed ({status})"))
    }
}
