//! `spawn_bank()` and a thin JSON client for the tests.

use node::config::Config;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub const BANK: &str = "10000001";
pub const OPERATOR_TOKEN: &str = "operator-token-for-tests";
pub const PASSWORD: &str = "correct-horse-9";

pub struct TestBank {
    pub running: Option<node::RunningBank>,
    pub url: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub headers: HeaderMap,
}

impl Answer {
    /// The problem's stable code, asserting the answer is a problem+json document.
    pub fn code(&self) -> &str {
        let content_type = self
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert_eq!(
            content_type, "application/problem+json",
            "{} {}",
            self.status, self.body
        );
        assert_eq!(
            self.body["status"].as_u64(),
            Some(u64::from(self.status.as_u16())),
            "{}",
            self.body
        );
        assert!(
            self.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{}",
            self.body
        );
        self.body["code"].as_str().expect("a problem has a code")
    }
}

pub fn config(data_dir: &Path) -> Config {
    let mut config = Config::local(
        ledger::BankCode::parse(BANK).unwrap(),
        "Banco Teste",
        data_dir,
        OPERATOR_TOKEN,
    );
    // A peer that never answers (port 9, discard): payments to it are refused as unavailable.
    config.peers = vec![node::config::Peer {
        code: "20000002".into(),
        name: "Banco Par".into(),
        url: "http://127.0.0.1:9".into(),
        public_key: node::config::public_key_hex(&node::config::generate_key()),
        more_urls: Vec::new(),
        next_public_key: None,
    }];
    // The directory is this bank's alone: with the silent peer in its group there would be no
    // majority, and no registration.
    config.directory_alone = true;
    config.session_ttl = Duration::from_secs(3600);
    config
}

pub async fn spawn_bank() -> TestBank {
    spawn_bank_with(|_| {}).await
}

/// A bank whose configuration `adjust` changes first.
pub async fn spawn_bank_with(adjust: impl FnOnce(&mut Config)) -> TestBank {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    adjust(&mut config);
    let running = node::start(config).await.unwrap();
    let url = running.url();
    TestBank {
        running: Some(running),
        url,
        http: reqwest::Client::new(),
        dir,
    }
}

static SERIAL: AtomicU64 = AtomicU64::new(1);

/// A process-wide unique number, for usernames and documents.
pub fn unique() -> u64 {
    SERIAL.fetch_add(1, Ordering::Relaxed) + u64::from(std::process::id()) * 1_000_000
}

/// A valid CPF built from `seed` (its first nine digits), with its two check digits.
pub fn cpf(seed: u64) -> String {
    (seed..)
        .find_map(|base| ledger::Cpf::from_base((base % 1_000_000_000) as u32))
        .expect("most bases make a CPF")
        .as_str()
        .to_string()
}

/// A valid alphanumeric CNPJ built from `seed`.
pub fn cnpj(seed: u64) -> String {
    let mut chars: Vec<u8> = format!("AB{:010}", seed % 10_000_000_000).into_bytes();
    for len in [12usize, 13] {
        let sum: u32 = chars[..len]
            .iter()
            .rev()
            .zip((2..=9).cycle())
            .map(|(c, w)| (u32::from(*c) - 48) * w)
            .sum();
        let rest = sum % 11;
        chars.push(b'0' + if rest < 2 { 0 } else { (11 - rest) as u8 });
    }
    String::from_utf8(chars).unwrap()
}

pub struct Customer {
    pub username: String,
    pub document: String,
    pub token: String,
}

impl TestBank {
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
        key: Option<&str>,
    ) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        assert!(
            headers.contains_key("x-clock"),
            "every answer carries X-Clock"
        );
        // The one 5xx a request may earn: a bank it needs is not answering.
        let unavailable = status.as_u16() == 503 && body["code"] == "bank_unavailable";
        assert!(
            status.as_u16() < 500 || unavailable,
            "no 5xx: {status} {body}"
        );
        Answer {
            status,
            body,
            headers,
        }
    }

    pub async fn post(&self, path: &str, body: Value, token: Option<&str>) -> Answer {
        let key = format!("test-{}", unique());
        self.send(reqwest::Method::POST, path, Some(body), token, Some(&key))
            .await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.send(reqwest::Method::GET, path, None, token, None)
            .await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Answer {
        self.send(reqwest::Method::DELETE, path, None, token, None)
            .await
    }

    pub async fn register(&self, name: &str, document: &str) -> Customer {
        let username = format!("u{}", unique());
        let answer = self.post("/api/v1/customers", json!({"name": name, "document": document, "username": username, "password": PASSWORD}), None).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        let login = self
            .post(
                "/api/v1/sessions",
                json!({"username": username, "password": PASSWORD}),
                None,
            )
            .await;
        assert_eq!(login.status, StatusCode::CREATED, "{}", login.body);
        Customer {
            username,
            document: document.into(),
            token: login.body["token"].as_str().unwrap().into(),
        }
    }

    pub async fn individual(&self, name: &str) -> Customer {
        self.register(name, &cpf(unique())).await
    }

    pub async fn open(&self, customer: &Customer, kind: &str, deposit: &str) -> String {
        let answer = self
            .post(
                "/api/v1/accounts",
                json!({"kind": kind, "opening_deposit": deposit}),
                Some(&customer.token),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        answer.body["number"].as_str().unwrap().to_string()
    }

    pub async fn balance(&self, customer: &Customer, number: &str) -> (String, String) {
        let answer = self
            .get(
                &format!("/api/v1/accounts/{BANK}/{number}"),
                Some(&customer.token),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        (
            answer.body["balance"].as_str().unwrap().into(),
            answer.body["available"].as_str().unwrap().into(),
        )
    }

    pub async fn audit(&self) -> Value {
        let answer = self.get("/api/v1/audit", Some(OPERATOR_TOKEN)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.body["ok"], json!(true), "audit: {}", answer.body);
        answer.body
    }

    /// Stops the bank and starts it again on the same data.
    pub async fn restart(&mut self) {
        self.running.take().unwrap().stop().await.unwrap();
        // The writer thread finishes its queue and closes the database once its handles drop.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let running = node::start(config(self.dir.path())).await.unwrap();
        self.url = running.url();
        self.running = Some(running);
    }
}

/// A real `bankd serve` process of bank [`BANK`]; dropping it kills it (SIGKILL: it dies without
/// a word, as in a crash).
pub struct Bankd {
    pub child: std::process::Child,
    pub url: String,
}

impl Drop for Bankd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `bankd serve` with its data in `dir`, on a free port, with `env` added to its environment and
/// its standard output piped (its first line says where it listens: [`listening`]).
pub fn bankd_serve(dir: &Path, env: &[(&str, &str)]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_bankd"));
    command
        .arg("serve")
        .env("BANKD_CODE", BANK)
        .env("BANKD_LISTEN", "127.0.0.1:0")
        .env("BANKD_DATA_DIR", dir)
        .env("BANKD_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped());
    command
}

/// The URL a bankd started by [`bankd_serve`] says it listens on.
pub fn listening(child: &mut std::process::Child) -> String {
    use std::io::{BufRead, BufReader};
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim()
        .rsplit(' ')
        .next()
        .filter(|u| u.starts_with("http://"))
        .unwrap_or_else(|| panic!("bankd said {line:?}"))
        .to_string()
}

/// Starts `bankd serve` with its data in `dir`, on a free port, with `env` added to its
/// environment, and waits for the line that says where it listens.
pub fn start_bankd(dir: &Path, env: &[(&str, &str)]) -> Bankd {
    let mut child = bankd_serve(dir, env).spawn().expect("bankd starts");
    let url = listening(&mut child);
    Bankd { child, url }
}
