//! What other banks call, every request signed (see `interbank::signing`): protocol messages in
//! batches, heartbeats, Pix key lookups, and reads of a customer's accounts on their behalf.
//! Nothing here is for customers directly.

use crate::INTERBANK_BODY_BYTES_MAX;
use crate::error::ApiError;
use crate::interbank::{Envelope, RemoteKey, signing};
use crate::routes::accounts::{StatementQuery, statement_page};
use crate::routes::{ApiPath, ApiQuery, account_wire};
use crate::state::AppState;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use ledger::{AccountNumber, BankCode, PixKey};
use std::sync::Arc;
use store::wall_ms;

/// The path and query, as the sender signed them.
fn signed_path(uri: &Uri) -> &str {
    uri.path_and_query().map_or(uri.path(), |p| p.as_str())
}

/// A signed request without a body (a GET).
pub(crate) fn verify(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<BankCode, ApiError> {
    let from = state
        .interbank
        .verifier
        .verify(method.as_str(), signed_path(uri), headers, b"", wall_ms())
        .inspect_err(|refused| trail_refused(state, method, uri, refused))?;
    heard(state, method, uri, from);
    Ok(from)
}

/// A request another bank's signature does not carry, in the security trail.
fn trail_refused(state: &AppState, method: &Method, uri: &Uri, refused: &ApiError) {
    let detail = format!("{method} {}: {}", uri.path(), refused.code);
    state.trail.record("interbank_refused", None, None, &detail);
}

/// A signed request from `from`: in the security trail (but heartbeats, one a second from each
/// bank, and the directory's Raft traffic, several a second), and a sign of life from that bank.
fn heard(state: &AppState, method: &Method, uri: &Uri, from: BankCode) {
    if uri.path() != crate::interbank::HEARTBEAT_PATH
        && uri.path() != crate::directory::DIRECTORY_PATH
    {
        let detail = format!("{method} {}", uri.path());
        state
            .trail
            .record("interbank_request", None, Some(from.as_str()), &detail);
    }
    if let Some(link) = state.interbank.link(from) {
        link.heard(None);
    }
}

/// A signed request's body: the signed headers are checked first (a known bank, this bank the
/// recipient, fresh, signed with that bank's key over the body's digest), and only then is the
/// body read, at most `INTERBANK_BODY_BYTES_MAX`, and matched against that digest.
pub(crate) async fn verified_body(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<(BankCode, Bytes), ApiError> {
    let signed = state
        .interbank
        .verifier
        .check_headers(method.as_str(), signed_path(uri), headers, wall_ms())
        .inspect_err(|refused| trail_refused(state, method, uri, refused))?;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "an interbank body is at most {INTERBANK_BODY_BYTES_MAX} bytes (or it was cut off)"
            ),
        )
    };
    // A body announced larger than the limit is refused before any of it is read.
    let announced = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|length| length > INTERBANK_BODY_BYTES_MAX as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, INTERBANK_BODY_BYTES_MAX)
        .await
        .map_err(|_| too_large())?;
    let from = signed
        .accept(&bytes, wall_ms())
        .inspect_err(|refused| trail_refused(state, method, uri, refused))?;
    heard(state, method, uri, from);
    Ok((from, bytes))
}

/// Protocol messages from a bank (none in a heartbeat). Accepted means queued for the engine;
/// the answer to each message comes later, as a message the other way.
pub async fn messages(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (from, body) = verified_body(&state, &method, &uri, &headers, body).await?;
    if !state.store.is_writing() {
        // A bank that can make nothing durable must not look up to the others (a heartbeat's
        // answer is what keeps it up in their eyes), nor take votes it cannot record.
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "writer_stopped",
            "this bank's store has stopped taking writes",
        ));
    }
    let envelope: Envelope = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_envelope",
            format!("not an interbank envelope: {e}"),
        )
    })?;
    if envelope.from != from {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "the envelope names another bank than its signature",
        ));
    }
    // A stamp further ahead than the signature window is a broken (or hostile) clock: taking
    // it would carry this bank's clock, and every clock it talks to, into the future for good.
    if let Err(ahead) = state.clock.observe(envelope.clock, signing::WINDOW_MS) {
        return Err(ApiError::unprocessable(
            "clock_ahead",
            format!(
                "the envelope's clock is {ahead}; at most {} ms is taken",
                signing::WINDOW_MS
            ),
        ));
    }
    if !state.interbank.deliver(from, envelope.messages) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many interbank messages waiting; they will be resent",
        )
        .with_retry_after(1));
    }
    Ok(Json(
        serde_json::json!({ "bank": state.bank, "clock": state.clock.last() }),
    ))
}

/// Whether this bank holds a Pix key, for a bank whose customer pays it.
pub async fn pix_key(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<RemoteKey>, ApiError> {
    verify(&state, &method, &uri, &headers)?;
    let not_found = || ApiError::not_found("pix_key_not_found", "no such Pix key at this bank");
    let key = PixKey::parse_any(&key).map_err(|_| not_found())?;
    let record = state.store.pix_key(&key).await?.ok_or_else(not_found)?;
    Ok(Json(RemoteKey {
        key: record.key.clone(),
        key_type: record.key_type.clone(),
        bank: state.bank.to_string(),
        number: record.account_number.clone(),
        holder_name: record.holder_name.clone(),
        document_masked: record.document_masked.clone(),
    }))
}

/// The customer with this document here, for a bank asking on their behalf.
async fn on_behalf_of(state: &AppState, document: &str) -> Result<store::CustomerRecord, ApiError> {
    state
        .store
        .customer_by_document(document)
        .await?
        .ok_or_else(ApiError::account_not_found)
}

/// The accounts here the directory lists for the person with this document.
fn listed_here(state: &AppState, document: &str) -> Result<Vec<AccountNumber>, ApiError> {
    let Ok(document) = ledger::Document::parse(document) else {
        return Ok(Vec::new());
    };
    Ok(state
        .interbank
        .directory
        .accounts_of(&document)
        .map_err(crate::directory::problem)?
        .into_iter()
        .filter(|held| held.bank == state.bank)
        .map(|held| held.account)
        .collect())
}

/// Every account the customer holds here (empty when they are not a customer here).
pub async fn customer_accounts(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    ApiPath(document): ApiPath<String>,
) -> Result<Json<Vec<wire::Account>>, ApiError> {
    verify(&state, &method, &uri, &headers)?;
    let Some(customer) = state.store.customer_by_document(&document).await? else {
        return Ok(Json(Vec::new()));
    };
    let accounts = state.store.accounts_of(customer.id).await?;
    // Only those the directory lists for that person (issue #24: a bank cannot vouch for
    // someone the directory does not know as an account's holder).
    let listed = listed_here(&state, &document)?;
    Ok(Json(
        accounts
            .iter()
            .filter(|a| AccountNumber::parse(&a.number).is_some_and(|n| listed.contains(&n)))
            .map(account_wire)
            .collect(),
    ))
}

pub async fn customer_account(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    ApiPath((document, number)): ApiPath<(String, String)>,
) -> Result<Json<wire::Account>, ApiError> {
    verify(&state, &method, &uri, &headers)?;
    let customer = on_behalf_of(&state, &document).await?;
    let number = AccountNumber::parse(&number).ok_or_else(ApiError::account_not_found)?;
    if !listed_here(&state, &document)?.contains(&number) {
        return Err(ApiError::account_not_found());
    }
    let account = state
        .store
        .account(customer.id, number)
        .await?
        .ok_or_else(ApiError::account_not_found)?;
    Ok(Json(account_wire(&account)))
}

pub async fn customer_statement(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    ApiPath((document, number)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<StatementQuery>,
) -> Result<Json<wire::Statement>, ApiError> {
    verify(&state, &method, &uri, &headers)?;
    let customer = on_behalf_of(&state, &document).await?;
    let number = AccountNumber::parse(&number).ok_or_else(ApiError::account_not_found)?;
    if !listed_here(&state, &document)?.contains(&number) {
        return Err(ApiError::account_not_found());
    }
    statement_page(&state, customer.id, number, query)
        .await
        .map(Json)
}
