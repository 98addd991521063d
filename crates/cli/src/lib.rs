//! `bank`, Interbank's terminal client, as a library: the binary in `main.rs` only parses the
//! command line and exits with the code [`run`] answers. Everything goes through the public REST
//! API (via `client`); nothing here reads a bank's store.
//!
//! Architecture invariant: no floating point touches money here either; amounts typed by people
//! become the ledger's integer centavos in [`amount`], and wire amounts are shown through
//! integer centavos in [`format`].

pub mod amount;
pub mod args;
pub mod atm;
pub mod audit;
pub mod bench;
pub mod commands;
pub mod config;
pub mod error;
pub mod format;
pub mod terminal;

use amount::Lang;
use args::{Args, Command, LangArg};
use error::{CliError, exit};
use format::Zone;

/// Runs one command line and answers the process's exit code. `zone` is found by the caller
/// before any thread starts.
pub fn run(args: Args, zone: Zone) -> u8 {
    // One thread is plenty for one request at a time. The bench's clients get `--threads` when
    // the banks run elsewhere; the banks a bench starts in this process get every core.
    let mut builder = match &args.command {
        Command::Bench(bench) if bench.consortium.is_some() || args.bank.is_some() => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(usize::from(bench.threads));
            builder
        }
        Command::Bench(_) => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start: {error}");
            return exit::OTHER;
        }
    };
    runtime.block_on(run_async(args, zone))
}

async fn run_async(args: Args, zone: Zone) -> u8 {
    let session_path = match config::session_path() {
        Ok(path) => path,
        Err(error) => {
            eprintln!("error: {error}");
            return exit::OTHER;
        }
    };
    let trust = match &args.ca {
        Some(path) => match client::Trust::with_ca_file(path) {
            Ok(trust) => trust,
            Err(error) => {
                eprintln!("error: --ca: {error}");
                return exit::USAGE;
            }
        },
        None => client::Trust::system(),
    };
    let context = commands::Context {
        json: args.json,
        zone,
        bank: args.bank,
        session_path,
        trust: trust.clone(),
    };
    if let Command::Atm { lang, show_clock } = args.command {
        let url = match context.url() {
            Ok(url) => url,
            Err(error) => {
                eprintln!("{}", error.report());
                return error.exit_code();
            }
        };
        let lang = match lang {
            LangArg::Pt => Lang::Pt,
            LangArg::En => Lang::En,
        };
        return atm::run(atm::Options {
            url,
            trust,
            lang,
            show_clock,
            zone,
        })
        .await;
    }
    let json = context.json;
    match commands::run(&context, args.command).await {
        Ok(()) => exit::OK,
        Err(error) => {
            // With --json, a refusal's problem document goes to standard output too, so a
            // script reads the same shape the API answered.
            if json
                && let CliError::Client(client_error) = &error
                && let Some(problem) = client_error.problem()
            {
                println!(
                    "{}",
                    serde_json::to_string_pretty(problem).expect("a problem serialises")
                );
            }
            eprintln!("{}", error.report());
            error.exit_code()
        }
    }
}
