//! A typed async client for one bank's public REST API (`/api/v1`), over the `wire` types, so the
//! terminal client, tools and tests speak the API one way instead of each building URLs and
//! parsing problems by hand.
//!
//! What it guarantees to its callers:
//! - every `POST` that moves money or creates something (and every `DELETE` of a Pix key) carries
//!   an `Idempotency-Key`: the caller's, or a fresh time-ordered one per call; a caller that wants to
//!   retry after a lost answer passes its own key from [`new_idempotency_key`];
//! - every answer's `X-Clock` (the bank's hybrid logical clock) is returned beside the value, and
//!   the exact JSON the bank sent is kept for callers that print it;
//! - a `problem+json` answer becomes [`ClientError::Problem`] with its status, code, title and
//!   detail; a bank that cannot be reached or does not answer in time is
//!   [`ClientError::Unavailable`], a different thing from a refusal;
//! - an `https` bank is checked against the system's certificate authorities and, with a
//!   [`Trust`], an extra one (a consortium's own CA, such as `bankd demo`'s `ca.pem`); a bank
//!   whose certificate none of them signed is [`ClientError::Unavailable`] (a certificate error).
//!
//! Architecture invariant: this crate knows HTTP and the wire shapes only; it never interprets
//! money or business rules, and it keeps no state beyond the bearer token it was given.

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use wire;

mod lane;
pub use lane::Lane;

/// How long to wait for a TCP connection to the bank.
pub const CONNECT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
/// How long to wait for a whole answer. The node answers every request within 10 s (503 after),
/// so this only fires when the bank or the network is stuck.
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(20);
/// How long to wait for the audit, which reads the whole ledger: the node allows it 10 minutes.
pub const AUDIT_TIMEOUT: Duration = Duration::from_secs(610);
/// Characters of an unexpected (non-problem) body kept in [`ClientError::Unexpected`].
const UNEXPECTED_BODY_CHARS_MAX: usize = 300;

/// A fresh `Idempotency-Key`: a v7 UUID, its time first and then random bits. Keep it to retry a
/// call whose answer was lost: the bank then replays the first outcome instead of doing the thing
/// twice. Keys that rise with time land at the end of the bank's key index, where a random key
/// would make each request rewrite an index page of its own (about half of what the bank wrote per
/// transfer before; see BENCHMARKS.md).
pub fn new_idempotency_key() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A successful answer: the typed value, the JSON exactly as the bank sent it (`null` for an
/// answer without a body), and the headers that matter to callers.
#[derive(Debug, Clone)]
pub struct Reply<T> {
    pub value: T,
    pub status: u16,
    /// The bank's hybrid logical clock (`X-Clock`) when it answered.
    pub clock: Option<String>,
    pub json: serde_json::Value,
    /// The bank replayed the first answer to this `Idempotency-Key`.
    pub replayed: bool,
    /// The `Idempotency-Key` that was sent, if any.
    pub idempotency_key: Option<String>,
}

/// What `GET /api/v1/transfers/{id}` answers: a transfer, or a package looked up by its id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Payment {
    /// Tried first: only a package has `results`.
    Package(wire::Package),
    Transfer(wire::Transfer),
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The bank answered with an RFC 9457 problem: a refusal (4xx) or its own failure (5xx).
    #[error("{} [{}]: {}", .problem.title, .problem.code, .problem.detail)]
    Problem {
        status: u16,
        /// Boxed: a problem is rare and large, and every `Result` would carry its size.
        problem: Box<wire::Problem>,
        clock: Option<String>,
        /// Seconds, from `Retry-After` (429 and 503 answers).
        retry_after_seconds: Option<u64>,
    },
    /// The bank could not be reached, dropped the connection, or did not answer in time.
    #[error("the bank at {url} is unavailable: {reason}")]
    Unavailable { url: String, reason: String },
    /// The bank answered something this client cannot read: an error without a problem
    /// document, or a success whose body does not have the documented shape.
    #[error("the bank answered {status} with an unexpected body: {body}")]
    Unexpected {
        status: u16,
        body: String,
        clock: Option<String>,
    },
    #[error("{url:?} is not a bank URL (like http://127.0.0.1:8081): {reason}")]
    InvalidUrl { url: String, reason: String },
}

impl ClientError {
    /// The HTTP status the bank answered, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Problem { status, .. } | ClientError::Unexpected { status, .. } => {
                Some(*status)
            }
            ClientError::Unavailable { .. } | ClientError::InvalidUrl { .. } => None,
        }
    }

    /// The problem's stable machine code (`insufficient_funds`, ...).
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Problem { problem, .. } => Some(&problem.code),
            _ => None,
        }
    }

    pub fn problem(&self) -> Option<&wire::Problem> {
        match self {
            ClientError::Problem { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// The bank's clock on an error answer.
    pub fn clock(&self) -> Option<&str> {
        match self {
            ClientError::Problem { clock, .. } | ClientError::Unexpected { clock, .. } => {
                clock.as_deref()
            }
            _ => None,
        }
    }

    /// The bank refused the request (a 4xx answer): retrying the same request will not help.
    pub fn is_refusal(&self) -> bool {
        self.status().is_some_and(|s| (400..500).contains(&s))
    }

    /// The bank could not do it right now: not reachable, too slow, or a 5xx answer. A retry
    /// with the same `Idempotency-Key` is safe.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, ClientError::Unavailable { .. }) || self.status().is_some_and(|s| s >= 500)
    }
}

/// The certificate authorities a client trusts for `https` banks: the system's, plus an extra
/// one when given. TLS goes through rustls with ring (installed as the process's provider). Cheap
/// to clone.
#[derive(Debug, Clone)]
pub struct Trust {
    tls: Arc<rustls::ClientConfig>,
}

impl Trust {
    /// The system's certificate authorities only (made once per process).
    pub fn system() -> Trust {
        static SYSTEM: OnceLock<Trust> = OnceLock::new();
        SYSTEM
            .get_or_init(|| {
                Trust::with_extra(Vec::new()).unwrap_or_else(|_| Trust::roots_only(Vec::new()))
            })
            .clone()
    }

    /// The system's authorities and every certificate of the PEM file `path` (a CA, or a bundle).
    pub fn with_ca_file(path: &Path) -> Result<Trust, String> {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Trust::with_ca_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The system's authorities and every certificate of `pem`.
    pub fn with_ca_pem(pem: &[u8]) -> Result<Trust, String> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("not a PEM certificate: {e}"))?;
        if certs.is_empty() {
            return Err("no PEM certificate in it".into());
        }
        Trust::with_extra(certs)
    }

    fn with_extra(extra: Vec<rustls::pki_types::CertificateDer<'static>>) -> Result<Trust, String> {
        let provider = provider();
        let verifier =
            rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
                .map_err(|e| format!("cannot use these certificates: {e}"))?;
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Ok(Trust::from_config(config))
    }

    /// Without the system's roots (they could not be loaded): only `roots`.
    fn roots_only(roots: Vec<rustls::pki_types::CertificateDer<'static>>) -> Trust {
        let mut store = rustls::RootCertStore::empty();
        store.add_parsable_certificates(roots);
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(store)
            .with_no_client_auth();
        Trust::from_config(config)
    }

    fn from_config(mut config: rustls::ClientConfig) -> Trust {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Trust {
            tls: Arc::new(config),
        }
    }
}

impl Default for Trust {
    fn default() -> Trust {
        Trust::system()
    }
}

/// ring, also installed as the process's default provider: reqwest is built without one of its
/// own (`rustls-no-provider`, rather than building aws-lc).
///
/// rustls 0.23.48 deprecates the ring provider for lacking post-quantum key exchange (only its
/// aws-lc provider has that); ring is kept for the build cost (aws-lc is about 75 s more).
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client for one bank. Cheap to clone; clones share the connection pool.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
    /// What lanes ([`Lane`]) to an `https` bank check its certificate with.
    trust: Trust,
}

/// Which `Idempotency-Key` a call sends.
enum Idempotency<'a> {
    None,
    /// The caller's key, or a fresh one.
    Key(Option<&'a str>),
}

impl Client {
    /// A client for the bank at `base_url` (`http://host:port` or `https://…`, a path prefix
    /// allowed; a bare `host:port` means `http://host:port`), with the default timeouts,
    /// trusting the system's certificate authorities.
    pub fn new(base_url: &str) -> Result<Client, ClientError> {
        Client::with_trust(base_url, &Trust::system())
    }

    /// As [`Client::new`], trusting `trust`'s certificate authorities (say, the consortium's CA).
    pub fn with_trust(base_url: &str, trust: &Trust) -> Result<Client, ClientError> {
        Client::build(
            base_url,
            CONNECT_TIMEOUT_DEFAULT,
            REQUEST_TIMEOUT_DEFAULT,
            trust,
        )
    }

    pub fn with_timeouts(
        base_url: &str,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Client, ClientError> {
        Client::build(base_url, connect_timeout, request_timeout, &Trust::system())
    }

    fn build(
        base_url: &str,
        connect_timeout: Duration,
        request_timeout: Duration,
        trust: &Trust,
    ) -> Result<Client, ClientError> {
        let base = parse_base_url(base_url)?;
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(request_timeout)
            .user_agent(concat!("interbank-client/", env!("CARGO_PKG_VERSION")))
            .tls_backend_preconfigured(rustls::ClientConfig::clone(&trust.tls))
            .build()
            .map_err(|e| ClientError::InvalidUrl {
                url: base_url.to_string(),
                reason: chain(&e),
            })?;
        Ok(Client {
            http,
            base,
            token: None,
            trust: trust.clone(),
        })
    }

    /// The same client, sending `Authorization: Bearer <token>` (a session token, or the bank's
    /// operator token for [`Client::audit`]).
    pub fn with_token(mut self, token: impl Into<String>) -> Client {
        self.token = Some(token.into());
        self
    }

    pub fn set_token(&mut self, token: Option<String>) {
        self.token = token;
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The bank's base URL, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    // --- customers and sessions ---

    pub async fn register(
        &self,
        body: &wire::RegisterCustomer,
        key: Option<&str>,
    ) -> Result<Reply<wire::Customer>, ClientError> {
        self.post(&["customers"], body, key).await
    }

    /// Logs in; the token is in the answer (this client does not keep it: see
    /// [`Client::with_token`]).
    pub async fn login(
        &self,
        body: &wire::Credentials,
    ) -> Result<Reply<wire::Session>, ClientError> {
        self.call(
            Method::POST,
            self.api(&["sessions"]),
            Some(json(body)),
            Idempotency::None,
            None,
        )
        .await
    }

    /// Ends the session whose token this client sends.
    pub async fn logout(&self) -> Result<Reply<()>, ClientError> {
        self.call(
            Method::DELETE,
            self.api(&["sessions", "current"]),
            None,
            Idempotency::None,
            None,
        )
        .await
    }

    pub async fn me(&self) -> Result<Reply<wire::Me>, ClientError> {
        self.get(&["me"]).await
    }

    // --- accounts ---

    pub async fn open_account(
        &self,
        body: &wire::OpenAccount,
        key: Option<&str>,
    ) -> Result<Reply<wire::Account>, ClientError> {
        self.post(&["accounts"], body, key).await
    }

    pub async fn account(
        &self,
        account: &wire::AccountRef,
    ) -> Result<Reply<wire::Account>, ClientError> {
        self.get(&["accounts", &account.bank, &account.number])
            .await
    }

    /// One page of the account's statement, newest first; pass the answer's `next_cursor` to get
    /// the next (older) page.
    pub async fn statement(
        &self,
        account: &wire::AccountRef,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Reply<wire::Statement>, ClientError> {
        let mut url = self.api(&["accounts", &account.bank, &account.number, "statement"]);
        {
            let mut query = url.query_pairs_mut();
            if let Some(limit) = limit {
                query.append_pair("limit", &limit.to_string());
            }
            if let Some(cursor) = cursor {
                query.append_pair("cursor", cursor);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        self.call(Method::GET, url, None, Idempotency::None, None)
            .await
    }

    pub async fn deposit(
        &self,
        account: &wire::AccountRef,
        body: &wire::MoneyRequest,
        key: Option<&str>,
    ) -> Result<Reply<wire::StatementEntry>, ClientError> {
        self.post(
            &["accounts", &account.bank, &account.number, "deposits"],
            body,
            key,
        )
        .await
    }

    pub async fn withdraw(
        &self,
        account: &wire::AccountRef,
        body: &wire::MoneyRequest,
        key: Option<&str>,
    ) -> Result<Reply<wire::StatementEntry>, ClientError> {
        self.post(
            &["accounts", &account.bank, &account.number, "withdrawals"],
            body,
            key,
        )
        .await
    }

    // --- joint-account invitations ---

    /// The invitations to hold a joint account the caller received and sent.
    pub async fn invitations(&self) -> Result<Reply<wire::Invitations>, ClientError> {
        self.get(&["invitations"]).await
    }

    /// Accepts an invitation: the caller then holds the account, which is answered.
    pub async fn accept_invitation(
        &self,
        id: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Reply<wire::Account>, ClientError> {
        self.answer_invitation(id, "accept", idempotency_key).await
    }

    pub async fn decline_invitation(
        &self,
        id: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Reply<()>, ClientError> {
        self.answer_invitation(id, "decline", idempotency_key).await
    }

    async fn answer_invitation<T: DeserializeOwned>(
        &self,
        id: &str,
        answer: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Reply<T>, ClientError> {
        self.call(
            Method::POST,
            self.api(&["invitations", id, answer]),
            None,
            Idempotency::Key(idempotency_key),
            None,
        )
        .await
    }

    // --- Pix keys ---

    pub async fn add_pix_key(
        &self,
        body: &wire::AddPixKey,
        key: Option<&str>,
    ) -> Result<Reply<wire::PixKey>, ClientError> {
        self.post(&["pix-keys"], body, key).await
    }

    /// Every key on the accounts the caller holds.
    pub async fn pix_keys(&self) -> Result<Reply<wire::PixKeys>, ClientError> {
        self.get(&["pix-keys"]).await
    }

    /// Who a key pays: holder name, bank and masked document (never an account or balance).
    pub async fn lookup_pix_key(&self, key: &str) -> Result<Reply<wire::PixKey>, ClientError> {
        self.get(&["pix-keys", key]).await
    }

    pub async fn remove_pix_key(
        &self,
        key: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Reply<()>, ClientError> {
        self.call(
            Method::DELETE,
            self.api(&["pix-keys", key]),
            None,
            Idempotency::Key(idempotency_key),
            None,
        )
        .await
    }

    // --- payments ---

    /// A transfer to a Pix key or an account. A transfer the bank refuses for a business reason
    /// (such as insufficient funds) is still a `201` answer, with `status: "aborted"`.
    pub async fn transfer(
        &self,
        body: &wire::TransferRequest,
        key: Option<&str>,
    ) -> Result<Reply<wire::Transfer>, ClientError> {
        self.post(&["transfers"], body, key).await
    }

    /// Many transfers in one request (`POST /api/v1/transfers/batch`), each committed or refused
    /// on its own; the answer has one result per transfer, in the request's order. A bank that
    /// does not offer the endpoint answers 404 with the code `not_found`.
    pub async fn transfer_batch(
        &self,
        body: &wire::BatchRequest,
        key: Option<&str>,
    ) -> Result<Reply<wire::BatchResponse>, ClientError> {
        self.post(&["transfers", "batch"], body, key).await
    }

    /// A transfer, or a package, by its end-to-end id.
    pub async fn payment(&self, id: &str) -> Result<Reply<Payment>, ClientError> {
        self.get(&["transfers", id]).await
    }

    /// Operations that commit all together or not at all.
    pub async fn package(
        &self,
        body: &wire::PackageRequest,
        key: Option<&str>,
    ) -> Result<Reply<wire::Package>, ClientError> {
        self.post(&["packages"], body, key).await
    }

    // --- the node ---

    pub async fn consortium(&self) -> Result<Reply<wire::ConsortiumView>, ClientError> {
        self.get(&["consortium"]).await
    }

    /// The bank's ledger totals and invariant checks; needs the operator token.
    pub async fn audit(&self) -> Result<Reply<wire::Audit>, ClientError> {
        self.call(
            Method::GET,
            self.api(&["audit"]),
            None,
            Idempotency::None,
            Some(AUDIT_TIMEOUT),
        )
        .await
    }

    /// The newest `limit` events of the bank's security trail (operator token).
    pub async fn security_events(
        &self,
        limit: Option<u32>,
    ) -> Result<Reply<wire::SecurityEvents>, ClientError> {
        let mut url = self.api(&["audit", "events"]);
        if let Some(limit) = limit {
            url.query_pairs_mut()
                .append_pair("limit", &limit.to_string());
        }
        self.call(Method::GET, url, None, Idempotency::None, None)
            .await
    }

    pub async fn health(&self) -> Result<Reply<wire::Health>, ClientError> {
        self.call(
            Method::GET,
            self.url(&["health"]),
            None,
            Idempotency::None,
            None,
        )
        .await
    }

    // --- plumbing ---

    /// `base` + the path segments, each percent-encoded (a Pix key may hold `@`, `+` or `/`).
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("parse_base_url accepts only http(s) URLs, which have a path")
            .pop_if_empty()
            .extend(segments);
        url
    }

    fn api(&self, segments: &[&str]) -> Url {
        let mut all = vec!["api", "v1"];
        all.extend_from_slice(segments);
        self.url(&all)
    }

    async fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<Reply<T>, ClientError> {
        self.call(
            Method::GET,
            self.api(segments),
            None,
            Idempotency::None,
            None,
        )
        .await
    }

    /// `POST /api/v1/{segments}` with a fresh Idempotency-Key, for callers (like `bank bench`)
    /// that choose the endpoint themselves.
    pub async fn post_to<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &impl Serialize,
    ) -> Result<Reply<T>, ClientError> {
        self.post(segments, body, None).await
    }

    /// A POST under the caller's Idempotency-Key, or a fresh one.
    async fn post<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &impl Serialize,
        key: Option<&str>,
    ) -> Result<Reply<T>, ClientError> {
        self.call(
            Method::POST,
            self.api(segments),
            Some(json(body)),
            Idempotency::Key(key),
            None,
        )
        .await
    }

    /// One request; `timeout`, when given, replaces the client's own request timeout.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        idempotency: Idempotency<'_>,
        timeout: Option<Duration>,
    ) -> Result<Reply<T>, ClientError> {
        let mut request = self.http.request(method, url);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let idempotency_key = match idempotency {
            Idempotency::None => None,
            Idempotency::Key(given) => Some(given.map_or_else(new_idempotency_key, str::to_string)),
        };
        if let Some(key) = &idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request.send().await.map_err(|e| self.unavailable(&e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(|e| self.unavailable(&e))?;
        let clock = header(&headers, "x-clock");
        if !(200..300).contains(&status) {
            return Err(error_from_answer(status, &headers, &bytes, clock));
        }
        let unexpected = |reason: String| ClientError::Unexpected {
            status,
            body: reason,
            clock: clock.clone(),
        };
        let json: serde_json::Value = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|e| unexpected(format!("{e}: {}", snippet(&bytes))))?
        };
        let value = T::deserialize(&json).map_err(|e| unexpected(format!("{e}: {json}")))?;
        Ok(Reply {
            value,
            status,
            clock: clock.clone(),
            json,
            replayed: header(&headers, "idempotent-replayed").as_deref() == Some("true"),
            idempotency_key,
        })
    }

    fn unavailable(&self, error: &reqwest::Error) -> ClientError {
        let reason = if error.is_timeout() {
            format!("no answer in time ({})", chain(error))
        } else {
            chain(error)
        };
        ClientError::Unavailable {
            url: self.base_url(),
            reason,
        }
    }
}

/// The request body, serialised straight to bytes (a large batch is not built twice).
fn json(body: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(body).expect("wire types always serialise")
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn snippet(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .take(UNEXPECTED_BODY_CHARS_MAX)
        .collect()
}

/// An error answer: a problem document when the bank sent one, else [`ClientError::Unexpected`].
fn error_from_answer(
    status: u16,
    headers: &HeaderMap,
    bytes: &[u8],
    clock: Option<String>,
) -> ClientError {
    let is_problem =
        header(headers, "content-type").is_some_and(|t| t.starts_with("application/problem+json"));
    match serde_json::from_slice::<wire::Problem>(bytes) {
        Ok(problem) if is_problem || !problem.code.is_empty() => ClientError::Problem {
            // The status line is authoritative; the body's copy is informational.
            status,
            problem: Box::new(problem),
            clock,
            retry_after_seconds: header(headers, RETRY_AFTER.as_str())
                .and_then(|v| v.trim().parse().ok()),
        },
        _ => ClientError::Unexpected {
            status,
            body: snippet(bytes),
            clock,
        },
    }
}

/// An error and its causes, `outer: inner: innermost`, since reqwest's own message alone
/// ("error sending request") does not say that the connection was refused.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn parse_base_url(text: &str) -> Result<Url, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidUrl {
        url: text.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = text.trim();
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_string()
    } else {
        format!("http://{trimmed}")
    };
    let url = Url::parse(&with_scheme).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("there is no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a bank URL has no query or fragment"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let ok = [
            ("http://127.0.0.1:8081", "http://127.0.0.1:8081/api/v1/me"),
            ("http://127.0.0.1:8081/", "http://127.0.0.1:8081/api/v1/me"),
            ("127.0.0.1:8081", "http://127.0.0.1:8081/api/v1/me"),
            (
                "https://bank.example/a/",
                "https://bank.example/a/api/v1/me",
            ),
            ("https://bank.example/a", "https://bank.example/a/api/v1/me"),
        ];
        for (base, me) in ok {
            let client = Client::new(base).unwrap();
            assert_eq!(client.api(&["me"]).as_str(), me, "{base}");
        }
        for bad in ["ftp://x", "http://", "http://x/?a=1", "http://x/#f", ""] {
            assert!(
                matches!(Client::new(bad), Err(ClientError::InvalidUrl { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn path_segments_are_encoded() {
        let client = Client::new("http://127.0.0.1:1").unwrap();
        assert_eq!(
            client.api(&["pix-keys", "a/b?c#d%e"]).path(),
            "/api/v1/pix-keys/a%2Fb%3Fc%23d%25e"
        );
        assert_eq!(
            client.api(&["pix-keys", "ana@example.com"]).path(),
            "/api/v1/pix-keys/ana@example.com"
        );
    }

    #[test]
    fn problems_and_other_errors() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/problem+json".parse().unwrap());
        headers.insert("retry-after", "3".parse().unwrap());
        let body = br#"{"type":"t","title":"Unprocessable Entity","status":422,"detail":"d","code":"insufficient_funds"}"#;
        let error = error_from_answer(422, &headers, body, Some("c1".into()));
        assert_eq!(error.code(), Some("insufficient_funds"));
        assert_eq!(error.status(), Some(422));
        assert_eq!(error.clock(), Some("c1"));
        assert!(error.is_refusal() && !error.is_unavailable());
        assert!(matches!(
            error,
            ClientError::Problem {
                retry_after_seconds: Some(3),
                ..
            }
        ));
        let proxy = error_from_answer(502, &HeaderMap::new(), b"<html>bad gateway</html>", None);
        assert!(matches!(proxy, ClientError::Unexpected { status: 502, .. }));
        assert!(proxy.is_unavailable() && !proxy.is_refusal());
    }

    #[test]
    fn fresh_keys_differ() {
        let a = new_idempotency_key();
        let b = new_idempotency_key();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
    }
}
