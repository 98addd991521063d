//! Customers and their sessions: register, log in, log out, and who am I.

use super::{account_wire, customer_wire, respond};
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller, Fingerprint, sha256};
use crate::limits::Client;
use crate::state::AppState;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ledger::Document;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use store::{Command, Outcome, Refusal};

pub const PASSWORD_LEN_MIN: usize = 8;
/// Longer passwords only cost hashing time; 128 characters is far beyond any passphrase.
pub const PASSWORD_LEN_MAX: usize = 128;
pub const NAME_LEN_MAX: usize = 120;
pub const USERNAME_LEN_MIN: usize = 3;
pub const USERNAME_LEN_MAX: usize = 32;

/// `a-z`, digits, `.`, `_` and `-`, starting with a letter or digit; upper case is folded.
pub fn username(text: &str) -> Result<String, ApiError> {
    let lower = text.to_ascii_lowercase();
    let ok = (USERNAME_LEN_MIN..=USERNAME_LEN_MAX).contains(&lower.len())
        && lower
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && lower.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(lower)
    } else {
        Err(ApiError::unprocessable(
            "invalid_username",
            format!(
                "a username has {USERNAME_LEN_MIN} to {USERNAME_LEN_MAX} letters, digits, '.', '_' or '-', starting with a letter or digit"
            ),
        ))
    }
}

fn name(text: &str) -> Result<String, ApiError> {
    let name = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if name.is_empty() || name.chars().count() > NAME_LEN_MAX || name.chars().any(char::is_control)
    {
        return Err(ApiError::unprocessable(
            "invalid_name",
            format!("a name has 1 to {NAME_LEN_MAX} printable characters"),
        ));
    }
    Ok(name)
}

fn hash_password(password: String) -> Result<String, ApiError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(ApiError::internal)?;
    let salt = SaltString::encode_b64(&salt).map_err(ApiError::internal)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(ApiError::internal)
}

/// A hash that matches no password, checked for unknown usernames so that both kinds of failed
/// login take the same time.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_password("dummy-password-never-used".into()).expect("hashing works"));

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

#[utoipa::path(post, path = "/api/v1/customers", tag = "customers", request_body = wire::RegisterCustomer,
    params(("Idempotency-Key" = Option<String>, Header, description = "replays the first answer")),
    responses((status = 201, body = wire::Customer), (status = 409, description = "duplicate_document or duplicate_username", body = wire::Problem),
              (status = 422, description = "invalid_document, invalid_username, invalid_password, invalid_name", body = wire::Problem),
              (status = 429, description = "too_many_registration_attempts (too many refused from this client), with Retry-After", body = wire::Problem),
              (status = 503, description = "overloaded (too many passwords being hashed)", body = wire::Problem)))]
pub async fn register(
    State(state): State<Arc<AppState>>,
    client: Client,
    headers: HeaderMap,
    body: ApiJson<wire::RegisterCustomer>,
) -> Result<Response, ApiError> {
    let request = body.value;
    let name = name(&request.name)?;
    let document = Document::parse(&request.document).map_err(|error| {
        ApiError::unprocessable("invalid_document", format!("`document`: {error}"))
    })?;
    let username = username(&request.username)?;
    let length = request.password.chars().count();
    if !(PASSWORD_LEN_MIN..=PASSWORD_LEN_MAX).contains(&length) {
        return Err(ApiError::unprocessable(
            "invalid_password",
            format!("a password has {PASSWORD_LEN_MIN} to {PASSWORD_LEN_MAX} characters"),
        ));
    }
    if let Err(refused) = state.limits.check_registration(client, Instant::now()) {
        state
            .trail
            .record("registration_throttled", Some(client), None, refused.code);
        return Err(refused);
    }
    let password = request.password;
    let plain = password.clone();
    let mut password_hash = state
        .limits
        .hashing
        .run(move || hash_password(plain))
        .await??;
    // The consortium's directory first: a document and a username are unique across every bank.
    password_hash =
        match registered(&state, &document, &name, &username, password, password_hash).await {
            Ok(hash) => hash,
            Err(refused) => {
                // Counted per client like a refusal of the local store (below).
                if matches!(refused.code, "duplicate_document" | "duplicate_username") {
                    state.limits.registration_refused(client, Instant::now());
                    state
                        .trail
                        .record("registration_refused", Some(client), None, refused.code);
                }
                return Err(refused);
            }
        };
    let command = Command::RegisterCustomer {
        public_id: uuid::Uuid::new_v4().to_string(),
        name,
        document,
        username,
        password_hash,
    };
    let executed = state
        .execute(0, &headers, &body.fingerprint, command)
        .await?;
    // A taken document or username tells the caller it is known here: such refusals are
    // counted per client, so that probing many is slow.
    if let Outcome::Refused(refusal @ (Refusal::DuplicateDocument | Refusal::DuplicateUsername)) =
        &executed.outcome
    {
        state.limits.registration_refused(client, Instant::now());
        state
            .trail
            .record("registration_refused", Some(client), None, refusal.code());
    }
    Ok(respond(executed))
}

/// Registers the customer in the consortium's directory, home at this bank, and answers the
/// password hash the directory holds. A `duplicate_document` that is this bank's own earlier
/// try (same home, username and name, and the password matches the hash it recorded: an answer
/// lost, a retry) is completed with that hash rather than refused.
async fn registered(
    state: &AppState,
    document: &Document,
    name: &str,
    username: &str,
    password: String,
    password_hash: String,
) -> Result<String, ApiError> {
    let directory = &state.interbank.directory;
    let command = directory::Command::RegisterCustomer {
        document: document.clone(),
        name: name.to_owned(),
        username: username.to_owned(),
        password_hash: password_hash.clone(),
        home_bank: state.bank,
    };
    match directory.write(command).await {
        Ok(_) => Ok(password_hash),
        Err(directory::DirectoryError::Conflict(directory::Conflict::DuplicateDocument)) => {
            let refused = crate::directory::problem(directory::DirectoryError::Conflict(
                directory::Conflict::DuplicateDocument,
            ));
            let Some(earlier) = earlier_claim(directory, document)
                .await?
                .filter(|c| c.home_bank == state.bank && c.username == username && c.name == name)
            else {
                return Err(refused);
            };
            let hash = earlier.password_hash.clone();
            let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
                .await
                .map_err(ApiError::internal)?;
            if matches {
                Ok(earlier.password_hash)
            } else {
                Err(refused)
            }
        }
        Err(error) => Err(crate::directory::problem(error)),
    }
}

/// How long a retried registration waits for this bank's copy of the directory to show the
/// claim the leader refused it for (a forwarded write's conflict carries no log index to wait
/// for, and a follower may lag the leader by the entry that holds the earlier try).
const EARLIER_CLAIM_WAIT: Duration = Duration::from_secs(1);

/// The customer the directory holds under `document`, waiting up to [`EARLIER_CLAIM_WAIT`] for
/// this bank's copy to catch up with the claim the leader knows of.
async fn earlier_claim(
    directory: &directory::Directory,
    document: &Document,
) -> Result<Option<directory::Customer>, ApiError> {
    let until = Instant::now() + EARLIER_CLAIM_WAIT;
    loop {
        let found = directory
            .customer_by_document(document)
            .map_err(crate::directory::problem)?;
        if found.is_some() || Instant::now() >= until {
            return Ok(found);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[utoipa::path(post, path = "/api/v1/sessions", tag = "customers", request_body = wire::Credentials,
    responses((status = 201, body = wire::Session), (status = 401, description = "invalid_credentials", body = wire::Problem),
              (status = 409, description = "identity_conflict: this bank holds another registration of the person's document, made before the directory (its operator settles it)", body = wire::Problem),
              (status = 422, description = "invalid_username (not a username's shape)", body = wire::Problem),
              (status = 429, description = "too_many_login_attempts, with Retry-After", body = wire::Problem),
              (status = 503, description = "overloaded (too many passwords being checked)", body = wire::Problem)))]
pub async fn login(
    State(state): State<Arc<AppState>>,
    client: Client,
    body: ApiJson<wire::Credentials>,
) -> Result<Response, ApiError> {
    let credentials = body.value;
    // Checked before anything is keyed by it: only a name registration would take.
    let username = username(&credentials.username)?;
    // In progress until this handler returns, so attempts sent at once are counted too.
    let _attempt = match state.limits.check_login(&username, client, Instant::now()) {
        Ok(attempt) => attempt,
        Err(refused) => {
            state.trail.record(
                "login_throttled",
                Some(client),
                Some(&username),
                refused.code,
            );
            return Err(refused);
        }
    };
    // Who this is comes from this bank's replica of the directory, so a person logs in at any
    // bank, also while their home bank is down.
    let record = state
        .interbank
        .directory
        .customer_by_username(&username)
        .map_err(crate::directory::problem)?;
    let hash = record.as_ref().map(|r| r.password_hash.clone());
    let password = credentials.password;
    let matches = state
        .limits
        .hashing
        .run(move || verify_password(&password, hash.as_deref().unwrap_or(&DUMMY_HASH)))
        .await?;
    let Some(record) = record.filter(|_| matches) else {
        state.limits.login_failed(&username, client, Instant::now());
        state.trail.record(
            "login_failed",
            Some(client),
            Some(&username),
            "invalid_credentials",
        );
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "wrong username or password",
        ));
    };
    state
        .limits
        .login_succeeded(&username, client, Instant::now());
    let record = match local_customer(&state, record).await {
        Ok(record) => record,
        Err(refused) => {
            state
                .trail
                .record("login_refused", Some(client), Some(&username), refused.code);
            return Err(refused);
        }
    };
    state
        .trail
        .record("login", Some(client), Some(&username), "session created");
    let mut token_bytes = [0u8; 32];
    getrandom::fill(&mut token_bytes).map_err(ApiError::internal)?;
    let token: String = token_bytes.iter().map(|b| format!("{b:02x}")).collect();
    let now_ms = store::wall_ms();
    let expires_at_ms = now_ms + state.session_ttl.as_millis() as u64;
    // Sessions that expired are deleted as customers log in: queued first, so it goes to disk
    // in the same commit as the new session (a purge that finds none reads one index page).
    let purged = state.submit(
        0,
        &HeaderMap::new(),
        &Fingerprint::of_text(""),
        Command::PurgeSessions { now_ms },
    )?;
    let command = Command::CreateSession {
        customer: record.id,
        token_hash: sha256(token.as_bytes()),
        expires_at_ms,
    };
    state
        .execute(
            record.id,
            &HeaderMap::new(),
            &Fingerprint::of_text(""),
            command,
        )
        .await?;
    purged.await?;
    let session = wire::Session {
        token,
        expires_at: super::rfc3339(expires_at_ms),
    };
    Ok((StatusCode::CREATED, Json(session)).into_response())
}

/// This bank's record of a customer the directory knows: theirs if they registered or logged in
/// here before, otherwise taken in now (`AdoptCustomer`), so sessions and holdings work here as
/// at their home bank.
pub(crate) async fn local_customer(
    state: &AppState,
    customer: directory::Customer,
) -> Result<store::CustomerRecord, ApiError> {
    let document = customer.document.as_str().to_owned();
    if let Some(here) = state.store.customer_by_document(&document).await? {
        // A ledger made before the directory may hold another registration of this document
        // (the migration reports it as a conflict): its accounts are not this login's.
        if here.username != customer.username || here.home_bank != customer.home_bank.as_str() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "identity_conflict",
                "this bank holds another registration of this document; its operator must settle it before you can log in here",
            ));
        }
        return Ok(here);
    }
    let command = Command::AdoptCustomer {
        public_id: uuid::Uuid::new_v4().to_string(),
        name: customer.name,
        document: customer.document,
        username: customer.username,
        password_hash: customer.password_hash,
        home_bank: customer.home_bank,
    };
    let executed = state
        .execute(0, &HeaderMap::new(), &Fingerprint::of_text(""), command)
        .await?;
    match executed.outcome {
        store::Outcome::Customer(record) => Ok(record),
        // Taken in meanwhile by a login beside this one.
        _ => state
            .store
            .customer_by_document(&document)
            .await?
            .ok_or_else(|| {
                ApiError::internal("a customer the directory knows cannot be kept here")
            }),
    }
}

#[utoipa::path(delete, path = "/api/v1/sessions/current", tag = "customers", security(("bearer" = [])),
    responses((status = 204, description = "logged out"), (status = 401, body = wire::Problem)))]
pub async fn logout(
    State(state): State<Arc<AppState>>,
    client: Client,
    Caller(customer): Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .trim();
    let token_hash = sha256(token.as_bytes());
    state
        .execute(
            customer.id,
            &HeaderMap::new(),
            &Fingerprint::of_text(""),
            Command::DeleteSession { token_hash },
        )
        .await?;
    state.forget_session(&token_hash);
    state.trail.record(
        "logout",
        Some(client),
        Some(&customer.username),
        "session ended",
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(get, path = "/api/v1/me", tag = "customers", security(("bearer" = [])),
    responses((status = 200, body = wire::Me), (status = 401, body = wire::Problem)))]
pub async fn me(
    State(state): State<Arc<AppState>>,
    Caller(customer): Caller,
) -> Result<Json<wire::Me>, ApiError> {
    let here = state.store.accounts_of(customer.id).await?;
    let mut accounts: Vec<wire::Account> = here.iter().map(account_wire).collect();
    // The same person's accounts at the other banks, as the directory lists them: each bank
    // asked; those of a bank that does not answer are said to be unavailable.
    let (elsewhere, unavailable) =
        crate::directory::accounts_elsewhere(&state, &customer.document).await?;
    accounts.extend(elsewhere);
    Ok(Json(wire::Me {
        customer: customer_wire(&customer),
        accounts,
        unavailable,
    }))
}
