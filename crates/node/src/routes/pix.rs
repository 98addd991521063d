//! Pix keys: register one on an account you hold, list yours, look one up, remove one.

use super::{ApiPath, body_account, pix_key_wire, respond};
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller, Fingerprint};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use ledger::{AccountNumber, Document, PixKey, PixKeyType};
use std::sync::Arc;
use store::Command;

fn parse_key(text: &str) -> Result<PixKey, ApiError> {
    PixKey::parse_any(text).map_err(|_| ApiError::not_found("pix_key_not_found", "no such Pix key"))
}

#[utoipa::path(post, path = "/api/v1/pix-keys", tag = "pix", security(("bearer" = [])), request_body = wire::AddPixKey,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = wire::PixKey), (status = 409, description = "duplicate_pix_key", body = wire::Problem),
              (status = 422, description = "invalid_pix_key, pix_key_limit_reached, pix_key_not_your_document", body = wire::Problem)))]
pub async fn add(
    State(state): State<Arc<AppState>>,
    Caller(customer): Caller,
    headers: HeaderMap,
    body: ApiJson<wire::AddPixKey>,
) -> Result<Response, ApiError> {
    let request = body.value;
    let account = body_account(&state, "account", &request.account)?;
    let kind = PixKeyType::parse(&request.kind).ok_or_else(|| {
        ApiError::unprocessable(
            "invalid_pix_key_type",
            "`type` is cpf, cnpj, email, phone or random",
        )
    })?;
    let key = match (kind, request.value) {
        (PixKeyType::Random, None) => PixKey::parse_typed(kind, &uuid::Uuid::new_v4().to_string())
            .expect("a v4 UUID is a random key"),
        (PixKeyType::Random, Some(_)) => {
            return Err(ApiError::unprocessable(
                "invalid_pix_key",
                "the bank generates random keys: send no `value`",
            ));
        }
        (_, None) => {
            return Err(ApiError::unprocessable(
                "invalid_pix_key",
                "`value` is required for this key type",
            ));
        }
        (_, Some(value)) => PixKey::parse_typed(kind, &value)
            .map_err(|error| ApiError::unprocessable(error.code(), format!("`value`: {error}")))?,
    };
    let command = Command::AddPixKey {
        actor: customer.id,
        account,
        key,
    };
    let executed = state
        .execute(customer.id, &headers, &body.fingerprint, command)
        .await?;
    // This bank's own rules first (the account, its limit of keys, one's own document), then
    // the consortium's directory, where a key is one bank's: a claim the directory refuses is
    // taken back here.
    if let store::Outcome::PixKey(record) = &executed.outcome
        && let Err(error) = claim(&state, &customer, record).await
    {
        if let Some(key) = PixKeyType::parse(&record.key_type)
            .and_then(|kind| PixKey::parse_typed(kind, &record.key).ok())
        {
            let undo = Command::DeletePixKey {
                actor: customer.id,
                key,
            };
            state
                .execute(
                    customer.id,
                    &HeaderMap::new(),
                    &Fingerprint::of_text(""),
                    undo,
                )
                .await?;
        }
        return Err(crate::directory::problem(error));
    }
    Ok(respond(executed))
}

/// Records a key this bank just registered in the directory, as the customer's on that account.
/// An account the directory does not list yet for them (its listing still on its way) is
/// listed first.
async fn claim(
    state: &AppState,
    customer: &store::CustomerRecord,
    record: &store::PixKeyRecord,
) -> Result<(), directory::DirectoryError> {
    let invalid = |what: &str| directory::DirectoryError::Storage(format!("a stored {what}"));
    let key = PixKeyType::parse(&record.key_type)
        .and_then(|kind| PixKey::parse_typed(kind, &record.key).ok())
        .ok_or_else(|| invalid("Pix key"))?;
    let account = AccountNumber::parse(&record.account_number).ok_or_else(|| invalid("account"))?;
    let document = Document::parse(&customer.document).map_err(|_| invalid("document"))?;
    let directory = &state.interbank.directory;
    let command = directory::Command::AddPixKey {
        key,
        bank: state.bank,
        account,
        holder_name: record.holder_name.clone(),
        document: document.clone(),
    };
    match directory.write(command.clone()).await {
        Err(directory::DirectoryError::Conflict(directory::Conflict::AccountNotHeld)) => {
            directory
                .write(directory::Command::AddAccount {
                    document,
                    bank: state.bank,
                    account,
                })
                .await?;
            directory.write(command).await.map(drop)
        }
        written => written.map(drop),
    }
}

#[utoipa::path(get, path = "/api/v1/pix-keys", tag = "pix", security(("bearer" = [])),
    responses((status = 200, description = "every key on accounts you hold", body = wire::PixKeys)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Caller(customer): Caller,
) -> Result<Json<wire::PixKeys>, ApiError> {
    let keys = state.store.pix_keys_of(customer.id).await?;
    Ok(Json(wire::PixKeys {
        keys: keys.iter().map(|k| pix_key_wire(k, true)).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/pix-keys/{key}", tag = "pix", security(("bearer" = [])),
    params(("key" = String, Path, description = "CPF, CNPJ, e-mail, +55 phone or random UUID")),
    responses((status = 200, description = "the holder's name, bank and masked document, from this bank or another of the consortium; never the account or balance", body = wire::PixKey),
              (status = 404, description = "pix_key_not_found", body = wire::Problem),
              (status = 429, description = "too_many_requests: more lookups than a customer may make (PIX_LOOKUPS_BURST_MAX, then one a second), with Retry-After", body = wire::Problem)))]
pub async fn lookup(
    State(state): State<Arc<AppState>>,
    client: crate::limits::Client,
    Caller(customer): Caller,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<wire::PixKey>, ApiError> {
    // Each answer names a person: unlimited, lookups would list the consortium's customers.
    if let Err(refused) = state
        .limits
        .pix_lookup(customer.id, std::time::Instant::now())
    {
        state.trail.record(
            "lookup_throttled",
            Some(client),
            Some(&customer.username),
            refused.code,
        );
        return Err(refused);
    }
    let key = parse_key(&key)?;
    // This bank's copy of the directory answers, so every bank gives the same answer.
    let found = crate::directory::pix_key(&state.interbank.directory, &key)
        .await
        .map_err(crate::directory::problem)?
        .ok_or_else(|| {
            ApiError::not_found("pix_key_not_found", "no such Pix key in the consortium")
        })?;
    if found.bank == state.bank
        && let Some(record) = state.store.pix_key(&key).await?
    {
        return Ok(Json(pix_key_wire(&record, false)));
    }
    Ok(Json(wire::PixKey {
        key: found.key.as_str().to_owned(),
        kind: found.key.key_type().as_str().to_owned(),
        bank: found.bank.to_string(),
        holder_name: found.holder_name,
        document_masked: found.document.masked(),
        account: None,
    }))
}

#[utoipa::path(delete, path = "/api/v1/pix-keys/{key}", tag = "pix", security(("bearer" = [])),
    params(("key" = String, Path)),
    responses((status = 204, description = "removed"), (status = 404, description = "pix_key_not_found (also for others' keys)", body = wire::Problem)))]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    Caller(customer): Caller,
    ApiPath(key): ApiPath<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = parse_key(&key)?;
    // Only the key's holder takes it out of the directory: it must be one of theirs here.
    let theirs = state
        .store
        .pix_keys_of(customer.id)
        .await?
        .iter()
        .any(|k| k.key == key.as_str());
    if theirs {
        let release = directory::Command::RemovePixKey {
            key: key.clone(),
            bank: state.bank,
        };
        match state.interbank.directory.write(release).await {
            // The directory gives it to another bank: this bank's copy is only stale.
            Ok(_) | Err(directory::DirectoryError::Conflict(_)) => {}
            Err(error) => return Err(crate::directory::problem(error)),
        }
    }
    let executed = state
        .execute(
            customer.id,
            &headers,
            &Fingerprint::of_text(&format!("DELETE {}", uri.path())),
            Command::DeletePixKey {
                actor: customer.id,
                key,
            },
        )
        .await?;
    Ok(respond(executed))
}
