//! Spawning banks and running the real `bank` binary against them.
//!
//! Every test gets its own bank (its own temporary folder, a free port) and every person in a
//! test their own configuration folder, so tests share nothing and run in parallel. The binary
//! runs through `tokio::process`, so the bank, served by the test's runtime, keeps answering.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

pub const BANK: &str = "10000001";
pub const OPERATOR_TOKEN: &str = "operator-token-for-tests-0001";
pub const PASSWORD: &str = "correct-horse-9";
/// A fixed zone without daylight saving, written the POSIX way (no time zone database needed).
pub const TZ: &str = "<-03>3";
/// No single `bank` command in these tests may take longer than this.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

pub const EXIT_OK: i32 = 0;
pub const EXIT_OTHER: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_REFUSED: i32 = 3;
pub const EXIT_UNAVAILABLE: i32 = 4;
pub const EXIT_AUDIT_FAILED: i32 = 5;

/// A bank serving on 127.0.0.1 for one test.
pub struct TestBank {
    pub running: Option<node::RunningBank>,
    pub url: String,
    /// The bank's data; removed when the test ends.
    _dir: tempfile::TempDir,
}

pub async fn spawn_bank() -> TestBank {
    spawn_bank_with(BANK, "Banco Teste").await
}

pub async fn spawn_bank_with(code: &str, name: &str) -> TestBank {
    let dir = tempfile::tempdir().unwrap();
    let config = node::config::Config::local(
        ledger::BankCode::parse(code).unwrap(),
        name,
        dir.path(),
        OPERATOR_TOKEN,
    );
    let running = node::start(config).await.unwrap();
    TestBank {
        url: running.url(),
        running: Some(running),
        _dir: dir,
    }
}

impl TestBank {
    /// Stops serving: from now on its port refuses connections.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.unwrap();
        }
    }
}

/// A URL where nothing listens: a port the OS gave us, closed again.
pub fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// A valid CPF built from `seed` (its first nine digits), with its two check digits.
pub fn cpf(seed: u64) -> String {
    let mut digits: Vec<u32> = format!("{:09}", seed % 1_000_000_000)
        .chars()
        .map(|c| c.to_digit(10).unwrap())
        .collect();
    if digits.iter().all(|d| *d == digits[0]) {
        digits[8] = (digits[8] + 1) % 10;
    }
    for n in [10u32, 11] {
        let sum: u32 = digits.iter().zip((2..=n).rev()).map(|(d, w)| d * w).sum();
        let rest = sum * 10 % 11;
        digits.push(if rest == 10 { 0 } else { rest });
    }
    digits
        .iter()
        .map(|d| char::from_digit(*d, 10).unwrap())
        .collect()
}

/// What one run of `bank` did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Run {
        self.code(EXIT_OK)
    }

    #[track_caller]
    pub fn code(self, expected: i32) -> Run {
        assert_eq!(
            self.code, expected,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Standard output as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Run {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}:\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Run {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}\n--- stdout\n{}",
            self.stderr,
            self.stdout
        );
        self
    }
}

/// One person at the terminal: their own configuration folder (session and defaults).
pub struct Person {
    pub home: tempfile::TempDir,
}

impl Person {
    pub fn new() -> Person {
        Person {
            home: tempfile::tempdir().unwrap(),
        }
    }

    pub fn config_dir(&self) -> PathBuf {
        self.home.path().join("config")
    }

    /// `bank ARGS` as this person, with a clean environment: no bank, password or token comes
    /// from the test runner's own environment.
    pub fn bank(&self, args: &[&str]) -> Invocation {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_bank"));
        command
            .args(args)
            .env_remove("BANK_URL")
            .env_remove("BANK_PASSWORD")
            .env_remove("BANK_OPERATOR_TOKEN")
            .env_remove("BANK_CA")
            .env_remove("XDG_CONFIG_HOME")
            .env("BANK_CONFIG_DIR", self.config_dir())
            .env("HOME", self.home.path())
            .env("TZ", TZ)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        Invocation {
            command,
            stdin: String::new(),
        }
    }

    /// Registers through `bank register`, logs in through `bank login --bank URL`.
    pub async fn register_and_login(&self, url: &str, username: &str, name: &str, seed: u64) {
        let document = cpf(seed);
        self.bank(&[
            "--bank",
            url,
            "register",
            "--name",
            name,
            "--document",
            &document,
            "--username",
            username,
        ])
        .password(PASSWORD)
        .run()
        .await
        .ok();
        self.login(url, username).await;
    }

    pub async fn login(&self, url: &str, username: &str) {
        self.bank(&["--bank", url, "login", username])
            .password(PASSWORD)
            .run()
            .await
            .ok();
    }

    /// Opens an account through `bank open` and answers its `BANK/NUMBER`.
    pub async fn open(&self, deposit: &str) -> String {
        let run = self
            .bank(&["--json", "open", "--deposit", deposit])
            .run()
            .await
            .ok();
        let account = run.json();
        format!(
            "{}/{}",
            account["bank"].as_str().unwrap(),
            account["number"].as_str().unwrap()
        )
    }

    /// The balance of `account` (`BANK/NUMBER`) as the bank says it, like `"10.50"`.
    pub async fn balance(&self, account: &str) -> String {
        let run = self.bank(&["--json", "accounts"]).run().await.ok();
        let accounts = run.json();
        accounts
            .as_array()
            .unwrap()
            .iter()
            .find(|a| {
                format!(
                    "{}/{}",
                    a["bank"].as_str().unwrap(),
                    a["number"].as_str().unwrap()
                ) == account
            })
            .unwrap_or_else(|| panic!("{account} is not among {accounts}"))["balance"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

pub struct Invocation {
    command: tokio::process::Command,
    stdin: String,
}

impl Invocation {
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Invocation {
        self.command.env(key, value);
        self
    }

    /// The password, the way scripts give it: `$BANK_PASSWORD`.
    pub fn password(self, password: &str) -> Invocation {
        self.env("BANK_PASSWORD", password)
    }

    pub fn stdin(mut self, text: &str) -> Invocation {
        self.stdin = text.to_string();
        self
    }

    pub async fn run(mut self) -> Run {
        let mut child = self.command.spawn().expect("the bank binary runs");
        let mut stdin = child.stdin.take().unwrap();
        let text = std::mem::take(&mut self.stdin);
        let writer = tokio::spawn(async move {
            // The command may exit without reading; a broken pipe is then no error of ours.
            let _ = stdin.write_all(text.as_bytes()).await;
        });
        let output = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .expect("bank answered in time")
            .unwrap();
        writer.await.unwrap();
        Run {
            code: output.status.code().expect("bank exited, not killed"),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }
}
