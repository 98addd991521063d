//! The public REST API, one module per resource. Handlers parse every field at the edge into the
//! ledger's validated types, hand one command to the store, and render its outcome; the same
//! rendering answers a first request and its idempotent replays.

pub mod accounts;
pub mod customers;
pub mod interbank;
pub mod invitations;
pub mod payments;
pub mod pix;
pub mod system;
pub mod trail;

use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::{HeaderValue, StatusCode, request::Parts};
use axum::response::{IntoResponse, Response};
use ledger::amount::format_cents;
use ledger::{AccountNumber, Amount, BankCode, PixKey};
use serde::de::DeserializeOwned;
use store::*;

/// Longest free-text description on a movement.
pub const DESCRIPTION_LEN_MAX: usize = 140;

/// Path parameters whose failures are problem+json answers.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|rejection| ApiError::bad_request("invalid_path", rejection.body_text()))
    }
}

/// Query parameters whose failures are problem+json answers.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| ApiError::bad_request("invalid_query", rejection.body_text()))
    }
}

pub fn amount(field: &str, text: &str) -> Result<Amount, ApiError> {
    Amount::parse(text)
        .map_err(|error| ApiError::unprocessable(error.code(), format!("`{field}`: {error}")))
}

pub fn description(text: Option<String>) -> Result<String, ApiError> {
    let text = text.unwrap_or_default();
    if text.chars().count() > DESCRIPTION_LEN_MAX || text.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            "invalid_description",
            format!(
                "a description has at most {DESCRIPTION_LEN_MAX} characters and no control characters"
            ),
        ));
    }
    Ok(text.trim().to_string())
}

/// An account of this bank named in a path: anything else is simply not found.
pub fn path_account(state: &AppState, bank: &str, number: &str) -> Result<AccountNumber, ApiError> {
    if BankCode::parse(bank) != Some(state.bank) {
        return Err(ApiError::account_not_found());
    }
    AccountNumber::parse(number).ok_or_else(ApiError::account_not_found)
}

/// An account named in a body, `{bank, number}`: another bank's accounts are for the consortium.
pub fn body_account(
    state: &AppState,
    field: &str,
    account: &wire::AccountRef,
) -> Result<AccountNumber, ApiError> {
    account_here(state, field, &account.bank, &account.number)
}

fn account_here(
    state: &AppState,
    field: &str,
    bank: &str,
    number: &str,
) -> Result<AccountNumber, ApiError> {
    let bank = BankCode::parse(bank).ok_or_else(|| {
        ApiError::unprocessable(
            "invalid_bank",
            format!("`{field}.bank` is a bank's 8-digit code"),
        )
    })?;
    let number = AccountNumber::parse(number).ok_or_else(|| {
        ApiError::unprocessable(
            "invalid_account_number",
            format!("`{field}.number` is an account number with its check digit, like 100001-2"),
        )
    })?;
    if bank != state.bank {
        return Err(other_bank(state, bank));
    }
    Ok(number)
}

fn other_bank(state: &AppState, bank: BankCode) -> ApiError {
    if state.peers.iter().any(|peer| peer.code == bank.as_str()) {
        ApiError::unprocessable(
            "interbank_not_supported",
            format!(
                "bank {bank} is in the consortium; to move money in your account there through this bank, send it as a package (POST /api/v1/packages), or ask bank {bank} directly"
            ),
        )
    } else {
        ApiError::unprocessable(
            "unknown_bank",
            format!("bank {bank} is not in this bank's consortium"),
        )
    }
}

/// Where a transfer goes: exactly one of a Pix key or a bank and number.
pub fn destination(
    state: &AppState,
    field: &str,
    to: &wire::Destination,
) -> Result<Target, ApiError> {
    match (&to.pix_key, &to.bank, &to.number) {
        (Some(key), None, None) => PixKey::parse_any(key).map(Target::Key).map_err(|error| {
            ApiError::unprocessable(error.code(), format!("`{field}.pix_key`: {error}"))
        }),
        (None, Some(bank), Some(number)) => {
            account_here(state, field, bank, number).map(Target::Account)
        }
        _ => Err(ApiError::unprocessable(
            "invalid_destination",
            format!("`{field}` is either {{\"pix_key\"}} or {{\"bank\", \"number\"}}"),
        )),
    }
}

pub fn rfc3339(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

pub fn customer_wire(customer: &CustomerRecord) -> wire::Customer {
    wire::Customer {
        id: customer.public_id.clone(),
        name: customer.name.clone(),
        kind: customer.kind.as_str().to_string(),
        username: customer.username.clone(),
        home_bank: customer.home_bank.clone(),
    }
}

pub fn account_wire(account: &AccountRecord) -> wire::Account {
    wire::Account {
        bank: account.bank.clone(),
        number: account.number.clone(),
        kind: account.kind.as_str().to_string(),
        holders: account
            .holders
            .iter()
            .map(|h| wire::Holder {
                username: h.username.clone(),
                name: h.name.clone(),
            })
            .collect(),
        balance: format_cents(account.balance_cents),
        available: format_cents(account.available_cents),
    }
}

pub fn entry_wire(entry: &EntryRecord) -> wire::StatementEntry {
    wire::StatementEntry {
        id: entry.id.to_string(),
        kind: entry.kind.clone(),
        amount: format_cents(entry.amount_cents),
        balance_after: format_cents(entry.balance_after_cents),
        counterparty: entry.counterparty.clone(),
        description: entry.description.clone(),
        made_by: entry.made_by.clone(),
        clock: entry.clock.clone(),
        at: rfc3339(entry.at_ms),
        e2e_id: entry.e2e_id.clone(),
    }
}

pub fn pix_key_wire(key: &PixKeyRecord, show_account: bool) -> wire::PixKey {
    wire::PixKey {
        key: key.key.clone(),
        kind: key.key_type.clone(),
        bank: key.bank.clone(),
        holder_name: key.holder_name.clone(),
        document_masked: key.document_masked.clone(),
        account: show_account.then(|| wire::AccountRef {
            bank: key.bank.clone(),
            number: key.account_number.clone(),
        }),
    }
}

fn address_wire(address: &AccountAddress) -> wire::AccountRef {
    wire::AccountRef {
        bank: address.bank.clone(),
        number: address.number.clone(),
    }
}

pub fn payment_wire(payment: &PaymentRecord) -> wire::Transfer {
    wire::Transfer {
        id: payment.e2e_id.clone(),
        status: payment.status.as_str().to_string(),
        reason: payment.reason.clone(),
        from: address_wire(&payment.from),
        to: address_wire(&payment.to),
        amount: format_cents(payment.amount_cents),
        description: payment.description.clone(),
        clock: payment.clock.clone(),
    }
}

pub fn package_wire(package: &PackageRecord) -> wire::Package {
    wire::Package {
        id: package.e2e_id.clone(),
        status: package.status.as_str().to_string(),
        results: package
            .results
            .iter()
            .enumerate()
            .map(|(index, r)| wire::OperationResult {
                index,
                status: r.status.as_str().to_string(),
                reason: r.reason.clone(),
            })
            .collect(),
        clock: package.clock.clone(),
    }
}

/// Renders a stored outcome for a transfer lookup (200) or as the answer to a command.
pub fn outcome_body(outcome: &Outcome) -> Result<Response, ApiError> {
    let body = match outcome {
        Outcome::Customer(customer) => Json(customer_wire(customer)).into_response(),
        Outcome::Account(account) => Json(account_wire(account)).into_response(),
        Outcome::PixKey(key) => Json(pix_key_wire(key, true)).into_response(),
        Outcome::Entry(entry) => Json(entry_wire(entry)).into_response(),
        Outcome::Payment(payment) if payment.status == PaymentStatus::Pending => {
            (StatusCode::ACCEPTED, Json(payment_wire(payment))).into_response()
        }
        Outcome::Payment(payment) => Json(payment_wire(payment)).into_response(),
        Outcome::Pending(payment) => {
            (StatusCode::ACCEPTED, Json(payment_wire(payment))).into_response()
        }
        Outcome::Package(package) if package.status == PaymentStatus::Pending => {
            (StatusCode::ACCEPTED, Json(package_wire(package))).into_response()
        }
        Outcome::Package(package) => Json(package_wire(package)).into_response(),
        Outcome::Batch(records) => Json(wire::BatchResponse {
            results: records
                .iter()
                .map(|r| wire::BatchResult {
                    id: r.id.clone(),
                    status: r.status.clone(),
                    reason: r.reason.clone(),
                    e2e_id: r.e2e_id.clone(),
                })
                .collect(),
        })
        .into_response(),
        Outcome::Done => StatusCode::NO_CONTENT.into_response(),
        Outcome::Refused(refusal) => return Err(refusal.clone().into()),
        Outcome::Vote { .. } | Outcome::AlreadyFinished | Outcome::Decision { .. } => {
            return Err(ApiError::internal(
                "an interbank outcome reached the public API",
            ));
        }
    };
    Ok(body)
}

/// The answer to an executed command: 201 with the created thing (204 when there is nothing to
/// show), the refusal as a problem, and `Idempotent-Replayed: true` on replays.
pub fn respond(executed: Executed) -> Response {
    let mut response = match outcome_body(&executed.outcome) {
        Ok(mut response) => {
            if response.status() == StatusCode::OK {
                *response.status_mut() = StatusCode::CREATED;
            }
            response
        }
        Err(refusal) => refusal.into_response(),
    };
    if executed.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}
