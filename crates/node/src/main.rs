//! The `bankd` command: run one bank, or a whole local consortium for a demo.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc rather than glibc's malloc: a request allocates and frees many small buffers on
/// threads other than the ones that made them, where glibc's arenas cost most (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "bankd",
    version,
    about = "One bank's node of the Interbank instant-payment network"
)]
struct Cli {
    /// Threads serving HTTP (the banks' writers have their own); default: one fewer than the
    /// machine's cores, at least one.
    #[arg(long, global = true, env = "BANKD_WORKERS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: Option<u16>,
    /// The SQLite backend's own tuning of each bank's writer, off unless asked for (BENCHMARKS.md
    /// measures it): `none`, `all`, or a comma-separated list of `vfs` (each commit's WAL frames
    /// in one write), `realtime` (SCHED_FIFO from the commit's fsync to its last answer, when the
    /// process may: root, CAP_SYS_NICE or `ulimit -r` 1 or more; otherwise normal, said once in
    /// the log) and `statements` (the writer's statements taken once per batch).
    #[arg(long, global = true, env = "BANKD_SQLITE_TUNING", default_value = "none", value_parser = parse_tuning)]
    sqlite_tuning: store::sqlite::SqliteTuning,
    #[command(subcommand)]
    command: Command,
}

fn parse_tuning(text: &str) -> Result<store::sqlite::SqliteTuning, String> {
    store::sqlite::SqliteTuning::parse(text)
        .ok_or_else(|| "expected none, all, or a list of vfs, realtime, statements".to_string())
}

#[derive(Subcommand)]
enum Command {
    /// Run one bank from a config file; every setting can also come from a BANKD_* variable.
    Serve {
        #[arg(long, env = "BANKD_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Start a local consortium of three banks on 127.0.0.1 and run until interrupted.
    Demo {
        #[arg(long, default_value = "interbank-demo")]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 8081)]
        base_port: u16,
    },
    /// Make an Ed25519 key pair: the secret goes to FILE (readable only by you), the public key
    /// is printed for the consortium file.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    store::sqlite::set_tuning(cli.sqlite_tuning);
    let workers = cli.workers.map_or_else(default_workers, usize::from);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("bankd: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

/// One worker thread fewer than the machine has cores, and at least one: each bank's writer is a
/// thread of its own that must find a core free the moment it has a batch, since every request
/// waits for it. On a two-core machine one worker (with a one-thread bench) served 1.07x
/// the transfers of two (BENCHMARKS.md).
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |cores| cores.get().saturating_sub(1).max(1))
}

async fn run(cli: Cli) -> ExitCode {
    node::init_logging();
    let result = match cli.command {
        Command::Serve { config } => serve(config).await,
        Command::Demo {
            data_dir,
            base_port,
        } => node::demo::run(&data_dir, base_port).await,
        Command::Keygen { out } => keygen(&out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bankd: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Option<PathBuf>) -> Result<(), String> {
    let config = node::config::Config::load(config.as_deref())?;
    let mut bank = node::start(config).await?;
    println!("bank {} serving on {}", bank.state.bank, bank.url());
    tokio::select! {
        result = bank.wait() => result.map_err(|e| e.to_string()),
        _ = tokio::signal::ctrl_c() => bank.stop().await.map_err(|e| e.to_string()),
    }
}

fn keygen(out: &std::path::Path) -> Result<(), String> {
    let key = node::config::generate_key();
    node::config::write_key(out, &key)?;
    println!("{}", node::config::public_key_hex(&key));
    Ok(())
}
