//! The `bank` binary: finds the local time zone while the process is still single-threaded,
//! parses the command line (clap exits 2 on usage errors), and exits with the code the command
//! answers.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let zone = cli::format::Zone::local();
    let args = cli::args::Args::parse();
    std::process::ExitCode::from(cli::run(args, zone))
}
