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
    #[command(subcommand)]
    command: Command,
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

#[tokio::main]
async fn main() -> ExitCode {
    node::init_logging();
    let result = match Cli::parse().command {
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
