//! Project automation, run as `cargo xtask <task>`.
//!
//! `cargo xtask test` is the one command that runs every test on a fresh machine: it installs
//! what the tests need when it is missing (Debian packages, with `apt-get update` first, when
//! run as root; otherwise it prints the exact install line), starts a private PostgreSQL cluster
//! for the tests that need a real server (`INTERBANK_TEST_PG`, below), runs the whole workspace's
//! tests, then starts a real `bankd` and runs the public contract's smoke test against it
//! (`../shared/contract-smoke.py`, when that file is beside the checkout). It ends with one
//! summary line, `summary: N passed, M failed`.
//!
//! The PostgreSQL cluster is the tests' own: `initdb` in a fresh temporary folder, `pg_ctl start`
//! on a free port of 127.0.0.1 (its unix socket in that folder too), trust authentication, run by
//! Debian's `postgres` user when xtask runs as root (the server refuses root); stopped and removed
//! when the run ends. Its URL goes to the tests as `INTERBANK_TEST_PG`; each test that needs it
//! creates and drops a database of its own. A URL already in `INTERBANK_TEST_PG` is used as it is
//! and no cluster is started. `cargo xtask with-pg COMMAND...` runs one command beside such a
//! cluster (e.g. `cargo xtask with-pg cargo test -p store --test postgres`).

mod postgres;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// Programs the tests need, and the Debian package that provides each.
const NEEDED: &[(&str, &str)] = &[("python3", "python3")];

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "test" => test(),
        "with-pg" => with_pg(std::env::args().skip(2).collect()),
        _ => Err("usage: cargo xtask test | cargo xtask with-pg COMMAND [ARG...]".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn found(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Installs the Debian packages of missing programs when root; otherwise says how.
fn ensure_tools() -> Result<(), String> {
    let missing: Vec<&str> = NEEDED
        .iter()
        .filter(|(program, _)| !found(program))
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let line = format!("apt-get update && apt-get install -y {}", missing.join(" "));
    if !is_root() {
        return Err(format!(
            "the tests need {}; install them with: sudo sh -c '{line}'",
            missing.join(", ")
        ));
    }
    println!("xtask: installing {}", missing.join(", "));
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("DEBIAN_FRONTEND=noninteractive {line}"))
        .status()
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{line}` failed"))
    }
}

#[derive(Default)]
struct Counts {
    passed: u64,
    failed: u64,
}

/// Runs `cargo test --workspace` with `INTERBANK_TEST_PG` set to `pg_url`, echoing its output
/// and adding up its result lines.
fn cargo_test(counts: &mut Counts, pg_url: &str) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut child = Command::new(cargo)
        .args(["test", "--workspace", "--color", "never"])
        .env(postgres::URL_VAR, pg_url)
        .current_dir(root())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo test: {e}"))?;
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line.map_err(|e| e.to_string())?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            let number = |word: &str| {
                rest.split([';', '.'])
                    .find_map(|part| {
                        part.trim()
                            .strip_suffix(word)
                            .and_then(|n| n.trim().parse::<u64>().ok())
                    })
                    .unwrap_or(0)
            };
            counts.passed += number(" passed");
            counts.failed += number(" failed");
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err("cargo test failed".into())
    }
}

/// Starts the `bankd` the tests built, on a free port with a fresh data directory, and runs the
/// shared contract smoke test against it.
fn contract_smoke(counts: &mut Counts) -> Result<(), String> {
    let script = root().join("../shared/contract-smoke.py");
    if !script.exists() {
        if in_ci() {
            return Err(format!("{} is missing", script.display()));
        }
        println!(
            "xtask: SKIPPING the contract smoke test: {} is not beside this checkout",
            script.display()
        );
        return Ok(());
    }
    let data = std::env::temp_dir().join(format!("interbank-smoke-{}", std::process::id()));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let bankd = target.join("debug/bankd");
    let mut child = Command::new(&bankd)
        .arg("serve")
        .env("BANKD_CODE", "10000001")
        .env("BANKD_LISTEN", "127.0.0.1:0")
        .env("BANKD_DATA_DIR", &data)
        .env("BANKD_OPERATOR_TOKEN", "smoke-operator-token")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bankd.display()))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    let status = Command::new("python3")
        .arg(&script)
        .args(["--url", &url])
        .status();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&data);
    match status {
        Ok(status) if status.success() => {
            counts.passed += 1;
            Ok(())
        }
        _ => {
            counts.failed += 1;
            Err("the contract smoke test failed".into())
        }
    }
}

/// Runs one command (e.g. `cargo test -p store --test postgres`) with a private PostgreSQL
/// cluster's URL in `INTERBANK_TEST_PG`, as `cargo xtask test` runs the whole suite.
fn with_pg(command: Vec<String>) -> Result<(), String> {
    let (program, args) = command
        .split_first()
        .ok_or("usage: cargo xtask with-pg COMMAND [ARG...]")?;
    let cluster = postgres::Cluster::start()?;
    let status = Command::new(program)
        .args(args)
        .env(postgres::URL_VAR, cluster.url())
        .status()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{program} failed ({status})"))
    }
}

fn test() -> Result<(), String> {
    ensure_tools()?;
    // Stopped and removed when `cluster` is dropped, at the end of this function.
    let cluster = match std::env::var(postgres::URL_VAR)
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(url) => {
            println!(
                "xtask: using the PostgreSQL server of {}",
                postgres::URL_VAR
            );
            postgres::Server::External(url)
        }
        None => postgres::Server::Private(postgres::Cluster::start()?),
    };
    let mut counts = Counts::default();
    let result = cargo_test(&mut counts, &cluster.url()).and_then(|()| contract_smoke(&mut counts));
    println!(
        "summary: {} passed, {} failed",
        counts.passed, counts.failed
    );
    result
}
