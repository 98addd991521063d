//! End-to-end tests of the `bank` binary: every subcommand against banks spawned in this
//! process, every error path and its exit code, the ATM through a pseudo-terminal, and the
//! consortium audit against real and deliberately broken banks, and `bank bench` briefly.

mod atm;
mod audit;
mod bench;
mod commands;
mod errors;
mod helpers;
mod tls;
