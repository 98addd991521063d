//! The `bank` binary: finds the local time zone while the process is still single-threaded,
//! parses the command line (clap exits 2 on usage errors), and exits with the code the command
//! answers.

use clap::Parser;

/// The same allocator as `bankd`'s: `bank bench` runs its own banks in this process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let zone = cli::format::Zone::local();
    let args = cli::args::Args::parse();
    std::process::ExitCode::from(cli::run(args, zone))
}
